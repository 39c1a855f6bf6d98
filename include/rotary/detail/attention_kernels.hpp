// rotary: the kernels of tiled softmax attention (layer 6 of DESIGN.md), written once on
// xsimd::batch<float, Arch> (or one float for rotary::scalar, the reference path).
//
// The block products are register-blocked micro-kernels, not Eigen's GEMM: on Zen 4 (AVX-512,
// bench/bench_attention.cpp) the same tiled loop with Eigen's GEMM on 64 x 64 tiles runs the
// 2048-token causal case at about half the rate of these kernels (Eigen packs both operands of
// every tile product; here K^T is packed once per head and the rest is read in place).
//
// Every function here is a member of softmax_attention<Arch>, so each arch gets its own copy:
// code compiled with -mavx512f must never be the copy a baseline translation unit links to (see
// kernels.hpp). The job arrives validated; nothing here checks or throws.
// SPDX-License-Identifier: MIT
#ifndef ROTARY_DETAIL_ATTENTION_KERNELS_HPP
#define ROTARY_DETAIL_ATTENTION_KERNELS_HPP

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include <xsimd/xsimd.hpp>

#include "../apply.hpp"
#include "kernels.hpp"
#include "simd.hpp"

ROTARY_DIAGNOSTIC_PUSH

namespace rotary {
namespace detail {

// A validated attention call (see make_attention_job in attention.hpp). Query row i of kv head h
// is token i / group of q head h * group + i % group: the q heads that share a kv head (GQA, MQA)
// are stacked into one set of rows, so each kv head's keys and values are read once for all of them.
struct attention_job {
    const float* q = nullptr;
    const float* k = nullptr;
    const float* v = nullptr;
    float* out = nullptr;
    std::ptrdiff_t q_token_stride = 0, q_head_stride = 0;
    std::ptrdiff_t k_token_stride = 0, k_head_stride = 0;
    std::ptrdiff_t v_token_stride = 0, v_head_stride = 0;
    std::ptrdiff_t out_token_stride = 0, out_head_stride = 0;
    std::size_t tokens = 0, kv_tokens = 0, kv_heads = 0, group = 1, head_dim = 0, v_dim = 0;
    float scale_log2e = 0;  // softmax scale * log2(e): scores are formed in base 2, exp2 replaces exp
    bool causal = false;
    std::int64_t query_offset = 0;  // causal: token t sees keys n <= query_offset + t
    bool rotate_q = false, rotate_k = false;
    rope_job<float, float> q_rope{}, k_rope{};  // table, layout and positions; buffers filled per tile
    std::size_t kv_head_begin = 0, kv_head_end = 0, token_begin = 0, token_end = 0;
};

// One float dressed as a one-lane batch: the scalar path runs the same kernels with width 1.
struct scalar_lanes {
    static constexpr std::size_t size = 1;
    float value;

    scalar_lanes() = default;
    scalar_lanes(float x) noexcept : value(x) {}  // NOLINT: broadcast, as xsimd::batch(float)
    static scalar_lanes load_aligned(const float* p) noexcept { return *p; }
    static scalar_lanes load_unaligned(const float* p) noexcept { return *p; }
    void store_aligned(float* p) const noexcept { *p = value; }
    void store_unaligned(float* p) const noexcept { *p = value; }
    friend scalar_lanes operator+(scalar_lanes a, scalar_lanes b) noexcept { return a.value + b.value; }
    friend scalar_lanes operator-(scalar_lanes a, scalar_lanes b) noexcept { return a.value - b.value; }
    friend scalar_lanes operator*(scalar_lanes a, scalar_lanes b) noexcept { return a.value * b.value; }
};

template <class Arch>
struct lanes_of {
    using type = xsimd::batch<float, Arch>;
};
template <>
struct lanes_of<scalar> {
    using type = scalar_lanes;
};

// Calls f(integral_constant<I>) for I = 0 .. N-1, unrolled: register tiles need compile-time indices.
template <class F, std::size_t... I>
ROTARY_ALWAYS_INLINE void static_for_each(std::index_sequence<I...>, F&& f) {
    (f(std::integral_constant<std::size_t, I>{}), ...);
}
template <std::size_t N, class F>
ROTARY_ALWAYS_INLINE void static_for(F&& f) {
    static_for_each(std::make_index_sequence<N>{}, std::forward<F>(f));
}

template <class Arch>
struct softmax_attention {
    using batch = typename lanes_of<Arch>::type;
    static constexpr bool is_scalar = std::is_same<Arch, scalar>::value;
    static constexpr std::size_t width = batch::size;

    // Register tiles. AVX-512 has 32 vector registers: 6 query rows x 4 vectors = 24 accumulators;
    // SSE and AVX2 have 16: 3 x 4 = 12.
    static constexpr std::size_t tile_rows = is_scalar ? 2 : is_avx512<Arch> ? 6 : 3;
    static constexpr std::size_t key_vectors = is_scalar ? 8 : 4;  // a key tile is this many vectors wide
    static constexpr std::size_t tile_keys = width * key_vectors;
    static constexpr std::size_t value_vectors = is_scalar ? 8 : 4;  // output vectors per P.V pass
    // Query rows that share one pass over the keys: their scores, Q and O tiles stay in L1/L2.
    static constexpr std::size_t block_rows = 8 * tile_rows;
    // From this many query rows per kv head on, K is packed transposed once (the panel) and Q.K^T
    // runs as a register-blocked product; below it (decode) each score is a dot product over k's own
    // rows, with no packing.
    static constexpr std::size_t panel_min_rows = 32;
    static constexpr std::size_t align = 16;  // floats: 64 bytes

    // ---- The lane operations the kernels use, for xsimd batches and for one float ---------------

    static batch fma(const batch& a, const batch& b, const batch& c) noexcept {
        if constexpr (is_scalar)
            return a.value * b.value + c.value;
        else
            return fmadd<Arch>(a, b, c);
    }
    static batch max(const batch& a, const batch& b) noexcept {
        if constexpr (is_scalar)
            return std::max(a.value, b.value);
        else
            return xsimd::max(a, b);
    }
    static batch exp2(const batch& x) noexcept {
        if constexpr (is_scalar)
            return std::exp2(x.value);
        else
            return xsimd::exp2(x);
    }
    static float reduce_add(const batch& x) noexcept {
        if constexpr (is_scalar)
            return x.value;
        else
            return xsimd::hadd(x);
    }
    static float reduce_max(const batch& x) noexcept {
        alignas(64) float lanes[width];
        x.store_aligned(lanes);
        float m = lanes[0];
        for (std::size_t i = 1; i < width; ++i) m = std::max(m, lanes[i]);
        return m;
    }
    // Lane i = the sum of rows[i]'s lanes. xsimd 8.1's haddp is right for SSE and AVX but swaps
    // lanes 2-3 with 4-5 and 10-11 with 12-13 on AVX-512, so that arch folds the rows itself.
    static batch sum_each(const batch* rows) noexcept {
        if constexpr (is_scalar) {
            return rows[0];
        } else {
#if XSIMD_WITH_AVX512F
            if constexpr (is_avx512<Arch>) {
                // 16 -> 8: each 128-bit lane holds a partial sum of four floats of one row; pairing
                // rows (i, i+4) and then (i, i+8) leaves lane L of w[e] with row 4L + e.
                auto fold = [](__m512 a, __m512 b) {
                    return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                                         _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
                };
                auto pair = [](__m512 a, __m512 b) {
                    return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
                                         _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
                };
                __m512 w[4];
                for (int e = 0; e < 4; ++e)
                    w[e] = pair(fold(rows[e], rows[e + 4]), fold(rows[e + 8], rows[e + 12]));
                // within each 128-bit lane: [sum w0, sum w1, sum w2, sum w3]
                const __m512 x = _mm512_add_ps(_mm512_unpacklo_ps(w[0], w[1]), _mm512_unpackhi_ps(w[0], w[1]));
                const __m512 y = _mm512_add_ps(_mm512_unpacklo_ps(w[2], w[3]), _mm512_unpackhi_ps(w[2], w[3]));
                return _mm512_add_ps(_mm512_shuffle_ps(x, y, _MM_SHUFFLE(1, 0, 1, 0)),
                                     _mm512_shuffle_ps(x, y, _MM_SHUFFLE(3, 2, 3, 2)));
            } else
#endif
                return xsimd::haddp(rows);
        }
    }

    // ---- Sizes --------------------------------------------------------------------------------

    static std::size_t round_up(std::size_t n, std::size_t m) noexcept { return (n + m - 1) / m * m; }

    struct plan {
        std::size_t block_tokens;  // tokens per block: block_tokens * group query rows per head
        std::size_t rows;          // query rows per head of the largest block
        std::size_t heads;         // kv heads that share a pass over the keys
        std::size_t o_stride;      // floats per O row (v_dim rounded up to 64 bytes)
        bool panel;                // Q.K^T through the packed K^T panel
        std::size_t panel_floats, key_rows_floats, value_rows_floats, q_floats, s_floats, o_floats, stats_floats;

        std::size_t total() const noexcept {
            return panel_floats + key_rows_floats + value_rows_floats + q_floats + s_floats + o_floats + 3 * stats_floats;
        }
    };

    // The workspace of a call on tokens [t0, t0 + tokens) of the job's kv heads. With the panel,
    // one kv head at a time; without (few query rows: decode), all the job's kv heads go through
    // each key tile together, so that the keys and values are read in memory order (one head's
    // rows alone are a short run every kv_heads * head_dim floats: a new page every few rows).
    static plan make_plan(const attention_job& job, std::size_t tokens) noexcept {
        plan p{};
        const std::size_t g = job.group;
        p.panel = tokens * g >= panel_min_rows;
        p.block_tokens = p.panel ? std::max<std::size_t>(1, block_rows / g) : std::max<std::size_t>(tokens, 1);
        p.rows = std::min(p.block_tokens, std::max<std::size_t>(tokens, 1)) * g;
        p.heads = p.panel ? 1 : std::max<std::size_t>(1, job.kv_head_end - job.kv_head_begin);
        p.o_stride = round_up(job.v_dim, align);
        p.panel_floats = p.panel ? round_up(job.kv_tokens, tile_keys) * job.head_dim : 0;
        p.key_rows_floats = job.rotate_k || !p.panel ? round_up(p.heads * tile_keys * job.head_dim, align) : 0;
        p.value_rows_floats = p.panel ? 0 : p.heads * tile_keys * p.o_stride;
        const std::size_t rows = p.heads * p.rows;
        p.q_floats = round_up(rows * job.head_dim, align);
        p.s_floats = round_up(rows * tile_keys, align);
        p.o_floats = rows * p.o_stride;
        p.stats_floats = round_up(rows, align);
        return p;
    }

    // A job without kv heads, query tokens or value columns in its range: a valid no-op.
    static bool nothing_to_compute(const attention_job& job) noexcept {
        return job.kv_head_begin == job.kv_head_end || job.token_begin == job.token_end || job.v_dim == 0;
    }

    // Zero for a call with nothing to compute: its views may be as long as they like without
    // holding an element (2^62 tokens of no heads), and a plan sized for them would ask for
    // gigabytes that run() never touches.
    static std::size_t workspace_floats(const attention_job& job, std::size_t tokens) noexcept {
        if (nothing_to_compute(job) || tokens == 0) return 0;
        return make_plan(job, tokens).total();
    }

    // kv heads [h0, h1) (within the job's kv head range) x tokens [t0, t1) of a validated job;
    // workspace holds workspace_floats(job, t1 - t0) floats, 64-byte aligned.
    static void run(const attention_job& job, std::size_t h0, std::size_t h1, std::size_t t0, std::size_t t1,
                    float* workspace) noexcept {
        if (t0 >= t1 || h0 >= h1 || job.v_dim == 0) return;
        const plan p = make_plan(job, t1 - t0);
        if (!p.panel) return run_heads(job, p, h0, h1, t0, t1, workspace);
        for (std::size_t h = h0; h < h1; ++h) run_heads(job, p, h, h + 1, t0, t1, workspace);
    }

  private:
    struct scratch {
        float *panel, *key_rows, *value_rows, *q, *s, *o, *m, *l, *alpha;
    };

    // Keys [0, keys_seen(t)) are visible to token t.
    static std::size_t keys_seen(const attention_job& job, std::size_t t) noexcept {
        if (!job.causal) return job.kv_tokens;
        const std::int64_t last = job.query_offset + static_cast<std::int64_t>(t) + 1;
        return last <= 0 ? 0 : std::min(job.kv_tokens, static_cast<std::size_t>(last));
    }

    // Rotates tokens [first, first + count) of `heads` heads of a buffer into out (Eq. 34, through
    // the core kernel), at the positions the job's rope row assigns to those tokens.
    static void rotate_rows(const rope_job<float, float>& base, std::size_t first, std::size_t count, const float* in,
                            std::ptrdiff_t in_token_stride, std::ptrdiff_t in_head_stride, std::size_t heads,
                            std::size_t head_dim, float* out, std::ptrdiff_t out_token_stride,
                            std::ptrdiff_t out_head_stride) noexcept {
        rope_job<float, float> job = base;
        if (job.position_source == positions::kind::offset)
            job.start += static_cast<std::int64_t>(first);
        else if (job.position_source == positions::kind::ids32)
            job.ids = static_cast<const std::int32_t*>(job.ids) + first;
        else
            job.ids = static_cast<const std::int64_t*>(job.ids) + first;
        job.buffers = 1;
        job.buffer[0] = {in, out, heads, head_dim, in_token_stride, in_head_stride, out_token_stride, out_head_stride};
        job.range = {0, count};
        run_tokens<Arch>(job, 0, count);
    }

    // dst[0 .. n) = src[0 .. n), inline (a libc call per row costs more than the row)
    static void copy(const float* src, float* dst, std::size_t n) noexcept {
        std::size_t j = 0;
        for (; j + width <= n; j += width) batch::load_unaligned(src + j).store_unaligned(dst + j);
        for (; j < n; ++j) dst[j] = src[j];
    }

    // dst[0 .. n) = src[0 .. n) * factor
    static void scale_copy(const float* src, float* dst, std::size_t n, float factor) noexcept {
        const batch f(factor);
        std::size_t j = 0;
        for (; j + width <= n; j += width) (batch::load_unaligned(src + j) * f).store_unaligned(dst + j);
        for (; j < n; ++j) dst[j] = src[j] * factor;
    }

    // The unit's rows of q for tokens [tb, tb + nb): rotated (if asked) and multiplied by
    // scale * log2(e), so that a score is already the exponent of 2 that softmax needs.
    static void pack_queries(const attention_job& job, std::size_t h, std::size_t tb, std::size_t nb, float* q) noexcept {
        const std::size_t g = job.group, d = job.head_dim;
        const float* first = job.q + static_cast<std::ptrdiff_t>(tb) * job.q_token_stride +
                             static_cast<std::ptrdiff_t>(h * g) * job.q_head_stride;
        if (job.rotate_q) {
            rotate_rows(job.q_rope, tb, nb, first, job.q_token_stride, job.q_head_stride, g, d, q,
                        static_cast<std::ptrdiff_t>(g * d), static_cast<std::ptrdiff_t>(d));
            scale_copy(q, q, nb * g * d, job.scale_log2e);
            return;
        }
        for (std::size_t t = 0; t < nb; ++t)
            for (std::size_t i = 0; i < g; ++i)
                scale_copy(first + static_cast<std::ptrdiff_t>(t) * job.q_token_stride +
                               static_cast<std::ptrdiff_t>(i) * job.q_head_stride,
                           q + (t * g + i) * d, d, job.scale_log2e);
    }

    // Keys [n0, n0 + nk) of kv head h as rows: k's own rows, or rotated into `rows` (stride d).
    static const float* key_rows(const attention_job& job, std::size_t h, std::size_t n0, std::size_t nk,
                                 float* rows, std::ptrdiff_t& stride) noexcept {
        const float* first = job.k + static_cast<std::ptrdiff_t>(n0) * job.k_token_stride +
                             static_cast<std::ptrdiff_t>(h) * job.k_head_stride;
        if (!job.rotate_k) {
            stride = job.k_token_stride;
            return first;
        }
        const auto d = static_cast<std::ptrdiff_t>(job.head_dim);
        rotate_rows(job.k_rope, n0, nk, first, job.k_token_stride, job.k_head_stride, 1, job.head_dim, rows, d, d);
        stride = d;
        return rows;
    }

    // Decode: keys and values [n0, n0 + nk) of kv heads [h0, h1), token by token in memory order
    // (a sequential read the hardware prefetchers follow), into head-major rows: head hh's keys at
    // keys + hh * tile_keys * d, its values at values + hh * tile_keys * v_stride. Read head by head
    // in place, a head's rows sit 4 KiB or more apart: each is a new page, where the prefetchers
    // stop, and 16 of them share one set of the L1 cache.
    static void pack_tile(const attention_job& job, std::size_t h0, std::size_t h1, std::size_t n0, std::size_t nk,
                          float* keys, float* values, std::size_t v_stride) noexcept {
        const std::size_t d = job.head_dim, heads = h1 - h0;
        const float* k = job.k + static_cast<std::ptrdiff_t>(n0) * job.k_token_stride +
                         static_cast<std::ptrdiff_t>(h0) * job.k_head_stride;
        const float* v = job.v + static_cast<std::ptrdiff_t>(n0) * job.v_token_stride +
                         static_cast<std::ptrdiff_t>(h0) * job.v_head_stride;
        if (job.rotate_k)
            rotate_rows(job.k_rope, n0, nk, k, job.k_token_stride, job.k_head_stride, heads, d, keys,
                        static_cast<std::ptrdiff_t>(d), static_cast<std::ptrdiff_t>(tile_keys * d));
        for (std::size_t n = 0; n < nk; ++n)
            for (std::size_t hh = 0; hh < heads; ++hh) {
                const auto token = static_cast<std::ptrdiff_t>(n), head = static_cast<std::ptrdiff_t>(hh);
                if (!job.rotate_k)
                    copy(k + token * job.k_token_stride + head * job.k_head_stride, keys + (hh * tile_keys + n) * d, d);
                copy(v + token * job.v_token_stride + head * job.v_head_stride, values + (hh * tile_keys + n) * v_stride,
                     job.v_dim);
            }
    }

    // K^T of kv head h for keys [0, key_end): one block of head_dim x tile_keys floats per key tile,
    // zero-padded past key_end, so that a key tile's column of scores is a row of vector loads.
    static void pack_panel(const attention_job& job, std::size_t h, std::size_t key_end, const scratch& w) noexcept {
        const std::size_t d = job.head_dim;
        for (std::size_t n0 = 0; n0 < key_end; n0 += tile_keys) {
            const std::size_t nk = std::min(tile_keys, key_end - n0);
            std::ptrdiff_t stride;
            const float* rows = key_rows(job, h, n0, nk, w.key_rows, stride);
            float* block = w.panel + n0 * d;
            for (std::size_t j = 0; j < d; ++j) {
                float* column = block + j * tile_keys;
                for (std::size_t n = 0; n < nk; ++n) column[n] = rows[static_cast<std::ptrdiff_t>(n) * stride + static_cast<std::ptrdiff_t>(j)];
                for (std::size_t n = nk; n < tile_keys; ++n) column[n] = 0.0f;
            }
        }
    }

    // S[r][0 .. tile_keys) = Q[r] . K^T for Rows query rows: the query element broadcast against a
    // row of the K^T block in vectors (Rows x key_vectors accumulators in registers).
    template <std::size_t Rows>
    static void qk_panel(const float* q, std::size_t d, const float* block, float* s) noexcept {
        batch acc[Rows][key_vectors];
        static_for<Rows>([&](auto r) { static_for<key_vectors>([&](auto c) { acc[r][c] = batch(0.0f); }); });
        for (std::size_t j = 0; j < d; ++j) {
            batch k[key_vectors];
            static_for<key_vectors>([&](auto c) { k[c] = batch::load_aligned(block + j * tile_keys + c * width); });
            static_for<Rows>([&](auto r) {
                const batch qr(q[r * d + j]);
                static_for<key_vectors>([&](auto c) { acc[r][c] = fma(qr, k[c], acc[r][c]); });
            });
        }
        static_for<Rows>([&](auto r) {
            static_for<key_vectors>([&](auto c) { acc[r][c].store_aligned(s + r * tile_keys + c * width); });
        });
    }

    // The same scores for a few query rows (decode) straight from k's rows: `width` dot products at
    // a time, each accumulated in vectors along head_dim and summed across lanes together.
    static void qk_dot(std::size_t rows, const float* q, std::size_t d, const float* k, std::ptrdiff_t k_stride,
                       std::size_t nk, float* s) noexcept {
        const std::size_t d_vectors = d / width * width;
        for (std::size_t n0 = 0; n0 < nk; n0 += width) {
            const float* key[width];
            for (std::size_t i = 0; i < width; ++i)  // past nk: repeat the last key, masked later
                key[i] = k + static_cast<std::ptrdiff_t>(std::min(n0 + i, nk - 1)) * k_stride;
            for (std::size_t r = 0; r < rows; ++r) {
                const float* qr = q + r * d;
                batch acc[width];
                static_for<width>([&](auto i) { acc[i] = batch(0.0f); });
                for (std::size_t j = 0; j < d_vectors; j += width) {
                    const batch x = batch::load_unaligned(qr + j);
                    static_for<width>([&](auto i) { acc[i] = fma(x, batch::load_unaligned(key[i] + j), acc[i]); });
                }
                batch dots = sum_each(acc);
                if (d_vectors < d) {
                    alignas(64) float tail[width];
                    for (std::size_t i = 0; i < width; ++i) {
                        float t = 0.0f;
                        for (std::size_t j = d_vectors; j < d; ++j) t += qr[j] * key[i][j];
                        tail[i] = t;
                    }
                    dots = dots + batch::load_aligned(tail);
                }
                dots.store_aligned(s + r * tile_keys + n0);
            }
        }
    }

    // The online softmax of FlashAttention for one query row and one key tile, in base 2:
    //   m' = max(m, max_n s_n),  p_n = 2^(s_n - m'),  l' = 2^(m - m') l + sum_n p_n,
    // the p_n overwrite s, and alpha = 2^(m - m') rescales the row's output. m starts at -FLT_MAX,
    // never -inf, so a row with every key masked (-inf) keeps alpha = 1, p = 0 and l = 0.
    static float softmax_row(float* s, float& m, float& l) noexcept {
        batch top = batch::load_aligned(s);
        static_for<key_vectors - 1>([&](auto c) { top = max(top, batch::load_aligned(s + (c + 1) * width)); });
        const float m_new = std::max(m, reduce_max(top));
        const batch shift(m_new);
        batch sum(0.0f);
        static_for<key_vectors>([&](auto c) {
            const batch p = exp2(batch::load_aligned(s + c * width) - shift);
            p.store_aligned(s + c * width);
            sum = sum + p;
        });
        const float alpha = std::exp2(m - m_new);
        l = l * alpha + reduce_add(sum);
        m = m_new;
        return alpha;
    }

    // O[r][c0 ..] = alpha[r] * O[r][c0 ..] + sum_{n < n_end} P[r][n] V[n][c0 ..] over Vectors vectors
    // of columns: a row of V in vectors, P broadcast (Rows x Vectors accumulators in registers).
    template <std::size_t Rows, std::size_t Vectors>
    static void pv_block(const float* p, std::size_t n_end, const float* v, std::ptrdiff_t v_stride, float* o,
                         std::size_t o_stride, const float* alpha) noexcept {
        batch acc[Rows][Vectors];
        static_for<Rows>([&](auto r) {
            const batch a(alpha[r]);
            static_for<Vectors>([&](auto c) { acc[r][c] = batch::load_aligned(o + r * o_stride + c * width) * a; });
        });
        for (std::size_t n = 0; n < n_end; ++n) {
            const float* vn = v + static_cast<std::ptrdiff_t>(n) * v_stride;
            batch x[Vectors];
            static_for<Vectors>([&](auto c) { x[c] = batch::load_unaligned(vn + c * width); });
            static_for<Rows>([&](auto r) {
                const batch pr(p[r * tile_keys + n]);
                static_for<Vectors>([&](auto c) { acc[r][c] = fma(pr, x[c], acc[r][c]); });
            });
        }
        static_for<Rows>([&](auto r) {
            static_for<Vectors>([&](auto c) { acc[r][c].store_aligned(o + r * o_stride + c * width); });
        });
    }

    template <std::size_t Rows>
    static void pv(const float* p, std::size_t n_end, const float* v, std::ptrdiff_t v_stride, std::size_t v_dim,
                   float* o, std::size_t o_stride, const float* alpha) noexcept {
        const std::size_t vectors = v_dim / width;
        for (std::size_t c0 = 0; c0 < vectors; c0 += value_vectors)
            with_vector_count<value_vectors>(std::min(value_vectors, vectors - c0), [&](auto nv) {
                pv_block<Rows, decltype(nv)::value>(p, n_end, v + c0 * width, v_stride, o + c0 * width, o_stride, alpha);
            });
        for (std::size_t r = 0; r < Rows; ++r)  // the columns past the last full vector
            for (std::size_t j = vectors * width; j < v_dim; ++j) {
                float sum = o[r * o_stride + j] * alpha[r];
                for (std::size_t n = 0; n < n_end; ++n) sum += p[r * tile_keys + n] * v[static_cast<std::ptrdiff_t>(n) * v_stride + static_cast<std::ptrdiff_t>(j)];
                o[r * o_stride + j] = sum;
            }
    }

    // out = O / l for the block's rows; a row that saw no key (l = 0) gets zeros.
    static void write_output(const attention_job& job, std::size_t h, std::size_t tb, std::size_t nb, const scratch& w,
                             std::size_t first, std::size_t o_stride) noexcept {
        const std::size_t g = job.group;
        for (std::size_t t = 0; t < nb; ++t)
            for (std::size_t i = 0; i < g; ++i) {
                const std::size_t row = first + t * g + i;
                float* dst = job.out + static_cast<std::ptrdiff_t>(tb + t) * job.out_token_stride +
                             static_cast<std::ptrdiff_t>(h * g + i) * job.out_head_stride;
                scale_copy(w.o + row * o_stride, dst, job.v_dim, w.l[row] > 0.0f ? 1.0f / w.l[row] : 0.0f);
            }
    }

    static scratch carve(const plan& p, float* workspace) noexcept {
        scratch w{};
        float* next = workspace;
        auto take = [&](std::size_t n) {
            float* at = next;
            next += n;
            return at;
        };
        w.panel = take(p.panel_floats);
        w.key_rows = take(p.key_rows_floats);
        w.value_rows = take(p.value_rows_floats);
        w.q = take(p.q_floats);
        w.s = take(p.s_floats);
        w.o = take(p.o_floats);
        w.m = take(p.stats_floats);
        w.l = take(p.stats_floats);
        w.alpha = take(p.stats_floats);
        return w;
    }

    // kv heads [h0, h1) (each with its group of q heads) for tokens [t0, t1): FlashAttention's
    // loop, blocks of query rows outside, key tiles inside, with the running max and sum of each
    // row. Head hh's rows of a block start at row hh * p.rows of the scratch tiles.
    static void run_heads(const attention_job& job, const plan& p, std::size_t h0, std::size_t h1, std::size_t t0,
                          std::size_t t1, float* workspace) noexcept {
        const scratch w = carve(p, workspace);
        const std::size_t g = job.group, d = job.head_dim, heads = h1 - h0;
        if (p.panel) pack_panel(job, h0, keys_seen(job, t1 - 1), w);
        for (std::size_t tb = t0; tb < t1; tb += p.block_tokens) {
            const std::size_t nb = std::min(p.block_tokens, t1 - tb), rows = nb * g, all_rows = heads * p.rows;
            for (std::size_t hh = 0; hh < heads; ++hh) pack_queries(job, h0 + hh, tb, nb, w.q + hh * p.rows * d);
            std::fill(w.m, w.m + all_rows, -FLT_MAX);
            std::fill(w.l, w.l + all_rows, 0.0f);
            std::fill(w.o, w.o + all_rows * p.o_stride, 0.0f);
            const std::size_t key_end = keys_seen(job, tb + nb - 1);
            for (std::size_t n0 = 0; n0 < key_end; n0 += tile_keys) {
                const std::size_t nk = std::min(tile_keys, key_end - n0);
                if (!p.panel) pack_tile(job, h0, h1, n0, nk, w.key_rows, w.value_rows, p.o_stride);
                for (std::size_t hh = 0; hh < heads; ++hh) {
                    const std::size_t h = h0 + hh, first = hh * p.rows;
                    const float* k = w.key_rows + hh * tile_keys * d;
                    const float* v = w.value_rows + hh * tile_keys * p.o_stride;
                    auto k_stride = static_cast<std::ptrdiff_t>(d), v_stride = static_cast<std::ptrdiff_t>(p.o_stride);
                    if (p.panel) {
                        v = job.v + static_cast<std::ptrdiff_t>(n0) * job.v_token_stride +
                            static_cast<std::ptrdiff_t>(h) * job.v_head_stride;
                        v_stride = job.v_token_stride;
                    }
                    for (std::size_t r0 = 0; r0 < rows; r0 += tile_rows) {
                        const std::size_t rr = std::min(tile_rows, rows - r0);
                        // keys of this tile that the group's last (latest) row sees: none, skip it
                        const std::size_t seen = keys_seen(job, tb + (r0 + rr - 1) / g);
                        if (seen <= n0) continue;
                        const std::size_t n_end = std::min(nk, seen - n0), at = first + r0;
                        float* s = w.s + at * tile_keys;
                        if (p.panel)
                            with_vector_count<tile_rows>(rr, [&](auto nr) {
                                qk_panel<decltype(nr)::value>(w.q + at * d, d, w.panel + n0 * d, s);
                            });
                        else
                            qk_dot(rr, w.q + at * d, d, k, k_stride, nk, s);
                        for (std::size_t r = r0; r < r0 + rr; ++r) {
                            float* row = w.s + (first + r) * tile_keys;
                            const std::size_t visible = std::min(nk, std::max(keys_seen(job, tb + r / g), n0) - n0);
                            std::fill(row + visible, row + tile_keys, -std::numeric_limits<float>::infinity());
                            w.alpha[first + r] = softmax_row(row, w.m[first + r], w.l[first + r]);
                        }
                        with_vector_count<tile_rows>(rr, [&](auto nr) {
                            pv<decltype(nr)::value>(s, n_end, v, v_stride, job.v_dim, w.o + at * p.o_stride,
                                                    p.o_stride, w.alpha + at);
                        });
                    }
                }
            }
            for (std::size_t hh = 0; hh < heads; ++hh) write_output(job, h0 + hh, tb, nb, w, hh * p.rows, p.o_stride);
        }
    }
};

}  // namespace detail
}  // namespace rotary

ROTARY_DIAGNOSTIC_POP

#endif  // ROTARY_DETAIL_ATTENTION_KERNELS_HPP
