// Microbenchmarks of the rotary kernels, in bytes/s (bytes read + bytes written of q/k), beside the
// limits of the same bytes in the same binary:
//   memcpy          copy of the buffer into a second one: the out-of-place limit
//   scale_in_place  x *= a over the buffer: the in-place limit (one read and one write per byte)
//   scale_out_of_place  y = a * x with ordinary stores: the out-of-place limit of a plain loop
// Shapes: 32 heads, head_dim 64 and 128, tokens 1 (decode, in L1), 64 (in L2) and 4096 (past the
// caches), fp32, fp64, fp16 and bf16 (computed in fp32), both layouts. Single thread except the
// rows named omp. For fp16/bf16 the limit rows move the same bytes (half the elements) as fp32.
#include <rotary/kernel_set.hpp>
#include <rotary/rotary.hpp>

#include <benchmark/benchmark.h>

#include "bench_buffers.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

ROTARY_DECLARE_KERNEL_SET(sse2);
ROTARY_DECLARE_KERNEL_SET(avx2);
ROTARY_DECLARE_KERNEL_SET(avx512bw);

namespace {

using rotary::heads_view;
using rotary::layout;
using rotary::positions;

constexpr std::size_t heads = 32;
constexpr std::size_t kv_heads = 8;
constexpr std::size_t max_positions = 8192;
constexpr std::int64_t start_position = 4000;  // decode/prefill at a realistic offset

using rotary_bench::buffer;

template <class T>
const rotary::rope_table<rotary::compute_type_t<T>>& table(std::size_t rotary_dim) {
    static std::map<std::size_t, std::unique_ptr<rotary::rope_table<rotary::compute_type_t<T>>>> tables;
    auto& slot = tables[rotary_dim];
    if (!slot) slot = std::make_unique<rotary::rope_table<rotary::compute_type_t<T>>>(rotary_dim, max_positions);
    return *slot;
}

struct shape {
    std::size_t head_dim, tokens;
    explicit shape(const benchmark::State& s)
        : head_dim(static_cast<std::size_t>(s.range(0))), tokens(static_cast<std::size_t>(s.range(1))) {}
    std::size_t elements(std::size_t h = heads) const { return tokens * h * head_dim; }
};

// The element type of the limit rows: fp16/bf16 arithmetic is not native, so their limits scale
// an fp32 buffer of the same bytes.
template <class T>
using limit_type = std::conditional_t<sizeof(T) == 2, float, T>;

template <class T>
void set_bytes(benchmark::State& state, std::size_t elements_read_and_written) {
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(2 * elements_read_and_written * sizeof(T)));
}

// ---- The limits ----------------------------------------------------------------------------------

template <class T>
void BM_memcpy(benchmark::State& state) {
    const shape s(state);
    const T* src = buffer<T>(s.elements(), 0);
    T* dst = buffer<T>(s.elements(), 1);
    for (auto _ : state) {
        std::memcpy(dst, src, s.elements() * sizeof(T));
        benchmark::DoNotOptimize(dst);
        benchmark::ClobberMemory();
    }
    set_bytes<T>(state, s.elements());
}

template <class T>
void BM_scale_in_place(benchmark::State& state) {
    using L = limit_type<T>;
    const shape s(state);
    const std::size_t n = s.elements() * sizeof(T) / sizeof(L);
    L* x = buffer<L>(n, 0);
    L factor = L(1);
    benchmark::DoNotOptimize(factor);  // unknown to the compiler, so the loop is not removed
    for (auto _ : state) {
        for (std::size_t i = 0; i < n; ++i) x[i] *= factor;
        benchmark::DoNotOptimize(x);
        benchmark::ClobberMemory();
    }
    set_bytes<L>(state, n);
}

// y = a * x into a second buffer: what memcpy costs when written as a plain loop of ordinary
// stores (glibc's memcpy may use other instructions), the out-of-place kernels' own limit.
template <class T>
void BM_scale_out_of_place(benchmark::State& state) {
    using L = limit_type<T>;
    const shape s(state);
    const std::size_t n = s.elements() * sizeof(T) / sizeof(L);
    const L* x = buffer<L>(n, 0);
    L* y = buffer<L>(n, 1);
    L factor = L(1);
    benchmark::DoNotOptimize(factor);
    for (auto _ : state) {
        for (std::size_t i = 0; i < n; ++i) y[i] = x[i] * factor;
        benchmark::DoNotOptimize(y);
        benchmark::ClobberMemory();
    }
    set_bytes<L>(state, n);
}

// ---- The kernels ---------------------------------------------------------------------------------

template <class T, layout L>
void BM_default_in_place(benchmark::State& state) {
    const shape s(state);
    const heads_view<T> x(buffer<T>(s.elements(), 0), s.tokens, heads, s.head_dim);
    const auto& t = table<T>(s.head_dim);
    for (auto _ : state) {
        rotary::apply(t, L, x, positions::starting_at(start_position));
        benchmark::ClobberMemory();
    }
    set_bytes<T>(state, s.elements());
}

template <class T, layout L>
void BM_default_out_of_place(benchmark::State& state) {
    const shape s(state);
    const heads_view<const T> in(buffer<T>(s.elements(), 0), s.tokens, heads, s.head_dim);
    const heads_view<T> out(buffer<T>(s.elements(), 1), s.tokens, heads, s.head_dim);
    const auto& t = table<T>(s.head_dim);
    for (auto _ : state) {
        rotary::apply(t, L, in, out, positions::starting_at(start_position));
        benchmark::ClobberMemory();
    }
    set_bytes<T>(state, s.elements());
}

template <class T, layout L>
void BM_position_ids_in_place(benchmark::State& state) {
    const shape s(state);
    const heads_view<T> x(buffer<T>(s.elements(), 0), s.tokens, heads, s.head_dim);
    const auto& t = table<T>(s.head_dim);
    std::vector<std::int32_t> ids(s.tokens);
    for (std::size_t i = 0; i < s.tokens; ++i) ids[i] = static_cast<std::int32_t>(start_position + i);
    for (auto _ : state) {
        rotary::apply(t, L, x, positions::from_ids(ids.data(), ids.size()));
        benchmark::ClobberMemory();
    }
    set_bytes<T>(state, s.elements());
}

// M-RoPE (Qwen2-VL): every token an image patch, its positions on the (t, h, w) axes all different,
// mrope_section {d/8, 3d/16, 3d/16} pairs: each token's row is assembled from three table rows.
template <class T, layout L>
void BM_multi_axis_in_place(benchmark::State& state) {
    const shape s(state);
    const heads_view<T> x(buffer<T>(s.elements(), 0), s.tokens, heads, s.head_dim);
    const auto& t = table<T>(s.head_dim);
    std::vector<std::int32_t> ids(3 * s.tokens);
    for (std::size_t i = 0; i < s.tokens; ++i) {
        ids[i] = static_cast<std::int32_t>(start_position);                       // t: one frame
        ids[s.tokens + i] = static_cast<std::int32_t>(start_position + i / 64);    // h: rows of 64 patches
        ids[2 * s.tokens + i] = static_cast<std::int32_t>(start_position + i % 64);  // w
    }
    const std::size_t pairs = s.head_dim / 2;
    const auto pos = rotary::axis_positions::from_ids(ids.data(), 3, s.tokens, {pairs / 4, 3 * pairs / 8, 3 * pairs / 8});
    for (auto _ : state) {
        rotary::apply(t, L, x, pos);
        benchmark::ClobberMemory();
    }
    set_bytes<T>(state, s.elements());
}

// One kernel set (scalar or an arch of its own translation unit), in place.
template <class T, layout L>
void BM_kernels_in_place(benchmark::State& state, const rotary::kernel_set* (*get)()) {
    const rotary::kernel_set* kernels = get();
    if (kernels == nullptr) {
        state.SkipWithError("this CPU does not run this arch");
        return;
    }
    const shape s(state);
    const heads_view<T> x(buffer<T>(s.elements(), 0), s.tokens, heads, s.head_dim);
    const auto job = rotary::detail::job_in_place(table<T>(s.head_dim), L, x, positions::starting_at(start_position), {});
    const auto run = kernels->rotate<T>();
    for (auto _ : state) {
        run(job, job.range.begin, job.range.end);
        benchmark::ClobberMemory();
    }
    set_bytes<T>(state, s.elements());
}

const rotary::kernel_set* scalar_set() {
    static constexpr rotary::kernel_set set = rotary::make_kernel_set<rotary::scalar>();
    return &set;
}
template <class Arch, const rotary::kernel_set& (*Get)() noexcept>
const rotary::kernel_set* arch_set() {
    return rotary::cpu_supports<Arch>() ? &Get() : nullptr;
}

// q with 32 heads and k with 8 (GQA) in one fused call, or in two calls.
template <class T, layout L, bool Fused>
void BM_qk_in_place(benchmark::State& state) {
    const shape s(state);
    const heads_view<T> q(buffer<T>(s.elements(), 0), s.tokens, heads, s.head_dim);
    const heads_view<T> k(buffer<T>(s.elements(kv_heads), 2), s.tokens, kv_heads, s.head_dim);
    const auto& t = table<T>(s.head_dim);
    for (auto _ : state) {
        if (Fused) {
            rotary::apply_qk(t, L, q, k, positions::starting_at(start_position));
        } else {
            rotary::apply(t, L, q, positions::starting_at(start_position));
            rotary::apply(t, L, k, positions::starting_at(start_position));
        }
        benchmark::ClobberMemory();
    }
    set_bytes<T>(state, s.elements() + s.elements(kv_heads));
}

#if defined(_OPENMP)
template <class T, layout L>
void BM_omp2_in_place(benchmark::State& state) {
    const shape s(state);
    const heads_view<T> x(buffer<T>(s.elements(), 0), s.tokens, heads, s.head_dim);
    const auto& t = table<T>(s.head_dim);
    omp_set_num_threads(2);
    for (auto _ : state) {
        rotary::apply_parallel(t, L, x, positions::starting_at(start_position));
        benchmark::ClobberMemory();
    }
    set_bytes<T>(state, s.elements());
}
#endif

template <class T>
const char* type_name() {
    if (std::is_same<T, double>::value) return "fp64";
    if (std::is_same<T, Eigen::half>::value) return "fp16";
    if (std::is_same<T, Eigen::bfloat16>::value) return "bf16";
    return "fp32";
}
const char* layout_tag(layout l) { return l == layout::interleaved ? "interleaved" : "half_split"; }

// Rows are registered shape by shape, so that each shape's limits and kernels print together.
template <class F, class... Extra>
void add_row(const std::string& name, std::int64_t head_dim, std::int64_t tokens, F f, Extra... extra) {
    benchmark::RegisterBenchmark(name.c_str(), f, extra...)
        ->Args({head_dim, tokens})
        ->ArgNames({"head_dim", "tokens"})
        ->UseRealTime();
}

template <class T, layout L>
void add_layout_rows(const std::string& prefix, std::int64_t d, std::int64_t n) {
    const std::string p = prefix + layout_tag(L) + "/";
    add_row(p + "in_place/default", d, n, BM_default_in_place<T, L>);
    add_row(p + "out_of_place/default", d, n, BM_default_out_of_place<T, L>);
    add_row(p + "in_place/scalar", d, n, BM_kernels_in_place<T, L>, &scalar_set);
    add_row(p + "in_place/sse2", d, n, BM_kernels_in_place<T, L>, &arch_set<xsimd::sse2, rotary_kernel_set_sse2>);
    add_row(p + "in_place/avx2", d, n, BM_kernels_in_place<T, L>,
            &arch_set<xsimd::fma3<xsimd::avx2>, rotary_kernel_set_avx2>);
    add_row(p + "in_place/avx512bw", d, n, BM_kernels_in_place<T, L>,
            &arch_set<xsimd::avx512bw, rotary_kernel_set_avx512bw>);
    if (sizeof(T) == 2) return;  // the rows below are about positions and fusion, covered by fp32/fp64
    add_row(p + "in_place/position_ids", d, n, BM_position_ids_in_place<T, L>);
    add_row(p + "in_place/multi_axis", d, n, BM_multi_axis_in_place<T, L>);
    add_row(p + "qk_in_place/fused", d, n, BM_qk_in_place<T, L, true>);
    add_row(p + "qk_in_place/two_calls", d, n, BM_qk_in_place<T, L, false>);
#if defined(_OPENMP)
    add_row(p + "in_place/omp2", d, n, BM_omp2_in_place<T, L>);
#endif
}

template <class T>
void add_rows() {
    for (std::int64_t d : {128, 64})
        for (std::int64_t n : {4096, 64, 1}) {
            const std::string p = std::string(type_name<T>()) + "/";
            add_row(p + "limit/memcpy", d, n, BM_memcpy<T>);
            add_row(p + "limit/scale_in_place", d, n, BM_scale_in_place<T>);
            add_row(p + "limit/scale_out_of_place", d, n, BM_scale_out_of_place<T>);
            add_layout_rows<T, layout::interleaved>(p, d, n);
            add_layout_rows<T, layout::half_split>(p, d, n);
        }
}

// ---- The table-free path (table_free.hpp) beside the table -------------------------------------
// Fused q (32 heads) and k (8 heads) in place, as a decode step (1 token) or a prefill (4096
// tokens) runs them: the table looks each token's cos/sin row up; the table-free path computes it
// (64 angles: exact reduction, double sincos, rounded to fp32), once per token for all 40 heads.
// limit/memcpy_qk copies the same bytes. "huge_position" starts at 2^31 - 4097 (no table of that
// size exists; the cost does not depend on the position). "one_head" rotates 1 head of 1 token:
// there the row computation is all the work.

template <class T>
const rotary::rope_angles<rotary::compute_type_t<T>>& angles(std::size_t rotary_dim) {
    static std::map<std::size_t, std::unique_ptr<rotary::rope_angles<rotary::compute_type_t<T>>>> all;
    auto& slot = all[rotary_dim];
    if (!slot) slot = std::make_unique<rotary::rope_angles<rotary::compute_type_t<T>>>(rotary_dim);
    return *slot;
}

template <class T>
void BM_memcpy_qk(benchmark::State& state) {
    const shape s(state);
    const std::size_t n = s.elements() + s.elements(kv_heads);
    const T* src = buffer<T>(n, 0);
    T* dst = buffer<T>(n, 1);
    for (auto _ : state) {
        std::memcpy(dst, src, n * sizeof(T));
        benchmark::DoNotOptimize(dst);
        benchmark::ClobberMemory();
    }
    set_bytes<T>(state, n);
}

// kernels: null for the public entry point (default arch), else one arch's kernel set.
template <class T, layout L>
void BM_qk_table_free(benchmark::State& state, std::int64_t start, const rotary::kernel_set* (*get)()) {
    const rotary::kernel_set* kernels = get ? get() : nullptr;
    if (get && !kernels) {
        state.SkipWithError("this CPU does not run this arch");
        return;
    }
    const shape s(state);
    const heads_view<T> q(buffer<T>(s.elements(), 0), s.tokens, heads, s.head_dim);
    const heads_view<T> k(buffer<T>(s.elements(kv_heads), 2), s.tokens, kv_heads, s.head_dim);
    const auto& a = angles<T>(s.head_dim);
    const auto job = rotary::detail::job_qk_in_place(a, L, q, k, positions::starting_at(start), {});
    for (auto _ : state) {
        if (kernels)
            kernels->rotate_table_free<T>()(job, job.range.begin, job.range.end);
        else
            rotary::apply_qk(a, L, q, k, positions::starting_at(start));
        benchmark::ClobberMemory();
    }
    set_bytes<T>(state, s.elements() + s.elements(kv_heads));
}

template <class T, bool TableFree>
void BM_one_head(benchmark::State& state) {
    const shape s(state);
    const heads_view<T> x(buffer<T>(s.head_dim, 0), 1, 1, s.head_dim);
    for (auto _ : state) {
        if constexpr (TableFree)
            rotary::apply(angles<T>(s.head_dim), layout::half_split, x, positions::starting_at(start_position));
        else
            rotary::apply(table<T>(s.head_dim), layout::half_split, x, positions::starting_at(start_position));
        benchmark::ClobberMemory();
    }
    set_bytes<T>(state, s.head_dim);
}

template <class T, layout L>
void add_table_free_layout_rows(const std::string& prefix, std::int64_t d, std::int64_t n, bool every_arch) {
    const std::string p = prefix + layout_tag(L) + "/qk_in_place/";
    const rotary::kernel_set* (*default_arch)() = nullptr;
    add_row(p + "table", d, n, BM_qk_in_place<T, L, true>);
    add_row(p + "table_free", d, n, BM_qk_table_free<T, L>, start_position, default_arch);
    add_row(p + "table_free_huge_position", d, n, BM_qk_table_free<T, L>, (std::int64_t{1} << 31) - 4097, default_arch);
    if (!every_arch) return;
    add_row(p + "table_free/scalar", d, n, BM_qk_table_free<T, L>, start_position, &scalar_set);
    add_row(p + "table_free/sse2", d, n, BM_qk_table_free<T, L>, start_position,
            &arch_set<xsimd::sse2, rotary_kernel_set_sse2>);
    add_row(p + "table_free/avx2", d, n, BM_qk_table_free<T, L>, start_position,
            &arch_set<xsimd::fma3<xsimd::avx2>, rotary_kernel_set_avx2>);
    add_row(p + "table_free/avx512bw", d, n, BM_qk_table_free<T, L>, start_position,
            &arch_set<xsimd::avx512bw, rotary_kernel_set_avx512bw>);
}

template <class T>
void add_table_free_rows(bool every_arch) {
    const std::string p = std::string(type_name<T>()) + "/";
    for (std::int64_t n : {1, 4096}) {
        add_row(p + "limit/memcpy_qk", 128, n, BM_memcpy_qk<T>);
        add_table_free_layout_rows<T, layout::half_split>(p, 128, n, every_arch);
        add_table_free_layout_rows<T, layout::interleaved>(p, 128, n, every_arch);
    }
    add_row(p + "half_split/one_head/table", 128, 1, BM_one_head<T, false>);
    add_row(p + "half_split/one_head/table_free", 128, 1, BM_one_head<T, true>);
}

}  // namespace

int main(int argc, char** argv) {
    add_rows<float>();
    add_rows<double>();
    add_rows<Eigen::half>();
    add_rows<Eigen::bfloat16>();
    add_table_free_rows<float>(true);
    add_table_free_rows<double>(false);
    return rotary_bench::run_benchmarks(argc, argv);
}
