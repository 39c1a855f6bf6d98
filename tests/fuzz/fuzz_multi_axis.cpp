// libFuzzer target: rotary::apply and rotary::apply_qk with positions along several axes
// (multi_axis.hpp: M-RoPE, 2D axial RoPE), in place and out of place. The first byte picks apply
// (one view) or apply_qk (q and k); the rest is rope_call's input with an axis_positions (see
// rope_call.hpp, MultiAxis, for what it decodes and checks).
#include "rope_call.hpp"

namespace {

using rotary_fuzz::contiguous_view;
using rotary_fuzz::strided_view;

using one_view = rotary_fuzz::rope_call<1, false, true>;
using two_views = rotary_fuzz::rope_call<2, false, true>;

struct multi_axis_call : rotary_fuzz::apply_or_qk_call<false, true> {
    static std::vector<std::pair<std::string, multi_axis_call>> seeds();
};

// Token t's ids on each axis, axis after axis: {axis 0 ids..., axis 1 ids..., ...}.
template <class Call>
void set_axes(Call& c, std::uint8_t axes, std::vector<std::uint64_t> sections, std::vector<std::int64_t> ids) {
    c.axes = axes;
    c.section_count = static_cast<std::uint8_t>(sections.size());
    c.sections = std::move(sections);
    c.ids_count = axes == 0 ? 0 : ids.size() / axes;
    c.ids = std::move(ids);
}

std::vector<std::pair<std::string, multi_axis_call>> multi_axis_call::seeds() {
    std::vector<std::pair<std::string, multi_axis_call>> s;
    // apply: M-RoPE of Qwen2-VL's shape scaled down, rotary_dim 64 (32 pairs), a table of 100
    // positions, 4 tokens x 3 heads; sections {8, 12, 12}; balance fills the last one.
    const auto add = [&](const char* name, const auto& edit) {
        multi_axis_call c;
        one_view& o = c.one;
        o.pairs_m1 = 31, o.positions_tag = 3, o.layout_raw = 1, o.balance = 0;
        o.in[0] = contiguous_view(0, 0, 4, 3, 64);
        set_axes(o, 3, {8, 12, 12}, {0, 1, 2, 3, /*h*/ 0, 0, 5, 5, /*w*/ 0, 7, 0, 7});
        o.value_seed = rotary_fuzz::seed_of(name);
        edit(c.one);
        s.emplace_back(name, c);
    };
    // apply_qk: q 4 heads, k 2 heads (GQA), head_dim 72 with rotary_dim 64.
    const auto add_qk = [&](const char* name, const auto& edit) {
        multi_axis_call c;
        c.qk = 1;
        two_views& o = c.two;
        o.pairs_m1 = 31, o.positions_tag = 3, o.layout_raw = 1, o.balance = 0;
        o.in[0] = contiguous_view(0, 0, 3, 4, 72);
        o.in[1] = contiguous_view(1, 0, 3, 2, 72);
        set_axes(o, 3, {8, 12, 12}, {4, 4, 6, /*h*/ 4, 9, 1, /*w*/ 4, 2, 99});
        o.value_seed = rotary_fuzz::seed_of(name);
        edit(c.two);
        s.emplace_back(name, c);
    };
    add("seed-mrope-half-split-f32", [](one_view&) {});
    add("seed-mrope-interleaved-f64-inverse", [](one_view& c) { c.element = 1, c.layout_raw = 0, c.direction_raw = 1; });
    add("seed-mrope-text-tokens", [](one_view& c) { c.text_mask = 0b0101, c.position_kind = 1; });  // int64 ids
    add("seed-mrope-odd-sections-partial", [](one_view& c) {  // rotary_dim 42 of 50: sections {5, 7, 9}
        c.pairs_m1 = 20, c.in[0] = contiguous_view(0, 1, 4, 3, 50);
        c.sections = {5, 7, 9};
    });
    add("seed-axial-2d-f32", [](one_view& c) {  // a 2 x 2 grid of patches, axes (row, column)
        c.axial = 1, c.layout_raw = 0;
        set_axes(c, 2, {16, 16}, {0, 0, 1, 1, /*col*/ 0, 1, 0, 1});
    });
    add("seed-axial-2d-bf16-out-of-place", [](one_view& c) {
        c.element = 3, c.axial = 1, c.overload = 1;
        set_axes(c, 2, {16, 16}, {3, 3, 4, 4, /*col*/ 8, 9, 8, 9});
        c.out[0] = strided_view(1, 2, 4, 3, 64, 3 * 70 + 3, 70);
    });
    add("seed-four-axes-f16-strided", [](one_view& c) {  // [heads, seq, dim] view, misaligned
        c.element = 2;
        c.in[0] = strided_view(0, 3, 4, 3, 64, 64, 4 * 64 + 1);
        set_axes(c, 4, {8, 8, 8, 8}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16});
    });
    add("seed-one-axis-token-range", [](one_view& c) {
        set_axes(c, 1, {32}, {7, 99, 0, 31});
        c.token_begin = 1, c.token_end = 3;
    });
    add("seed-wide-head-512-ids32", [](one_view& c) {
        c.pairs_m1 = 0x81, c.in[0] = contiguous_view(0, 0, 2, 2, 512);
        set_axes(c, 3, {64, 96, 96}, {0, 1, 50, 60, 99, 98});
    });
    add_qk("seed-qk-mrope-gqa-in-place", [](two_views&) {});
    add_qk("seed-qk-out-of-place-f64-interleaved", [](two_views& c) {
        c.element = 1, c.overload = 1, c.layout_raw = 0;
        c.out[0] = contiguous_view(2, 0, 3, 4, 72);
        c.out[1] = strided_view(3, 1, 3, 2, 72, 2 * 72 + 3, 72);
    });
    add_qk("seed-qk-packed-qkv-bf16", [](two_views& c) {  // q and k slices of one [tokens, 4 + 2 + 2 heads, 72] buffer
        c.element = 3;
        c.in[0] = strided_view(0, 0, 3, 4, 72, 8 * 72, 72);
        c.in[1] = strided_view(0, 4 * 72, 3, 2, 72, 8 * 72, 72);
    });
    // Invalid calls: each must throw the documented exception and leave every buffer as it was.
    add("seed-bad-sections-do-not-add-up", [](one_view& c) { c.sections = {8, 12, 11}; });
    add("seed-bad-sections-fewer-than-axes", [](one_view& c) { c.section_count = 2, c.sections = {16, 16}; });
    add("seed-bad-five-sections", [](one_view& c) { c.section_count = 5, c.sections = {8, 8, 8, 4, 4}; });
    add("seed-bad-no-axes", [](one_view& c) { set_axes(c, 0, {}, {}); });
    add("seed-bad-axis-id-negative", [](one_view& c) { c.ids[9] = -4; });
    add("seed-bad-axis-id-past-table", [](one_view& c) { c.ids[6] = 100; });
    add("seed-bad-ids-count", [](one_view& c) {
        c.in[0] = contiguous_view(0, 0, 5, 3, 64);  // 5 tokens, 4 ids per axis
    });
    add("seed-bad-ids-null", [](one_view& c) { c.ids_null = 1; });
    add("seed-bad-axial-rotary-dim", [](one_view& c) {  // rotary_dim 62: not a multiple of 4
        c.axial = 1, c.pairs_m1 = 30, c.in[0] = contiguous_view(0, 0, 4, 3, 62);
        set_axes(c, 2, {15, 16}, {0, 0, 1, 1, 0, 1, 0, 1});
    });
    add("seed-bad-rows-overlap", [](one_view& c) { c.in[0] = strided_view(0, 0, 4, 3, 64, 64, 32); });
    add_qk("seed-bad-qk-overlap", [](two_views& c) { c.in[1] = contiguous_view(0, 72, 3, 2, 72); });
    add_qk("seed-bad-qk-axis-id-past-table", [](two_views& c) { c.ids[8] = 1000; });
    // Findings (README.md, "Fuzzing"): each input that once failed, kept as a regression test.
    add("regression-sections-sum-wraps", [](one_view& c) {  // {33, 2^64 - 1} wrapped to 32 pairs: accepted
        set_axes(c, 2, {33, ~std::uint64_t{0}}, {0, 1, 2, 3, 4, 5, 6, 7});
    });
    return s;
}

}  // namespace

ROTARY_FUZZ_TARGET(multi_axis_call)
