// rotary: the precomputed cos/sin table for positions 0 .. max_positions-1 (layer 2 of DESIGN.md).
// SPDX-License-Identifier: MIT
#ifndef ROTARY_TABLE_HPP
#define ROTARY_TABLE_HPP

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "angles.hpp"
#include "frequencies.hpp"
#include "types.hpp"

namespace rotary {
namespace detail {

// Values per half row (cos or sin) for `pairs` pairs of element type T: padded with zeros to a
// multiple of 64 bytes plus half a vector (see the row layout below). The table-free path
// (table_free.hpp) builds each token's row with the same padding.
template <class T>
constexpr std::size_t padded_pairs(std::size_t pairs) noexcept {
    constexpr std::size_t vector = 64 / sizeof(T);  // widest vector we load (AVX-512)
    return (pairs + vector / 2 + vector - 1) / vector * vector;
}

// cos and sin times the attention factor are stored as T (a table's entries, a table-free row):
// past T's range they have no value there (the conversion would be undefined behaviour).
template <class T>
inline void check_attention_factor_fits(const rope_frequencies& f) {
    if (f.attention_factor > static_cast<double>(std::numeric_limits<T>::max()))
        throw_invalid("attention_factor " + std::to_string(f.attention_factor) +
                      " exceeds the largest value of the cos/sin element type");
}

}  // namespace detail

// Row layout, one row per position m (pairs = rotary_dim / 2, P = padded_pairs()):
//
//   [ cos m*theta_0 .. cos m*theta_{pairs-1}  0 .. 0 | sin m*theta_0 .. sin m*theta_{pairs-1}  0 .. 0 ]
//     '--------------------- P ------------------'   '--------------------- P ------------------'
//
// Half-size rows (one value per pair), not rows pre-expanded to [c0 c0 c1 c1 ..]: the kernels load
// a token's row once and keep it in registers across all heads of that token (and q and k), so
// expanding it for the interleaved layout costs one shuffle per vector per token, not per head,
// while the table stays half the size (less cache and memory traffic for prefill and position
// ids) and is the same for both pair layouts. Each half is padded with zeros to a multiple of
// 64 bytes plus half a vector, so that a full SIMD load of a row's last pairs (and of the
// interleaved layout's odd last half-vector) stays inside the table: no read past the end.
template <class T = float>
class rope_table {
    static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                  "rope_table holds fp32 (for fp32 and half buffers) or fp64 (for fp64 buffers) cos/sin");

  public:
    using value_type = T;

    // theta_i = base^(-2i/rotary_dim) for positions 0 .. max_positions-1.
    rope_table(std::size_t rotary_dim, std::size_t max_positions, double base = 10000.0)
        : rope_table(default_frequencies(rotary_dim, base), max_positions) {}

    // Any frequencies: custom_frequencies(), or a scaling method's.
    rope_table(const rope_frequencies& frequencies, std::size_t max_positions)
        : frequencies_(frequencies) {
        detail::check_frequencies(frequencies_);
        detail::check_attention_factor_fits<T>(frequencies_);
        if (max_positions == 0) detail::throw_invalid("max_positions must be > 0, got 0");
        if (max_positions > (std::size_t{1} << 32))
            detail::throw_invalid("max_positions must be <= 2^32 (angles are exact below it), got " +
                                  std::to_string(max_positions));
        max_positions_ = max_positions;
        const std::size_t pairs = frequencies_.pairs();
        padded_pairs_ = detail::padded_pairs<T>(pairs);
        data_.assign(detail::checked_mul(detail::checked_mul(max_positions, 2, "max_positions * 2"),
                                         padded_pairs_, "table size"),
                     T(0));
        std::vector<detail::split_frequency> split(pairs);
        for (std::size_t i = 0; i < pairs; ++i) split[i] = detail::split(frequencies_.inverse[i]);
        const double scale = frequencies_.attention_factor;
        for (std::size_t m = 0; m < max_positions; ++m) {
            T* c = data_.data() + m * row_stride();
            T* s = c + padded_pairs_;
            for (std::size_t i = 0; i < pairs; ++i) {
                const detail::cos_sin cs = detail::exact_cos_sin(static_cast<std::int64_t>(m), split[i]);
                c[i] = static_cast<T>(cs.cos * scale);
                s[i] = static_cast<T>(cs.sin * scale);
            }
        }
    }

    std::size_t rotary_dim() const noexcept { return frequencies_.rotary_dim(); }
    std::size_t pairs() const noexcept { return frequencies_.pairs(); }
    std::size_t max_positions() const noexcept { return max_positions_; }
    const rope_frequencies& frequencies() const noexcept { return frequencies_; }

    // pairs() values each; m < max_positions() (not checked here: the entry points check).
    const T* cos(std::size_t m) const noexcept { return data_.data() + m * row_stride(); }
    const T* sin(std::size_t m) const noexcept { return cos(m) + padded_pairs_; }

    std::size_t padded_pairs() const noexcept { return padded_pairs_; }
    std::size_t row_stride() const noexcept { return 2 * padded_pairs_; }
    const T* data() const noexcept { return data_.data(); }

  private:
    rope_frequencies frequencies_;
    std::size_t max_positions_ = 0;
    std::size_t padded_pairs_ = 0;
    std::vector<T, xsimd::aligned_allocator<T, 64>> data_;
};

}  // namespace rotary

#endif  // ROTARY_TABLE_HPP
