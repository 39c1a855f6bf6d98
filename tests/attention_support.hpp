// Shared by the attention and KV-cache tests: the naive double-precision oracle of Eq. 2 (full
// score matrix, dense softmax), padded/misaligned buffers, and the per-arch attention kernel sets.
#pragma once

#include "support.hpp"

#include <rotary/attention.hpp>
#include <rotary/kv_cache.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

ROTARY_DECLARE_ATTENTION_KERNEL_SET(sse2);
ROTARY_DECLARE_ATTENTION_KERNEL_SET(avx2);
ROTARY_DECLARE_ATTENTION_KERNEL_SET(avx512bw);

namespace rotary_test {

// A [tokens x heads x head_dim] buffer with `gap` spare elements after each row and each token,
// starting `misalign` floats into its allocation (so rows are not 64-byte aligned), allocated to
// exactly its extent: everything that is not a row element holds a sentinel that must survive.
struct padded_heads {
    static constexpr float sentinel = -777.5f;
    std::vector<float> storage;
    std::size_t tokens, heads, head_dim, offset;
    std::ptrdiff_t token_stride, head_stride;

    padded_heads(std::size_t tokens_, std::size_t heads_, std::size_t head_dim_, std::size_t gap = 0,
                 std::size_t misalign = 0)
        : tokens(tokens_), heads(heads_), head_dim(head_dim_), offset(misalign) {
        head_stride = static_cast<std::ptrdiff_t>(head_dim + gap);
        token_stride = static_cast<std::ptrdiff_t>(heads) * head_stride + static_cast<std::ptrdiff_t>(gap);
        const std::size_t extent = tokens == 0 || heads == 0
                                       ? 0
                                       : (tokens - 1) * static_cast<std::size_t>(token_stride) +
                                             (heads - 1) * static_cast<std::size_t>(head_stride) + head_dim;
        storage.assign(misalign + extent, sentinel);
    }
    float* row(std::size_t t, std::size_t h) {
        return storage.data() + offset + t * static_cast<std::size_t>(token_stride) + h * static_cast<std::size_t>(head_stride);
    }
    const float* row(std::size_t t, std::size_t h) const {
        return storage.data() + offset + t * static_cast<std::size_t>(token_stride) + h * static_cast<std::size_t>(head_stride);
    }
    float at(std::size_t t, std::size_t h, std::size_t j) const { return row(t, h)[j]; }
    void fill(std::uint32_t seed, double lo = -1.0, double hi = 1.0) {
        const auto values = random_vector<float>(tokens * heads * head_dim, seed, lo, hi);
        std::size_t i = 0;
        if (heads == 0 || head_dim == 0) return;  // no rows, however many tokens (the fuzz target's 2^64 - 1)
        for (std::size_t t = 0; t < tokens; ++t)
            for (std::size_t h = 0; h < heads; ++h)
                for (std::size_t j = 0; j < head_dim; ++j) row(t, h)[j] = values[i++];
    }
    rotary::heads_view<float> view() {
        return {storage.data() + offset, tokens, heads, head_dim, token_stride, head_stride};
    }
    rotary::heads_view<const float> cview() const {
        return {storage.data() + offset, tokens, heads, head_dim, token_stride, head_stride};
    }
    // Whether every element outside the rows still holds the sentinel.
    bool gaps_intact() const {
        std::vector<bool> in_row(storage.size(), false);
        for (std::size_t t = 0; t < tokens; ++t)
            for (std::size_t h = 0; h < heads; ++h)
                for (std::size_t j = 0; j < head_dim; ++j) in_row[static_cast<std::size_t>(row(t, h) + j - storage.data())] = true;
        for (std::size_t i = 0; i < storage.size(); ++i)
            if (!in_row[i] && storage[i] != sentinel) return false;
        return true;
    }
};

// What the oracle needs to know about a call.
struct attention_spec {
    bool causal = false;
    std::int64_t query_offset = rotary::attention_options::end_aligned;
    std::optional<double> scale;
    // RoPE inside: q token t at position q_positions[t], key n at k_positions[n]; empty: no rotation.
    rotary::layout pair_layout = rotary::layout::half_split;
    std::size_t rotary_dim = 0;
    double base = 10000.0;
    std::vector<std::int64_t> q_positions, k_positions;
};

// Eq. 2 in long double/double, nothing tiled: for every query row the full row of scores
// s_n = scale * (R_m q) . (R_n k_n) over the visible keys, the dense softmax, and sum_n p_n v_n.
// A row with no visible key gives zeros. Result [tokens][q_heads][v_dim], flat.
inline std::vector<double> naive_attention(const padded_heads& q, const padded_heads& k, const padded_heads& v,
                                           const attention_spec& spec) {
    const std::size_t tokens = q.tokens, kv_tokens = k.tokens, q_heads = q.heads, kv_heads = k.heads;
    const std::size_t d = q.head_dim, dv = v.head_dim, group = q_heads / kv_heads;
    const double scale = spec.scale ? *spec.scale : 1.0 / std::sqrt(static_cast<double>(d));
    const std::int64_t offset = spec.query_offset == rotary::attention_options::end_aligned
                                    ? static_cast<std::int64_t>(kv_tokens) - static_cast<std::int64_t>(tokens)
                                    : spec.query_offset;
    auto rotated = [&](const padded_heads& x, std::size_t t, std::size_t h, const std::vector<std::int64_t>& pos) {
        if (pos.empty()) return std::vector<long double>(x.row(t, h), x.row(t, h) + x.head_dim);
        return complex_rotate(spec.pair_layout, x.row(t, h), x.head_dim, spec.rotary_dim,
                              static_cast<long double>(pos[t]), static_cast<long double>(spec.base));
    };
    std::vector<std::vector<long double>> keys(kv_tokens * kv_heads);
    for (std::size_t n = 0; n < kv_tokens; ++n)
        for (std::size_t h = 0; h < kv_heads; ++h) keys[n * kv_heads + h] = rotated(k, n, h, spec.k_positions);
    std::vector<double> out(tokens * q_heads * dv, 0.0);
    for (std::size_t t = 0; t < tokens; ++t)
        for (std::size_t h = 0; h < q_heads; ++h) {
            const std::size_t kh = h / group;
            const auto qr = rotated(q, t, h, spec.q_positions);
            const std::int64_t last = spec.causal ? offset + static_cast<std::int64_t>(t) : static_cast<std::int64_t>(kv_tokens) - 1;
            const std::size_t visible = last < 0 ? 0 : std::min<std::size_t>(kv_tokens, static_cast<std::size_t>(last) + 1);
            if (visible == 0) continue;
            std::vector<long double> s(visible);
            long double top = -std::numeric_limits<long double>::infinity();
            for (std::size_t n = 0; n < visible; ++n) {
                long double dot = 0;
                for (std::size_t j = 0; j < d; ++j) dot += qr[j] * keys[n * kv_heads + kh][j];
                s[n] = dot * scale;
                top = std::max(top, s[n]);
            }
            long double sum = 0;
            for (auto& x : s) sum += (x = std::exp(x - top));
            for (std::size_t j = 0; j < dv; ++j) {
                long double o = 0;
                for (std::size_t n = 0; n < visible; ++n) o += s[n] * v.at(n, kh, j);
                out[(t * q_heads + h) * dv + j] = static_cast<double>(o / sum);
            }
        }
    return out;
}

// The paths an attention test runs: "default" (the public entry points, xsimd::default_arch of
// the test's translation unit), "scalar", and each SIMD arch this CPU runs, from its own unit.
struct attention_backend {
    std::string name;
    const rotary::attention_kernel_set* kernels;  // null for "default"
};

inline const rotary::attention_kernel_set& scalar_attention_kernels() {
    static constexpr rotary::attention_kernel_set set = rotary::make_attention_kernel_set<rotary::scalar>();
    return set;
}

inline std::vector<attention_backend> attention_backends() {
    std::vector<attention_backend> all = {{"default", nullptr}, {"scalar", &scalar_attention_kernels()}};
    if (rotary::cpu_supports<xsimd::sse2>()) all.push_back({"sse2", &rotary_attention_kernel_set_sse2()});
    if (rotary::cpu_supports<xsimd::fma3<xsimd::avx2>>()) all.push_back({"avx2", &rotary_attention_kernel_set_avx2()});
    if (rotary::cpu_supports<xsimd::avx512bw>()) all.push_back({"avx512bw", &rotary_attention_kernel_set_avx512bw()});
    return all;
}

// Runs a validated job on a kernel set, with a workspace of exactly the size it asks for.
inline void run_attention_job(const rotary::attention_kernel_set& set, const rotary::detail::attention_job& job) {
    std::vector<float, xsimd::aligned_allocator<float, 64>> workspace(
        set.workspace_floats(job, job.token_end - job.token_begin));
    set.run(job, job.kv_head_begin, job.kv_head_end, job.token_begin, job.token_end, workspace.data());
}

// attention(...) on a backend, pre-rotated (table null) or rotating inside.
inline void attention_on(const attention_backend& b, const rotary::rope_table<float>* table, rotary::layout pair_layout,
                         const rotary::positions* q_pos, const rotary::positions* k_pos,
                         const rotary::heads_view<const float>& q, const rotary::heads_view<const float>& k,
                         const rotary::heads_view<const float>& v, const rotary::heads_view<float>& out,
                         const rotary::attention_options& options) {
    if (b.kernels == nullptr) {
        if (table == nullptr)
            rotary::attention(q, k, v, out, options);
        else
            rotary::attention(*table, pair_layout, q, k, v, out, *q_pos, *k_pos, options);
        return;
    }
    run_attention_job(*b.kernels, rotary::detail::make_attention_job<xsimd::default_arch>(table, pair_layout, q_pos, k_pos,
                                                                                          q, k, v, out, options));
}

// Runs call and expects an exception of type E whose message holds every one of parts.
template <class E>
void expect_exception(const std::function<void()>& call, const std::vector<std::string>& parts) {
    try {
        call();
        ADD_FAILURE() << "no exception; expected one mentioning '" << parts.front() << "'";
    } catch (const E& e) {
        const std::string what = e.what();
        for (const std::string& part : parts)
            EXPECT_NE(what.find(part), std::string::npos) << "message '" << what << "' lacks '" << part << "'";
    } catch (const std::exception& e) {
        ADD_FAILURE() << "wrong exception type: " << e.what();
    }
}

}  // namespace rotary_test
