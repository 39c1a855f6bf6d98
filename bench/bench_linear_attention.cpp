// Microbenchmarks of linear attention with RoPE (Eq. 19), beside the limit of the same binary:
//   limit/fma_peak   a register-only loop of independent FMAs (12 accumulators, enough to cover
//                    the FMA latency on two pipes), the arithmetic peak of one core.
// FLOP count (one definition for every row): 2 * N * d * d_v * (q_heads + kv_heads), the
// multiply-adds of the linear form, building S = sum_n (R_n phi(k_n)) v_n^T once per kv head and
// reading it once per query. The same count for causal and bidirectional rows, so FLOP/s compares
// with time directly; the chunked causal path executes more (the masked block products inside a
// chunk, about 2 C (d + d_v) per token and query head), and the feature maps, rotations and
// denominators are not counted.
// Counters: FLOP/s, tokens/s, of_peak (FLOP/s over the fma_peak row of this run), x_prev (time at
// this length over the median time at half of it, over the repetitions run so far: 2 is linear).
// Shapes: 8 query and 8 kv heads, head_dim = value_dim = 64 and 128, tokens 1k .. 32k, fp32, one
// thread unless the row says omp2; the chunk sweep; the quadratic form (one chunk for the whole
// sequence) against the chunked one for the crossover; the decode step.
// Softmax attention (<rotary/attention.hpp>, rotating q and k inside as these rows do) at the same
// shapes, causal and bidirectional: its own FLOP count, 4 N^2 d heads (half of it causal: QK^T
// and PV, the masked half skipped), in FLOP/s; compare its time with the linear rows'. From 4k
// tokens on it runs one iteration (32k takes about a minute).
#include <rotary/rotary.hpp>

#include <benchmark/benchmark.h>

#include "bench_buffers.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {

using rotary::heads_view;
using rotary::layout;
using rotary::positions;

constexpr std::size_t heads = 8;
constexpr std::size_t kv_heads = 8;
constexpr std::size_t max_tokens = 32768;

using rotary_bench::buffer;

template <class T>
const rotary::rope_table<T>& table(std::size_t head_dim) {
    static std::map<std::size_t, std::unique_ptr<rotary::rope_table<T>>> tables;
    auto& slot = tables[head_dim];
    if (!slot) slot = std::make_unique<rotary::rope_table<T>>(head_dim, max_tokens);
    return *slot;
}

double flops(std::size_t tokens, std::size_t head_dim) {
    return 2.0 * static_cast<double>(tokens) * static_cast<double>(head_dim) * static_cast<double>(head_dim) *
           static_cast<double>(heads + kv_heads);
}

// The peak FLOP/s of this run (0 until the fma_peak row of T ran), and each row family's seconds
// per iteration by length (for x_prev).
template <class T>
double& measured_peak() {
    static double peak = 0;
    return peak;
}
std::map<std::pair<std::string, std::size_t>, std::vector<double>>& seconds_by_length() {
    static std::map<std::pair<std::string, std::size_t>, std::vector<double>> m;
    return m;
}
double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// ---- The limit ----------------------------------------------------------------------------------

template <class T>
void BM_fma_peak(benchmark::State& state) {
    constexpr std::size_t rounds = 4096;
    const auto start = std::chrono::steady_clock::now();
    for (auto _ : state) benchmark::DoNotOptimize(rotary_bench::fma_chains<T>(rounds));
    const auto end = std::chrono::steady_clock::now();
    const double per_iteration = 2.0 * rotary_bench::fma_chain_count * rounds * xsimd::batch<T, rotary::default_arch>::size;
    state.counters["FLOP/s"] = benchmark::Counter(per_iteration, benchmark::Counter::kIsIterationInvariantRate);
    // remembered for the of_peak counters of the rows after it
    const double seconds = std::chrono::duration<double>(end - start).count();
    if (seconds > 0) measured_peak<T>() = per_iteration * static_cast<double>(state.iterations()) / seconds;
}

// ---- Shared by the attention rows ------------------------------------------------------------------

// One layer's q, k, v and out at the row's (head_dim, tokens): [tokens, heads, head_dim] each.
template <class T>
struct layer_views {
    std::size_t head_dim, tokens;
    heads_view<const T> q, k, v;
    heads_view<T> out;
    explicit layer_views(const benchmark::State& state)
        : head_dim(static_cast<std::size_t>(state.range(0))),
          tokens(static_cast<std::size_t>(state.range(1))),
          q(buffer<T>(tokens * heads * head_dim, 0), tokens, heads, head_dim),
          k(buffer<T>(tokens * kv_heads * head_dim, 1), tokens, kv_heads, head_dim),
          v(buffer<T>(tokens * kv_heads * head_dim, 2), tokens, kv_heads, head_dim),
          out(buffer<T>(tokens * heads * head_dim, 3), tokens, heads, head_dim) {}
};

// The counters of a row that ran `seconds` per iteration of `flop` FLOP: FLOP/s, tokens/s, of_peak,
// and x_prev against the same family's time at half the length.
template <class T>
void set_counters(benchmark::State& state, const layer_views<T>& l, double flop, double seconds, const std::string& family) {
    state.counters["FLOP/s"] = benchmark::Counter(flop, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["tokens/s"] =
        benchmark::Counter(static_cast<double>(l.tokens), benchmark::Counter::kIsIterationInvariantRate);
    if (measured_peak<T>() > 0) state.counters["of_peak"] = flop / seconds / measured_peak<T>();
    const std::string key = family + "/" + std::to_string(l.head_dim);
    const auto previous = seconds_by_length().find({key, l.tokens / 2});
    if (previous != seconds_by_length().end()) state.counters["x_prev"] = seconds / median(previous->second);
    seconds_by_length()[{key, l.tokens}].push_back(seconds);
}

// ---- Linear attention ---------------------------------------------------------------------------

enum class form { bidirectional, causal, causal_quadratic };

template <class T>
void BM_linear_attention(benchmark::State& state, form f, std::size_t chunk, int threads, std::string family) {
    const layer_views<T> l(state);
    const auto& t = table<T>(l.head_dim);
    rotary::linear_attention_options options;
    options.chunk_size = f == form::causal_quadratic ? l.tokens : chunk;
#if defined(_OPENMP)
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
    const auto start = std::chrono::steady_clock::now();
    for (auto _ : state) {
        if (f == form::bidirectional) {
            rotary::linear_attention(t, layout::half_split, l.q, l.k, l.v, l.out, positions::starting_at(0), options);
        } else if (threads > 1) {
#if defined(_OPENMP)
            rotary::causal_linear_attention_parallel(t, layout::half_split, l.q, l.k, l.v, l.out, positions::starting_at(0),
                                                     options);
#endif
        } else {
            rotary::causal_linear_attention(t, layout::half_split, l.q, l.k, l.v, l.out, positions::starting_at(0), options);
        }
        benchmark::ClobberMemory();
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() /
                           static_cast<double>(state.iterations());
    set_counters(state, l, flops(l.tokens, l.head_dim), seconds, family);
}

// One decode step: one token of 8 query and 8 kv heads joins a state and reads it.
template <class T>
void BM_step(benchmark::State& state) {
    const auto head_dim = static_cast<std::size_t>(state.range(0));
    const heads_view<const T> q(buffer<T>(heads * head_dim, 0), 1, heads, head_dim);
    const heads_view<const T> k(buffer<T>(kv_heads * head_dim, 1), 1, kv_heads, head_dim);
    const heads_view<const T> v(buffer<T>(kv_heads * head_dim, 2), 1, kv_heads, head_dim);
    const heads_view<T> out(buffer<T>(heads * head_dim, 3), 1, heads, head_dim);
    const auto& t = table<T>(head_dim);
    rotary::linear_attention_state<T> s(kv_heads, head_dim, head_dim);
    std::int64_t position = 0;
    const auto start = std::chrono::steady_clock::now();
    for (auto _ : state) {
        rotary::linear_attention_step(t, layout::half_split, q, k, v, out, position, s);
        position = (position + 1) % static_cast<std::int64_t>(max_tokens);
        benchmark::ClobberMemory();
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() /
                           static_cast<double>(state.iterations());
    state.counters["FLOP/s"] = benchmark::Counter(flops(1, head_dim), benchmark::Counter::kIsIterationInvariantRate);
    state.counters["tokens/s"] = benchmark::Counter(1, benchmark::Counter::kIsIterationInvariantRate);
    if (measured_peak<T>() > 0) state.counters["of_peak"] = flops(1, head_dim) / seconds / measured_peak<T>();
}

// Softmax attention with RoPE at a linear row's shape (x_prev: its own time at half the length).
template <class T>
void BM_softmax_attention(benchmark::State& state, bool causal, std::string family) {
    const layer_views<T> l(state);
    const auto& t = table<T>(l.head_dim);
    rotary::attention_options options;
    options.causal = causal;
    const auto start = std::chrono::steady_clock::now();
    for (auto _ : state) {
        rotary::attention(t, layout::half_split, l.q, l.k, l.v, l.out, positions::starting_at(0), positions::starting_at(0),
                          options);
        benchmark::ClobberMemory();
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() /
                           static_cast<double>(state.iterations());
    const double n = static_cast<double>(l.tokens);
    set_counters(state, l, 4.0 * n * n * static_cast<double>(l.head_dim * heads) / (causal ? 2.0 : 1.0), seconds, family);
}

void add(const std::string& name, form f, std::size_t chunk, int threads, std::int64_t head_dim, std::int64_t tokens,
         bool fp64 = false) {
    const std::string family = name;
    auto* b = fp64 ? benchmark::RegisterBenchmark(name.c_str(), BM_linear_attention<double>, f, chunk, threads, family)
                   : benchmark::RegisterBenchmark(name.c_str(), BM_linear_attention<float>, f, chunk, threads, family);
    b->Args({head_dim, tokens})->ArgNames({"head_dim", "tokens"})->UseRealTime()->Unit(benchmark::kMillisecond);
}

void add_rows() {
    benchmark::RegisterBenchmark("fp32/limit/fma_peak", BM_fma_peak<float>)->UseRealTime();
    benchmark::RegisterBenchmark("fp64/limit/fma_peak", BM_fma_peak<double>)->UseRealTime();
    const std::size_t chunk = rotary::linear_attention_options::default_chunk_size;
    for (std::int64_t d : {128, 64})
        for (form f : {form::causal, form::bidirectional})
            for (std::int64_t n = 1024; n <= static_cast<std::int64_t>(max_tokens); n *= 2)
                add(std::string("fp32/") + (f == form::causal ? "causal" : "bidirectional"), f, chunk, 1, d, n);
    for (std::int64_t d : {128, 64})
        for (bool causal : {true, false})
            for (std::int64_t n = 1024; n <= static_cast<std::int64_t>(max_tokens); n *= 2) {
                const std::string name = std::string("fp32/softmax_") + (causal ? "causal" : "bidirectional");
                auto* b = benchmark::RegisterBenchmark(name.c_str(), BM_softmax_attention<float>, causal, name);
                b->Args({d, n})->ArgNames({"head_dim", "tokens"})->UseRealTime()->Unit(benchmark::kMillisecond);
                if (n >= 4096) b->Iterations(1);
            }
    // chunk sizes of the causal path at 8k tokens
    for (std::int64_t d : {128, 64})
        for (std::size_t c : {16, 32, 48, 64, 96, 128, 256})
            add("fp32/causal_chunk_" + std::to_string(c), form::causal, c, 1, d, 8192);
    // crossover: the quadratic form of Eq. 19 (one chunk) against the chunked one
    for (std::int64_t n = 64; n <= 4096; n *= 2) {
        add("fp32/crossover/causal_quadratic", form::causal_quadratic, chunk, 1, 128, n);
        add("fp32/crossover/causal_chunked", form::causal, chunk, 1, 128, n);
    }
    benchmark::RegisterBenchmark("fp32/step", BM_step<float>)->Arg(128)->ArgName("head_dim")->UseRealTime();
    benchmark::RegisterBenchmark("fp32/step", BM_step<float>)->Arg(64)->ArgName("head_dim")->UseRealTime();
    // fp64 at 8k tokens (of_peak against the fp64 peak row)
    add("fp64/causal", form::causal, chunk, 1, 128, 8192, true);
    add("fp64/bidirectional", form::bidirectional, chunk, 1, 128, 8192, true);
#if defined(_OPENMP)
    add("fp32/causal_omp2", form::causal, chunk, 2, 128, 8192);
#endif
}

}  // namespace

int main(int argc, char** argv) {
    add_rows();
    return rotary_bench::run_benchmarks(argc, argv);
}
