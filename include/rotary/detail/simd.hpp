// rotary: the few per-arch steps the kernels need, written once on xsimd::batch<T, Arch>.
// SPDX-License-Identifier: MIT
#ifndef ROTARY_DETAIL_SIMD_HPP
#define ROTARY_DETAIL_SIMD_HPP

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#include <cpuid.h>
#endif

#include "../types.hpp"

#if defined(__AVX512BF16__)
#define ROTARY_WITH_AVX512BF16 1
#else
#define ROTARY_WITH_AVX512BF16 0
#endif

#if XSIMD_WITH_AVX512BW && ROTARY_WITH_AVX512BF16
namespace rotary {
struct avx512bf16;
}
namespace xsimd {
namespace types {
template <class T>
struct get_bool_simd_register<T, rotary::avx512bf16> {
    using type = simd_avx512_bool_register<T>;
};
XSIMD_DECLARE_SIMD_REGISTER_ALIAS(rotary::avx512bf16, avx512bw);
}  // namespace types
}  // namespace xsimd
#endif

ROTARY_DIAGNOSTIC_PUSH

namespace rotary {

// AVX-512 BW with the BF16 conversions (AVX512_BF16: Zen 4, Cooper Lake, Sapphire Rapids): the
// registers and xsimd kernels of xsimd::avx512bw, which does not know the extension, plus
// vcvtne2ps2bf16 in the bf16 stores (kernels.hpp). A type of its own, not a macro inside
// avx512bw's code: a translation unit built with -mavx512bf16 and one built without must not
// instantiate the same function with two bodies (the linker keeps one of them).
struct avx512bf16 : xsimd::avx512bw {
    static constexpr bool supported() noexcept { return XSIMD_WITH_AVX512BW && ROTARY_WITH_AVX512BF16; }
    static constexpr bool available() noexcept { return true; }
    static constexpr unsigned version() noexcept { return xsimd::generic::version(3, 4, 1); }
    static constexpr const char* name() noexcept { return "avx512bf16"; }
};

// The arch of the public entry points' default: xsimd's best arch for the compile flags, or
// avx512bf16 where those flags add AVX512_BF16 to AVX-512 BW (-march=native on Zen 4).
#if XSIMD_WITH_AVX512BW && ROTARY_WITH_AVX512BF16
using default_arch = avx512bf16;
#else
using default_arch = xsimd::default_arch;
#endif

namespace detail {

template <class Arch>
constexpr bool is_avx512 = std::is_base_of<xsimd::avx512f, Arch>::value;

// How many vectors of cos and of sin a kernel keeps in registers for one token: 2 * 8 of the 32
// zmm registers on AVX-512, 2 * 4 of the 16 on SSE/AVX, leaving room for the data in flight.
template <class Arch>
constexpr std::size_t max_chunk_vectors = is_avx512<Arch> ? 8 : 4;

// Loads and stores that convert the storage type T to the compute type C and back. fp32 and fp64
// need no conversion; half.hpp adds the overloads for Eigen::half and Eigen::bfloat16.
template <class Arch, class C>
inline xsimd::batch<C, Arch> load_as(const C* p) noexcept {
    return xsimd::batch<C, Arch>::load_unaligned(p);
}
template <class Arch, class C>
inline void store_from(C* p, const xsimd::batch<C, Arch>& v) noexcept {
    v.store_unaligned(p);
}

// Stores a batch of doubles as C: as they are for double; for float each rounded once, with the
// one width-changing conversion xsimd 8.1 lacks (cvtpd2ps). The table-free path computes cos and
// sin in double and stores them to the token's fp32 row this way.
template <class Arch, class C>
inline void store_rounded(C* p, const xsimd::batch<double, Arch>& v) noexcept {
    if constexpr (std::is_same<C, double>::value) {
        v.store_unaligned(p);
    } else
#if XSIMD_WITH_AVX512F
    if constexpr (is_avx512<Arch>) {
        _mm256_storeu_ps(p, _mm512_cvtpd_ps(v));
    } else
#endif
#if XSIMD_WITH_AVX
    if constexpr (std::is_base_of<xsimd::avx, Arch>::value) {
        _mm_storeu_ps(p, _mm256_cvtpd_ps(v));
    } else
#endif
#if XSIMD_WITH_SSE2
    if constexpr (std::is_base_of<xsimd::sse2, Arch>::value) {
        _mm_storel_pi(reinterpret_cast<__m64*>(p), _mm_cvtpd_ps(v));
    } else
#endif
    {
        constexpr std::size_t W = xsimd::batch<double, Arch>::size;
        alignas(64) double d[W];
        v.store_aligned(d);
        for (std::size_t i = 0; i < W; ++i) p[i] = static_cast<C>(d[i]);
    }
}

template <class T>
struct swap_adjacent {  // [x1 x0 x3 x2 ...]
    static constexpr T get(T i, T) noexcept { return i ^ T(1); }
};
template <class T>
struct duplicate_low_half {  // [c0 c0 c1 c1 ... c_{W/2-1} c_{W/2-1}]
    static constexpr T get(T i, T) noexcept { return i / 2; }
};

template <class Arch, class C>
using index_batch = xsimd::batch<xsimd::as_unsigned_integer_t<C>, Arch>;

// The pair swap stays within 128-bit lanes, but xsimd 8.1's swizzle emits a cross-lane permute for
// it (vpermps, 3-cycle latency on AVX2 and AVX-512 with g++); the in-lane vpermilps does the same in
// one cycle, which the interleaved kernel at decode sizes measurably needs.
template <class Arch, class C>
inline xsimd::batch<C, Arch> swap_pairs(const xsimd::batch<C, Arch>& x) noexcept {
#if XSIMD_WITH_AVX512F
    if constexpr (is_avx512<Arch>) {
        if constexpr (std::is_same<C, float>::value)
            return _mm512_permute_ps(x, 0xB1);
        else
            return _mm512_permute_pd(x, 0x55);
    } else
#endif
#if XSIMD_WITH_AVX
    if constexpr (std::is_base_of<xsimd::avx, Arch>::value) {
        if constexpr (std::is_same<C, float>::value)
            return _mm256_permute_ps(x, 0xB1);
        else
            return _mm256_permute_pd(x, 0x5);
    } else
#endif
    {
        using I = xsimd::as_unsigned_integer_t<C>;
        return xsimd::swizzle(x, xsimd::make_batch_constant<index_batch<Arch, C>, swap_adjacent<I>>());
    }
}

template <class Arch, class C>
inline xsimd::batch<C, Arch> duplicate_pairs(const xsimd::batch<C, Arch>& x) noexcept {
    using I = xsimd::as_unsigned_integer_t<C>;
    return xsimd::swizzle(x, xsimd::make_batch_constant<index_batch<Arch, C>, duplicate_low_half<I>>());
}

// x*y + z as one FMA. xsimd 8.1 has real FMAs on fma3<...> archs but falls back to a separate
// multiply and add on AVX-512 (clang 14 does not fuse them), so that one arch gets the intrinsic.
// [-1 +1 -1 +1 ...]: the signs of Eq. 34's second term, [-x2, x1, -x4, x3, ...] * sin.
template <class Arch, class C>
inline xsimd::batch<C, Arch> alternating_signs() noexcept {
    alignas(64) static constexpr C signs[16] = {-1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1};
    static_assert(xsimd::batch<C, Arch>::size <= 16, "wider than AVX-512");
    return xsimd::batch<C, Arch>::load_aligned(signs);
}

// a = [a0 a1 .. a_W-1], b = [b0 .. b_W-1] -> even = [a0 a2 .. b0 b2 ..], odd = [a1 a3 .. b1 b3 ..]
// (fp32): the even and odd pairs' cos/sin of the bf16 half-split kernel, once per token.
template <class Arch>
inline void deinterleave(const xsimd::batch<float, Arch>& a, const xsimd::batch<float, Arch>& b,
                         xsimd::batch<float, Arch>& even, xsimd::batch<float, Arch>& odd) noexcept {
#if XSIMD_WITH_AVX512F
    if constexpr (is_avx512<Arch>) {
        const __m512i even_index = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        even = _mm512_permutex2var_ps(a, even_index, b);
        odd = _mm512_permutex2var_ps(a, _mm512_add_epi32(even_index, _mm512_set1_epi32(1)), b);
        return;
    } else
#endif
#if XSIMD_WITH_AVX2
    if constexpr (std::is_base_of<xsimd::avx2, Arch>::value) {
        // per 128-bit lane [a0 a2 b0 b2 | a4 a6 b4 b6], then the middle 64-bit quarters swapped
        even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
        odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
        return;
    } else
#endif
#if XSIMD_WITH_SSE2
    if constexpr (std::is_base_of<xsimd::sse2, Arch>::value && !std::is_base_of<xsimd::avx, Arch>::value) {
        even = _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
        odd = _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
        return;
    } else
#endif
    {
        constexpr std::size_t W = xsimd::batch<float, Arch>::size;
        alignas(64) float in[2 * W], e[W], o[W];
        a.store_aligned(in);
        b.store_aligned(in + W);
        for (std::size_t i = 0; i < W; ++i) {
            e[i] = in[2 * i];
            o[i] = in[2 * i + 1];
        }
        even = xsimd::batch<float, Arch>::load_aligned(e);
        odd = xsimd::batch<float, Arch>::load_aligned(o);
    }
}

template <class Arch, class C>
inline xsimd::batch<C, Arch> fmadd(const xsimd::batch<C, Arch>& x, const xsimd::batch<C, Arch>& y,
                                   const xsimd::batch<C, Arch>& z) noexcept {
#if XSIMD_WITH_AVX512F
    if constexpr (is_avx512<Arch>) {
        if constexpr (std::is_same<C, float>::value)
            return _mm512_fmadd_ps(x, y, z);
        else
            return _mm512_fmadd_pd(x, y, z);
    } else
#endif
        return xsimd::fma(x, y, z);
}

// x*y - z as one FMA where the arch has it (see fmadd).
template <class Arch, class C>
inline xsimd::batch<C, Arch> fmsub(const xsimd::batch<C, Arch>& x, const xsimd::batch<C, Arch>& y,
                                   const xsimd::batch<C, Arch>& z) noexcept {
#if XSIMD_WITH_AVX512F
    if constexpr (is_avx512<Arch>) {
        if constexpr (std::is_same<C, float>::value)
            return _mm512_fmsub_ps(x, y, z);
        else
            return _mm512_fmsub_pd(x, y, z);
    } else
#endif
        return xsimd::fms(x, y, z);
}

// z - x*y as one FMA where the arch has it (see fmadd).
template <class Arch, class C>
inline xsimd::batch<C, Arch> fnmadd(const xsimd::batch<C, Arch>& x, const xsimd::batch<C, Arch>& y,
                                    const xsimd::batch<C, Arch>& z) noexcept {
#if XSIMD_WITH_AVX512F
    if constexpr (is_avx512<Arch>) {
        if constexpr (std::is_same<C, float>::value)
            return _mm512_fnmadd_ps(x, y, z);
        else
            return _mm512_fnmadd_pd(x, y, z);
    } else
#endif
        return xsimd::fnma(x, y, z);
}

}  // namespace detail

namespace detail {
// F16C (fp16 conversions), which xsimd does not report; every AVX2 CPU has it, and rotary's avx2
// kernels are compiled with it.
inline bool cpu_has_f16c() noexcept {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29)) != 0;  // CPUID.1:ECX.F16C[bit 29]
#else
    return true;
#endif
}
// AVX512_BF16 (CPUID.(EAX=7,ECX=1):EAX[bit 5]), which xsimd does not report either.
inline bool cpu_has_avx512bf16() noexcept {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 5)) != 0;
#else
    return false;
#endif
}
}  // namespace detail

// Whether this CPU runs Arch (the scalar tag always runs). xsimd's Arch::available() only says
// that the arch was compiled in; this asks the CPU.
template <class Arch>
inline bool cpu_supports() noexcept {
    if constexpr (std::is_same<Arch, scalar>::value) {
        return true;
    } else {
        const auto cpu = xsimd::available_architectures();
        if constexpr (std::is_same<Arch, avx512bf16>::value) return cpu_supports<xsimd::avx512bw>() && detail::cpu_has_avx512bf16();
        else if constexpr (std::is_same<Arch, xsimd::avx512bw>::value) return cpu.avx512bw && cpu.avx512dq && cpu.avx512cd && cpu.avx512f;
        else if constexpr (std::is_same<Arch, xsimd::avx512dq>::value) return cpu.avx512dq && cpu.avx512cd && cpu.avx512f;
        else if constexpr (std::is_same<Arch, xsimd::avx512cd>::value) return cpu.avx512cd && cpu.avx512f;
        else if constexpr (std::is_same<Arch, xsimd::avx512f>::value) return cpu.avx512f;
        else if constexpr (std::is_same<Arch, xsimd::fma3<xsimd::avx2>>::value) return cpu.fma3_avx2 && cpu.avx2 && detail::cpu_has_f16c();
        else if constexpr (std::is_same<Arch, xsimd::avx2>::value) return cpu.avx2;
        else if constexpr (std::is_same<Arch, xsimd::fma3<xsimd::avx>>::value) return cpu.fma3_avx && cpu.avx;
        else if constexpr (std::is_same<Arch, xsimd::avx>::value) return cpu.avx;
        else if constexpr (std::is_same<Arch, xsimd::sse2>::value) return cpu.sse2;
        else return Arch::version() <= cpu.best;
    }
}

}  // namespace rotary

ROTARY_DIAGNOSTIC_POP

#endif  // ROTARY_DETAIL_SIMD_HPP
