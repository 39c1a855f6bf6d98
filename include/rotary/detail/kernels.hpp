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
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "../types.hpp"
#include "half.hpp"
#include "simd.hpp"

ROTARY_DIAGNOSTIC_PUSH

namespace rotary {
namespace detail {

// A vector store, or with Streaming a non-temporal one (movntps/movntpd: the line goes to memory
// without being read first and without filling the cache), for outputs far larger than the caches;
// the caller guarantees the alignment and fences once after its last streaming store.
template <class Arch, bool Streaming, class T, class C>
inline void store_vector(T* p, const xsimd::batch<C, Arch>& v) noexcept {
    if constexpr (Streaming && std::is_same<T, C>::value) {
#if XSIMD_WITH_AVX512F
        if constexpr (is_avx512<Arch>) {
            if constexpr (std::is_same<C, float>::value)
                return _mm512_stream_ps(p, v);
            else
                return _mm512_stream_pd(p, v);
        }
#endif
#if XSIMD_WITH_AVX
        if constexpr (std::is_base_of<xsimd::avx, Arch>::value) {
            if constexpr (std::is_same<C, float>::value)
                return _mm256_stream_ps(p, v);
            else
                return _mm256_stream_pd(p, v);
        }
#endif
#if XSIMD_WITH_SSE2
        if constexpr (std::is_base_of<xsimd::sse2, Arch>::value) {
            if constexpr (std::is_same<C, float>::value)
                return _mm_stream_ps(p, v);
            else
                return _mm_stream_pd(p, v);
        }
#endif
    }
    store_from<Arch>(p, v);
}

// Orders the streaming stores before whatever the caller does next (another thread may read them).
template <class Arch>
inline void fence_streaming_stores() noexcept {
#if XSIMD_WITH_SSE2
    _mm_sfence();
#endif
}

// One buffer's rows of one token, as the kernels see them: every check has happened before. The
// vector kernels copy it to a local before their loop over heads: as far as the compiler knows, a
// store through the output pointer could change rows[r], and it would reload every field for
// every head.
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

// Interleaved layout, pairs [p0, p0 + NB*W/2) of every head: Eq. 34 as written,
//   out = x * [c0 c0 c1 c1 ..] + [x1 x0 x3 x2 ..] * [-s0 s0 -s1 s1 ..].
// The token's cos/sin vectors are expanded from the half-size table row once and stay in
// registers for all heads of all buffers.
template <class Arch, bool Streaming, class T, class C, std::size_t... B>
inline void interleaved_vectors(std::index_sequence<B...>, const C* cos, const C* sin, C sign, std::size_t p0,
                                const token_rows<T>* rows, std::size_t n_rows) noexcept {
    using batch = xsimd::batch<C, Arch>;
    constexpr std::size_t W = batch::size;
    const std::size_t e0 = 2 * p0;
    const batch signs = alternating_signs<Arch, C>() * batch(sign);
    const batch c[] = {duplicate_pairs<Arch>(batch::load_unaligned(cos + (e0 + B * W) / 2))...};
    const batch s[] = {duplicate_pairs<Arch>(batch::load_unaligned(sin + (e0 + B * W) / 2)) * signs...};
    for (std::size_t r = 0; r < n_rows; ++r) {
        const token_rows<T> b = rows[r];
        for (std::size_t h = 0; h < b.heads; ++h) {
            const T* x = b.in + static_cast<std::ptrdiff_t>(h) * b.in_head_stride + e0;
            T* y = b.out + static_cast<std::ptrdiff_t>(h) * b.out_head_stride + e0;
            const batch v[] = {load_as<Arch, C>(x + B * W)...};
            (store_vector<Arch, Streaming>(y + B * W, fmadd<Arch>(v[B], c[B], swap_pairs<Arch>(v[B]) * s[B])), ...);
        }
    }
}

// Half-split layout, pairs [p0, p0 + NB*W) of every head: the same Eq. 34 on the pair (x_i, x_i+h),
//   lo' = lo * c - hi * s,   hi' = hi * c + lo * s,
// with no shuffle at all. Both halves of a head are loaded before either is stored.
template <class Arch, bool Streaming, class T, class C, std::size_t... B>
inline void half_split_vectors(std::index_sequence<B...>, const C* cos, const C* sin, C sign, std::size_t p0,
                               std::size_t pairs, const token_rows<T>* rows, std::size_t n_rows) noexcept {
    using batch = xsimd::batch<C, Arch>;
    constexpr std::size_t W = batch::size;
    const batch c[] = {batch::load_unaligned(cos + p0 + B * W)...};
    const batch s[] = {batch::load_unaligned(sin + p0 + B * W) * batch(sign)...};
    for (std::size_t r = 0; r < n_rows; ++r) {
        const token_rows<T> b = rows[r];
        for (std::size_t h = 0; h < b.heads; ++h) {
            const T* x = b.in + static_cast<std::ptrdiff_t>(h) * b.in_head_stride + p0;
            T* y = b.out + static_cast<std::ptrdiff_t>(h) * b.out_head_stride + p0;
            const batch lo[] = {load_as<Arch, C>(x + B * W)...};
            const batch hi[] = {load_as<Arch, C>(x + pairs + B * W)...};
            (store_vector<Arch, Streaming>(y + B * W, fnmadd<Arch>(hi[B], s[B], lo[B] * c[B])), ...);
            (store_vector<Arch, Streaming>(y + pairs + B * W, fmadd<Arch>(lo[B], s[B], hi[B] * c[B])), ...);
        }
    }
}

// bf16 storage: a 32-bit lane of a bf16 row holds two adjacent values, x_2k in its low half and
// x_2k+1 in its high half, and a bf16 value is an fp32 once it sits in the top half of a lane. So
// one load gives the even and the odd elements as two fp32 vectors with a shift and a mask, and
// one store takes them back with a rounding add each and a merge: half the conversion work of
// widening element by element, and for the interleaved layout, whose pairs are exactly the two
// halves of a lane, no shuffle at all. Rounding to nearest even, as in half.hpp (and why NaNs need
// no special case there).
template <class Arch>
struct bf16_lanes {
    using floats = xsimd::batch<float, Arch>;
    using lanes = xsimd::batch<std::uint32_t, Arch>;

    static lanes load(const Eigen::bfloat16* p) noexcept {
        return lanes::load_unaligned(reinterpret_cast<const std::uint32_t*>(p));
    }
    static floats low(const lanes& l) noexcept { return xsimd::bitwise_cast<floats>(l << 16); }
    static floats high(const lanes& l) noexcept { return xsimd::bitwise_cast<floats>(l & lanes(0xFFFF0000u)); }
    // v rounded to bf16, in the top 16 bits of each lane
    static lanes rounded(const floats& v) noexcept {
        const lanes bits = xsimd::bitwise_cast<lanes>(v);
        return bits + (((bits >> 16) & lanes(1u)) + lanes(0x7FFFu));
    }
    static void store(Eigen::bfloat16* p, const floats& low_values, const floats& high_values) noexcept {
#if XSIMD_WITH_AVX512BW && ROTARY_WITH_AVX512BF16
        if constexpr (std::is_same<Arch, avx512bf16>::value) {
            // vcvtne2ps2bf16 rounds to nearest even in one instruction, in place of the 11 integer
            // operations below, but reads a subnormal fp32 as zero. A subnormal can only come out
            // as a zero, so only a vector with a zero in it is looked at closer (vfpclassps, class
            // 0x20: subnormal) and, if it holds one, rounded by the integer path: the result stays
            // bit for bit that of the fp32 path rounded once. NaNs agree too: the instruction sets
            // the quiet bit, which every arithmetic NaN result already has.
            const __m512bh rounded_halves = _mm512_cvtne2ps_pbh(high_values, low_values);  // [low 0..15, high 0..15]
            __m512i halves;
            std::memcpy(&halves, &rounded_halves, sizeof halves);
            if (_mm512_testn_epi16_mask(halves, _mm512_set1_epi16(0x7FFF)) == 0 ||
                (_mm512_fpclass_ps_mask(low_values, 0x20) | _mm512_fpclass_ps_mask(high_values, 0x20)) == 0) {
                const __m512i pairs = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                                       23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
                _mm512_storeu_si512(p, _mm512_permutexvar_epi16(pairs, halves));
                return;
            }
        }
#endif
        const lanes merged = (rounded(low_values) >> 16) | (rounded(high_values) & lanes(0xFFFF0000u));
        merged.store_unaligned(reinterpret_cast<std::uint32_t*>(p));
    }
};

// Interleaved bf16, pairs [p0, p0 + NB*W): pair k of a lane vector is (low, high) of lane k.
template <class Arch, bool Streaming, class C, std::size_t... B>
inline void interleaved_vectors(std::index_sequence<B...>, const C* cos, const C* sin, C sign, std::size_t p0,
                                const token_rows<Eigen::bfloat16>* rows, std::size_t n_rows) noexcept {
    using io = bf16_lanes<Arch>;
    using floats = typename io::floats;
    constexpr std::size_t W = floats::size;
    const floats c[] = {floats::load_unaligned(cos + p0 + B * W)...};
    const floats s[] = {floats::load_unaligned(sin + p0 + B * W) * floats(sign)...};
    for (std::size_t r = 0; r < n_rows; ++r) {
        const token_rows<Eigen::bfloat16> b = rows[r];
        for (std::size_t h = 0; h < b.heads; ++h) {
            const Eigen::bfloat16* x = b.in + static_cast<std::ptrdiff_t>(h) * b.in_head_stride + 2 * p0;
            Eigen::bfloat16* y = b.out + static_cast<std::ptrdiff_t>(h) * b.out_head_stride + 2 * p0;
            const typename io::lanes v[] = {io::load(x + 2 * B * W)...};
            // the fp32 kernel's operation order (x0*c - round(x1*s), x1*c + round(x0*s)), so that
            // the result is that of the fp32 path rounded once, bit for bit
            (io::store(y + 2 * B * W, fmsub<Arch>(io::low(v[B]), c[B], io::high(v[B]) * s[B]),
                       fmadd<Arch>(io::high(v[B]), c[B], io::low(v[B]) * s[B])),
             ...);
        }
    }
}

// Half-split bf16, pairs [p0, p0 + NB*2W): a lane vector of the low half holds x_p0+2k (low) and
// x_p0+2k+1 (high), the same lanes of the high half hold their partners; the even pairs take the
// even cos/sin, the odd pairs the odd ones (deinterleaved once per token).
template <class Arch, bool Streaming, class C, std::size_t... B>
inline void half_split_vectors(std::index_sequence<B...>, const C* cos, const C* sin, C sign, std::size_t p0,
                               std::size_t pairs, const token_rows<Eigen::bfloat16>* rows, std::size_t n_rows) noexcept {
    using io = bf16_lanes<Arch>;
    using floats = typename io::floats;
    constexpr std::size_t W = floats::size;
    floats c_even[sizeof...(B)], c_odd[sizeof...(B)], s_even[sizeof...(B)], s_odd[sizeof...(B)];
    ((deinterleave<Arch>(floats::load_unaligned(cos + p0 + 2 * B * W), floats::load_unaligned(cos + p0 + 2 * B * W + W),
                         c_even[B], c_odd[B]),
      deinterleave<Arch>(floats::load_unaligned(sin + p0 + 2 * B * W) * floats(sign),
                         floats::load_unaligned(sin + p0 + 2 * B * W + W) * floats(sign), s_even[B], s_odd[B])),
     ...);
    for (std::size_t r = 0; r < n_rows; ++r) {
        const token_rows<Eigen::bfloat16> b = rows[r];
        for (std::size_t h = 0; h < b.heads; ++h) {
            const Eigen::bfloat16* x = b.in + static_cast<std::ptrdiff_t>(h) * b.in_head_stride + p0;
            Eigen::bfloat16* y = b.out + static_cast<std::ptrdiff_t>(h) * b.out_head_stride + p0;
            const typename io::lanes lo[] = {io::load(x + 2 * B * W)...};
            const typename io::lanes hi[] = {io::load(x + pairs + 2 * B * W)...};
            (io::store(y + 2 * B * W,
                       fnmadd<Arch>(io::low(hi[B]), s_even[B], io::low(lo[B]) * c_even[B]),
                       fnmadd<Arch>(io::high(hi[B]), s_odd[B], io::high(lo[B]) * c_odd[B])),
             ...);
            (io::store(y + pairs + 2 * B * W,
                       fmadd<Arch>(io::low(lo[B]), s_even[B], io::low(hi[B]) * c_even[B]),
                       fmadd<Arch>(io::high(lo[B]), s_odd[B], io::high(hi[B]) * c_odd[B])),
             ...);
        }
    }
}

// Pairs one vector step of the kernel for T covers: W/2 (interleaved) or W (half-split) for
// element-wise storage, twice that for bf16, whose kernels take two elements per 32-bit lane.
template <class Arch, layout L, class T, class C>
constexpr std::size_t pairs_per_step() noexcept {
    constexpr std::size_t W = xsimd::batch<C, Arch>::size;
    constexpr std::size_t per_lane_pair = std::is_same<T, Eigen::bfloat16>::value ? 2 : 1;
    return (L == layout::interleaved ? W / 2 : W) * per_lane_pair;
}

// Steps per chunk: max_chunk_vectors, halved for bf16 half-split, which keeps four coefficient
// vectors per step in registers.
template <class Arch, layout L, class T>
constexpr std::size_t steps_per_chunk() noexcept {
    return std::is_same<T, Eigen::bfloat16>::value && L == layout::half_split ? max_chunk_vectors<Arch> / 2
                                                                              : max_chunk_vectors<Arch>;
}

// One token: every head of every buffer in rows[0 .. n_rows), rotated by the cos/sin row of the
// token's position. Full vector steps go through the SIMD kernel in chunks (one load of cos/sin
// per chunk per token, kept in registers across heads); the tail pairs that do not fill a step go
// through the scalar path, so nothing is read or written past a row.
// Streaming: out-of-place outputs too large to stay in cache, aligned, fp32/fp64: the vector stores
// bypass the caches (see apply.hpp's make_job for when).
template <class Arch, layout L, bool Streaming, std::size_t n_rows, class T, class C>
inline void rotate_token(const C* cos, const C* sin, C sign, std::size_t pairs, const token_rows<T> (&rows)[n_rows]) noexcept {
    std::size_t done = 0;  // pairs finished by the SIMD kernel
    if constexpr (!std::is_same<Arch, scalar>::value) {
        constexpr std::size_t step = pairs_per_step<Arch, L, T, C>();
        constexpr std::size_t chunk = steps_per_chunk<Arch, L, T>();
        const std::size_t steps = pairs / step;
        for (std::size_t s0 = 0; s0 < steps; s0 += chunk) {
            with_vector_count<chunk>(steps - s0 < chunk ? steps - s0 : chunk, [&](auto nb) {
                const auto sequence = std::make_index_sequence<decltype(nb)::value>{};
                if constexpr (L == layout::interleaved)
                    interleaved_vectors<Arch, Streaming>(sequence, cos, sin, sign, s0 * step, rows, n_rows);
                else
                    half_split_vectors<Arch, Streaming>(sequence, cos, sin, sign, s0 * step, pairs, rows, n_rows);
            });
        }
        done = steps * step;
    }
    finish_token<Arch, L>(cos, sin, sign, done, pairs, rows, n_rows);
}

}  // namespace detail
}  // namespace rotary

ROTARY_DIAGNOSTIC_POP

#endif  // ROTARY_DETAIL_KERNELS_HPP
