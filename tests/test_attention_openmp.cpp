// The OpenMP entry points of attention and the KV cache split the work over threads and give the
// serial result.
#include "attention_support.hpp"

#include <omp.h>

#include <array>

using namespace rotary_test;
using rotary::attention_options;
using rotary::layout;
using rotary::positions;

namespace {

TEST(AttentionOpenMP, ParallelEqualsSerial) {
    const rotary::rope_table<float> table(64, 512);
    for (auto [tokens, kv_tokens, q_heads, kv_heads] :
         {std::array<std::size_t, 4>{70, 70, 4, 4}, {33, 120, 8, 1}, {1, 300, 8, 2}, {5, 5, 3, 3}}) {
        padded_heads q(tokens, q_heads, 64), k(kv_tokens, kv_heads, 64), v(kv_tokens, kv_heads, 40);
        q.fill(1);
        k.fill(2);
        v.fill(3);
        for (int threads : {1, 2, 3, 5})
            for (bool causal : {false, true}) {
                omp_set_num_threads(threads);
                attention_options o;
                o.causal = causal;
                padded_heads serial(tokens, q_heads, 40), parallel(tokens, q_heads, 40);
                const auto qp = positions::starting_at(static_cast<std::int64_t>(kv_tokens - tokens)), kp = positions::starting_at(0);
                rotary::attention(table, layout::half_split, q.cview(), k.cview(), v.cview(), serial.view(), qp, kp, o);
                rotary::attention_parallel(table, layout::half_split, q.cview(), k.cview(), v.cview(), parallel.view(), qp,
                                           kp, o);
                for (std::size_t i = 0; i < serial.storage.size(); ++i)
                    ASSERT_NEAR(parallel.storage[i], serial.storage[i], 1e-6) << threads << " threads, token count " << tokens;
                padded_heads plain(tokens, q_heads, 40);
                rotary::attention_parallel(q.cview(), k.cview(), v.cview(), plain.view(), o);
                for (std::size_t t = 0; t < tokens; ++t)
                    for (std::size_t h = 0; h < q_heads; ++h) ASSERT_TRUE(std::isfinite(plain.at(t, h, 0)));
            }
    }
}

TEST(AttentionOpenMP, CacheAttendParallelEqualsSerial) {
    const rotary::rope_table<float> table(32, 256);
    padded_heads k(100, 2, 32), v(100, 2, 32), q(3, 8, 32);
    k.fill(4);
    v.fill(5);
    q.fill(6);
    rotary::kv_cache cache(table, layout::interleaved, 128, 2, 32);
    cache.append(k.cview(), v.cview());
    omp_set_num_threads(2);
    padded_heads serial(3, 8, 32), parallel(3, 8, 32);
    cache.attend(q.cview(), serial.view());
    cache.attend_parallel(q.cview(), parallel.view());
    for (std::size_t i = 0; i < serial.storage.size(); ++i) ASSERT_NEAR(parallel.storage[i], serial.storage[i], 1e-6);
}

}  // namespace
