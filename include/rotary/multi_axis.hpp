// rotary: positions along several axes. The rotary pairs are split into consecutive sections, one
// per axis, and each section is rotated by the token's position on its own axis:
//
//   M-RoPE (Qwen2-VL): axes (t, h, w), mrope_section = {16, 24, 24} pairs of head_dim 128:
//     pairs [0, 16) by the temporal position, [16, 40) by the row, [40, 64) by the column
//   2D axial RoPE (ViT): axes (row, column), sections {P/2, P/2} of the P = rotary_dim/2 pairs,
//     usually with axial_frequencies(), which gives each half its own theta sequence
//
// In both pair layouts the sections are over the pair index i (pair i is (x_2i, x_2i+1)
// interleaved, (x_i, x_i+d/2) half-split), as Qwen2-VL does it. A text token with the same position
// on every axis is rotated exactly as plain 1-D RoPE rotates it.
//
// The kernel is the 1-D one: for each token the library assembles its cos/sin row from the table
// rows of its per-axis positions (a copy of each section, once per token, reused for all heads and
// for q and k), or points at the table row directly when all its positions agree.
// SPDX-License-Identifier: MIT
#ifndef ROTARY_MULTI_AXIS_HPP
#define ROTARY_MULTI_AXIS_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "apply.hpp"
#include "frequencies.hpp"
#include "table.hpp"
#include "table_free.hpp"
#include "types.hpp"

ROTARY_DIAGNOSTIC_PUSH

namespace rotary {

// Each token's position on each axis, and how many rotary pairs each axis rotates.
// ids[a * tokens + t] is token t's position on axis a: the [axes, tokens] layout of Qwen2-VL's
// position_ids (3, seq_len), int32 or int64.
class axis_positions {
  public:
    static constexpr std::size_t max_axes = 4;

    static axis_positions from_ids(const std::int32_t* ids, std::size_t axes, std::size_t tokens,
                                   std::initializer_list<std::size_t> sections) {
        return axis_positions(ids, nullptr, axes, tokens, sections.begin(), sections.size());
    }
    static axis_positions from_ids(const std::int64_t* ids, std::size_t axes, std::size_t tokens,
                                   std::initializer_list<std::size_t> sections) {
        return axis_positions(nullptr, ids, axes, tokens, sections.begin(), sections.size());
    }
    static axis_positions from_ids(const std::int32_t* ids, std::size_t axes, std::size_t tokens,
                                   const std::vector<std::size_t>& sections) {
        return axis_positions(ids, nullptr, axes, tokens, sections.data(), sections.size());
    }
    static axis_positions from_ids(const std::int64_t* ids, std::size_t axes, std::size_t tokens,
                                   const std::vector<std::size_t>& sections) {
        return axis_positions(nullptr, ids, axes, tokens, sections.data(), sections.size());
    }

    std::size_t axes() const noexcept { return axes_; }
    std::size_t tokens() const noexcept { return tokens_; }
    std::size_t sections() const noexcept { return sections_; }
    // Pairs rotated by axis a's position.
    std::size_t section(std::size_t a) const noexcept { return section_[a]; }
    const std::int32_t* ids32() const noexcept { return ids32_; }
    const std::int64_t* ids64() const noexcept { return ids64_; }
    // Token t's position on axis a (unchecked: the entry points check every id they read first).
    std::int64_t operator()(std::size_t a, std::size_t t) const noexcept {
        return ids32_ ? static_cast<std::int64_t>(ids32_[a * tokens_ + t]) : ids64_[a * tokens_ + t];
    }

  private:
    axis_positions(const std::int32_t* i32, const std::int64_t* i64, std::size_t axes, std::size_t tokens,
                   const std::size_t* sections, std::size_t count)
        : ids32_(i32), ids64_(i64), axes_(axes), tokens_(tokens), sections_(count) {
        if (count > max_axes)
            detail::fail_invalid([&] {
                return "axis sections: at most " + std::to_string(max_axes) + " axes, got " + std::to_string(count) +
                       " sections";
            });
        for (std::size_t a = 0; a < count; ++a) section_[a] = sections[a];
    }

    const std::int32_t* ids32_;
    const std::int64_t* ids64_;
    std::size_t axes_, tokens_, sections_;
    std::size_t section_[max_axes] = {};
};

// The frequencies of 2D axial RoPE for a rotary_dim split between two axes: each half of the
// P = rotary_dim/2 pairs gets theta_j = base^(-4j/rotary_dim), j = 0 .. P/2 - 1, i.e. the 1-D
// frequencies of a head of rotary_dim/2 (Heo et al., "Rotary Position Embedding for Vision
// Transformer", RoPE-Axial). Use it with sections {P/2, P/2}.
inline rope_frequencies axial_frequencies(std::size_t rotary_dim, double base = 10000.0) {
    if (rotary_dim == 0 || rotary_dim % 4 != 0)
        detail::fail_invalid([&] {
            return "rotary_dim of 2D axial RoPE must be a positive multiple of 4, got " + std::to_string(rotary_dim);
        });
    const rope_frequencies half = default_frequencies(rotary_dim / 2, base);
    rope_frequencies f;
    f.inverse = half.inverse;
    f.inverse.insert(f.inverse.end(), half.inverse.begin(), half.inverse.end());
    return f;
}

namespace detail {

// A token's row assembled from several table rows lives on the stack, like the table-free path's.
constexpr std::size_t multi_axis_max_rotary_dim = rope_angles<float>::max_rotary_dim;

// Every id of axis a that the call reads is in [0, max_positions); a bad one is named with its axis.
template <class Id>
void check_axis_ids(const Id* ids, std::size_t a, std::size_t tokens, token_span range, std::uint64_t max_positions,
                    const char* limit) {
    const Id* axis = ids + a * tokens;
    std::uint64_t bad = 0;
    for (std::size_t t = range.begin; t < range.end; ++t)
        bad |= static_cast<std::uint64_t>(static_cast<std::int64_t>(axis[t]) < 0) |
               static_cast<std::uint64_t>(static_cast<std::uint64_t>(axis[t]) >= max_positions);
    if (bad == 0) return;
    for (std::size_t t = range.begin; t < range.end; ++t) {
        const auto m = static_cast<std::int64_t>(axis[t]);
        const auto where = [&] { return "axis position ids[" + std::to_string(a) + "][" + std::to_string(t) + "]"; };
        if (m < 0) fail_invalid([&] { return where() + " must be >= 0, got " + std::to_string(m); });
        if (static_cast<std::uint64_t>(m) >= max_positions)
            fail_range([&] {
                return where() + " = " + std::to_string(m) + " is >= " + limit + " " + std::to_string(max_positions);
            });
    }
}

// The checks of axis positions (before anything is written) and the job's fields.
template <class T, class C>
ROTARY_ALWAYS_INLINE void set_positions(rope_job<T, C>& job, const axis_positions& pos, std::size_t tokens,
                                        std::uint64_t max_positions, const char* limit_name, std::size_t pairs) {
    if (pos.axes() == 0 || pos.axes() > axis_positions::max_axes)
        fail_invalid([&] {
            return "axis positions: axes must be 1 .. " + std::to_string(axis_positions::max_axes) + ", got " +
                   std::to_string(pos.axes());
        });
    if (pos.sections() != pos.axes())
        fail_invalid([&] {
            return "axis sections: " + std::to_string(pos.sections()) + " sections for " + std::to_string(pos.axes()) +
                   " axes (one section per axis)";
        });
    // A sum that wraps could come back to rotary_dim/2 and let a section past the row through.
    std::size_t sum = 0;
    bool wraps = false;
    for (std::size_t a = 0; a < pos.sections(); ++a) wraps |= __builtin_add_overflow(sum, pos.section(a), &sum);
    if (wraps || sum != pairs)
        fail_invalid([&] {
            std::string list;
            for (std::size_t a = 0; a < pos.sections(); ++a) list += (a ? ", " : "") + std::to_string(pos.section(a));
            return "axis sections {" + list + "} add up to " + (wraps ? "more than SIZE_MAX" : std::to_string(sum)) +
                   " pairs, rotary_dim/2 is " + std::to_string(pairs);
        });
    if (2 * pairs > multi_axis_max_rotary_dim)
        fail_invalid([&] {
            return "rotary_dim must be <= " + std::to_string(multi_axis_max_rotary_dim) +
                   " for positions along several axes (a token's row is assembled on the stack), got " +
                   std::to_string(2 * pairs);
        });
    if (pos.tokens() != tokens)
        fail_invalid([&] {
            return "axis positions count " + std::to_string(pos.tokens()) + " != tokens " + std::to_string(tokens);
        });
    if (job.range.begin != job.range.end) {
        if (pos.ids32() == nullptr && pos.ids64() == nullptr)
            fail_invalid([&] { return "axis position ids pointer is null with " + std::to_string(tokens) + " tokens"; });
        for (std::size_t a = 0; a < pos.axes(); ++a) {
            if (pos.ids32())
                check_axis_ids(pos.ids32(), a, tokens, job.range, max_positions, limit_name);
            else
                check_axis_ids(pos.ids64(), a, tokens, job.range, max_positions, limit_name);
        }
    }
    job.position_source = positions::kind::offset;  // unused: rows come from axis_rows
    job.start = 0;
    job.ids = nullptr;
    job.axes = &pos;
}

// Token t's cos row (sin row at + padded_pairs): its table row when all its axis positions agree,
// else the sections of each axis' table row copied into a scratch row on the stack (whose padding
// past the pairs stays zero, as in a table row).
template <class Arch, class T, class C>
struct axis_rows {
    static constexpr std::size_t capacity = padded_pairs<C>(multi_axis_max_rotary_dim / 2);

    const rope_job<T, C>& job;
    const axis_positions& pos;
    alignas(64) C scratch[2 * capacity];

    explicit axis_rows(const rope_job<T, C>& j) noexcept : job(j), pos(*static_cast<const axis_positions*>(j.axes)) {
        for (std::size_t i = job.pairs; i < job.padded_pairs; ++i) scratch[i] = scratch[job.padded_pairs + i] = C(0);
    }
    const C* operator()(std::size_t t) noexcept {
        const std::int64_t first = pos(0, t);
        bool same = true;
        for (std::size_t a = 1; a < pos.axes(); ++a) same = same && pos(a, t) == first;
        if (same) return job.table + static_cast<std::size_t>(first) * job.row_stride;
        std::size_t begin = 0;
        for (std::size_t a = 0; a < pos.axes(); ++a) {
            const C* row = job.table + static_cast<std::size_t>(pos(a, t)) * job.row_stride;
            const std::size_t n = pos.section(a);
            std::memcpy(scratch + begin, row + begin, n * sizeof(C));
            std::memcpy(scratch + job.padded_pairs + begin, row + job.padded_pairs + begin, n * sizeof(C));
            begin += n;
        }
        return scratch;
    }
};

// Tokens [begin, end) of a validated multi-axis job; begin/end within job.range.
template <class Arch, class T, class C>
void run_tokens_multi_axis(const rope_job<T, C>& job, std::size_t begin, std::size_t end) noexcept {
    axis_rows<Arch, T, C> row_of(job);
    run_rows<Arch>(job, begin, end, row_of);
}

template <class Arch, class T, class C>
void run_multi_axis(const rope_job<T, C>& job) noexcept {
    run_tokens_multi_axis<Arch>(job, job.range.begin, job.range.end);
}

}  // namespace detail

// The entry points of apply.hpp with positions along several axes: the same views, options and
// checks, plus the axis checks (one section per axis, sections adding up to rotary_dim/2, every id
// of every axis inside the table).

// Rotates x in place.
template <class Arch = default_arch, class T, class C>
void apply(const rope_table<C>& table, layout pair_layout, const heads_view<T>& x, const axis_positions& pos,
           const apply_options& options = {}) {
    detail::run_multi_axis<Arch>(detail::job_in_place(table, pair_layout, x, pos, options));
}

// Rotates in into out.
template <class Arch = default_arch, class T, class C>
void apply(const rope_table<C>& table, layout pair_layout, const heads_view<const detail::identity_t<T>>& in,
           const heads_view<T>& out, const axis_positions& pos, const apply_options& options = {}) {
    detail::run_multi_axis<Arch>(detail::job_out_of_place(table, pair_layout, in, out, pos, options));
}

// Rotates q and k in place in one pass: each token's row is assembled once for both.
template <class Arch = default_arch, class T, class C>
void apply_qk(const rope_table<C>& table, layout pair_layout, const heads_view<T>& q, const heads_view<T>& k,
              const axis_positions& pos, const apply_options& options = {}) {
    detail::run_multi_axis<Arch>(detail::job_qk_in_place(table, pair_layout, q, k, pos, options));
}

// Fused q and k, out of place.
template <class Arch = default_arch, class T, class C>
void apply_qk(const rope_table<C>& table, layout pair_layout, const heads_view<const detail::identity_t<T>>& q_in,
              const heads_view<T>& q_out, const heads_view<const detail::identity_t<T>>& k_in,
              const heads_view<T>& k_out, const axis_positions& pos, const apply_options& options = {}) {
    detail::run_multi_axis<Arch>(detail::job_qk_out_of_place(table, pair_layout, q_in, q_out, k_in, k_out, pos, options));
}

#if defined(_OPENMP)
// The same four entry points with the tokens split over the OpenMP threads.
template <class Arch = default_arch, class T, class C>
void apply_parallel(const rope_table<C>& table, layout pair_layout, const heads_view<T>& x, const axis_positions& pos,
                    const apply_options& options = {}) {
    detail::run_parallel<Arch>(detail::job_in_place(table, pair_layout, x, pos, options),
                               &detail::run_tokens_multi_axis<Arch, T, C>);
}
template <class Arch = default_arch, class T, class C>
void apply_parallel(const rope_table<C>& table, layout pair_layout, const heads_view<const detail::identity_t<T>>& in,
                    const heads_view<T>& out, const axis_positions& pos, const apply_options& options = {}) {
    detail::run_parallel<Arch>(detail::job_out_of_place(table, pair_layout, in, out, pos, options),
                               &detail::run_tokens_multi_axis<Arch, T, C>);
}
template <class Arch = default_arch, class T, class C>
void apply_qk_parallel(const rope_table<C>& table, layout pair_layout, const heads_view<T>& q, const heads_view<T>& k,
                       const axis_positions& pos, const apply_options& options = {}) {
    detail::run_parallel<Arch>(detail::job_qk_in_place(table, pair_layout, q, k, pos, options),
                               &detail::run_tokens_multi_axis<Arch, T, C>);
}
template <class Arch = default_arch, class T, class C>
void apply_qk_parallel(const rope_table<C>& table, layout pair_layout,
                       const heads_view<const detail::identity_t<T>>& q_in, const heads_view<T>& q_out,
                       const heads_view<const detail::identity_t<T>>& k_in, const heads_view<T>& k_out,
                       const axis_positions& pos, const apply_options& options = {}) {
    detail::run_parallel<Arch>(detail::job_qk_out_of_place(table, pair_layout, q_in, q_out, k_in, k_out, pos, options),
                               &detail::run_tokens_multi_axis<Arch, T, C>);
}
#endif

}  // namespace rotary

ROTARY_DIAGNOSTIC_POP

#endif  // ROTARY_MULTI_AXIS_HPP
