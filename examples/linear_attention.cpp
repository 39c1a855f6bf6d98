// linear_attention: causal linear attention with RoPE (the paper's Eq. 19) on one layer's
// buffers, over growing sequence lengths.
//   1. time and memory per length for each method (linear chunked, the quadratic evaluation of the
//      same Eq. 19, and softmax attention), and the crossover lengths from which the linear
//      (chunked) form beats the quadratic one and softmax attention;
//   2. generation: a prompt prefilled into a state, then tokens decoded one step at a time, checked
//      against one causal call over the whole sequence.
// Usage: linear_attention [max_tokens]   (default 16384)
#include <rotary/rotary.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr std::size_t q_heads = 8, kv_heads = 8, head_dim = 64, value_dim = 64;
const rotary::layout pair_layout = rotary::layout::half_split;  // LLaMA-style pairs (x_i, x_i+32)

// One layer's q, k, v and output for `tokens` tokens, [tokens, heads, dim] each.
struct layer_buffers {
    std::size_t tokens;
    std::vector<float> q, k, v, out;
    explicit layer_buffers(std::size_t n, std::mt19937& rng)
        : tokens(n), q(n * q_heads * head_dim), k(n * kv_heads * head_dim), v(n * kv_heads * value_dim),
          out(n * q_heads * value_dim) {
        std::normal_distribution<float> normal(0.0f, 1.0f);
        for (auto* x : {&q, &k, &v})
            for (float& e : *x) e = normal(rng);
    }
    rotary::heads_view<const float> qv() const { return {q.data(), tokens, q_heads, head_dim}; }
    rotary::heads_view<const float> kv() const { return {k.data(), tokens, kv_heads, head_dim}; }
    rotary::heads_view<const float> vv() const { return {v.data(), tokens, kv_heads, value_dim}; }
    rotary::heads_view<float> ov() { return {out.data(), tokens, q_heads, value_dim}; }
    std::size_t bytes() const { return (q.size() + k.size() + v.size() + out.size()) * sizeof(float); }
};

// A column of the table: how to run one causal attention over a layer, the extra memory it takes,
// and the longest sequence it is run at. Softmax attention (another rotary helper) is one more
// entry here once it is available.
struct method {
    std::string name;
    std::size_t max_tokens;
    std::function<void(const rotary::rope_table<float>&, layer_buffers&)> run;
    std::function<std::size_t(std::size_t tokens)> scratch_bytes;
};

double seconds_of(const std::function<void()>& f) {
    double best = 1e30;
    for (int repeat = 0; repeat < 2; ++repeat) {
        const auto start = std::chrono::steady_clock::now();
        f();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    return best;
}

}  // namespace

int main(int argc, char** argv) {
    const std::size_t max_tokens = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 16384;
    if (max_tokens < 64) {
        std::fprintf(stderr, "usage: %s [max_tokens >= 64]\n", argv[0]);
        return 2;
    }
    const rotary::rope_table<float> table(head_dim, max_tokens);  // positions 0 .. max_tokens-1
    std::mt19937 rng(7);

    // The default: chunks of 32 tokens, quadratic inside a chunk, a running state between chunks.
    rotary::linear_attention_options chunked;
    const std::vector<method> methods = {
        {"linear (chunked)", max_tokens,
         [&](const rotary::rope_table<float>& t, layer_buffers& b) {
             rotary::causal_linear_attention(t, pair_layout, b.qv(), b.kv(), b.vv(), b.ov(),
                                             rotary::positions::starting_at(0), chunked);
         },
         [&](std::size_t n) { return rotary::linear_attention_scratch_bytes<float>(n, kv_heads, head_dim, value_dim, chunked); }},
        // The same Eq. 19 evaluated quadratically: one chunk as long as the sequence.
        {"quadratic Eq. 19", rotary::linear_attention_options::max_chunk_size,
         [&](const rotary::rope_table<float>& t, layer_buffers& b) {
             rotary::linear_attention_options one_chunk;
             one_chunk.chunk_size = b.tokens;
             rotary::causal_linear_attention(t, pair_layout, b.qv(), b.kv(), b.vv(), b.ov(),
                                             rotary::positions::starting_at(0), one_chunk);
         },
         [&](std::size_t n) {
             rotary::linear_attention_options one_chunk;
             one_chunk.chunk_size = std::min(n, rotary::linear_attention_options::max_chunk_size);
             return rotary::linear_attention_scratch_bytes<float>(n, kv_heads, head_dim, value_dim, one_chunk);
         }},
        // Softmax attention (Eq. 2) with RoPE, tiled with an online softmax (<rotary/attention.hpp>):
        // O(N^2) time; its scratch is dominated by one head's packed K^T panel (N x head_dim floats).
        {"softmax (tiled)", max_tokens,
         [&](const rotary::rope_table<float>& t, layer_buffers& b) {
             rotary::attention(t, pair_layout, b.qv(), b.kv(), b.vv(), b.ov(), rotary::positions::starting_at(0),
                               rotary::positions::starting_at(0), rotary::attention_options::causal_mask());
         },
         [&](std::size_t n) { return n * head_dim * sizeof(float); }},
    };

    // 1. Time and memory per length.
    std::printf("causal attention, %zu query heads, %zu kv heads, head_dim %zu, fp32, one thread\n", q_heads, kv_heads,
                head_dim);
    std::printf("%8s %12s", "", "");
    for (const method& m : methods) std::printf(" | %-29s", m.name.c_str());
    std::printf("\n%8s %12s", "tokens", "q,k,v,out");
    for (std::size_t i = 0; i < methods.size(); ++i) std::printf(" | %8s %7s %12s", "ms", "x prev", "scratch");
    std::printf("\n");
    std::vector<double> previous(methods.size(), 0.0);
    std::size_t crossover = 0, softmax_crossover = 0;
    for (std::size_t n = 64; n <= max_tokens; n *= 2) {
        layer_buffers b(n, rng);
        std::printf("%8zu %9.1f MB", n, static_cast<double>(b.bytes()) / 1e6);
        std::vector<double> times(methods.size(), 0.0);
        for (std::size_t i = 0; i < methods.size(); ++i) {
            const method& m = methods[i];
            if (n > m.max_tokens) {
                std::printf(" | %8s %7s %12s", "-", "", "");
                continue;
            }
            times[i] = seconds_of([&] { m.run(table, b); });
            char ratio[16] = "";
            if (previous[i] > 0) std::snprintf(ratio, sizeof ratio, "%.2f", times[i] / previous[i]);
            std::printf(" | %8.2f %7s %9.0f KB", times[i] * 1e3, ratio, static_cast<double>(m.scratch_bytes(n)) / 1e3);
            previous[i] = times[i];
        }
        if (crossover == 0 && times[1] > 0 && times[0] < times[1]) crossover = n;
        if (softmax_crossover == 0 && times[2] > 0 && times[0] < times[2]) softmax_crossover = n;
        std::printf("\n");
    }
    if (crossover != 0)
        std::printf("crossover: from %zu tokens on, the linear form is faster than the quadratic one\n", crossover);
    else
        std::printf("crossover: not reached at these lengths\n");
    if (softmax_crossover != 0)
        std::printf("crossover: from %zu tokens on, linear attention is faster than softmax attention\n", softmax_crossover);
    else
        std::printf("crossover with softmax attention: not reached at these lengths\n");

    // 2. Generation: prefill a prompt into a state, then decode one token at a time.
    const std::size_t prompt = 200, generated = 16, total = prompt + generated;
    layer_buffers seq(total, rng);
    rotary::causal_linear_attention(table, pair_layout, seq.qv(), seq.kv(), seq.vv(), seq.ov(),
                                    rotary::positions::starting_at(0));
    const std::vector<float> reference = seq.out;

    rotary::linear_attention_state<float> state(kv_heads, head_dim, value_dim);
    auto tokens_of = [&](const std::vector<float>& x, std::size_t heads, std::size_t dim, std::size_t t0,
                         std::size_t count) {
        return rotary::heads_view<const float>(x.data() + t0 * heads * dim, count, heads, dim);
    };
    std::vector<float> out(total * q_heads * value_dim);
    rotary::causal_linear_attention(table, pair_layout, tokens_of(seq.q, q_heads, head_dim, 0, prompt),
                                    tokens_of(seq.k, kv_heads, head_dim, 0, prompt),
                                    tokens_of(seq.v, kv_heads, value_dim, 0, prompt),
                                    rotary::heads_view<float>(out.data(), prompt, q_heads, value_dim),
                                    rotary::positions::starting_at(0), state);
    for (std::size_t t = prompt; t < total; ++t)  // each step: O(head_dim * value_dim) per head
        rotary::linear_attention_step(table, pair_layout, tokens_of(seq.q, q_heads, head_dim, t, 1),
                                      tokens_of(seq.k, kv_heads, head_dim, t, 1),
                                      tokens_of(seq.v, kv_heads, value_dim, t, 1),
                                      rotary::heads_view<float>(out.data() + t * q_heads * value_dim, 1, q_heads, value_dim),
                                      static_cast<std::int64_t>(t), state);
    double worst = 0;
    for (std::size_t i = 0; i < out.size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(out[i] - reference[i])));
    std::printf("generation: prefill %zu tokens, decode %zu steps; largest difference from one causal call %.2g\n",
                prompt, generated, worst);
    return worst < 1e-4 ? 0 : 1;
}
