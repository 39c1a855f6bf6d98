// Shared by the benchmark binaries: the input and output buffers of the rows, the FMA-peak loop
// of the attention limits, and main().
#pragma once

#include <rotary/detail/simd.hpp>

#include <benchmark/benchmark.h>
#include <xsimd/xsimd.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <utility>
#include <vector>

namespace rotary_bench {

// 64-byte aligned buffers, filled once per size and element type and reused by every row.
template <class T>
T* buffer(std::size_t elements, int which) {
    using storage = std::vector<T, xsimd::aligned_allocator<T, 64>>;
    static std::map<std::pair<std::size_t, int>, std::unique_ptr<storage>> buffers;
    auto& slot = buffers[{elements, which}];
    if (!slot) {
        slot = std::make_unique<storage>(elements);
        std::mt19937 rng(static_cast<std::uint32_t>(elements + static_cast<std::size_t>(which)));
        std::uniform_real_distribution<double> dist(-1.0, 1.0);
        for (auto& x : *slot) x = static_cast<T>(dist(rng));
    }
    return slot->data();
}

// FMAs per round of fma_chains: independent chains in registers, more than the FMA latency times
// the FMA pipes (4 cycles x 2 on Zen 4), so that nothing but the FMA throughput limits the loop.
constexpr std::size_t fma_chain_count = 12;

template <class T, class A, std::size_t... I>
inline void fma_round(xsimd::batch<T, A> (&acc)[sizeof...(I)], const xsimd::batch<T, A>& x,
                      const xsimd::batch<T, A>& y, std::index_sequence<I...>) {
    ((acc[I] = rotary::detail::fmadd<A>(acc[I], x, y)), ...);
}

// rounds x fma_chain_count FMAs of the default arch's vectors: 2 * fma_chain_count * rounds *
// batch::size FLOP, the machine's FMA peak (the attention benchmarks' limit row). Returns the sum
// of the chains, for the caller to keep, so that the loop is not removed.
template <class T>
T fma_chains(std::size_t rounds) {
    using A = rotary::default_arch;
    using batch = xsimd::batch<T, A>;
    batch x(T(0.999999)), y(T(1e-6));
    benchmark::DoNotOptimize(x);  // unknown to the compiler: the loop cannot be folded
    benchmark::DoNotOptimize(y);
    batch acc[fma_chain_count];
    for (std::size_t i = 0; i < fma_chain_count; ++i) acc[i] = batch(static_cast<T>(i));
    for (std::size_t r = 0; r < rounds; ++r) fma_round<T, A>(acc, x, y, std::make_index_sequence<fma_chain_count>{});
    batch sum(T(0));
    for (const batch& a : acc) sum += a;
    return xsimd::hadd(sum);
}

// The main() of every benchmark binary, with the arch of the default entry points in the context.
inline int run_benchmarks(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::AddCustomContext("default_arch", rotary::default_arch::name());
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

}  // namespace rotary_bench
