// The public entry points instantiated for this translation unit's default arch and the scalar
// path, fp32 and fp64, both layouts through the runtime argument, with a table and table-free, and
// the scaling methods: compiled as C++17 with -Wall -Wextra -Wpedantic -Werror by the test build.
#include <rotary/rotary.hpp>

namespace {

// Source: a rope_table, or a rope_angles (the table-free path).
template <class Arch, class T, class Source>
void instantiate_all(const Source& table) {
    T q[8] = {}, k[4] = {}, out_q[8] = {}, out_k[4] = {};
    const std::int32_t ids32[1] = {1};
    const std::int64_t ids64[1] = {0};
    for (rotary::layout l : {rotary::layout::interleaved, rotary::layout::half_split}) {
        rotary::heads_view<T> qv(q, 1, 2, 4), kv(k, 1, 1, 4), oq(out_q, 1, 2, 4), ok(out_k, 1, 1, 4);
        rotary::apply<Arch>(table, l, qv, rotary::positions::starting_at(1));
        rotary::apply<Arch>(table, l, rotary::heads_view<const T>(qv), oq, rotary::positions::from_ids(ids32, 1));
        rotary::apply_qk<Arch>(table, l, qv, kv, rotary::positions::from_ids(ids64, 1));
        rotary::apply_qk<Arch>(table, l, rotary::heads_view<const T>(qv), oq, rotary::heads_view<const T>(kv), ok,
                               rotary::positions::starting_at(0), {rotary::direction::inverse});
    }
}

template <class Arch, class T>
void instantiate_all() {
    using C = rotary::compute_type_t<T>;
    instantiate_all<Arch, T>(rotary::rope_table<C>(4, 2));
    rotary::rope_config config;  // scaling.hpp
    config.head_dim = 4;
    rotary::set_config_field(config, "rope_type", "linear");
    rotary::set_config_field(config, "factor", "2");
    const rotary::rope_frequencies frequencies = rotary::frequencies_from_config(config);
    instantiate_all<Arch, T>(rotary::rope_angles<C>(frequencies));
    (void)rotary::long_term_decay_bound(frequencies, 3);
}

}  // namespace

// Called by nothing: linking it into the tests is what makes the compiler build it.
void rotary_header_check() {
    instantiate_all<xsimd::default_arch, float>();
    instantiate_all<xsimd::default_arch, double>();
    instantiate_all<rotary::scalar, float>();
    instantiate_all<rotary::scalar, double>();
}
