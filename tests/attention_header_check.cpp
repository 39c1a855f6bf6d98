// The attention and KV-cache entry points instantiated for this translation unit's default arch
// and the scalar path (and the OpenMP ones when built with OpenMP): compiled as C++17 with
// -Wall -Wextra -Wpedantic -Werror by the test build.
#include <rotary/rotary.hpp>

namespace {

template <class Arch>
void instantiate_attention() {
    rotary::rope_table<float> table(4, 8);
    float q[2 * 4 * 4] = {}, k[2 * 2 * 4] = {}, v[2 * 2 * 3] = {}, out[2 * 4 * 3] = {};
    const rotary::heads_view<const float> qv(q, 2, 4, 4), kv(k, 2, 2, 4), vv(v, 2, 2, 3);
    const rotary::heads_view<float> ov(out, 2, 4, 3);
    rotary::attention_options causal;
    causal.causal = true;
    rotary::attention<Arch>(qv, kv, vv, ov);
    rotary::attention<Arch>(table, rotary::layout::half_split, qv, kv, vv, ov, rotary::positions::starting_at(0),
                            rotary::positions::starting_at(0), causal);
    rotary::kv_cache cache(table, rotary::layout::interleaved, 4, 2, 4, 3);
    cache.append<Arch>(kv, vv);
    cache.attend<Arch>(qv, ov);
    cache.shift<Arch>(-1);
    cache.erase(0, 1);
#if defined(_OPENMP)
    rotary::attention_parallel<Arch>(qv, kv, vv, ov, causal);
    rotary::attention_parallel<Arch>(table, rotary::layout::half_split, qv, kv, vv, ov, rotary::positions::starting_at(0),
                                     rotary::positions::starting_at(0));
    cache.attend_parallel<Arch>(rotary::heads_view<const float>(q, 1, 4, 4), ov);
#endif
}

}  // namespace

// Called by nothing: linking it into the tests is what makes the compiler build it.
void rotary_attention_header_check() {
    instantiate_attention<xsimd::default_arch>();
    instantiate_attention<rotary::scalar>();
}
