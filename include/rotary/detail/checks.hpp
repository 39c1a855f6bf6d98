// rotary: argument checks shared by every entry point. O(1) per call (plus one pass over the
// position ids a call will read), all done before anything is written, so that bad input throws
// and leaves every buffer bit-for-bit unchanged. A decode call rotates 16 KiB in ~100 ns, so a
// check that passes must cost a few instructions: no division, no allocation, messages built only
// in the cold functions that throw.
// SPDX-License-Identifier: MIT
#ifndef ROTARY_DETAIL_CHECKS_HPP
#define ROTARY_DETAIL_CHECKS_HPP

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include "../types.hpp"

namespace rotary {
namespace detail {

inline std::string to_hex(std::uintptr_t x) {
    const char* digits = "0123456789abcdef";
    std::string s;
    do {
        s.insert(s.begin(), digits[x % 16]);
        x /= 16;
    } while (x != 0);
    return "0x" + s;
}

// A view as the checks see it, with the name errors use ("q", "k_out", ...).
struct checked_view {
    const char* name;
    std::uintptr_t address;
    std::size_t element_size;
    std::size_t tokens, heads, head_dim;
    std::size_t token_stride, head_stride;  // elements, checked non-negative
    std::uintptr_t end;                     // one past the last byte of the last row; == address when no rows

    bool has_rows() const noexcept { return end != address; }
    // Elements from the first element of a token's head 0 to the end of its last head.
    std::size_t token_extent() const noexcept { return (heads - 1) * head_stride + head_dim; }
};

// Fills c field by field (no struct copy: a copy of freshly stored fields through one wide load is a
// store-forwarding stall, which shows on a decode call).
template <class T>
ROTARY_ALWAYS_INLINE void check_view(const heads_view<T>& v, const char* name, checked_view& c) {
    c.name = name;
    c.address = reinterpret_cast<std::uintptr_t>(v.data);
    c.element_size = sizeof(T);
    c.tokens = v.tokens;
    c.heads = v.heads;
    c.head_dim = v.head_dim;
    c.token_stride = static_cast<std::size_t>(v.token_stride);
    c.head_stride = static_cast<std::size_t>(v.head_stride);
    c.end = c.address;
    if (v.token_stride < 0)
        fail_invalid([&] { return std::string(name) + ".token_stride must be >= 0, got " + std::to_string(v.token_stride); });
    if (v.head_stride < 0)
        fail_invalid([&] { return std::string(name) + ".head_stride must be >= 0, got " + std::to_string(v.head_stride); });
    if (v.tokens == 0 || v.heads == 0 || v.head_dim == 0) return;
    if (v.data == nullptr)
        fail_invalid([&] {
            return std::string(name) + ".data is null with " + std::to_string(v.tokens) + " tokens x " +
                   std::to_string(v.heads) + " heads x " + std::to_string(v.head_dim) + " elements";
        });
    // bytes = ((tokens-1)*token_stride + (heads-1)*head_stride + head_dim) * sizeof(T)
    std::size_t a, b, extent, bytes;
    if (mul_overflows(v.tokens - 1, c.token_stride, a) || mul_overflows(v.heads - 1, c.head_stride, b) ||
        add_overflows(a, b, extent) || add_overflows(extent, v.head_dim, extent) ||
        mul_overflows(extent, sizeof(T), bytes) ||
        bytes > static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max()) ||
        bytes > std::numeric_limits<std::uintptr_t>::max() - c.address)
        fail_invalid([&] {
            return std::string(name) + " size overflows the address space: " + std::to_string(v.tokens) +
                   " tokens x token_stride " + std::to_string(v.token_stride) + ", " + std::to_string(v.heads) +
                   " heads x head_stride " + std::to_string(v.head_stride) + ", head_dim " +
                   std::to_string(v.head_dim) + ", from " + to_hex(c.address);
        });
    c.end = c.address + bytes;
}

// A written view's rows must not overlap each other (a row would be rotated twice). Checked in O(1)
// with a sufficient condition: the smaller stride clears a row, and the larger clears all rows
// along the smaller one.
ROTARY_ALWAYS_INLINE void check_rows_disjoint(const checked_view& v) {
    if (!v.has_rows() || (v.tokens == 1 && v.heads == 1)) return;
    const bool tokens_inner = v.heads == 1 || (v.tokens != 1 && v.token_stride <= v.head_stride);
    const std::size_t inner = tokens_inner ? v.token_stride : v.head_stride;
    const std::size_t inner_count = tokens_inner ? v.tokens : v.heads;
    const std::size_t outer = tokens_inner ? v.head_stride : v.token_stride;
    const bool single_axis = v.tokens == 1 || v.heads == 1;
    // (inner_count - 1) * inner + head_dim <= outer; it cannot overflow: the span was checked
    if (inner < v.head_dim || (!single_axis && (inner_count - 1) * inner + v.head_dim > outer))
        fail_invalid([&] {
            return std::string(v.name) + " rows overlap: token_stride " + std::to_string(v.token_stride) +
                   ", head_stride " + std::to_string(v.head_stride) + " for " + std::to_string(v.tokens) +
                   " tokens x " + std::to_string(v.heads) + " heads of head_dim " + std::to_string(v.head_dim);
        });
}

// Whether two views' rows can share a byte. Disjoint spans never do; two views with the same token
// stride whose per-token blocks sit side by side (q, k and v of a packed QKV projection) never do
// either, even though their spans interleave.
inline bool rows_may_overlap(const checked_view& a, const checked_view& b) noexcept {
    if (!a.has_rows() || !b.has_rows()) return false;
    if (a.end <= b.address || b.end <= a.address) return false;
    const std::size_t period = a.token_stride;
    if (a.element_size != b.element_size || period == 0 || b.token_stride != period || a.tokens < 2 || b.tokens < 2)
        return true;
    const std::size_t a_block = a.token_extent(), b_block = b.token_extent();
    if (a_block > period || b_block > period) return true;
    const std::size_t e = a.element_size;
    const std::uintptr_t diff = b.address >= a.address ? b.address - a.address : a.address - b.address;
    if (diff % e != 0) return true;
    // offset of b's block within a's period, in elements, in [0, period)
    std::size_t r = static_cast<std::size_t>(diff / e) % period;
    if (b.address < a.address && r != 0) r = period - r;
    return !(r >= a_block && r + b_block <= period);
}

// The very same rows: an "out-of-place" call on them is in place.
ROTARY_ALWAYS_INLINE bool same_rows(const checked_view& a, const checked_view& b) noexcept {
    return a.address == b.address && a.tokens == b.tokens && a.heads == b.heads && a.head_dim == b.head_dim &&
           (a.tokens < 2 || a.token_stride == b.token_stride) && (a.heads < 2 || a.head_stride == b.head_stride);
}

inline void check_disjoint(const checked_view& a, const checked_view& b) {
    if (rows_may_overlap(a, b))
        fail_invalid([&] {
            return std::string(a.name) + " and " + b.name + " overlap in memory (" + a.name + " at " +
                   to_hex(a.address) + ", " + b.name + " at " + to_hex(b.address) + ")";
        });
}

// The token range a call works on: [begin, end) within [0, tokens).
struct token_span {
    std::size_t begin = 0, end = 0;
};

ROTARY_ALWAYS_INLINE token_span check_token_range(const apply_options& o, std::size_t tokens) {
    const std::size_t end = o.token_end == apply_options::all_tokens ? tokens : o.token_end;
    if (o.token_begin > end || end > tokens)
        fail_range([&] {
            return "token range [" + std::to_string(o.token_begin) + ", " +
                   (o.token_end == apply_options::all_tokens ? std::string("all") : std::to_string(o.token_end)) +
                   ") is not within the view's " + std::to_string(tokens) + " tokens";
        });
    return {o.token_begin, end};
}

// limit: what max_positions is, for the messages ("the table's max_positions").
template <class Id>
void check_ids(const Id* ids, token_span range, std::uint64_t max_positions, const char* limit) {
    // One branch-free pass for the common case; the failing id is looked for only when one fails.
    std::uint64_t bad = 0;
    for (std::size_t t = range.begin; t < range.end; ++t)
        bad |= static_cast<std::uint64_t>(static_cast<std::int64_t>(ids[t]) < 0) |
               static_cast<std::uint64_t>(static_cast<std::uint64_t>(ids[t]) >= max_positions);
    if (bad == 0) return;
    for (std::size_t t = range.begin; t < range.end; ++t) {
        const auto m = static_cast<std::int64_t>(ids[t]);
        if (m < 0)
            fail_invalid([&] { return "position id ids[" + std::to_string(t) + "] must be >= 0, got " + std::to_string(m); });
        if (static_cast<std::uint64_t>(m) >= max_positions)
            fail_range([&] {
                return "position id ids[" + std::to_string(t) + "] = " + std::to_string(m) + " is >= " + limit + " " +
                       std::to_string(max_positions);
            });
    }
}

// Every position the call will read lies in [0, max_positions).
ROTARY_ALWAYS_INLINE void check_positions(const positions& p, std::size_t tokens, token_span range,
                                          std::uint64_t max_positions, const char* limit) {
    if (p.source() == positions::kind::offset) {
        if (p.start() < 0)
            fail_invalid([&] { return "position offset must be >= 0, got " + std::to_string(p.start()); });
        if (range.begin == range.end) return;
        // start + (end - 1) < max_positions, without forming the sum (it can wrap: a view with no
        // heads may have 2^64 - 1 tokens)
        const std::uint64_t start = static_cast<std::uint64_t>(p.start()), span = range.end - 1;
        if (span >= max_positions || start >= max_positions - span)
            fail_range([&] {
                return "positions " + std::to_string(start) + " + [" + std::to_string(range.begin) + ", " +
                       std::to_string(range.end) + ") reach past " + limit + " " + std::to_string(max_positions);
            });
        return;
    }
    if (p.count() != tokens)
        fail_invalid([&] { return "position ids count " + std::to_string(p.count()) + " != tokens " + std::to_string(tokens); });
    if (range.begin == range.end) return;
    if (p.source() == positions::kind::ids32) {
        if (p.ids32() == nullptr)
            fail_invalid([&] { return "position ids pointer is null with " + std::to_string(tokens) + " tokens"; });
        check_ids(p.ids32(), range, max_positions, limit);
    } else {
        if (p.ids64() == nullptr)
            fail_invalid([&] { return "position ids pointer is null with " + std::to_string(tokens) + " tokens"; });
        check_ids(p.ids64(), range, max_positions, limit);
    }
}

// The data pointers and strides of the q, k, v and out views, into the fields of the same names of
// an attention job (softmax or linear), once every check has passed.
template <class Job, class Q, class K, class V, class Out>
inline void set_qkvo(Job& job, const Q& q, const K& k, const V& v, const Out& out) noexcept {
    job.q = q.data;
    job.k = k.data;
    job.v = v.data;
    job.out = out.data;
    job.q_token_stride = q.token_stride;
    job.q_head_stride = q.head_stride;
    job.k_token_stride = k.token_stride;
    job.k_head_stride = k.head_stride;
    job.v_token_stride = v.token_stride;
    job.v_head_stride = v.head_stride;
    job.out_token_stride = out.token_stride;
    job.out_head_stride = out.head_stride;
}

}  // namespace detail
}  // namespace rotary

#endif  // ROTARY_DETAIL_CHECKS_HPP
