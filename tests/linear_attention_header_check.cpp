// The linear attention entry points instantiated for this translation unit's default arch and the
// scalar path, fp32 and fp64, every feature map kind: compiled as C++17 with
// -Wall -Wextra -Wpedantic -Werror by the test build.
#include <rotary/rotary.hpp>

namespace {

template <class Arch, class T>
void instantiate_linear_attention() {
    rotary::rope_table<T> table(4, 2);
    const T q[8] = {}, k[4] = {}, v[2] = {};
    T out[4] = {};
    const rotary::heads_view<const T> qv(q, 1, 2, 4), kv(k, 1, 1, 4), vv(v, 1, 1, 2);
    const rotary::heads_view<T> ov(out, 1, 2, 2);
    rotary::linear_attention_state<T> state(1, 4, 2);
    const auto user = [](T x) { return x * x; };
    for (rotary::layout l : {rotary::layout::interleaved, rotary::layout::half_split}) {
        rotary::linear_attention<Arch>(table, l, qv, kv, vv, ov, rotary::positions::starting_at(1));
        rotary::linear_attention<Arch>(table, l, qv, kv, vv, ov, rotary::positions::starting_at(1), {},
                                       rotary::feature_maps::relu{});
        rotary::causal_linear_attention<Arch>(table, l, qv, kv, vv, ov, rotary::positions::starting_at(0), {}, user);
        rotary::causal_linear_attention<Arch>(table, l, qv, kv, vv, ov, rotary::positions::starting_at(0), state);
        rotary::linear_attention_step<Arch>(table, l, qv, kv, vv, ov, 1, state);
    }
}

}  // namespace

// Called by nothing: linking it into the tests is what makes the compiler build it.
void rotary_linear_attention_header_check() {
    instantiate_linear_attention<xsimd::default_arch, float>();
    instantiate_linear_attention<xsimd::default_arch, double>();
    instantiate_linear_attention<rotary::scalar, float>();
    instantiate_linear_attention<rotary::scalar, double>();
}
