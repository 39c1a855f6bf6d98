// The long-context entry points (scaling.hpp, table_free.hpp, long_term_decay.hpp) instantiated
// for this translation unit's default arch and the scalar path, fp32 and fp64: compiled as C++17
// with -Wall -Wextra -Wpedantic -Werror by the test build.
#include <rotary/rotary.hpp>

namespace {

template <class Arch, class T>
void instantiate_table_free() {
    using C = rotary::compute_type_t<T>;
    rotary::rope_config config;
    config.head_dim = 4;
    rotary::set_config_field(config, "rope_type", "linear");
    rotary::set_config_field(config, "factor", "2");
    const rotary::rope_angles<C> angles(rotary::frequencies_from_config(config));
    T q[8] = {}, k[4] = {}, out_q[8] = {}, out_k[4] = {};
    const std::int32_t ids32[1] = {1};
    const std::int64_t ids64[1] = {0};
    for (rotary::layout l : {rotary::layout::interleaved, rotary::layout::half_split}) {
        rotary::heads_view<T> qv(q, 1, 2, 4), kv(k, 1, 1, 4), oq(out_q, 1, 2, 4), ok(out_k, 1, 1, 4);
        rotary::apply<Arch>(angles, l, qv, rotary::positions::starting_at(1));
        rotary::apply<Arch>(angles, l, rotary::heads_view<const T>(qv), oq, rotary::positions::from_ids(ids32, 1));
        rotary::apply_qk<Arch>(angles, l, qv, kv, rotary::positions::from_ids(ids64, 1));
        rotary::apply_qk<Arch>(angles, l, rotary::heads_view<const T>(qv), oq, rotary::heads_view<const T>(kv), ok,
                               rotary::positions::starting_at(0), {rotary::direction::inverse});
    }
    (void)rotary::long_term_decay_bound(angles.frequencies(), 3);
}

}  // namespace

// Called by nothing: linking it into the tests is what makes the compiler build it.
void rotary_header_check_long_context() {
    instantiate_table_free<xsimd::default_arch, float>();
    instantiate_table_free<xsimd::default_arch, double>();
    instantiate_table_free<rotary::scalar, float>();
    instantiate_table_free<rotary::scalar, double>();
}
