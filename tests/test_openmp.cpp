// The OpenMP convenience entry points split tokens over threads and give the serial result.
#include "support.hpp"

#include <omp.h>

using namespace rotary_test;
using rotary::heads_view;
using rotary::layout;
using rotary::positions;

namespace {

// Source: a rope_table or a rope_angles (table-free), of rotary_dim 64 covering positions < 512.
template <class Source>
void parallel_equals_serial(const Source& table) {
    const std::size_t tokens = 37, q_heads = 8, k_heads = 2, head_dim = 96;
    const auto q0 = random_vector<float>(tokens * q_heads * head_dim, 1);
    const auto k0 = random_vector<float>(tokens * k_heads * head_dim, 2);
    std::vector<std::int32_t> ids(tokens);
    for (std::size_t t = 0; t < tokens; ++t) ids[t] = static_cast<std::int32_t>(t * 13 % 512);
    for (int threads : {1, 2, 3, 5}) {
        omp_set_num_threads(threads);
        for (layout l : {layout::interleaved, layout::half_split}) {
            auto qs = q0, ks = k0, qp = q0, kp = k0;
            rotary::apply_qk(table, l, heads_view<float>(qs.data(), tokens, q_heads, head_dim),
                             heads_view<float>(ks.data(), tokens, k_heads, head_dim), positions::from_ids(ids.data(), tokens));
            rotary::apply_qk_parallel(table, l, heads_view<float>(qp.data(), tokens, q_heads, head_dim),
                                      heads_view<float>(kp.data(), tokens, k_heads, head_dim),
                                      positions::from_ids(ids.data(), tokens));
            EXPECT_EQ(qs, qp) << threads << " threads";
            EXPECT_EQ(ks, kp) << threads << " threads";

            std::vector<float> out_s(q0.size()), out_p(q0.size());
            rotary::apply(table, l, heads_view<const float>(q0.data(), tokens, q_heads, head_dim),
                          heads_view<float>(out_s.data(), tokens, q_heads, head_dim), positions::starting_at(100),
                          {rotary::direction::inverse, 3, 30});
            rotary::apply_parallel(table, l, heads_view<const float>(q0.data(), tokens, q_heads, head_dim),
                                   heads_view<float>(out_p.data(), tokens, q_heads, head_dim), positions::starting_at(100),
                                   {rotary::direction::inverse, 3, 30});
            EXPECT_EQ(out_s, out_p);

            auto xs = q0, xp = q0;
            rotary::apply(table, l, heads_view<float>(xs.data(), tokens, q_heads, head_dim), positions::starting_at(7));
            rotary::apply_parallel(table, l, heads_view<float>(xp.data(), tokens, q_heads, head_dim), positions::starting_at(7));
            EXPECT_EQ(xs, xp);

            auto qs2 = q0, ks2 = k0;
            std::vector<float> qo(q0.size()), ko(k0.size());
            rotary::apply_qk_parallel(table, l, heads_view<const float>(q0.data(), tokens, q_heads, head_dim),
                                      heads_view<float>(qo.data(), tokens, q_heads, head_dim),
                                      heads_view<const float>(k0.data(), tokens, k_heads, head_dim),
                                      heads_view<float>(ko.data(), tokens, k_heads, head_dim), positions::starting_at(0));
            rotary::apply_qk(table, l, heads_view<float>(qs2.data(), tokens, q_heads, head_dim),
                             heads_view<float>(ks2.data(), tokens, k_heads, head_dim), positions::starting_at(0));
            EXPECT_EQ(qo, qs2);
            EXPECT_EQ(ko, ks2);
        }
    }
}

TEST(OpenMP, ParallelEqualsSerial) { parallel_equals_serial(rotary::rope_table<float>(64, 512)); }
TEST(OpenMP, TableFreeParallelEqualsSerial) { parallel_equals_serial(rotary::rope_angles<float>(64, 500000.0)); }

// Bad input throws from the calling thread, before the parallel region, with nothing written.
TEST(OpenMP, ValidationBeforeTheParallelRegion) {
    rotary::rope_table<float> table(64, 10);
    auto x = random_vector<float>(20 * 64, 3);
    const auto before = x;
    EXPECT_THROW(rotary::apply_parallel(table, layout::half_split, heads_view<float>(x.data(), 20, 1, 64),
                                        positions::starting_at(0)),
                 std::out_of_range);
    EXPECT_EQ(x, before);
    const rotary::rope_angles<float> angles(64);
    const std::vector<std::int64_t> ids = {1, 2, std::int64_t{1} << 33, 4};
    EXPECT_THROW(rotary::apply_parallel(angles, layout::half_split, heads_view<float>(x.data(), 4, 1, 64),
                                        positions::from_ids(ids.data(), 4)),
                 std::out_of_range);
    EXPECT_EQ(x, before);
}

}  // namespace
