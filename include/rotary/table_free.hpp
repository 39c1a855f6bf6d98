// rotary: the table-free path (layer 2 of DESIGN.md, "on the fly"): each token's cos/sin row is
// computed from its position when the token is rotated, with no precomputed table. For huge or
// sparse positions (any id below 2^32, no table of that size), and streaming decode.
//
// Per token: m*theta_i is formed exactly and reduced by 2*pi in SIMD double precision (the
// algorithm of angles.hpp on xsimd::batch<double, Arch>), cos and sin come from xsimd's double
// sincos on the reduced angle (|r| <= pi, its fast branch), and are rounded once to the compute
// type. The row goes to an aligned scratch on the stack, laid out and padded like a table row, and
// then through the same kernel as the table path (rotate_token): it is computed once per token and
// reused for every head of that token, for q and k in the fused call, and for the next token when
// that one has the same position.
// SPDX-License-Identifier: MIT
#ifndef ROTARY_TABLE_FREE_HPP
#define ROTARY_TABLE_FREE_HPP

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "angles.hpp"
#include "apply.hpp"
#include "frequencies.hpp"
#include "table.hpp"
#include "types.hpp"

ROTARY_DIAGNOSTIC_PUSH

namespace rotary {

// The frequencies of a head prepared for the table-free path: theta_i split into three doubles
// (angles.hpp) and stored as three padded arrays, so that SIMD code loads them by the vector.
// Small (24 bytes per pair) and immutable: share one between threads and calls.
template <class C = float>
class rope_angles {
    static_assert(std::is_same<C, float>::value || std::is_same<C, double>::value,
                  "rope_angles computes fp32 (for fp32 and half buffers) or fp64 (for fp64 buffers) cos/sin");

  public:
    using value_type = C;

    // Each call keeps a token's cos/sin row on the stack: 4 KiB (fp32) or 8 KiB (fp64) at most.
    static constexpr std::size_t max_rotary_dim = 1024;

    // theta_i = base^(-2i/rotary_dim).
    explicit rope_angles(std::size_t rotary_dim, double base = 10000.0)
        : rope_angles(default_frequencies(rotary_dim, base)) {}

    // Any frequencies: custom_frequencies(), or a scaling method's (frequencies_from_config).
    explicit rope_angles(const rope_frequencies& frequencies) : frequencies_(frequencies) {
        detail::check_frequencies(frequencies_);
        detail::check_attention_factor_fits<C>(frequencies_);
        if (frequencies_.rotary_dim() > max_rotary_dim)
            detail::throw_invalid("rotary_dim must be <= " + std::to_string(max_rotary_dim) +
                                  " for the table-free path (its cos/sin row lives on the stack), got " +
                                  std::to_string(frequencies_.rotary_dim()) + "; use a rope_table");
        const std::size_t pairs = frequencies_.pairs();
        split_stride_ = (pairs + 7) / 8 * 8;  // whole AVX-512 vectors of doubles
        split_.assign(3 * split_stride_, 0.0);
        for (std::size_t i = 0; i < pairs; ++i) {
            const detail::split_frequency s = detail::split(frequencies_.inverse[i]);
            split_[i] = s.hi;
            split_[split_stride_ + i] = s.mid;
            split_[2 * split_stride_ + i] = s.lo;
        }
    }

    std::size_t rotary_dim() const noexcept { return frequencies_.rotary_dim(); }
    std::size_t pairs() const noexcept { return frequencies_.pairs(); }
    const rope_frequencies& frequencies() const noexcept { return frequencies_; }
    // Positions must lie in [0, max_positions()): m * theta_i is exact below 2^32.
    static constexpr std::uint64_t max_positions() noexcept { return std::uint64_t{1} << 32; }

    // The layout the kernels see: hi parts at split_data(), mid at + split_stride(), lo at
    // + 2 * split_stride(), zero past pairs(); each token's row padded like a table row.
    const double* split_data() const noexcept { return split_.data(); }
    std::size_t split_stride() const noexcept { return split_stride_; }
    std::size_t padded_pairs() const noexcept { return detail::padded_pairs<C>(pairs()); }

  private:
    rope_frequencies frequencies_;
    std::size_t split_stride_ = 0;
    std::vector<double, xsimd::aligned_allocator<double, 64>> split_;
};

namespace detail {

template <class T, class C>
ROTARY_ALWAYS_INLINE void set_source(rope_job<T, C>& job, const rope_angles<C>& angles) noexcept {
    job.table = nullptr;
    job.row_stride = 0;
    job.split = angles.split_data();
    job.split_stride = angles.split_stride();
    job.attention_factor = angles.frequencies().attention_factor;
    job.padded_pairs = angles.padded_pairs();
}

// Pairs per step of compute_row: it writes the row up to pairs rounded up to a multiple of it.
template <class Arch>
constexpr std::size_t row_step() noexcept {
    if constexpr (std::is_same<Arch, scalar>::value)
        return 1;
    else
        return xsimd::batch<double, Arch>::size;
}

// cos and sin of position m for the pairs of the job (and up to a multiple of row_step), times
// the attention factor, rounded once to C: the same values as a table row, within one fp32 ulp of
// the truth.
template <class Arch, class T, class C>
ROTARY_FLATTEN inline void compute_row(const rope_job<T, C>& job, std::uint64_t m, C* cos, C* sin) noexcept {
    const double* hi = job.split;
    const double* mid = hi + job.split_stride;
    const double* lo = mid + job.split_stride;
    if constexpr (std::is_same<Arch, scalar>::value) {
        for (std::size_t i = 0; i < job.pairs; ++i) {
            const cos_sin cs = exact_cos_sin(static_cast<std::int64_t>(m), split_frequency{hi[i], mid[i], lo[i]});
            cos[i] = static_cast<C>(cs.cos * job.attention_factor);
            sin[i] = static_cast<C>(cs.sin * job.attention_factor);
        }
    } else {
        using batch = xsimd::batch<double, Arch>;
        const batch position(static_cast<double>(m));
        const batch factor(job.attention_factor);
        for (std::size_t i = 0; i < job.pairs; i += batch::size) {
            const batch r = reduce_angle(position, batch::load_aligned(hi + i), batch::load_aligned(mid + i),
                                         batch::load_aligned(lo + i));
            // |r| <= pi + 1e-12: xsimd stays on its inlined branch (its scalar fallback for huge
            // arguments is never reached).
            const auto sin_cos = xsimd::sincos(r);
            store_rounded<Arch>(cos + i, sin_cos.second * factor);
            store_rounded<Arch>(sin + i, sin_cos.first * factor);
        }
    }
}

// A token's cos row (sin row at + padded_pairs), computed into scratch on the stack. The padding
// past what compute_row writes is zeroed once; a row is recomputed only when the position changes.
template <class Arch, class T, class C>
struct computed_rows {
    static constexpr std::size_t capacity = padded_pairs<C>(rope_angles<C>::max_rotary_dim / 2);

    const rope_job<T, C>& job;
    std::uint64_t position = ~std::uint64_t{0};  // of the row in scratch; none yet
    alignas(64) C scratch[2 * capacity];

    explicit computed_rows(const rope_job<T, C>& j) noexcept : job(j) {
        const std::size_t written = (job.pairs + row_step<Arch>() - 1) / row_step<Arch>() * row_step<Arch>();
        for (std::size_t i = written; i < job.padded_pairs; ++i) scratch[i] = scratch[job.padded_pairs + i] = C(0);
    }
    const C* operator()(std::size_t t) noexcept {
        const std::size_t m = position_of<Arch>(job, t);
        if (m != position) {
            compute_row<Arch>(job, m, scratch, scratch + job.padded_pairs);
            position = m;
        }
        return scratch;
    }
};

// Tokens [begin, end) of a validated table-free job; begin/end within job.range.
template <class Arch, class T, class C>
void run_tokens_table_free(const rope_job<T, C>& job, std::size_t begin, std::size_t end) noexcept {
    computed_rows<Arch, T, C> row_of(job);
    run_rows<Arch>(job, begin, end, row_of);
}

template <class Arch, class T, class C>
void run_table_free(const rope_job<T, C>& job) noexcept {
    run_tokens_table_free<Arch>(job, job.range.begin, job.range.end);
}

}  // namespace detail

// The entry points of apply.hpp with a rope_angles in place of the table: the same views,
// positions (any id in [0, 2^32), int32 or int64), options, checks and errors, the same results
// to within one fp32 ulp of each cos/sin (both are within one ulp of the truth).

// Rotates x in place.
template <class Arch = default_arch, class T, class C>
void apply(const rope_angles<C>& angles, layout pair_layout, const heads_view<T>& x, const positions& pos,
           const apply_options& options = {}) {
    detail::run_table_free<Arch>(detail::job_in_place(angles, pair_layout, x, pos, options));
}

// Rotates in into out.
template <class Arch = default_arch, class T, class C>
void apply(const rope_angles<C>& angles, layout pair_layout, const heads_view<const detail::identity_t<T>>& in,
           const heads_view<T>& out, const positions& pos, const apply_options& options = {}) {
    detail::run_table_free<Arch>(detail::job_out_of_place(angles, pair_layout, in, out, pos, options));
}

// Rotates q and k in place in one pass: each token's cos/sin is computed once for both.
template <class Arch = default_arch, class T, class C>
void apply_qk(const rope_angles<C>& angles, layout pair_layout, const heads_view<T>& q, const heads_view<T>& k,
              const positions& pos, const apply_options& options = {}) {
    detail::run_table_free<Arch>(detail::job_qk_in_place(angles, pair_layout, q, k, pos, options));
}

// Fused q and k, out of place.
template <class Arch = default_arch, class T, class C>
void apply_qk(const rope_angles<C>& angles, layout pair_layout, const heads_view<const detail::identity_t<T>>& q_in,
              const heads_view<T>& q_out, const heads_view<const detail::identity_t<T>>& k_in,
              const heads_view<T>& k_out, const positions& pos, const apply_options& options = {}) {
    detail::run_table_free<Arch>(detail::job_qk_out_of_place(angles, pair_layout, q_in, q_out, k_in, k_out, pos, options));
}

#if defined(_OPENMP)
// The same four entry points with the tokens split over the OpenMP threads.
template <class Arch = default_arch, class T, class C>
void apply_parallel(const rope_angles<C>& angles, layout pair_layout, const heads_view<T>& x, const positions& pos,
                    const apply_options& options = {}) {
    detail::run_parallel<Arch>(detail::job_in_place(angles, pair_layout, x, pos, options),
                               &detail::run_tokens_table_free<Arch, T, C>);
}
template <class Arch = default_arch, class T, class C>
void apply_parallel(const rope_angles<C>& angles, layout pair_layout, const heads_view<const detail::identity_t<T>>& in,
                    const heads_view<T>& out, const positions& pos, const apply_options& options = {}) {
    detail::run_parallel<Arch>(detail::job_out_of_place(angles, pair_layout, in, out, pos, options),
                               &detail::run_tokens_table_free<Arch, T, C>);
}
template <class Arch = default_arch, class T, class C>
void apply_qk_parallel(const rope_angles<C>& angles, layout pair_layout, const heads_view<T>& q, const heads_view<T>& k,
                       const positions& pos, const apply_options& options = {}) {
    detail::run_parallel<Arch>(detail::job_qk_in_place(angles, pair_layout, q, k, pos, options),
                               &detail::run_tokens_table_free<Arch, T, C>);
}
template <class Arch = default_arch, class T, class C>
void apply_qk_parallel(const rope_angles<C>& angles, layout pair_layout,
                       const heads_view<const detail::identity_t<T>>& q_in, const heads_view<T>& q_out,
                       const heads_view<const detail::identity_t<T>>& k_in, const heads_view<T>& k_out,
                       const positions& pos, const apply_options& options = {}) {
    detail::run_parallel<Arch>(detail::job_qk_out_of_place(angles, pair_layout, q_in, q_out, k_in, k_out, pos, options),
                               &detail::run_tokens_table_free<Arch, T, C>);
}
#endif

}  // namespace rotary

ROTARY_DIAGNOSTIC_POP

#endif  // ROTARY_TABLE_FREE_HPP
