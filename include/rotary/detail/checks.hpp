// rotary: argument checks shared by every entry point. O(1) per call (plus one pass over the
// position ids a call will read), all done before anything is written, so that bad input throws
// and leaves every buffer bit-for-bit unchanged.
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

inline std::size_t checked_add(std::size_t a, std::size_t b, const char* what) {
    if (b > std::numeric_limits<std::size_t>::max() - a)
        throw_invalid(std::string(what) + " overflows: " + std::to_string(a) + " + " + std::to_string(b));
    return a + b;
}

// The bytes a view's rows cover, [begin, end); empty when it has no rows.
struct byte_span {
    std::uintptr_t begin = 0, end = 0;
    bool empty() const noexcept { return begin == end; }
};

// A view of one buffer as the checks see it, with the name errors use ("q", "k_out", ...).
struct checked_view {
    std::string name;
    std::uintptr_t address = 0;
    std::size_t element_size = 0;
    std::size_t tokens = 0, heads = 0, head_dim = 0;
    std::size_t token_stride = 0, head_stride = 0;  // elements, checked non-negative
    byte_span span;

    bool has_rows() const noexcept { return tokens != 0 && heads != 0 && head_dim != 0; }
    // Extent in elements of one token's rows: from the first element of head 0 to the end of the last head.
    std::size_t token_extent() const noexcept { return (heads - 1) * head_stride + head_dim; }
};

template <class T>
checked_view check_view(const heads_view<T>& v, const std::string& name) {
    checked_view c;
    c.name = name;
    c.address = reinterpret_cast<std::uintptr_t>(v.data);
    c.element_size = sizeof(T);
    c.tokens = v.tokens;
    c.heads = v.heads;
    c.head_dim = v.head_dim;
    if (v.token_stride < 0)
        throw_invalid(name + ".token_stride must be >= 0, got " + std::to_string(v.token_stride));
    if (v.head_stride < 0)
        throw_invalid(name + ".head_stride must be >= 0, got " + std::to_string(v.head_stride));
    c.token_stride = static_cast<std::size_t>(v.token_stride);
    c.head_stride = static_cast<std::size_t>(v.head_stride);
    if (!c.has_rows()) return c;
    if (v.data == nullptr)
        throw_invalid(name + ".data is null with " + std::to_string(v.tokens) + " tokens x " +
                      std::to_string(v.heads) + " heads x " + std::to_string(v.head_dim) + " elements");
    const std::string what = name + " size";
    std::size_t extent = checked_mul(v.tokens - 1, c.token_stride, what.c_str());
    extent = checked_add(extent, checked_mul(v.heads - 1, c.head_stride, what.c_str()), what.c_str());
    extent = checked_add(extent, v.head_dim, what.c_str());
    const std::size_t bytes = checked_mul(extent, sizeof(T), what.c_str());
    if (bytes > static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max()) ||
        bytes > std::numeric_limits<std::uintptr_t>::max() - c.address)
        throw_invalid(name + " spans " + std::to_string(bytes) + " bytes from its data pointer, past the address space");
    c.span = {c.address, c.address + bytes};
    return c;
}

// A written view's rows must not overlap each other (a row would be rotated twice). Checked in O(1)
// with a sufficient condition: the smaller stride clears a row and the larger clears all rows
// along the smaller one.
inline void check_rows_disjoint(const checked_view& v) {
    if (!v.has_rows() || (v.tokens == 1 && v.heads == 1)) return;
    auto fail = [&] {
        throw_invalid(v.name + " rows overlap: token_stride " + std::to_string(v.token_stride) + ", head_stride " +
                      std::to_string(v.head_stride) + " for " + std::to_string(v.tokens) + " tokens x " +
                      std::to_string(v.heads) + " heads of head_dim " + std::to_string(v.head_dim));
    };
    if (v.tokens == 1) {
        if (v.head_stride < v.head_dim) fail();
        return;
    }
    if (v.heads == 1) {
        if (v.token_stride < v.head_dim) fail();
        return;
    }
    const bool tokens_inner = v.token_stride <= v.head_stride;
    const std::size_t inner = tokens_inner ? v.token_stride : v.head_stride;
    const std::size_t inner_count = tokens_inner ? v.tokens : v.heads;
    const std::size_t outer = tokens_inner ? v.head_stride : v.token_stride;
    if (inner < v.head_dim) fail();
    // (inner_count - 1) * inner + head_dim <= outer, without overflow (inner <= outer here)
    if ((inner_count - 1) > (outer - v.head_dim) / (inner == 0 ? 1 : inner) ||
        (inner_count - 1) * inner + v.head_dim > outer)
        fail();
}

// Whether two views' rows can share a byte. Disjoint spans never do; two views with the same token
// stride whose per-token blocks sit side by side (q, k and v of a packed QKV projection) never do
// either, even though their spans interleave.
inline bool rows_may_overlap(const checked_view& a, const checked_view& b) {
    if (a.span.empty() || b.span.empty()) return false;
    if (a.span.end <= b.span.begin || b.span.end <= a.span.begin) return false;
    if (a.element_size != b.element_size) return true;
    const std::size_t e = a.element_size;
    const std::size_t period = a.token_stride;
    if (period == 0 || b.token_stride != period || a.tokens < 2 || b.tokens < 2) return true;
    const std::size_t a_block = a.token_extent(), b_block = b.token_extent();
    if (a_block > period || b_block > period) return true;
    const std::uintptr_t diff = b.address >= a.address ? b.address - a.address : a.address - b.address;
    if (diff % e != 0) return true;
    // offset of b's block within a's period, in elements, in [0, period)
    std::size_t r = static_cast<std::size_t>(diff / e) % period;
    if (b.address < a.address && r != 0) r = period - r;
    return !(r >= a_block && r + b_block <= period);
}

inline bool same_rows(const checked_view& a, const checked_view& b) {
    return a.address == b.address && a.tokens == b.tokens && a.heads == b.heads && a.head_dim == b.head_dim &&
           (a.tokens < 2 || a.token_stride == b.token_stride) && (a.heads < 2 || a.head_stride == b.head_stride);
}

inline std::string to_hex(std::uintptr_t x) {
    const char* digits = "0123456789abcdef";
    std::string s;
    do {
        s.insert(s.begin(), digits[x % 16]);
        x /= 16;
    } while (x != 0);
    return s;
}

inline void check_disjoint(const checked_view& a, const checked_view& b) {
    if (rows_may_overlap(a, b))
        throw_invalid(a.name + " and " + b.name + " overlap in memory (" + a.name + " at 0x" +
                      to_hex(a.address) + ", " + b.name + " at 0x" + to_hex(b.address) + ")");
}

// The token range a call works on: [begin, end) within [0, tokens).
struct token_span {
    std::size_t begin = 0, end = 0;
};

inline token_span check_token_range(const apply_options& o, std::size_t tokens) {
    const std::size_t end = o.token_end == apply_options::all_tokens ? tokens : o.token_end;
    if (o.token_begin > end || end > tokens)
        throw_range("token range [" + std::to_string(o.token_begin) + ", " +
                    (o.token_end == apply_options::all_tokens ? std::string("all") : std::to_string(o.token_end)) +
                    ") is not within the view's " + std::to_string(tokens) + " tokens");
    return {o.token_begin, end};
}

// Every position the call will read lies in [0, max_positions).
inline void check_positions(const positions& p, std::size_t tokens, token_span range, std::size_t max_positions) {
    const auto limit = static_cast<std::uint64_t>(max_positions);
    if (p.source() == positions::kind::offset) {
        if (p.start() < 0)
            throw_invalid("position offset must be >= 0, got " + std::to_string(p.start()));
        if (range.begin == range.end) return;
        const std::uint64_t last = static_cast<std::uint64_t>(p.start()) + (range.end - 1);
        if (last >= limit)
            throw_range("positions " + std::to_string(p.start() + static_cast<std::int64_t>(range.begin)) + " .. " +
                        std::to_string(last) + " reach past the table's max_positions " + std::to_string(max_positions));
        return;
    }
    if (p.count() != tokens)
        throw_invalid("position ids count " + std::to_string(p.count()) + " != tokens " + std::to_string(tokens));
    if (range.begin == range.end) return;
    if (p.ids32() == nullptr && p.ids64() == nullptr)
        throw_invalid("position ids pointer is null with " + std::to_string(tokens) + " tokens");
    for (std::size_t t = range.begin; t < range.end; ++t) {
        const std::int64_t m = p[t];
        if (m < 0)
            throw_invalid("position id ids[" + std::to_string(t) + "] must be >= 0, got " + std::to_string(m));
        if (static_cast<std::uint64_t>(m) >= limit)
            throw_range("position id ids[" + std::to_string(t) + "] = " + std::to_string(m) +
                        " is >= the table's max_positions " + std::to_string(max_positions));
    }
}

}  // namespace detail
}  // namespace rotary

#endif  // ROTARY_DETAIL_CHECKS_HPP
