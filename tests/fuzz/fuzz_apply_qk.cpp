// libFuzzer target: rotary::apply_qk, q and k in one pass, in place and out of place (see
// rope_call.hpp for what it decodes and checks).
#include "rope_call.hpp"

namespace {

using rotary_fuzz::contiguous_view;
using rotary_fuzz::strided_view;

struct apply_qk_call : rotary_fuzz::rope_call<2> {
    static std::vector<std::pair<std::string, apply_qk_call>> seeds() {
        std::vector<std::pair<std::string, apply_qk_call>> s;
        const auto add = [&](const char* name, const auto& edit) {
            apply_qk_call c;
            c.pairs_m1 = 31;       // rotary_dim 64
            c.positions_tag = 3;     // max_positions 100
            c.layout_raw = 1;
            c.in[0] = contiguous_view(0, 0, 4, 8, 64);  // GQA: 8 q heads, 2 kv heads
            c.in[1] = contiguous_view(1, 0, 4, 2, 64);
            c.value_seed = rotary_fuzz::seed_of(name);
            edit(c);
            s.emplace_back(name, c);
        };
        add("seed-gqa-in-place", [](apply_qk_call& c) { c.start = 10; });
        add("seed-mqa-out-of-place-f64", [](apply_qk_call& c) {
            c.element = 1, c.overload = 1, c.layout_raw = 0;
            c.in[1] = contiguous_view(1, 0, 4, 1, 64);
            c.out[0] = contiguous_view(2, 0, 4, 8, 64);
            c.out[1] = contiguous_view(3, 0, 4, 1, 64);
        });
        add("seed-packed-qkv", [](apply_qk_call& c) {  // q, k, v of one [tokens, (8 + 2 + 2) * 64] projection
            const std::int64_t stride = 12 * 64;
            c.in[0] = strided_view(0, 0, 4, 8, 64, stride, 64);
            c.in[1] = strided_view(0, 8 * 64, 4, 2, 64, stride, 64);
            c.position_kind = 2, c.ids_count = 4, c.ids = {0, 1, 2, 3};
        });
        add("seed-q-in-place-k-out-of-place", [](apply_qk_call& c) {
            c.overload = 1, c.same_mask = 1, c.direction_raw = 1, c.start = 96;
            c.out[1] = contiguous_view(2, 5, 4, 2, 64);
        });
        add("seed-partial-rotary-ids32-subrange", [](apply_qk_call& c) {
            c.pairs_m1 = 11;  // 24 of 96 (GPT-NeoX)
            c.in[0] = contiguous_view(0, 0, 6, 3, 96);
            c.in[1] = contiguous_view(1, 0, 6, 3, 96);
            c.position_kind = 1, c.ids_count = 6, c.ids = {-1, 5, 6, 7, 8, 1000};
            c.token_begin = 1, c.token_end = 5;
        });
        add("seed-different-head-dims", [](apply_qk_call& c) {
            c.in[0] = contiguous_view(0, 0, 4, 2, 64);
            c.in[1] = strided_view(1, 0, 4, 1, 80, 85, 80);
        });
        add("seed-f16-gqa-in-place", [](apply_qk_call& c) { c.element = 2, c.start = 33; });
        add("seed-bf16-packed-qkv-out-of-place-k", [](apply_qk_call& c) {  // q in place, k to its own buffer
            c.element = 3, c.overload = 1, c.same_mask = 1;
            const std::int64_t stride = 12 * 64;
            c.in[0] = strided_view(0, 0, 4, 8, 64, stride, 64);
            c.in[1] = strided_view(0, 8 * 64, 4, 2, 64, stride, 64);
            c.out[1] = contiguous_view(1, 0, 4, 2, 64);
            c.position_kind = 1, c.ids_count = 4, c.ids = {0, 99, 5, 5};
        });
        // Invalid calls.
        add("seed-bad-f16-k-rotary-dim", [](apply_qk_call& c) { c.element = 2, c.in[1] = contiguous_view(1, 0, 4, 2, 32); });
        add("seed-bad-q-k-overlap", [](apply_qk_call& c) { c.in[1] = contiguous_view(0, 64, 4, 2, 64); });
        add("seed-bad-q-out-on-k-in", [](apply_qk_call& c) {
            c.overload = 1;
            c.out[0] = contiguous_view(1, 0, 4, 8, 64);
            c.out[1] = contiguous_view(2, 0, 4, 2, 64);
        });
        add("seed-bad-token-mismatch", [](apply_qk_call& c) { c.in[1] = contiguous_view(1, 0, 3, 2, 64); });
        add("seed-bad-ids-past-table", [](apply_qk_call& c) {
            c.position_kind = 2, c.ids_count = 4, c.ids = {0, 1, 100, 3};
        });
        add("seed-bad-k-rotary-dim", [](apply_qk_call& c) { c.in[1] = contiguous_view(1, 0, 4, 2, 32); });
        // Findings (README.md, "Fuzzing"): each input that once failed, kept as a regression test.
        add("regression-k-without-heads-null", [](apply_qk_call& c) {  // was UB: an offset applied to nullptr
            c.in[1] = strided_view(4, 0, 4, 0, 64, 64, 64);
        });
        add("regression-size-sum-wraps", [](apply_qk_call& c) {  // the overflow check itself wrapped (UBSan)
            c.overload = 1;
            c.out[0] = contiguous_view(2, 0, 4, 8, 64);
            c.out[1] = strided_view(3, 0, 4, 2, 64, PTRDIFF_MAX / 3, PTRDIFF_MAX);
        });
        add("regression-contiguous-head-dim-past-ptrdiff", [](apply_qk_call& c) {  // the harness's model missed it
            c.overload = 1;
            c.out[0] = contiguous_view(2, 0, 4, 8, 64);
            c.out[1] = contiguous_view(2, 64, 1, 0, ~std::uint64_t{0});
        });
        return s;
    }
};

}  // namespace

ROTARY_FUZZ_TARGET(apply_qk_call)
