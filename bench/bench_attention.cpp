// Softmax attention with RoPE (rotary::attention, rotary::kv_cache) beside the limits of the same
// work in the same binary:
//   limit/fma_peak           a register-only loop of 12 independent fp32 FMA chains: the machine's
//                            FMA peak, 2 FLOP per lane per FMA
//   limit/memcpy             a copy of the same K+V bytes that a decode step reads
//   gemm_softmax_materialized  per head S = Q K^T (tokens x tokens, Eigen GEMM), softmax, O = P V
//   eigen_tiles              the same tiled online-softmax loop with Eigen's GEMM for the block
//                            products, the alternative to the xsimd micro-kernels
// FLOP/s counts 4 * tokens * kv_tokens * head_dim * heads per attention (Q.K^T and P.V, 2 FLOP per
// multiply-add), halved for causal rows ("/2 causal" in the label), whatever a row computes.
// Shapes: head_dim 128, 32 q heads and 32 kv heads (MHA) or 8 (GQA), fp32, q and k pre-rotated
// unless the row says rope_inside. Single thread unless the row says threads:2 (OpenMP).
#include <rotary/rotary.hpp>

#include <Eigen/Dense>
#include <benchmark/benchmark.h>

#include "bench_buffers.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {

using rotary::attention_options;
using rotary::heads_view;
using rotary::layout;
using rotary::positions;

constexpr std::size_t head_dim = 128;
constexpr std::size_t q_heads = 32;
constexpr std::size_t gqa_kv_heads = 8;

float* buffer(std::size_t elements, int role) { return rotary_bench::buffer<float>(elements, role); }

const rotary::rope_table<float>& table() {
    static const rotary::rope_table<float> t(head_dim, 32768 + 1);
    return t;
}

void set_threads(int threads) {
#if defined(_OPENMP)
    omp_set_num_threads(threads);
#endif
    Eigen::setNbThreads(threads);
}

void set_flops(benchmark::State& state, double flops_per_iteration) {
    state.counters["FLOP/s"] = benchmark::Counter(flops_per_iteration, benchmark::Counter::kIsIterationInvariantRate,
                                                  benchmark::Counter::OneK::kIs1000);
}

double attention_flops(std::size_t tokens, std::size_t kv_tokens, std::size_t heads, bool causal) {
    return 4.0 * static_cast<double>(tokens) * static_cast<double>(kv_tokens) * head_dim * static_cast<double>(heads) /
           (causal ? 2.0 : 1.0);
}

// ---- The limits ----------------------------------------------------------------------------------

void BM_fma_peak(benchmark::State& state) {
    const int threads = static_cast<int>(state.range(0));
    constexpr std::size_t rounds = 1 << 20;
    for (auto _ : state) {
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads)
#endif
        {
            float x = rotary_bench::fma_chains<float>(rounds);
            benchmark::DoNotOptimize(x);
        }
    }
    set_flops(state, 2.0 * rotary_bench::fma_chain_count * xsimd::batch<float, rotary::default_arch>::size * rounds * threads);
}

// A copy of the K+V bytes a decode step reads from a cache of kv_tokens tokens.
void BM_memcpy_kv(benchmark::State& state) {
    const auto kv_tokens = static_cast<std::size_t>(state.range(0));
    const std::size_t elements = 2 * kv_tokens * gqa_kv_heads * head_dim;
    const float* src = buffer(elements, 10);
    float* dst = buffer(elements, 11);
    for (auto _ : state) {
        std::memcpy(dst, src, elements * sizeof(float));
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * elements * sizeof(float)));
}

// ---- Prefill: attention over tokens x tokens -------------------------------------------------------

struct prefill {
    std::size_t tokens, kv_heads;
    bool causal;
    heads_view<const float> q, k, v;
    heads_view<float> out;

    explicit prefill(const benchmark::State& s)
        : tokens(static_cast<std::size_t>(s.range(0))), kv_heads(static_cast<std::size_t>(s.range(1))),
          causal(s.range(2) != 0),
          q(buffer(tokens * q_heads * head_dim, 0), tokens, q_heads, head_dim),
          k(buffer(tokens * kv_heads * head_dim, 1), tokens, kv_heads, head_dim),
          v(buffer(tokens * kv_heads * head_dim, 2), tokens, kv_heads, head_dim),
          out(buffer(tokens * q_heads * head_dim, 3), tokens, q_heads, head_dim) {}
    attention_options options() const {
        attention_options o;
        o.causal = causal;
        return o;
    }
};

void BM_attention(benchmark::State& state, bool rope_inside) {
    const prefill p(state);
    const int threads = static_cast<int>(state.range(3));
    set_threads(threads);
    for (auto _ : state) {
#if defined(_OPENMP)
        if (threads > 1) {
            if (rope_inside)
                rotary::attention_parallel(table(), layout::half_split, p.q, p.k, p.v, p.out, positions::starting_at(0),
                                           positions::starting_at(0), p.options());
            else
                rotary::attention_parallel(p.q, p.k, p.v, p.out, p.options());
            benchmark::ClobberMemory();
            continue;
        }
#endif
        if (rope_inside)
            rotary::attention(table(), layout::half_split, p.q, p.k, p.v, p.out, positions::starting_at(0),
                              positions::starting_at(0), p.options());
        else
            rotary::attention(p.q, p.k, p.v, p.out, p.options());
        benchmark::ClobberMemory();
    }
    set_flops(state, attention_flops(p.tokens, p.tokens, q_heads, p.causal));
    const auto job = rotary::detail::make_attention_job<rotary::default_arch>(nullptr, layout::half_split, nullptr, nullptr,
                                                                             p.q, p.k, p.v, p.out, p.options());
    state.counters["workspace_MiB"] =
        static_cast<double>(rotary::detail::softmax_attention<rotary::default_arch>::workspace_floats(job, p.tokens)) *
        sizeof(float) / (1 << 20);
}

using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using const_rows = Eigen::Map<const row_major, Eigen::Unaligned, Eigen::OuterStride<>>;
using rows = Eigen::Map<row_major, Eigen::Unaligned, Eigen::OuterStride<>>;

const_rows head_of(const heads_view<const float>& x, std::size_t h, std::size_t first = 0, std::size_t count = 0) {
    return const_rows(x.row(first, h), static_cast<Eigen::Index>(count == 0 ? x.tokens : count),
                      static_cast<Eigen::Index>(x.head_dim), Eigen::OuterStride<>(x.token_stride));
}
rows head_of(const heads_view<float>& x, std::size_t h, std::size_t first = 0, std::size_t count = 0) {
    return rows(x.row(first, h), static_cast<Eigen::Index>(count == 0 ? x.tokens : count),
                static_cast<Eigen::Index>(x.head_dim), Eigen::OuterStride<>(x.token_stride));
}

// The textbook way: the whole tokens x tokens score matrix of a head through Eigen's GEMM, the
// softmax over its rows, then P V. Memory O(tokens^2) per head.
void BM_gemm_softmax_materialized(benchmark::State& state) {
    const prefill p(state);
    set_threads(1);
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    const std::size_t group = q_heads / p.kv_heads;
    const auto n = static_cast<Eigen::Index>(p.tokens);
    row_major s(n, n);
    for (auto _ : state) {
        for (std::size_t h = 0; h < q_heads; ++h) {
            s.noalias() = scale * head_of(p.q, h) * head_of(p.k, h / group).transpose();
            if (p.causal)
                for (Eigen::Index i = 0; i + 1 < n; ++i)
                    s.row(i).tail(n - i - 1).setConstant(-std::numeric_limits<float>::infinity());
            s = (s.colwise() - s.rowwise().maxCoeff()).array().exp();
            s.array().colwise() /= s.rowwise().sum().array();
            head_of(p.out, h).noalias() = s * head_of(p.v, h / group);
        }
        benchmark::ClobberMemory();
    }
    set_flops(state, attention_flops(p.tokens, p.tokens, q_heads, p.causal));
}

// The same tiled online softmax as rotary::attention (blocks of query rows x tiles of keys,
// running max and sum), with the block products through Eigen's GEMM on Maps of the caller's
// rows instead of the xsimd micro-kernels. Tile edge = range(4).
void BM_eigen_tiles(benchmark::State& state) {
    const prefill p(state);
    set_threads(1);
    const auto tile = static_cast<std::size_t>(state.range(4));
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    const std::size_t group = q_heads / p.kv_heads;
    row_major s, o;
    Eigen::VectorXf m, l, alpha;
    for (auto _ : state) {
        for (std::size_t h = 0; h < q_heads; ++h)
            for (std::size_t q0 = 0; q0 < p.tokens; q0 += tile) {
                const std::size_t nq = std::min(tile, p.tokens - q0);
                const auto rows_q = static_cast<Eigen::Index>(nq);
                o.setZero(rows_q, head_dim);
                m.setConstant(rows_q, -std::numeric_limits<float>::max());
                l.setZero(rows_q);
                const std::size_t key_end = p.causal ? q0 + nq : p.tokens;
                for (std::size_t k0 = 0; k0 < key_end; k0 += tile) {
                    const std::size_t nk = std::min(tile, key_end - k0);
                    s.noalias() = scale * head_of(p.q, h, q0, nq) * head_of(p.k, h / group, k0, nk).transpose();
                    if (p.causal && k0 + nk > q0)
                        for (Eigen::Index i = 0; i < rows_q; ++i)
                            for (Eigen::Index j = 0; j < static_cast<Eigen::Index>(nk); ++j)
                                if (k0 + static_cast<std::size_t>(j) > q0 + static_cast<std::size_t>(i))
                                    s(i, j) = -std::numeric_limits<float>::infinity();
                    const Eigen::VectorXf m_new = m.cwiseMax(s.rowwise().maxCoeff());
                    alpha = (m - m_new).array().exp();
                    s = (s.colwise() - m_new).array().exp();
                    l = l.cwiseProduct(alpha) + s.rowwise().sum();
                    m = m_new;
                    o = alpha.asDiagonal() * o;
                    o.noalias() += s * head_of(p.v, h / group, k0, nk);
                }
                head_of(p.out, h, q0, nq) = l.cwiseInverse().asDiagonal() * o;
            }
        benchmark::ClobberMemory();
    }
    set_flops(state, attention_flops(p.tokens, p.tokens, q_heads, p.causal));
}

// ---- Decode: one new token against a KV cache ------------------------------------------------------

rotary::kv_cache& filled_cache(std::size_t kv_tokens) {
    static std::map<std::size_t, std::unique_ptr<rotary::kv_cache>> caches;
    auto& slot = caches[kv_tokens];
    if (!slot) {
        slot = std::make_unique<rotary::kv_cache>(table(), layout::half_split, kv_tokens, gqa_kv_heads, head_dim);
        const std::size_t chunk = 1024, elements = chunk * gqa_kv_heads * head_dim;
        const heads_view<const float> k(buffer(elements, 20), chunk, gqa_kv_heads, head_dim);
        const heads_view<const float> v(buffer(elements, 21), chunk, gqa_kv_heads, head_dim);
        while (slot->size() < kv_tokens) slot->append(k, v);
    }
    return *slot;
}

void BM_decode(benchmark::State& state) {
    const auto kv_tokens = static_cast<std::size_t>(state.range(0));
    const int threads = static_cast<int>(state.range(1));
    set_threads(threads);
    const rotary::kv_cache& cache = filled_cache(kv_tokens);
    const heads_view<const float> q(buffer(q_heads * head_dim, 30), 1, q_heads, head_dim);
    const heads_view<float> out(buffer(q_heads * head_dim, 31), 1, q_heads, head_dim);
    for (auto _ : state) {
#if defined(_OPENMP)
        if (threads > 1)
            cache.attend_parallel(q, out);
        else
#endif
            cache.attend(q, out);
        benchmark::ClobberMemory();
    }
    const std::size_t kv_bytes = 2 * kv_tokens * gqa_kv_heads * head_dim * sizeof(float);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kv_bytes));
    state.counters["tokens/s"] = benchmark::Counter(1.0, benchmark::Counter::kIsIterationInvariantRate);
    set_flops(state, attention_flops(1, kv_tokens, q_heads, false));
}

// ---- Registration ----------------------------------------------------------------------------------

// The FLOP count in the label: T tokens, 128 head_dim, 32 q heads.
std::string prefill_name(const std::string& what, bool causal) {
    return what + (causal ? "/causal(FLOP=4*T*T*128*32/2)" : "/full(FLOP=4*T*T*128*32)");
}

template <class F, class... Extra>
benchmark::internal::Benchmark* add(const std::string& name, std::vector<std::int64_t> args,
                                    std::vector<std::string> arg_names, F f, Extra... extra) {
    return benchmark::RegisterBenchmark(name.c_str(), f, extra...)
        ->Args(args)
        ->ArgNames(arg_names)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
}

#if defined(_OPENMP)
constexpr std::int64_t max_threads = 2;
#else
constexpr std::int64_t max_threads = 1;
#endif

// Rows are registered shape by shape, so that each shape's rows print together: 1 and 2 threads
// of MHA and GQA, then (single thread) the comparisons. 8192-token rows take seconds: one
// iteration each, and no materialized row (256 MiB of scores per head).
void register_rows() {
    for (std::int64_t threads = 1; threads <= max_threads; ++threads)
        add("limit/fma_peak", {threads}, {"threads"}, BM_fma_peak);
    const std::vector<std::string> names = {"tokens", "kv_heads", "causal", "threads"};
    const auto mha = static_cast<std::int64_t>(q_heads), gqa = static_cast<std::int64_t>(gqa_kv_heads);
    for (std::int64_t tokens : {512, 2048, 8192})
        for (bool causal : {true, false}) {
            const bool long_rows = tokens == 8192;
            for (std::int64_t threads = 1; threads <= max_threads; ++threads) {
                auto* row = add(prefill_name("attention/mha", causal), {tokens, mha, causal, threads}, names, BM_attention, false);
                if (long_rows)
                    row->Iterations(1);
                else
                    add(prefill_name("attention/gqa", causal), {tokens, gqa, causal, threads}, names, BM_attention, false);
            }
            if (long_rows) continue;
            if (tokens == 2048)
                add(prefill_name("attention/mha_rope_inside", causal), {tokens, mha, causal, 1}, names, BM_attention, true);
            add(prefill_name("gemm_softmax_materialized/mha", causal), {tokens, mha, causal, 1}, names,
                BM_gemm_softmax_materialized);
            add(prefill_name("eigen_tiles/mha", causal), {tokens, mha, causal, 1, 64},
                {"tokens", "kv_heads", "causal", "threads", "tile"}, BM_eigen_tiles);
        }
    for (std::int64_t kv_tokens : {4096, 32768}) {
        add("limit/memcpy(bytes=K+V_of_the_cache)", {kv_tokens}, {"kv_tokens"}, BM_memcpy_kv);
        for (std::int64_t threads = 1; threads <= max_threads; ++threads)
            add("decode/gqa_32q_8kv(1_token,bytes=K+V_read)", {kv_tokens, threads}, {"kv_tokens", "threads"}, BM_decode);
    }
}

}  // namespace

int main(int argc, char** argv) {
    register_rows();
    return rotary_bench::run_benchmarks(argc, argv);
}
