// rotary: fp16 and bf16 storage (Eigen::half, Eigen::bfloat16), computed in fp32: the kernels'
// loads widen a vector at a time and their stores round once, to nearest even, with the
// instructions the arch has (F16C / AVX-512 for fp16; bf16 is the top half of an fp32, so an
// integer shift and an integer round-to-nearest-even), and an element-by-element path beside them.
// Every function is templated on Arch (see kernels.hpp).
// SPDX-License-Identifier: MIT
#ifndef ROTARY_DETAIL_HALF_HPP
#define ROTARY_DETAIL_HALF_HPP

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <Eigen/Core>
#include <xsimd/xsimd.hpp>

#include "simd.hpp"

ROTARY_DIAGNOSTIC_PUSH

namespace rotary {
namespace detail {

template <class T>
constexpr bool is_half_type = std::is_same<T, Eigen::half>::value || std::is_same<T, Eigen::bfloat16>::value;

template <class Arch>
constexpr bool is_avx2_arch = std::is_base_of<xsimd::avx2, Arch>::value;
template <class Arch>
constexpr bool is_sse2_arch = std::is_base_of<xsimd::sse2, Arch>::value;

// Element by element, through Eigen's own conversions (round to nearest even): the scalar path,
// and the vector path of archs without a conversion instruction (fp16 without F16C).
template <class Arch, class H>
inline xsimd::batch<float, Arch> load_widened_elementwise(const H* p) noexcept {
    constexpr std::size_t W = xsimd::batch<float, Arch>::size;
    alignas(64) float widened[W];
    for (std::size_t i = 0; i < W; ++i) widened[i] = static_cast<float>(p[i]);
    return xsimd::batch<float, Arch>::load_aligned(widened);
}
template <class Arch, class H>
inline void store_rounded_elementwise(H* p, const xsimd::batch<float, Arch>& v) noexcept {
    constexpr std::size_t W = xsimd::batch<float, Arch>::size;
    alignas(64) float values[W];
    v.store_aligned(values);
    for (std::size_t i = 0; i < W; ++i) p[i] = static_cast<H>(values[i]);
}

// ---- fp16 -------------------------------------------------------------------------------------

template <class Arch, class C>
inline xsimd::batch<C, Arch> load_as(const Eigen::half* p) noexcept {
    static_assert(std::is_same<C, float>::value, "fp16 is computed in fp32");
#if XSIMD_WITH_AVX512F
    if constexpr (is_avx512<Arch>) {
        return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    } else
#endif
#if XSIMD_WITH_AVX && defined(__F16C__)
    if constexpr (std::is_base_of<xsimd::avx, Arch>::value) {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    } else
#endif
    {
        return load_widened_elementwise<Arch>(p);
    }
}

template <class Arch, class C>
inline void store_from(Eigen::half* p, const xsimd::batch<C, Arch>& v) noexcept {
#if XSIMD_WITH_AVX512F
    if constexpr (is_avx512<Arch>) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    } else
#endif
#if XSIMD_WITH_AVX && defined(__F16C__)
    if constexpr (std::is_base_of<xsimd::avx, Arch>::value) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    } else
#endif
    {
        store_rounded_elementwise<Arch>(p, v);
    }
}

// ---- bf16 -------------------------------------------------------------------------------------
// Widening: the 16 bits become the top half of an fp32. Rounding to nearest even, as
// Eigen::bfloat16 does it: bits + 0x7FFF + (bit 16 of bits), then the top half. Eigen also maps
// every NaN to the quiet NaN 0x7FC0 (with its sign), because rounding a NaN whose low 16 bits are
// set can carry into the sign and give a zero. The kernels' results cannot have such bits: their
// inputs are widened bf16 (low 16 bits zero) and their cos/sin are finite, so a NaN result is
// either an input NaN propagated with its payload or the default NaN 0xFFC00000, both with low 16
// bits zero; rounding leaves them NaN (payload kept rather than canonicalized), and the check is
// left out of the store.

template <class Arch, class C>
inline xsimd::batch<C, Arch> load_as(const Eigen::bfloat16* p) noexcept {
    static_assert(std::is_same<C, float>::value, "bf16 is computed in fp32");
#if XSIMD_WITH_AVX512F
    if constexpr (is_avx512<Arch>) {
        const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
        return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
    } else
#endif
#if XSIMD_WITH_AVX2
    if constexpr (is_avx2_arch<Arch>) {
        const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
    } else
#endif
#if XSIMD_WITH_SSE2
    if constexpr (is_sse2_arch<Arch> && !std::is_base_of<xsimd::avx, Arch>::value) {
        const __m128i four = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
        return _mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), four));
    } else
#endif
    {
        return load_widened_elementwise<Arch>(p);
    }
}

template <class Arch, class C>
inline void store_from(Eigen::bfloat16* p, const xsimd::batch<C, Arch>& v) noexcept {
#if XSIMD_WITH_AVX512F
    if constexpr (is_avx512<Arch>) {
        const __m512i bits = _mm512_castps_si512(v);
        const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
        const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF))), 16);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(rounded));
    } else
#endif
#if XSIMD_WITH_AVX2
    if constexpr (is_avx2_arch<Arch>) {
        const __m256i bits = _mm256_castps_si256(v);
        const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
        const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7FFF))), 16);
        // packus works per 128-bit lane: [r0..r3 r0..r3 | r4..r7 r4..r7]; gather qwords 0 and 2
        const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(rounded, rounded), 0xD8);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
    } else
#endif
#if XSIMD_WITH_SSE2
    if constexpr (is_sse2_arch<Arch> && !std::is_base_of<xsimd::avx, Arch>::value) {
        const __m128i bits = _mm_castps_si128(v);
        const __m128i odd = _mm_and_si128(_mm_srli_epi32(bits, 16), _mm_set1_epi32(1));
        const __m128i rounded = _mm_srli_epi32(_mm_add_epi32(bits, _mm_add_epi32(odd, _mm_set1_epi32(0x7FFF))), 16);
        // SSE2 has only a signed 32->16 pack: sign-extend the 16-bit values first so it is exact
        const __m128i signed16 = _mm_srai_epi32(_mm_slli_epi32(rounded, 16), 16);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packs_epi32(signed16, signed16));
    } else
#endif
    {
        store_rounded_elementwise<Arch>(p, v);
    }
}

}  // namespace detail
}  // namespace rotary

ROTARY_DIAGNOSTIC_POP

#endif  // ROTARY_DETAIL_HALF_HPP
