// rope_basics: the core API on the buffers a transformer layer has.
//   1. prefill: rotate q and k in place inside a packed QKV projection [tokens, (q|k|v) heads, dim]
//   2. batched decode: one new token per sequence, each at its own KV-cache position (position ids)
//   3. check Eq. 16 of the paper: the score q_m . k_n depends only on m - n
#include <rotary/rotary.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

int main() {
    const std::size_t head_dim = 128, q_heads = 32, kv_heads = 8;  // LLaMA-3-8B attention
    const std::size_t prompt = 12;
    // theta_i = 500000^(-2i/128), cos/sin for positions 0..8191, fp32.
    const rotary::rope_table<float> table(head_dim, 8192, 500000.0);
    // LLaMA pairs x_i with x_{i+64}: the half_split layout. A wrong layout is not an error, it is
    // fluent garbage, so it is always spelled out.
    const rotary::layout layout = rotary::layout::half_split;

    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 1.0f);

    // 1. Prefill. The projection writes [tokens, (32 q + 8 k + 8 v) heads, 128]; q and k are strided
    //    views into it, rotated in place with one fused call (one cos/sin row read per token).
    const std::size_t row = (q_heads + 2 * kv_heads) * head_dim;
    std::vector<float> qkv(prompt * row);
    for (float& x : qkv) x = normal(rng);
    rotary::heads_view<float> q(qkv.data(), prompt, q_heads, head_dim, row, head_dim);
    rotary::heads_view<float> k(qkv.data() + q_heads * head_dim, prompt, kv_heads, head_dim, row, head_dim);
    rotary::apply_qk(table, layout, q, k, rotary::positions::starting_at(0));
    std::printf("prefill: rotated q and k of %zu tokens in place in the packed QKV buffer\n", prompt);

    // 2. Batched decode: 3 sequences, one new token each, at cache lengths 12, 700 and 5000.
    const std::vector<std::int32_t> cache_lengths = {12, 700, 5000};
    std::vector<float> q_new(cache_lengths.size() * q_heads * head_dim), k_new(cache_lengths.size() * kv_heads * head_dim);
    for (float& x : q_new) x = normal(rng);
    for (float& x : k_new) x = normal(rng);
    rotary::apply_qk(table, layout, rotary::heads_view<float>(q_new.data(), cache_lengths.size(), q_heads, head_dim),
                     rotary::heads_view<float>(k_new.data(), cache_lengths.size(), kv_heads, head_dim),
                     rotary::positions::from_ids(cache_lengths.data(), cache_lengths.size()));
    std::printf("decode: rotated 3 tokens at positions 12, 700, 5000\n");

    // 3. Eq. 16: rotate the same q and k at (m, n) = (10, 3) and (4010, 4003); the scores agree.
    std::vector<float> qa(head_dim), ka(head_dim);
    for (std::size_t i = 0; i < head_dim; ++i) {
        qa[i] = normal(rng);
        ka[i] = normal(rng);
    }
    auto score = [&](std::int64_t m, std::int64_t n) {
        std::vector<float> qm(head_dim), kn(head_dim);
        rotary::apply(table, layout, rotary::heads_view<const float>(qa.data(), 1, 1, head_dim),
                      rotary::heads_view<float>(qm.data(), 1, 1, head_dim), rotary::positions::starting_at(m));
        rotary::apply(table, layout, rotary::heads_view<const float>(ka.data(), 1, 1, head_dim),
                      rotary::heads_view<float>(kn.data(), 1, 1, head_dim), rotary::positions::starting_at(n));
        double s = 0;
        for (std::size_t i = 0; i < head_dim; ++i) s += static_cast<double>(qm[i]) * kn[i];
        return s;
    };
    const double near = score(10, 3), far = score(4010, 4003);
    std::printf("Eq. 16: q_10.k_3 = %.6f, q_4010.k_4003 = %.6f (difference %.2g)\n", near, far, near - far);
    return std::fabs(near - far) < 1e-3 ? 0 : 1;
}
