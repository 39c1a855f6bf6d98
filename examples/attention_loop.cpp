// attention_loop: one attention layer of a decoder-only transformer, run as an inference engine
// runs it, with random weights:
//
//   q = x Wq, k = x Wk, v = x Wv                  projections (Eigen GEMMs on the same buffers)
//   q_m = R_m q, k_n = R_n k                      RoPE, paper Eq. 14, computed as Eq. 34
//   a_m = sum_n softmax_n(q_m . k_n / sqrt(d)) v_n   softmax attention, Eq. 2, causal (n <= m)
//   h = x + a Wo                                  output projection and residual
//
// Prefill runs the prompt through one causal pass and keeps its rotated keys and values in a KV
// cache; decode then generates token by token: each new token's key and value are appended (the
// key rotated at its position) and its query attends to the whole cache. The next token's input is
// made from the last output (a stand-in for sampling and embedding). At the end every output is
// checked against one causal pass over the whole sequence.
#include <rotary/rotary.hpp>

#include <Eigen/Dense>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

using matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace {

// A LLaMA-style attention layer, small: 8 query heads share 2 key/value heads (GQA).
constexpr std::size_t d_model = 512, q_heads = 8, kv_heads = 2, head_dim = 64;
constexpr std::size_t prompt_tokens = 100, new_tokens = 28, total_tokens = prompt_tokens + new_tokens;

struct layer_weights {
    matrix wq, wk, wv, wo;
};

layer_weights random_weights() {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 1.0f / std::sqrt(static_cast<float>(d_model)));
    auto random = [&](std::size_t rows, std::size_t cols) {
        matrix m(rows, cols);
        for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = normal(rng);
        return m;
    };
    return {random(d_model, q_heads * head_dim), random(d_model, kv_heads * head_dim),
            random(d_model, kv_heads * head_dim), random(q_heads * head_dim, d_model)};
}

// q, k, v of `tokens` rows of x, each [tokens x heads x head_dim] (row-major: a heads_view as is).
struct projections {
    matrix q, k, v;
    rotary::heads_view<const float> q_view() const { return {q.data(), static_cast<std::size_t>(q.rows()), q_heads, head_dim}; }
    rotary::heads_view<const float> k_view() const { return {k.data(), static_cast<std::size_t>(k.rows()), kv_heads, head_dim}; }
    rotary::heads_view<const float> v_view() const { return {v.data(), static_cast<std::size_t>(v.rows()), kv_heads, head_dim}; }
};

projections project(const layer_weights& w, const matrix& x) { return {x * w.wq, x * w.wk, x * w.wv}; }

double milliseconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main() {
    const layer_weights w = random_weights();
    // cos/sin of m * theta_i, theta_i = 500000^(-2i/64) (LLaMA 3's base), positions 0..4095, fp32.
    const rotary::rope_table<float> table(head_dim, 4096, 500000.0);
    // LLaMA pairs x_i with x_{i+32}: the half_split layout. Always spell it out: the wrong one is
    // not an error, it is fluent garbage.
    const rotary::layout layout = rotary::layout::half_split;
    rotary::kv_cache cache(table, layout, total_tokens, kv_heads, head_dim);

    matrix inputs(total_tokens, d_model);   // x of every token, kept for the check at the end
    matrix outputs(total_tokens, d_model);  // h = x + a Wo of every token
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (Eigen::Index i = 0; i < static_cast<Eigen::Index>(prompt_tokens * d_model); ++i) inputs.data()[i] = normal(rng);

    // ---- Prefill: the prompt in one causal pass ----
    auto start = std::chrono::steady_clock::now();
    {
        const matrix x = inputs.topRows(prompt_tokens);
        const projections p = project(w, x);
        cache.append(p.k_view(), p.v_view());  // keys rotated at positions 0..99 (Eq. 34), stored with v
        matrix attended(prompt_tokens, q_heads * head_dim);
        // queries rotated at the positions of the last 100 cached tokens; causal: token m sees n <= m
        cache.attend(p.q_view(), rotary::heads_view<float>(attended.data(), prompt_tokens, q_heads, head_dim));
        outputs.topRows(prompt_tokens) = x + attended * w.wo;
    }
    std::printf("prefill: %zu tokens in %.2f ms\n", prompt_tokens, milliseconds_since(start));

    // ---- Decode: one token at a time against the cache ----
    double decode_ms = 0;
    for (std::size_t t = prompt_tokens; t < total_tokens; ++t) {
        // the next input from the last output (stand-in for sampling a token and embedding it)
        inputs.row(static_cast<Eigen::Index>(t)) = outputs.row(static_cast<Eigen::Index>(t - 1)).normalized() * std::sqrt(static_cast<float>(d_model));
        start = std::chrono::steady_clock::now();
        const matrix x = inputs.row(static_cast<Eigen::Index>(t));
        const projections p = project(w, x);
        cache.append(p.k_view(), p.v_view());  // this token's key, rotated at position t
        matrix attended(1, q_heads * head_dim);
        cache.attend(p.q_view(), rotary::heads_view<float>(attended.data(), 1, q_heads, head_dim));
        outputs.row(static_cast<Eigen::Index>(t)) = x + attended * w.wo;
        const double ms = milliseconds_since(start);
        decode_ms += ms;
        std::printf("decode: position %3zu, cache %3zu tokens, %.3f ms\n", t, cache.size(), ms);
    }
    std::printf("decode: %zu tokens, %.3f ms per token\n", new_tokens, decode_ms / new_tokens);

    // ---- Check: one causal pass over the whole sequence gives the same outputs ----
    const projections all = project(w, inputs);
    matrix attended(total_tokens, q_heads * head_dim);
    rotary::attention(table, layout, all.q_view(), all.k_view(), all.v_view(),
                      rotary::heads_view<float>(attended.data(), total_tokens, q_heads, head_dim),
                      rotary::positions::starting_at(0), rotary::positions::starting_at(0),
                      rotary::attention_options::causal_mask());
    const matrix recomputed = inputs + attended * w.wo;
    const float error = (recomputed - outputs).cwiseAbs().maxCoeff();
    const float scale = outputs.cwiseAbs().maxCoeff();
    std::printf("check: prefill + decode vs one causal pass over %zu tokens: max |difference| %.3g (outputs up to %.3g)\n",
                total_tokens, error, scale);
    return error <= 1e-4f * scale ? 0 : 1;
}
