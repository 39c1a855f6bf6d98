// rotary: Rotary Position Embedding (RoPE) kernels, header-only.
// SPDX-License-Identifier: MIT
#ifndef ROTARY_CONFIG_HPP
#define ROTARY_CONFIG_HPP

#define ROTARY_VERSION_MAJOR 0
#define ROTARY_VERSION_MINOR 1
#define ROTARY_VERSION_PATCH 0

// g++ 12 warns -Wmaybe-uninitialized / -Wuninitialized from inside the AVX-512 intrinsics that
// xsimd and Eigen inline into our kernels (GCC bug 105593, `_mm512_undefined_*`), even when the
// headers are system headers. The warning is false; silence it for our headers only, so a
// consumer building with -Werror is not broken by it.
#if defined(__GNUC__) && !defined(__clang__)
#define ROTARY_DIAGNOSTIC_PUSH                                  \
    _Pragma("GCC diagnostic push")                              \
    _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"") \
    _Pragma("GCC diagnostic ignored \"-Wuninitialized\"")
#define ROTARY_DIAGNOSTIC_POP _Pragma("GCC diagnostic pop")
#else
#define ROTARY_DIAGNOSTIC_PUSH
#define ROTARY_DIAGNOSTIC_POP
#endif

// Marks the functions that build error messages: kept out of line and out of the hot path, so a
// check that passes costs a compare and a branch.
#if defined(__GNUC__) || defined(__clang__)
#define ROTARY_COLD __attribute__((noinline, cold))
#elif defined(_MSC_VER)
#define ROTARY_COLD __declspec(noinline)
#else
#define ROTARY_COLD
#endif

// For the small checks of every call: inlined, so that their results stay in registers (returned
// through memory they cost a store-forwarding stall each, which shows on a 100 ns decode call).
#if defined(__GNUC__) || defined(__clang__)
#define ROTARY_ALWAYS_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define ROTARY_ALWAYS_INLINE __forceinline
#else
#define ROTARY_ALWAYS_INLINE inline
#endif

// Inlines every call in the function's body. The table-free path puts it on the function that
// calls xsimd's sincos: with the sincos (and its argument reduction) inlined into our header, the
// GCC 105593 warning above is silenced by ROTARY_DIAGNOSTIC_PUSH there too; out of line, in
// xsimd's own function, it would break a consumer's -Werror build for AVX-512.
#if defined(__GNUC__) || defined(__clang__)
#define ROTARY_FLATTEN __attribute__((flatten))
#else
#define ROTARY_FLATTEN
#endif

#endif  // ROTARY_CONFIG_HPP
