// rotary: multi-head softmax self-attention on RoPE-rotated queries and keys (layer 6 of DESIGN.md).
//
//   out_m = sum_n softmax_n(scale * q_m . k_n) v_n        (paper Eq. 2; q_m, k_n rotated by Eq. 34)
//
// tiled as FlashAttention does: blocks of query rows against tiles of keys with a running max and
// sum per row (online softmax), so memory stays O(tokens * head_dim) and no tokens x kv_tokens
// matrix or mask is ever formed.
// SPDX-License-Identifier: MIT
#ifndef ROTARY_ATTENTION_HPP
#define ROTARY_ATTENTION_HPP

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "apply.hpp"
#include "detail/attention_kernels.hpp"
#include "detail/checks.hpp"
#include "table.hpp"
#include "types.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

ROTARY_DIAGNOSTIC_PUSH

namespace rotary {

struct attention_options {
    static constexpr std::int64_t end_aligned = std::numeric_limits<std::int64_t>::min();
    static constexpr std::size_t all = std::numeric_limits<std::size_t>::max();

    // Causal mask: query token t attends to keys n <= query_offset + t (key indices, not RoPE
    // positions). end_aligned means kv_tokens - tokens: the queries are the last tokens of the keys,
    // as for a prefill chunk or decode step against a cache (FlashAttention's bottom-right
    // alignment). Allowed: -tokens <= query_offset <= kv_tokens - tokens; a query that sees no key
    // gets zeros.
    bool causal = false;
    std::int64_t query_offset = end_aligned;
    // Softmax scale; unset: 1 / sqrt(head_dim).
    std::optional<float> scale;
    // The part of the work this call does: kv heads [kv_head_begin, kv_head_end) with the q heads
    // that share them, for query tokens [token_begin, token_end). Calls on disjoint parts can run on
    // a caller's threads at the same time (they write disjoint rows of out).
    std::size_t kv_head_begin = 0, kv_head_end = all;
    std::size_t token_begin = 0, token_end = all;

    // The defaults with the causal mask on: what a prefill or a decode step against a cache wants.
    static attention_options causal_mask() {
        attention_options o;
        o.causal = true;
        return o;
    }
};

namespace detail {

// The core's position checks, with the parameter named in the message.
template <class Arch>
[[noreturn]] ROTARY_COLD void rethrow_named(const char* name, const std::exception& e, bool range) {
    std::string what = e.what();
    const std::string prefix = "rotary: ";
    if (what.compare(0, prefix.size(), prefix) == 0) what.erase(0, prefix.size());
    if (range) throw std::out_of_range(prefix + name + ": " + what);
    throw std::invalid_argument(prefix + name + ": " + what);
}

template <class Arch>
void check_positions_named(const char* name, const positions& pos, std::size_t tokens, std::size_t max_positions) {
    try {
        check_positions(pos, tokens, token_span{0, tokens}, max_positions, "the table's max_positions");
    } catch (const std::out_of_range& e) {
        rethrow_named<Arch>(name, e, true);
    } catch (const std::invalid_argument& e) {
        rethrow_named<Arch>(name, e, false);
    }
}

// A rope_job for one buffer of a validated rotation; run_tokens fills in the buffer per tile.
template <class Arch>
rope_job<float, float> rope_rows_job(const rope_table<float>& table, layout pair_layout, const positions& pos) {
    rope_job<float, float> job{};
    set_source(job, table);
    job.pairs = table.pairs();
    job.pair_layout = pair_layout;
    job.sign = 1.0f;
    job.position_source = pos.source();
    job.start = pos.start();
    job.ids = pos.source() == positions::kind::ids32 ? static_cast<const void*>(pos.ids32())
                                                      : static_cast<const void*>(pos.ids64());
    job.axes = nullptr;
    job.streaming = false;  // tiles of scratch, read again at once
    job.buffers = 1;
    return job;
}

template <class Arch>
std::string shape_of(const checked_view& v) {
    return std::to_string(v.tokens) + " tokens x " + std::to_string(v.heads) + " heads x " + std::to_string(v.head_dim);
}

// Every check of an attention call, before anything is written. table null: q and k arrive
// rotated; q_pos / k_pos null: that one is not rotated (a KV cache holds rotated keys).
template <class Arch>
attention_job make_attention_job(const rope_table<float>* table, layout pair_layout, const positions* q_pos,
                                 const positions* k_pos, const heads_view<const float>& q, const heads_view<const float>& k,
                                 const heads_view<const float>& v, const heads_view<float>& out,
                                 const attention_options& options) {
    checked_view cq, ck, cv, co;
    check_view(q, "q", cq);
    check_view(k, "k", ck);
    check_view(v, "v", cv);
    check_view(out, "out", co);
    if (q.heads != 0 && (k.heads == 0 || q.heads % k.heads != 0))
        fail_invalid([&] {
            return "q.heads " + std::to_string(q.heads) + " is not a multiple of k.heads " + std::to_string(k.heads);
        });
    if (v.heads != k.heads)
        fail_invalid([&] { return "v.heads " + std::to_string(v.heads) + " != k.heads " + std::to_string(k.heads); });
    if (v.tokens != k.tokens)
        fail_invalid([&] { return "v.tokens " + std::to_string(v.tokens) + " != k.tokens " + std::to_string(k.tokens); });
    if (q.head_dim != k.head_dim)
        fail_invalid([&] {
            return "q.head_dim " + std::to_string(q.head_dim) + " != k.head_dim " + std::to_string(k.head_dim);
        });
    if (q.head_dim == 0 && q.tokens != 0 && q.heads != 0) fail_invalid([&] { return std::string("head_dim must be > 0, got 0"); });
    if (out.tokens != q.tokens || out.heads != q.heads || out.head_dim != v.head_dim)
        fail_invalid([&] {
            return "out is " + shape_of<Arch>(co) + ", expected q.tokens x q.heads x v.head_dim = " + std::to_string(q.tokens) +
                   " x " + std::to_string(q.heads) + " x " + std::to_string(v.head_dim);
        });
    check_rows_disjoint(co);
    check_disjoint(co, cq);
    check_disjoint(co, ck);
    check_disjoint(co, cv);

    // The workspace (see softmax_attention::make_plan) stays below this many bytes; inputs may
    // repeat rows (stride 0), so their extents alone do not bound it.
    std::size_t query_rows, rows, columns, bytes;
    if (mul_overflows(q.tokens, q.heads, query_rows) || add_overflows(k.tokens, query_rows, rows) ||
        add_overflows(rows, 1024, rows) || add_overflows(q.head_dim, v.head_dim, columns) ||
        add_overflows(columns, 1024, columns) || mul_overflows(rows, columns, bytes) ||
        mul_overflows(bytes, sizeof(float), bytes))
        fail_invalid([&] {
            return "attention sizes overflow: k.tokens " + std::to_string(k.tokens) + ", q.tokens " +
                   std::to_string(q.tokens) + " x q.heads " + std::to_string(q.heads) + ", head_dim " +
                   std::to_string(q.head_dim) + ", v.head_dim " + std::to_string(v.head_dim);
        });

    attention_job job;
    job.tokens = q.tokens;
    job.kv_tokens = k.tokens;
    job.kv_heads = k.heads;
    job.group = k.heads == 0 ? 1 : q.heads / k.heads;
    job.head_dim = q.head_dim;
    job.v_dim = v.head_dim;

    const double scale = options.scale ? static_cast<double>(*options.scale)
                                       : 1.0 / std::sqrt(static_cast<double>(q.head_dim == 0 ? 1 : q.head_dim));
    // The kernels fold log2(e) into the scale in fp32 (they exponentiate with exp2): a scale past
    // FLT_MAX / log2(e) ~ 2.36e38 would make that factor Inf, and every score Inf or NaN.
    constexpr double log2e = 1.4426950408889634;
    if (!std::isfinite(scale) || std::fabs(scale) * log2e > static_cast<double>(std::numeric_limits<float>::max()))
        fail_invalid([&] {
            return "scale must be finite, with |scale| * log2(e) <= FLT_MAX (|scale| <= 2.3587e38), got " + std::to_string(scale);
        });
    job.scale_log2e = static_cast<float>(scale * log2e);

    job.causal = options.causal;
    if (options.causal) {
        // The offset's range is formed in int64: counts past it (views without heads may have up to
        // 2^64 - 1 tokens) would wrap and let any offset through.
        constexpr auto int64_max = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max());
        if (q.tokens > int64_max || k.tokens > int64_max)
            fail_range([&] {
                return "query_offset cannot apply: the causal mask needs tokens " + std::to_string(q.tokens) +
                       " and kv_tokens " + std::to_string(k.tokens) + " at most INT64_MAX";
            });
        const auto tokens = static_cast<std::int64_t>(q.tokens), kv_tokens = static_cast<std::int64_t>(k.tokens);
        const std::int64_t offset =
            options.query_offset == attention_options::end_aligned ? kv_tokens - tokens : options.query_offset;
        if (offset < -tokens || offset > kv_tokens - tokens)
            fail_range([&] {
                return "query_offset " + std::to_string(offset) + " is outside [-tokens, kv_tokens - tokens] = [" +
                       std::to_string(-tokens) + ", " + std::to_string(kv_tokens - tokens) + "]";
            });
        job.query_offset = offset;
    }

    const std::size_t head_end = options.kv_head_end == attention_options::all ? k.heads : options.kv_head_end;
    if (options.kv_head_begin > head_end || head_end > k.heads)
        fail_range([&] {
            return "kv head range [" + std::to_string(options.kv_head_begin) + ", " + std::to_string(head_end) +
                   ") is not within k.heads " + std::to_string(k.heads);
        });
    const std::size_t token_end = options.token_end == attention_options::all ? q.tokens : options.token_end;
    if (options.token_begin > token_end || token_end > q.tokens)
        fail_range([&] {
            return "token range [" + std::to_string(options.token_begin) + ", " + std::to_string(token_end) +
                   ") is not within q.tokens " + std::to_string(q.tokens);
        });
    job.kv_head_begin = options.kv_head_begin;
    job.kv_head_end = q.heads == 0 ? options.kv_head_begin : head_end;
    job.token_begin = options.token_begin;
    job.token_end = token_end;

    if (table != nullptr) {
        if (pair_layout != layout::interleaved && pair_layout != layout::half_split)
            fail_invalid([&] {
                return "layout must be layout::interleaved or layout::half_split, got " +
                       std::to_string(static_cast<int>(pair_layout));
            });
        if (table->rotary_dim() > q.head_dim)
            fail_invalid([&] {
                return "rotary_dim " + std::to_string(table->rotary_dim()) + " exceeds q.head_dim " +
                       std::to_string(q.head_dim);
            });
        if (q_pos != nullptr) {
            check_positions_named<Arch>("q_positions", *q_pos, q.tokens, table->max_positions());
            job.rotate_q = true;
            job.q_rope = rope_rows_job<Arch>(*table, pair_layout, *q_pos);
        }
        if (k_pos != nullptr) {
            check_positions_named<Arch>("k_positions", *k_pos, k.tokens, table->max_positions());
            job.rotate_k = true;
            job.k_rope = rope_rows_job<Arch>(*table, pair_layout, *k_pos);
        }
    }

    set_qkvo(job, q, k, v, out);
    return job;
}

// 64-byte aligned floats, uninitialized (the kernels write before they read).
struct aligned_floats_deleter {
    void operator()(float* p) const noexcept { ::operator delete[](p, std::align_val_t(64)); }
};
using aligned_floats = std::unique_ptr<float[], aligned_floats_deleter>;

inline aligned_floats allocate_floats(std::size_t n) {
    return aligned_floats(static_cast<float*>(::operator new[](std::max<std::size_t>(n, 1) * sizeof(float), std::align_val_t(64))));
}

template <class Arch>
void run_attention(const attention_job& job) {
    if (softmax_attention<Arch>::nothing_to_compute(job)) return;
    const aligned_floats workspace =
        allocate_floats(softmax_attention<Arch>::workspace_floats(job, job.token_end - job.token_begin));
    softmax_attention<Arch>::run(job, job.kv_head_begin, job.kv_head_end, job.token_begin, job.token_end, workspace.get());
}

#if defined(_OPENMP)
// The job split over the OpenMP threads. Prefill: units of one kv head x a run of tokens, at least
// four per thread, handed out dynamically (causal units differ in cost). Decode (too few query rows
// for the K^T panel): one contiguous range of kv heads per thread, all tokens, so each thread still
// reads the keys and values in memory order. Workspaces are allocated before the parallel region,
// so that nothing can throw inside it.
template <class Arch>
void run_attention_parallel(const attention_job& job) {
    using kernels = softmax_attention<Arch>;
    if (kernels::nothing_to_compute(job)) return;
    const auto threads = static_cast<std::size_t>(omp_get_max_threads());
    const std::size_t heads = job.kv_head_end - job.kv_head_begin, tokens = job.token_end - job.token_begin;
    const std::size_t wanted = 4 * threads;
    const std::size_t chunks = heads >= wanted ? 1 : std::min(tokens, (wanted + heads - 1) / heads);
    std::size_t chunk_tokens = (tokens + chunks - 1) / chunks;
    const bool panel = kernels::make_plan(job, chunk_tokens).panel;
    if (!panel) chunk_tokens = tokens;
    const std::size_t head_ranges = panel ? heads : std::min(heads, threads);
    const std::size_t token_chunks = (tokens + chunk_tokens - 1) / chunk_tokens;
    // the last chunk is shorter and may plan differently: size for both
    const std::size_t floats = std::max(kernels::workspace_floats(job, chunk_tokens),
                                        kernels::workspace_floats(job, tokens - (token_chunks - 1) * chunk_tokens));
    std::vector<aligned_floats> workspaces;
    for (std::size_t i = 0; i < threads; ++i) workspaces.push_back(allocate_floats(floats));
    const auto units = static_cast<std::int64_t>(head_ranges * token_chunks);
#pragma omp parallel for schedule(dynamic, 1)
    for (std::int64_t u = 0; u < units; ++u) {
        const auto unit = static_cast<std::size_t>(u);
        const std::size_t range = unit % head_ranges, chunk = unit / head_ranges;
        const std::size_t h0 = job.kv_head_begin + range * heads / head_ranges;
        const std::size_t h1 = job.kv_head_begin + (range + 1) * heads / head_ranges;
        const std::size_t t0 = job.token_begin + chunk * chunk_tokens;
        kernels::run(job, h0, h1, t0, std::min(job.token_end, t0 + chunk_tokens),
                     workspaces[static_cast<std::size_t>(omp_get_thread_num())].get());
    }
}
#endif

}  // namespace detail

// Attention on q and k that arrive rotated (or carry no RoPE at all):
//   q    [tokens    x q_heads  x head_dim]
//   k    [kv_tokens x kv_heads x head_dim]     q_heads a multiple of kv_heads: MHA, GQA, MQA;
//   v    [kv_tokens x kv_heads x v_dim]        q head j uses kv head j / (q_heads / kv_heads)
//   out  [tokens    x q_heads  x v_dim]
// Any strides (views), fp32 throughout. Throws std::invalid_argument / std::out_of_range naming
// the parameter before anything is written.
template <class Arch = default_arch>
void attention(const heads_view<const float>& q, const heads_view<const float>& k, const heads_view<const float>& v,
               const heads_view<float>& out, const attention_options& options = {}) {
    detail::run_attention<Arch>(
        detail::make_attention_job<Arch>(nullptr, layout::half_split, nullptr, nullptr, q, k, v, out, options));
}

// Attention that rotates q (at q_positions) and k (at k_positions) inside, tile by tile, through
// the core kernels (Eq. 34) with the table and layout given; the caller's q and k are not modified.
template <class Arch = default_arch>
void attention(const rope_table<float>& table, layout pair_layout, const heads_view<const float>& q,
               const heads_view<const float>& k, const heads_view<const float>& v, const heads_view<float>& out,
               const positions& q_positions, const positions& k_positions, const attention_options& options = {}) {
    detail::run_attention<Arch>(
        detail::make_attention_job<Arch>(&table, pair_layout, &q_positions, &k_positions, q, k, v, out, options));
}

#if defined(_OPENMP)
// The same, with the kv heads and token range split over the OpenMP threads (declared when the
// including code is compiled with OpenMP). Validation happens once, before the parallel region.
template <class Arch = default_arch>
void attention_parallel(const heads_view<const float>& q, const heads_view<const float>& k,
                        const heads_view<const float>& v, const heads_view<float>& out,
                        const attention_options& options = {}) {
    detail::run_attention_parallel<Arch>(
        detail::make_attention_job<Arch>(nullptr, layout::half_split, nullptr, nullptr, q, k, v, out, options));
}
template <class Arch = default_arch>
void attention_parallel(const rope_table<float>& table, layout pair_layout, const heads_view<const float>& q,
                        const heads_view<const float>& k, const heads_view<const float>& v,
                        const heads_view<float>& out, const positions& q_positions, const positions& k_positions,
                        const attention_options& options = {}) {
    detail::run_attention_parallel<Arch>(
        detail::make_attention_job<Arch>(&table, pair_layout, &q_positions, &k_positions, q, k, v, out, options));
}
#endif

// The attention kernels of one arch as plain function pointers (as kernel_set does for the
// rotation), for code built for the x86-64 baseline that runs a validated job on an arch compiled
// in another translation unit (tests, benchmarks, runtime dispatch).
struct attention_kernel_set {
    const char* arch_name;
    // floats of 64-byte aligned workspace that run needs for a range of `tokens` tokens
    std::size_t (*workspace_floats)(const detail::attention_job& job, std::size_t tokens) noexcept;
    // kv heads [h0, h1) x tokens [t0, t1) of the job
    void (*run)(const detail::attention_job& job, std::size_t h0, std::size_t h1, std::size_t t0, std::size_t t1,
                float* workspace) noexcept;
};

template <class Arch>
constexpr attention_kernel_set make_attention_kernel_set() noexcept {
    return {Arch::name(), &detail::softmax_attention<Arch>::workspace_floats, &detail::softmax_attention<Arch>::run};
}

}  // namespace rotary

// In a translation unit compiled with Arch's flags: defines rotary_attention_kernel_set_<id>().
#define ROTARY_DEFINE_ATTENTION_KERNEL_SET(id, ...)                                                   \
    const ::rotary::attention_kernel_set& rotary_attention_kernel_set_##id() noexcept {               \
        static constexpr ::rotary::attention_kernel_set set = ::rotary::make_attention_kernel_set<__VA_ARGS__>(); \
        return set;                                                                                   \
    }
#define ROTARY_DECLARE_ATTENTION_KERNEL_SET(id) \
    const ::rotary::attention_kernel_set& rotary_attention_kernel_set_##id() noexcept

ROTARY_DIAGNOSTIC_POP

#endif  // ROTARY_ATTENTION_HPP
