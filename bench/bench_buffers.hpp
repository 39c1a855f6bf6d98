// Shared by the benchmark binaries: the input and output buffers of the rows.
#pragma once

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

}  // namespace rotary_bench
