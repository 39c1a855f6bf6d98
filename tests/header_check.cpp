// The public entry points instantiated for this translation unit's default arch and the scalar
// path, fp32 and fp64, both layouts through the runtime argument: compiled as C++17 with
// -Wall -Wextra -Wpedantic -Werror by the test build.
#include <rotary/rotary.hpp>

namespace {

template <class Arch, class T>
void instantiate_all() {
    using C = rotary::compute_type_t<T>;
    rotary::rope_table<C> table(4, 2);
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

}  // namespace

// Called by nothing: linking it into the tests is what makes the compiler build it.
void rotary_header_check() {
    instantiate_all<xsimd::default_arch, float>();
    instantiate_all<xsimd::default_arch, double>();
    instantiate_all<rotary::scalar, float>();
    instantiate_all<rotary::scalar, double>();
}
