// rotary: the kernels of Eq. 34 (layer 4 of DESIGN.md), one per pair layout, written once on
// xsimd::batch<C, Arch>, with the scalar path beside them.
//
// Every function here is templated on Arch, the scalar ones included: a translation unit compiled
// with -mavx512f that instantiates them must not emit a copy that the linker could pick for a
// baseline translation unit (tests and runtime dispatch mix such units in one binary).
// SPDX-License-Identifier: MIT
#ifndef ROTARY_DETAIL_KERNELS_HPP
#define ROTARY_DETAIL_KERNELS_HPP

#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>

#include "../types.hpp"
#include "half.hpp"
#include "simd.hpp"

ROTARY_DIAGNOSTIC_PUSH

namespace rotary {
namespace detail {

// One buffer's rows of one token, as the kernels see them: every check has happened before.
template <class T>
struct token_rows {
    const T* in;
    T* out;
    std::size_t heads;
    std::size_t head_dim;
    std::ptrdiff_t in_head_stride;
    std::ptrdiff_t out_head_stride;
};

// Pairs [begin, end) of one head, scalar. Eq. 34 per pair, i.e. the complex product of Eq. 12:
//   (x0 + i x1) * (cos + i sin) = (x0 cos - x1 sin) + i (x1 cos + x0 sin).
// sign is +1 (forward, R_m) or -1 (inverse, R_m^T).
template <class Arch, layout L, class T, class C>
inline void rotate_pairs_scalar(const C* cos, const C* sin, C sign, std::size_t begin, std::size_t end,
                                std::size_t pairs, const T* in, T* out) noexcept {
    constexpr bool interleaved = L == layout::interleaved;
    for (std::size_t i = begin; i < end; ++i) {
        const std::size_t i0 = interleaved ? 2 * i : i;
        const std::size_t i1 = interleaved ? 2 * i + 1 : i + pairs;
        const C x0 = static_cast<C>(in[i0]);
        const C x1 = static_cast<C>(in[i1]);
        const C c = cos[i];
        const C s = sign * sin[i];
        out[i0] = static_cast<T>(x0 * c - x1 * s);
        out[i1] = static_cast<T>(x1 * c + x0 * s);
    }
}

// Pairs [begin, pairs) of every head of every buffer, then the pass-through entries past
// rotary_dim, copied unchanged (bit-exact) when out-of-place and left untouched in place.
template <class Arch, layout L, class T, class C>
inline void finish_token(const C* cos, const C* sin, C sign, std::size_t begin, std::size_t pairs,
                         const token_rows<T>* rows, std::size_t n_rows) noexcept {
    for (std::size_t r = 0; r < n_rows; ++r) {
        const token_rows<T>& b = rows[r];
        const std::size_t rotary_dim = 2 * pairs;
        const bool copy = b.in != b.out && b.head_dim > rotary_dim;
        if (begin >= pairs && !copy) continue;
        for (std::size_t h = 0; h < b.heads; ++h) {
            const T* x = b.in + static_cast<std::ptrdiff_t>(h) * b.in_head_stride;
            T* y = b.out + static_cast<std::ptrdiff_t>(h) * b.out_head_stride;
            if (begin < pairs) rotate_pairs_scalar<Arch, L>(cos, sin, sign, begin, pairs, pairs, x, y);
            if (copy) std::memcpy(y + rotary_dim, x + rotary_dim, (b.head_dim - rotary_dim) * sizeof(T));
        }
    }
}

// Calls f(std::integral_constant<std::size_t, n>) for a runtime n in 1..N: the kernels below keep
// n vectors of cos and of sin in registers, so n must be a compile-time count.
template <std::size_t N, class F>
inline void with_vector_count(std::size_t n, F&& f) noexcept {
    if (n == N)
        f(std::integral_constant<std::size_t, N>{});
    else if constexpr (N > 1)
        with_vector_count<N - 1>(n, std::forward<F>(f));
}

// Interleaved layout, elements [e0, e0 + NB*W) of every head: Eq. 34 as written,
//   out = x * [c0 c0 c1 c1 ..] + [x1 x0 x3 x2 ..] * [-s0 s0 -s1 s1 ..].
// The token's cos/sin vectors are expanded from the half-size table row once and stay in
// registers for all heads of all buffers.
template <class Arch, class T, class C, std::size_t... B>
inline void interleaved_vectors(std::index_sequence<B...>, const C* cos, const C* sin, C sign, std::size_t e0,
                                const token_rows<T>* rows, std::size_t n_rows) noexcept {
    using batch = xsimd::batch<C, Arch>;
    constexpr std::size_t W = batch::size;
    const batch signs = alternating_signs<Arch, C>() * batch(sign);
    const batch c[] = {duplicate_pairs<Arch>(batch::load_unaligned(cos + (e0 + B * W) / 2))...};
    const batch s[] = {duplicate_pairs<Arch>(batch::load_unaligned(sin + (e0 + B * W) / 2)) * signs...};
    for (std::size_t r = 0; r < n_rows; ++r) {
        const token_rows<T>& b = rows[r];
        for (std::size_t h = 0; h < b.heads; ++h) {
            const T* x = b.in + static_cast<std::ptrdiff_t>(h) * b.in_head_stride + e0;
            T* y = b.out + static_cast<std::ptrdiff_t>(h) * b.out_head_stride + e0;
            const batch v[] = {load_as<Arch, C>(x + B * W)...};
            (store_from<Arch>(y + B * W, fmadd<Arch>(v[B], c[B], swap_pairs<Arch>(v[B]) * s[B])), ...);
        }
    }
}

// Half-split layout, pairs [p0, p0 + NB*W) of every head: the same Eq. 34 on the pair (x_i, x_i+h),
//   lo' = lo * c - hi * s,   hi' = hi * c + lo * s,
// with no shuffle at all. Both halves of a head are loaded before either is stored.
template <class Arch, class T, class C, std::size_t... B>
inline void half_split_vectors(std::index_sequence<B...>, const C* cos, const C* sin, C sign, std::size_t p0,
                               std::size_t pairs, const token_rows<T>* rows, std::size_t n_rows) noexcept {
    using batch = xsimd::batch<C, Arch>;
    constexpr std::size_t W = batch::size;
    const batch c[] = {batch::load_unaligned(cos + p0 + B * W)...};
    const batch s[] = {batch::load_unaligned(sin + p0 + B * W) * batch(sign)...};
    for (std::size_t r = 0; r < n_rows; ++r) {
        const token_rows<T>& b = rows[r];
        for (std::size_t h = 0; h < b.heads; ++h) {
            const T* x = b.in + static_cast<std::ptrdiff_t>(h) * b.in_head_stride + p0;
            T* y = b.out + static_cast<std::ptrdiff_t>(h) * b.out_head_stride + p0;
            const batch lo[] = {load_as<Arch, C>(x + B * W)...};
            const batch hi[] = {load_as<Arch, C>(x + pairs + B * W)...};
            (store_from<Arch>(y + B * W, fnmadd<Arch>(hi[B], s[B], lo[B] * c[B])), ...);
            (store_from<Arch>(y + pairs + B * W, fmadd<Arch>(lo[B], s[B], hi[B] * c[B])), ...);
        }
    }
}

// One token: every head of every buffer in rows[0 .. n_rows), rotated by the cos/sin row of the
// token's position. Full vectors go through the SIMD kernel in chunks of at most
// max_chunk_vectors (one load of cos/sin per chunk per token); the tail pairs that do not fill a
// vector go through the scalar path, so nothing is read or written past a row.
template <class Arch, layout L, class T, class C>
inline void rotate_token(const C* cos, const C* sin, C sign, std::size_t pairs, const token_rows<T>* rows,
                         std::size_t n_rows) noexcept {
    std::size_t done = 0;  // pairs finished by the SIMD kernel
    if constexpr (!std::is_same<Arch, scalar>::value) {
        constexpr std::size_t W = xsimd::batch<C, Arch>::size;
        constexpr std::size_t chunk = max_chunk_vectors<Arch>;
        if constexpr (L == layout::interleaved) {
            const std::size_t vectors = 2 * pairs / W;
            for (std::size_t v0 = 0; v0 < vectors; v0 += chunk) {
                with_vector_count<chunk>(vectors - v0 < chunk ? vectors - v0 : chunk, [&](auto nb) {
                    interleaved_vectors<Arch>(std::make_index_sequence<decltype(nb)::value>{}, cos, sin, sign,
                                              v0 * W, rows, n_rows);
                });
            }
            done = vectors * W / 2;
        } else {
            const std::size_t vectors = pairs / W;
            for (std::size_t v0 = 0; v0 < vectors; v0 += chunk) {
                with_vector_count<chunk>(vectors - v0 < chunk ? vectors - v0 : chunk, [&](auto nb) {
                    half_split_vectors<Arch>(std::make_index_sequence<decltype(nb)::value>{}, cos, sin, sign,
                                             v0 * W, pairs, rows, n_rows);
                });
            }
            done = vectors * W;
        }
    }
    finish_token<Arch, L>(cos, sin, sign, done, pairs, rows, n_rows);
}

}  // namespace detail
}  // namespace rotary

ROTARY_DIAGNOSTIC_POP

#endif  // ROTARY_DETAIL_KERNELS_HPP
