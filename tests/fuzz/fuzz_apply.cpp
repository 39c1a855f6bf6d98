// libFuzzer target: rotary::apply, in place and out of place (see rope_call.hpp for what it decodes
// and checks).
#include "rope_call.hpp"

namespace {

using rotary_fuzz::contiguous_view;
using rotary_fuzz::strided_view;

struct apply_call : rotary_fuzz::rope_call<1> {
    static std::vector<std::pair<std::string, apply_call>> seeds() {
        std::vector<std::pair<std::string, apply_call>> s;
        const auto add = [&](const char* name, const auto& edit) {
            apply_call c;
            c.pairs_m1 = 31;        // rotary_dim 64
            c.positions_tag = 3;     // max_positions 100
            c.in[0] = contiguous_view(0, 0, 3, 4, 64);
            c.value_seed = rotary_fuzz::seed_of(name);
            edit(c);
            s.emplace_back(name, c);
        };
        add("seed-in-place-interleaved-f32", [](apply_call& c) { c.start = 5; });
        add("seed-in-place-half-split-f64-inverse", [](apply_call& c) {
            c.element = 1, c.layout_raw = 1, c.direction_raw = 1, c.start = 90;
            c.in[0] = contiguous_view(0, 0, 7, 3, 64);
        });
        add("seed-out-of-place-partial-rotary", [](apply_call& c) {  // Phi-2: 32 of 80
            c.overload = 1, c.layout_raw = 1, c.pairs_m1 = 15;
            c.in[0] = contiguous_view(0, 0, 5, 2, 80);
            c.out[0] = contiguous_view(1, 0, 5, 2, 80);
        });
        add("seed-bhsd-strided-misaligned", [](apply_call& c) {  // [heads, seq, dim]: token_stride dim
            c.in[0] = strided_view(0, 3, 6, 2, 64, 64, 6 * 64);
            c.start = 17;
        });
        add("seed-gaps-between-rows", [](apply_call& c) {
            c.overload = 1, c.pairs_m1 = 34, c.element = 1;  // rotary_dim 70: SIMD body and scalar tail
            c.in[0] = strided_view(0, 1, 5, 3, 70, 3 * 75 + 9, 75);
            c.out[0] = strided_view(1, 2, 5, 3, 70, 3 * 72 + 1, 72);
        });
        add("seed-ids32-subrange", [](apply_call& c) {
            c.in[0] = contiguous_view(0, 0, 5, 2, 64);
            c.position_kind = 1, c.ids_count = 5, c.ids = {3, 99, 0, 41, 7};
            c.token_begin = 1, c.token_end = 4;
        });
        add("seed-ids64-table-end", [](apply_call& c) {
            c.element = 1, c.layout_raw = 1;
            c.in[0] = contiguous_view(0, 0, 3, 2, 64);
            c.position_kind = 2, c.ids_count = 3, c.ids = {99, 0, 64};
        });
        add("seed-out-is-in", [](apply_call& c) { c.overload = 1, c.same_mask = 1, c.start = 50; });
        add("seed-wide-head-512", [](apply_call& c) {
            c.pairs_m1 = 0x81, c.layout_raw = 1;  // rotary_dim 512
            c.in[0] = contiguous_view(0, 0, 2, 2, 512);
        });
        add("seed-f16-in-place-half-split", [](apply_call& c) { c.element = 2, c.layout_raw = 1, c.start = 11; });
        add("seed-bf16-out-of-place-interleaved-odd-tail", [](apply_call& c) {  // rotary_dim 70 of 72
            c.element = 3, c.overload = 1, c.pairs_m1 = 34, c.start = 3;
            c.in[0] = contiguous_view(0, 1, 3, 2, 72);
            c.out[0] = strided_view(1, 3, 3, 2, 72, 2 * 72 + 5, 72);
        });
        add("seed-f16-wide-values", [](apply_call& c) { c.element = 2, c.value_mode = 1, c.start = 60; });  // 10^[-5, 5): Inf past 65504
        add("seed-bf16-special-values", [](apply_call& c) { c.element = 3, c.value_mode = 3, c.direction_raw = 1; });
        add("seed-f16-any-bits-ids", [](apply_call& c) {
            c.element = 2, c.value_mode = 2, c.position_kind = 1, c.ids_count = 3, c.ids = {99, 1, 50};
        });
        add("seed-special-values", [](apply_call& c) { c.value_mode = 3, c.start = 0; });
        add("seed-any-bits", [](apply_call& c) { c.value_mode = 2, c.element = 1, c.start = 1; });
        add("seed-broadcast-input", [](apply_call& c) {  // one input row rotated at every position
            c.overload = 1;
            c.in[0] = strided_view(0, 0, 6, 1, 64, 0, 64);
            c.out[0] = contiguous_view(1, 0, 6, 1, 64);
        });
        // Invalid calls: each must throw and leave every buffer as it was.
        add("seed-bad-position-past-table", [](apply_call& c) { c.start = 98; });
        add("seed-bad-negative-offset", [](apply_call& c) { c.start = -1; });
        add("seed-bad-ids-negative", [](apply_call& c) {
            c.position_kind = 1, c.ids_count = 3, c.ids = {0, -4, 2};
        });
        add("seed-bad-negative-stride", [](apply_call& c) { c.in[0] = strided_view(0, 256, 3, 1, 64, -64, 64); });
        add("seed-bad-rows-overlap", [](apply_call& c) { c.in[0] = strided_view(0, 0, 3, 2, 64, 64, 32); });
        add("seed-bad-out-overlaps-in", [](apply_call& c) {
            c.overload = 1;
            c.out[0] = contiguous_view(0, 1, 3, 4, 64);
        });
        add("seed-bad-null-with-rows", [](apply_call& c) { c.in[0].place = 4; });
        add("seed-bad-address-space-overflow", [](apply_call& c) { c.in[0] = contiguous_view(5, 0, 3, 4, 1024); c.pairs_m1 = 31; });
        add("seed-bad-size-overflow", [](apply_call& c) { c.in[0] = strided_view(0, 0, 3, 1, 64, std::int64_t{1} << 62, 64); });
        add("seed-bad-token-range", [](apply_call& c) { c.token_begin = 2, c.token_end = 4; });
        add("seed-bad-layout", [](apply_call& c) { c.layout_raw = 7; });
        add("seed-bad-rotary-dim", [](apply_call& c) { c.pairs_m1 = 63; });
        add("seed-bad-f16-position-past-table", [](apply_call& c) { c.element = 2, c.start = 98; });
        add("seed-bad-bf16-out-overlaps-in", [](apply_call& c) {
            c.element = 3, c.overload = 1;
            c.out[0] = contiguous_view(0, 1, 3, 4, 64);
        });
        add("seed-bad-shape-mismatch", [](apply_call& c) {
            c.overload = 1;
            c.out[0] = contiguous_view(1, 0, 2, 4, 64);
        });
        // Findings (README.md, "Fuzzing"): each input that once failed, kept as a regression test.
        add("regression-null-view-without-heads", [](apply_call& c) {  // was UB: an offset applied to nullptr
            c.in[0] = strided_view(4, 0, 3, 0, 64, 32, 64);
        });
        add("regression-size-sum-wraps", [](apply_call& c) {  // the overflow check itself wrapped (UBSan)
            c.in[0] = strided_view(0, 0, 2, 2, 64, PTRDIFF_MAX, PTRDIFF_MAX);
        });
        add("regression-offset-sum-wraps", [](apply_call& c) {  // start + last token wrapped to position 0: accepted
            c.in[0] = strided_view(0, 0, ~std::uint64_t{0}, 0, 64, 64, 64);
            c.token_begin = ~std::uint64_t{0} - 1;
            c.start = 2;
        });
        add("regression-empty-range-far-out", [](apply_call& c) {  // the harness sized a buffer by the range's end
            c.overload = 1, c.same_mask = 1, c.pairs_m1 = 0, c.positions_tag = 0, c.start = 1;
            c.in[0] = contiguous_view(0, 0, std::uint64_t{1} << 31, 0, 2);
            c.token_begin = c.token_end = std::uint64_t{1} << 31;
        });
        add("regression-contiguous-head-dim-past-ptrdiff", [](apply_call& c) {  // the harness's model missed it
            c.layout_raw = 99, c.in[0] = contiguous_view(4, 64, 1, 0, ~std::uint64_t{0});
        });
        return s;
    }
};

}  // namespace

ROTARY_FUZZ_TARGET(apply_call)
