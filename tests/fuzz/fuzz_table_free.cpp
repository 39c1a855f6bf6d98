// libFuzzer target: the table-free path (table_free.hpp). One input is a rope_angles<C>, built from
// (rotary_dim, base) or from a rope_frequencies with one frequency and the attention factor taken
// from the input (NaN, Inf, past pi, past fp32's range, ...), and rotary_dim up to and past its
// limit of 1024; then one rotary::apply or rotary::apply_qk with it, in place or out of place, on
// fp32, fp64, fp16 or bf16 buffers, at positions anywhere below 2^32 and past it. The constructor
// must throw the documented exception for bad frequencies; the call is checked as the apply
// targets check theirs (rope_call.hpp): the documented errors with every buffer unchanged, or every
// backend's result against the long double oracle and the scalar path.
#include "rope_call.hpp"

namespace {

using rotary_fuzz::contiguous_view;
using rotary_fuzz::strided_view;

using one_call = rotary_fuzz::rope_call<1, true>;
using qk_call = rotary_fuzz::rope_call<2, true>;

struct table_free_call : rotary_fuzz::apply_or_qk_call<true, false> {
    std::string describe() const { return "table-free " + apply_or_qk_call::describe(); }

    static constexpr std::int64_t two_32 = std::int64_t{1} << 32;

    static std::vector<std::pair<std::string, table_free_call>> seeds() {
        std::vector<std::pair<std::string, table_free_call>> s;
        const auto add = [&](const char* name, const auto& edit) {  // apply, 3 tokens x 4 heads x 64
            table_free_call c;
            c.one.pairs_m1 = 31;
            c.one.in[0] = contiguous_view(0, 0, 3, 4, 64);
            c.one.value_seed = rotary_fuzz::seed_of(name);
            edit(c.one);
            s.emplace_back(name, c);
        };
        const auto add_qk = [&](const char* name, const auto& edit) {  // GQA: 8 q heads, 2 kv heads
            table_free_call c;
            c.qk = 1;
            c.two.pairs_m1 = 63, c.two.layout_raw = 1;  // rotary_dim 128
            c.two.in[0] = contiguous_view(0, 0, 2, 8, 128);
            c.two.in[1] = contiguous_view(1, 0, 2, 2, 128);
            c.two.value_seed = rotary_fuzz::seed_of(name);
            edit(c.two);
            s.emplace_back(name, c);
        };
        add("seed-f32-interleaved", [](one_call& c) { c.start = 5; });
        add("seed-f64-half-split-last-positions", [](one_call& c) {  // positions 2^32 - 3 .. 2^32 - 1
            c.element = 1, c.layout_raw = 1, c.start = two_32 - 3;
        });
        add("seed-f16-out-of-place-inverse", [](one_call& c) {
            c.element = 2, c.overload = 1, c.direction_raw = 1, c.start = 1000000;
            c.out[0] = contiguous_view(1, 0, 3, 4, 64);
        });
        add("seed-bf16-partial-rotary-strided", [](one_call& c) {
            c.element = 3, c.pairs_m1 = 15, c.start = 2147483647;  // 32 of 80, from 2^31 - 1
            c.in[0] = strided_view(0, 1, 3, 2, 80, 2 * 80 + 3, 80);
        });
        add("seed-ids64-sparse", [](one_call& c) {
            c.position_kind = 2, c.ids_count = 3, c.ids = {0, two_32 - 1, 1000003};
        });
        add("seed-ids32-repeated", [](one_call& c) {  // a token at the position before reuses its row
            c.position_kind = 1, c.ids_count = 3, c.ids = {7, 7, 2147483647};
        });
        add("seed-rotary-dim-1024", [](one_call& c) {
            c.pairs_m1 = 0x82, c.layout_raw = 1;
            c.in[0] = contiguous_view(0, 0, 2, 1, 1024);
            c.start = 123456789;
        });
        add("seed-by-hand-pi-and-factor", [](one_call& c) {  // theta_0 = pi, cos/sin scaled by 0.5
            c.by_hand = 1, c.odd_index = 0, c.odd_theta = 3.141592653589793, c.attention = 0.5, c.start = two_32 - 3;
        });
        add("seed-by-hand-negative-theta", [](one_call& c) {
            c.element = 1, c.by_hand = 1, c.odd_index = 5, c.odd_theta = -1.0, c.attention = 4.0, c.start = 99;
        });
        add_qk("seed-qk-gqa-f32", [](qk_call& c) { c.start = 4096; });
        add_qk("seed-qk-f16-out-of-place", [](qk_call& c) {
            c.element = 2, c.overload = 1;
            c.out[0] = contiguous_view(2, 0, 2, 8, 128);
            c.out[1] = contiguous_view(3, 0, 2, 2, 128);
            c.position_kind = 2, c.ids_count = 2, c.ids = {two_32 - 2, 3};
        });
        add_qk("seed-qk-packed-bf16", [](qk_call& c) {  // q, k, v of one [tokens, (8 + 2 + 2) * 128] projection
            c.element = 3;
            const std::int64_t stride = 12 * 128;
            c.in[0] = strided_view(0, 0, 2, 8, 128, stride, 128);
            c.in[1] = strided_view(0, 8 * 128, 2, 2, 128, stride, 128);
            c.start = 70000;
        });
        // Invalid calls: each must throw, before anything is written.
        add("seed-bad-rotary-dim-past-1024", [](one_call& c) {
            c.pairs_m1 = 0x83;
            c.in[0] = contiguous_view(0, 0, 2, 1, 1026);
        });
        add("seed-bad-by-hand-rotary-dim-past-1024", [](one_call& c) {
            c.pairs_m1 = 0x83, c.by_hand = 1;
            c.in[0] = contiguous_view(0, 0, 2, 1, 1026);
        });
        add("seed-bad-theta-nan", [](one_call& c) {
            c.by_hand = 1, c.odd_index = 3, c.odd_theta = std::numeric_limits<double>::quiet_NaN();
        });
        add("seed-bad-theta-past-pi", [](one_call& c) { c.by_hand = 1, c.odd_theta = 3.1415926535897936; });
        add("seed-bad-attention-zero", [](one_call& c) { c.by_hand = 1, c.attention = 0.0; });
        add("seed-bad-position-past-2-32", [](one_call& c) { c.start = two_32 - 2; });
        add("seed-bad-ids64-2-32", [](one_call& c) {
            c.element = 3, c.position_kind = 2, c.ids_count = 3, c.ids = {0, two_32, 1};
        });
        add_qk("seed-bad-qk-overlap", [](qk_call& c) { c.in[1] = contiguous_view(0, 128, 2, 2, 128); });
        // Findings (README.md, "Fuzzing"): each input that once failed, kept as a regression test.
        add("regression-attention-factor-past-fp32", [](one_call& c) {  // was accepted: cos * A has no fp32 value
            c.by_hand = 1, c.attention = 3.4028234663852889e38;
        });
        add_qk("regression-infinite-input-sin-below-subnormal", [](qk_call& c) {  // the harness's oracle was wrong:
            // sin(4096 theta) * 10^4 ~ 1e-301 rounds to 0 in fp32, so Inf * sin is NaN, not the oracle's Inf
            c.layout_raw = 0, c.direction_raw = 1, c.pairs_m1 = 0, c.base_index = 1;
            c.by_hand = 1, c.odd_index = 77, c.odd_theta = 3.20127047780325e-309, c.attention = 10000.0;
            c.start = 4096, c.value_mode = 3, c.value_seed = 1464303615;
        });
        add("regression-infinite-input-product-overflows", [](one_call& c) {  // the harness's oracle was wrong:
            // DBL_MAX * 4 cos overflows in fp64, so Inf - Inf is NaN where long double gives -Inf
            c.element = 1, c.by_hand = 1, c.odd_index = 5, c.odd_theta = -1.0, c.attention = 4.0;
            c.in[0] = contiguous_view(0, 0, 11, 4, 64);
            c.start = 99, c.value_mode = 3, c.value_seed = 3226451200u;
        });
        return s;
    }
};

}  // namespace

ROTARY_FUZZ_TARGET(table_free_call)
