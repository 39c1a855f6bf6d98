// The OpenMP entry points of linear attention split the heads over threads and give the serial
// result bit for bit (each head is computed by the same code in the same order either way).
#include "linear_attention_support.hpp"
#include "throw_checks.hpp"

#include <omp.h>

using namespace rotary_test;
using rotary::heads_view;
using rotary::layout;
using rotary::positions;

namespace {

TEST(LinearAttentionOpenMP, ParallelEqualsSerial) {
    const rotary::rope_table<float> table(32, 512);
    // 8 query heads over 4 kv heads (split by kv group with up to 4 threads), and over 1 kv head
    // (split by query head, each thread building the shared sums itself)
    for (std::size_t kv_heads : {std::size_t{4}, std::size_t{1}}) {
        const std::size_t N = 77, H = 8, d = 32, dv = 24;
        const auto q = random_vector<float>(N * H * d, 1), k = random_vector<float>(N * kv_heads * d, 2),
                   v = random_vector<float>(N * kv_heads * dv, 3);
        const heads_view<const float> qv(q.data(), N, H, d), kv(k.data(), N, kv_heads, d), vv(v.data(), N, kv_heads, dv);
        for (int threads : {1, 2, 3, 5}) {
            omp_set_num_threads(threads);
            for (std::size_t begin : {std::size_t{0}, std::size_t{4}}) {
                rotary::linear_attention_options o;
                o.chunk_size = 20;
                o.head_begin = begin;
                std::vector<float> serial(N * H * dv, 0.0f), parallel(N * H * dv, 0.0f);
                const heads_view<float> os(serial.data(), N, H, dv), op(parallel.data(), N, H, dv);
                rotary::linear_attention(table, layout::half_split, qv, kv, vv, os, positions::starting_at(9), o);
                rotary::linear_attention_parallel(table, layout::half_split, qv, kv, vv, op, positions::starting_at(9), o);
                EXPECT_EQ(serial, parallel) << threads << " threads, bidirectional";
                rotary::causal_linear_attention(table, layout::interleaved, qv, kv, vv, os, positions::starting_at(9), o);
                rotary::causal_linear_attention_parallel(table, layout::interleaved, qv, kv, vv, op,
                                                         positions::starting_at(9), o);
                EXPECT_EQ(serial, parallel) << threads << " threads, causal";
                rotary::linear_attention_state<float> ss(kv_heads, d, dv), sp(kv_heads, d, dv);
                o.head_begin = 0;
                rotary::causal_linear_attention(table, layout::interleaved, qv, kv, vv, os, positions::starting_at(9), ss, o);
                rotary::causal_linear_attention_parallel(table, layout::interleaved, qv, kv, vv, op,
                                                         positions::starting_at(9), sp, o);
                EXPECT_EQ(serial, parallel) << threads << " threads, causal on a state";
                for (std::size_t g = 0; g < kv_heads; ++g)
                    EXPECT_EQ(std::memcmp(ss.key_value(g), sp.key_value(g), d * ss.value_stride() * sizeof(float)), 0);
            }
        }
    }
}

// Bad input throws from the calling thread, before the parallel region, with nothing written.
TEST(LinearAttentionOpenMP, ThrowsBeforeTheParallelRegion) {
    omp_set_num_threads(2);
    const rotary::rope_table<float> table(8, 16);
    const auto q = random_vector<float>(4 * 2 * 8, 1), k = random_vector<float>(4 * 8, 2), v = random_vector<float>(4 * 8, 3);
    std::vector<float> out(4 * 2 * 8, 1.0f);
    expect_throw_unchanged<std::out_of_range>(
        [&] {
            rotary::causal_linear_attention_parallel(table, layout::interleaved, heads_view<const float>(q.data(), 4, 2, 8),
                                                     heads_view<const float>(k.data(), 4, 1, 8),
                                                     heads_view<const float>(v.data(), 4, 1, 8),
                                                     heads_view<float>(out.data(), 4, 2, 8), positions::starting_at(13));
        },
        {bytes(out)}, {"positions 13 + [0, 4)"});
}

}  // namespace
