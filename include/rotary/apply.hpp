// rotary: the public entry points (layer 5 of DESIGN.md): validate, pick the kernel, walk tokens.
// SPDX-License-Identifier: MIT
#ifndef ROTARY_APPLY_HPP
#define ROTARY_APPLY_HPP

#include <cstddef>
#include <string>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "detail/checks.hpp"
#include "detail/kernels.hpp"
#include "table.hpp"
#include "types.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

ROTARY_DIAGNOSTIC_PUSH

namespace rotary {
namespace detail {

// A validated call: up to two buffers (q and k) rotated with the same positions. Building one
// (make_job) does every check; running one (run) does none and cannot fail. Plain fields, each
// written once by make_job (decode calls are short enough for a struct copy to show).
// The cos/sin rows come from a rope_table (table, row_stride) or, table-free, from the split
// frequencies of a rope_angles (split, split_stride, attention_factor; see table_free.hpp); the
// other source's fields are null/zero. Either way a row is padded_pairs values of cos, then sin.
template <class T, class C>
struct rope_job {
    const C* table;  // row m at table + m * row_stride: cos, then sin at + padded_pairs
    std::size_t row_stride;
    const double* split;  // theta_i = split[i] + split[i + split_stride] + split[i + 2 * split_stride]
    std::size_t split_stride;
    double attention_factor;  // table-free only: the table has it multiplied in
    std::size_t padded_pairs;
    std::size_t pairs;
    layout pair_layout;
    C sign;  // +1 forward, -1 inverse
    positions::kind position_source;
    std::int64_t start;  // positions::kind::offset
    const void* ids;     // int32 or int64 ids, by position_source
    const void* axes;    // the call's axis_positions (multi_axis.hpp) for positions along several axes, else null
    bool streaming;      // write the outputs with non-temporal stores (see streaming_threshold_bytes)
    token_span range;
    std::size_t buffers;
    struct buffer {
        const T* in;
        T* out;
        std::size_t heads, head_dim;
        std::ptrdiff_t in_token_stride, in_head_stride, out_token_stride, out_head_stride;
    } buffer[2];
};

template <class T, class C>
constexpr void check_compute_type() noexcept {
    static_assert(!std::is_const<T>::value, 
                  "the view rotated in place, or the output, must be mutable: heads_view<T>, not heads_view<const T>");
    static_assert(std::is_same<C, compute_type_t<T>>::value,
                  "the cos/sin element type must be compute_type_t<T>: rope_table<float> (rope_angles<float>) "
                  "for fp32 and half buffers, rope_table<double> (rope_angles<double>) for fp64 buffers");
}

// The cos/sin source's part of a job, and what its position limit is called in messages. The
// table-free source's set_source is in table_free.hpp (found by argument-dependent lookup through
// rope_job).
template <class T, class C>
ROTARY_ALWAYS_INLINE void set_source(rope_job<T, C>& job, const rope_table<C>& table) noexcept {
    job.table = table.data();
    job.row_stride = table.row_stride();
    job.split = nullptr;
    job.split_stride = 0;
    job.attention_factor = 1.0;
    job.padded_pairs = table.padded_pairs();
}
template <class C>
constexpr const char* position_limit_name(const rope_table<C>&) noexcept {
    return "the table's max_positions";
}

}  // namespace detail

template <class C>
class rope_angles;  // table_free.hpp

namespace detail {

template <class C>
constexpr const char* position_limit_name(const rope_angles<C>&) noexcept {
    return "the table-free max_positions";
}

// The positions' checks and job fields (pairs: the rotary pairs, which multi-axis sections split).
template <class T, class C>
ROTARY_ALWAYS_INLINE void set_positions(rope_job<T, C>& job, const positions& pos, std::size_t tokens,
                                        std::uint64_t max_positions, const char* limit_name, std::size_t /*pairs*/) {
    check_positions(pos, tokens, job.range, max_positions, limit_name);
    job.position_source = pos.source();
    job.start = pos.start();
    job.ids = pos.source() == positions::kind::ids32 ? static_cast<const void*>(pos.ids32())
                                                      : static_cast<const void*>(pos.ids64());
    job.axes = nullptr;
}

// Out-of-place outputs of at least this many bytes in all (past the L2 of current CPUs, a quarter of
// a large L3, and so bound for memory anyway) are written with non-temporal stores: without them
// every output line is first read from memory (read for ownership), a third of the traffic of a
// call past the caches. In place, or below it, ordinary stores (the output stays cached for the
// next step). fp32/fp64 outputs with 64-byte aligned rows and halves only.
constexpr std::size_t streaming_threshold_bytes = std::size_t{8} << 20;

// Whether a job writes its outputs with non-temporal stores: every buffer out of place, their
// outputs together at least streaming_threshold_bytes, and every vector store 64-byte aligned.
template <class T, class C, std::size_t buffers>
ROTARY_ALWAYS_INLINE bool use_streaming_stores(const checked_view* const (&written)[buffers], const bool (&in_place)[buffers],
                                               std::size_t pairs) noexcept {
    if (!std::is_same<T, C>::value || (pairs * sizeof(T)) % 64 != 0) return false;
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < buffers; ++i) {
        const checked_view& v = *written[i];
        if (in_place[i] || v.address % 64 != 0 || (v.tokens > 1 && (v.token_stride * sizeof(T)) % 64 != 0) ||
            (v.heads > 1 && (v.head_stride * sizeof(T)) % 64 != 0))
            return false;
        bytes += v.end - v.address;
    }
    return bytes >= streaming_threshold_bytes;
}

// names: {in name, out name} per buffer; for an in-place buffer both name the same view. The buffer
// count is a template parameter so that the loops unroll and every checked_view lives in registers.
// The views come by pointer, never copied (see check_view on struct copies); InView is
// heads_view<T> for in-place calls and heads_view<const T> otherwise. Source is the cos/sin
// source: a rope_table, or a rope_angles (table_free.hpp).
// Positions is rotary::positions, or the axis_positions of multi_axis.hpp (their checks and job
// fields: set_positions, found by argument-dependent lookup).
template <std::size_t buffers, class InView, class T, class Source, class Positions,
          class C = typename Source::value_type>
ROTARY_ALWAYS_INLINE rope_job<T, C> make_job(const Source& source, layout pair_layout,
                                             const InView* const (&in_views)[buffers],
                                             const heads_view<T>* const (&out_views)[buffers],
                                             const char* const (&names)[buffers][2], const Positions& pos,
                                             const apply_options& options) {
    check_compute_type<T, C>();
    if (pair_layout != layout::interleaved && pair_layout != layout::half_split)
        fail_invalid([&] {
            return "layout must be layout::interleaved or layout::half_split, got " +
                   std::to_string(static_cast<int>(pair_layout));
        });
    if (options.dir != direction::forward && options.dir != direction::inverse)
        fail_invalid([&] {
            return "direction must be direction::forward or direction::inverse, got " +
                   std::to_string(static_cast<int>(options.dir));
        });
    rope_job<T, C> job;
    checked_view ins[buffers], outs[buffers];
    std::size_t used = 0;  // buffers in the job
    const checked_view* written[buffers];  // outs[i], or ins[i] when out[i] is the same view
    bool in_place[buffers];
    for (std::size_t i = 0; i < buffers; ++i) {
        const InView& in = *in_views[i];
        const heads_view<T>& out = *out_views[i];
        const checked_view& a = ins[i];
        check_view(in, names[i][0], ins[i]);
        const bool same_view = in.data == out.data && in.token_stride == out.token_stride &&
                               in.head_stride == out.head_stride && in.tokens == out.tokens && in.heads == out.heads &&
                               in.head_dim == out.head_dim;
        if (!same_view) check_view(out, names[i][1], outs[i]);
        written[i] = same_view ? &ins[i] : &outs[i];
        const checked_view& b = *written[i];
        if (a.tokens != b.tokens || a.heads != b.heads || a.head_dim != b.head_dim)
            fail_invalid([&] {
                return std::string(b.name) + " is " + std::to_string(b.tokens) + " tokens x " +
                       std::to_string(b.heads) + " heads x " + std::to_string(b.head_dim) + ", " + a.name + " is " +
                       std::to_string(a.tokens) + " x " + std::to_string(a.heads) + " x " + std::to_string(a.head_dim);
            });
        if (source.rotary_dim() > a.head_dim)
            fail_invalid([&] {
                return "rotary_dim " + std::to_string(source.rotary_dim()) + " exceeds " + std::string(a.name) +
                       ".head_dim " + std::to_string(a.head_dim);
            });
        if (i > 0 && a.tokens != ins[0].tokens)
            fail_invalid([&] {
                return std::string(a.name) + ".tokens " + std::to_string(a.tokens) + " != " + ins[0].name +
                       ".tokens " + std::to_string(ins[0].tokens);
            });
        check_rows_disjoint(b);
        in_place[i] = same_view || same_rows(a, b);
        if (!in_place[i]) check_disjoint(a, b);
        // A buffer without heads has nothing to rotate and may be null: it stays out of the job, so
        // that no pointer is ever offset from it. Field by field: see check_view on struct copies.
        if (in.heads == 0) continue;
        auto& jb = job.buffer[used++];
        jb.in = in.data;
        jb.out = out.data;
        jb.heads = in.heads;
        jb.head_dim = in.head_dim;
        jb.in_token_stride = in.token_stride;
        jb.in_head_stride = in.head_stride;
        jb.out_token_stride = out.token_stride;
        jb.out_head_stride = out.head_stride;
    }
    // A buffer's output must not overlap another buffer's input or output.
    for (std::size_t i = 0; i < buffers; ++i)
        for (std::size_t j = 0; j < buffers; ++j)
            if (i != j) {
                if (i < j) check_disjoint(*written[i], *written[j]);
                if (!in_place[j]) check_disjoint(*written[i], ins[j]);
            }
    job.streaming = use_streaming_stores<T, C>(written, in_place, source.pairs());
    const std::size_t tokens = in_views[0]->tokens;
    job.range = check_token_range(options, tokens);
    set_positions(job, pos, tokens, source.max_positions(), position_limit_name(source), source.pairs());
    set_source(job, source);
    job.pairs = source.pairs();
    job.pair_layout = pair_layout;
    job.sign = options.dir == direction::inverse ? C(-1) : C(1);
    job.buffers = used;
    return job;
}

// Position of token t (templated on Arch like everything run_tokens calls; see kernels.hpp).
template <class Arch, class T, class C>
inline std::size_t position_of(const rope_job<T, C>& job, std::size_t t) noexcept {
    switch (job.position_source) {
        case positions::kind::offset: return static_cast<std::size_t>(job.start) + t;
        case positions::kind::ids32: return static_cast<std::size_t>(static_cast<const std::int32_t*>(job.ids)[t]);
        default: return static_cast<std::size_t>(static_cast<const std::int64_t*>(job.ids)[t]);
    }
}

// Token t's cos row (sin row at + padded_pairs), looked up in the table.
template <class Arch, class T, class C>
struct table_rows {
    const rope_job<T, C>& job;
    const C* operator()(std::size_t t) const noexcept { return job.table + position_of<Arch>(job, t) * job.row_stride; }
};

// Tokens [begin, end) of the job's Buffers buffers (1, or 2 for q and k): token t's cos/sin row
// comes from row_of(t) (a table lookup, the table-free computation of table_free.hpp, or the
// per-axis rows of multi_axis.hpp), and is used for all heads of all buffers. The buffer count is a
// template parameter so that the loops over buffers unroll: a decode call's fixed cost is part of
// what it is measured by (1 head: 29 -> 25 ns here).
template <class Arch, layout L, bool Streaming, std::size_t Buffers, class T, class C, class Rows>
void run_layout(const rope_job<T, C>& job, std::size_t begin, std::size_t end, Rows& row_of) noexcept {
    token_rows<T> rows[Buffers];
    for (std::size_t t = begin; t < end; ++t) {
        const C* cos = row_of(t);
        const C* sin = cos + job.padded_pairs;
        const auto token = static_cast<std::ptrdiff_t>(t);
        for (std::size_t i = 0; i < Buffers; ++i)
            rows[i] = {job.buffer[i].in + token * job.buffer[i].in_token_stride,
                       job.buffer[i].out + token * job.buffer[i].out_token_stride,
                       job.buffer[i].heads,
                       job.buffer[i].head_dim,
                       job.buffer[i].in_head_stride,
                       job.buffer[i].out_head_stride};
        rotate_token<Arch, L, Streaming, Buffers>(cos, sin, job.sign, job.pairs, rows);
    }
}

template <class Arch, layout L, bool Streaming, class T, class C, class Rows>
void run_layout(const rope_job<T, C>& job, std::size_t begin, std::size_t end, Rows& row_of) noexcept {
    if (job.buffers == 1)
        run_layout<Arch, L, Streaming, 1>(job, begin, end, row_of);
    else if (job.buffers == 2)
        run_layout<Arch, L, Streaming, 2>(job, begin, end, row_of);
}

template <class Arch, class T, class C, class Rows>
void run_rows(const rope_job<T, C>& job, std::size_t begin, std::size_t end, Rows& row_of) noexcept {
    if constexpr (std::is_same<T, C>::value && !std::is_same<Arch, scalar>::value) {
        if (job.streaming) {
            if (job.pair_layout == layout::interleaved)
                run_layout<Arch, layout::interleaved, true>(job, begin, end, row_of);
            else
                run_layout<Arch, layout::half_split, true>(job, begin, end, row_of);
            fence_streaming_stores<Arch>();
            return;
        }
    }
    if (job.pair_layout == layout::interleaved)
        run_layout<Arch, layout::interleaved, false>(job, begin, end, row_of);
    else
        run_layout<Arch, layout::half_split, false>(job, begin, end, row_of);
}

// Tokens [begin, end) of a validated table job; begin/end within job.range (a thread's share of it).
template <class Arch, class T, class C>
void run_tokens(const rope_job<T, C>& job, std::size_t begin, std::size_t end) noexcept {
    const table_rows<Arch, T, C> row_of{job};
    run_rows<Arch>(job, begin, end, row_of);
}

template <class Arch, class T, class C>
void run(const rope_job<T, C>& job) noexcept {
    run_tokens<Arch>(job, job.range.begin, job.range.end);
}

#if defined(_OPENMP)
// The job's tokens split in contiguous shares over the OpenMP threads, each run by run_share
// (run_tokens for a table job, run_tokens_table_free for a table-free one).
template <class Arch, class T, class C>
void run_parallel(const rope_job<T, C>& job,
                  void (*run_share)(const rope_job<T, C>&, std::size_t, std::size_t) noexcept = &run_tokens<Arch, T, C>) noexcept {
    const std::size_t first = job.range.begin, count = job.range.end - job.range.begin;
#pragma omp parallel
    {
        const auto threads = static_cast<std::size_t>(omp_get_num_threads());
        const auto i = static_cast<std::size_t>(omp_get_thread_num());
        const std::size_t share = count / threads, extra = count % threads;
        const std::size_t begin = first + i * share + (i < extra ? i : extra);
        run_share(job, begin, begin + share + (i < extra ? 1 : 0));
    }
}
#endif

constexpr const char* names_x[1][2] = {{"x", "x"}};
constexpr const char* names_in_out[1][2] = {{"in", "out"}};
constexpr const char* names_qk[2][2] = {{"q", "q"}, {"k", "k"}};
constexpr const char* names_qk_in_out[2][2] = {{"q_in", "q_out"}, {"k_in", "k_out"}};

// Source: a rope_table or a rope_angles (table_free.hpp); Positions: positions or axis_positions
// (multi_axis.hpp).
template <class T, class Source, class Positions>
ROTARY_ALWAYS_INLINE auto job_in_place(const Source& source, layout pair_layout, const heads_view<T>& x, const Positions& pos,
                                       const apply_options& options) {
    const heads_view<T>* const views[1] = {&x};
    return make_job(source, pair_layout, views, views, names_x, pos, options);
}
template <class T, class Source, class Positions>
ROTARY_ALWAYS_INLINE auto job_out_of_place(const Source& source, layout pair_layout, const heads_view<const identity_t<T>>& in,
                                           const heads_view<T>& out, const Positions& pos, const apply_options& options) {
    const heads_view<const T>* const ins[1] = {&in};
    const heads_view<T>* const outs[1] = {&out};
    return make_job(source, pair_layout, ins, outs, names_in_out, pos, options);
}
template <class T, class Source, class Positions>
ROTARY_ALWAYS_INLINE auto job_qk_in_place(const Source& source, layout pair_layout, const heads_view<T>& q, const heads_view<T>& k,
                                          const Positions& pos, const apply_options& options) {
    const heads_view<T>* const views[2] = {&q, &k};
    return make_job(source, pair_layout, views, views, names_qk, pos, options);
}
template <class T, class Source, class Positions>
ROTARY_ALWAYS_INLINE auto job_qk_out_of_place(const Source& source, layout pair_layout, const heads_view<const identity_t<T>>& q_in,
                                              const heads_view<T>& q_out, const heads_view<const identity_t<T>>& k_in,
                                              const heads_view<T>& k_out, const Positions& pos,
                                              const apply_options& options) {
    const heads_view<const T>* const ins[2] = {&q_in, &k_in};
    const heads_view<T>* const outs[2] = {&q_out, &k_out};
    return make_job(source, pair_layout, ins, outs, names_qk_in_out, pos, options);
}

}  // namespace detail

// Rotates x in place: every head of every token t in the options' token range, by the angles of
// its position (paper Eq. 34). Arch is an xsimd arch (default: the one the compile flags allow)
// or rotary::scalar. Throws std::invalid_argument / std::out_of_range before writing anything.
template <class Arch = default_arch, class T, class C>
void apply(const rope_table<C>& table, layout pair_layout, const heads_view<T>& x, const positions& pos,
           const apply_options& options = {}) {
    detail::run<Arch>(detail::job_in_place(table, pair_layout, x, pos, options));
}

// Rotates in into out (same shape, any strides; out must not overlap in unless it is the very
// same rows, which is in place). Entries past rotary_dim are copied unchanged.
template <class Arch = default_arch, class T, class C>
void apply(const rope_table<C>& table, layout pair_layout, const heads_view<const detail::identity_t<T>>& in,
           const heads_view<T>& out, const positions& pos, const apply_options& options = {}) {
    detail::run<Arch>(detail::job_out_of_place(table, pair_layout, in, out, pos, options));
}

// Rotates q and k in place with the same positions in one pass, reading each token's cos/sin once.
// Head counts may differ (GQA, MQA); each view has its own strides and head_dim.
template <class Arch = default_arch, class T, class C>
void apply_qk(const rope_table<C>& table, layout pair_layout, const heads_view<T>& q, const heads_view<T>& k,
              const positions& pos, const apply_options& options = {}) {
    detail::run<Arch>(detail::job_qk_in_place(table, pair_layout, q, k, pos, options));
}

// Fused q and k, out of place.
template <class Arch = default_arch, class T, class C>
void apply_qk(const rope_table<C>& table, layout pair_layout, const heads_view<const detail::identity_t<T>>& q_in,
              const heads_view<T>& q_out, const heads_view<const detail::identity_t<T>>& k_in, const heads_view<T>& k_out,
              const positions& pos, const apply_options& options = {}) {
    detail::run<Arch>(detail::job_qk_out_of_place(table, pair_layout, q_in, q_out, k_in, k_out, pos, options));
}

#if defined(_OPENMP)
// The same four entry points, with the tokens split over the OpenMP threads (compiled only when
// the including translation unit has OpenMP). Validation happens once, before the parallel region.
template <class Arch = default_arch, class T, class C>
void apply_parallel(const rope_table<C>& table, layout pair_layout, const heads_view<T>& x, const positions& pos,
                    const apply_options& options = {}) {
    detail::run_parallel<Arch>(detail::job_in_place(table, pair_layout, x, pos, options));
}
template <class Arch = default_arch, class T, class C>
void apply_parallel(const rope_table<C>& table, layout pair_layout, const heads_view<const detail::identity_t<T>>& in,
                    const heads_view<T>& out, const positions& pos, const apply_options& options = {}) {
    detail::run_parallel<Arch>(detail::job_out_of_place(table, pair_layout, in, out, pos, options));
}
template <class Arch = default_arch, class T, class C>
void apply_qk_parallel(const rope_table<C>& table, layout pair_layout, const heads_view<T>& q, const heads_view<T>& k,
                       const positions& pos, const apply_options& options = {}) {
    detail::run_parallel<Arch>(detail::job_qk_in_place(table, pair_layout, q, k, pos, options));
}
template <class Arch = default_arch, class T, class C>
void apply_qk_parallel(const rope_table<C>& table, layout pair_layout, const heads_view<const detail::identity_t<T>>& q_in,
                       const heads_view<T>& q_out, const heads_view<const detail::identity_t<T>>& k_in, const heads_view<T>& k_out,
                       const positions& pos, const apply_options& options = {}) {
    detail::run_parallel<Arch>(
        detail::job_qk_out_of_place(table, pair_layout, q_in, q_out, k_in, k_out, pos, options));
}
#endif

}  // namespace rotary

ROTARY_DIAGNOSTIC_POP

#endif  // ROTARY_APPLY_HPP
