// The apply and apply_qk fuzz targets: one call of rotary::apply (N = 1 buffer) or rotary::apply_qk
// (N = 2: q and k), through the in-place or the out-of-place overload, decoded from the input. The
// cos/sin come from a rope_table, or (TableFree, the table_free target) from a rope_angles: built
// from (rotary_dim, base) or from frequencies given by hand, any of them hostile, with any
// attention factor, and positions up to 2^32 and past it.
//
// The views are placed in up to four arenas, each allocated to exactly the extent of the views in
// it (no slack: a read or write past a row is an ASan error), so views can alias, overlap, sit side
// by side (packed QKV) or start misaligned; a view can also be null or point near the top of the
// address space. Shapes, strides (negative, huge, overlapping), rotary_dim, the table size, the
// token range, the positions (offset or int32/int64 ids, negative and past the table), the layout
// and direction (including invalid enum values) and the element type (fp32, fp64, fp16, bf16) all
// come from the input, as do the buffers' values (uniform, wide, any bit pattern, special values).
//
// An independent model of the documented contract (model() below) says which violations the call
// has. A call that must throw has to throw the documented exception naming one of them, through
// every backend, and leave every buffer and the ids byte-for-byte unchanged. A valid call runs on
// the scalar path, the default arch, every SIMD arch this CPU runs (sse2, avx2, avx512bw, avx512bf16 through
// their kernel sets) and rotary::dispatch; each result is compared with the scalar one and with the
// long double oracle of fuzz.hpp (tolerances there), and every element the call must not write is
// compared bit for bit.
//
// MultiAxis (the multi_axis target): the positions are a rotary::axis_positions instead: 1 to 4
// axes (and hostile counts), one section of rotary pairs per axis (sections that add up to
// rotary_dim/2 or not, too few or too many), int32 or int64 ids per axis (negative, past the
// table, tokens whose axes all agree: text tokens), from a table of the default frequencies or of
// axial_frequencies (2D axial RoPE); the oracle rotates pair i by the angle of its own axis'
// position, and one head per call is also checked against the dense block-diagonal matrix in
// double (Eigen).
#pragma once

#include "fuzz.hpp"

#include <rotary/dispatch.hpp>
#include <rotary/multi_axis.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <tuple>

namespace rotary_fuzz {

using u128 = unsigned __int128;
using i128 = __int128;

constexpr std::size_t max_arena = std::size_t{1} << 16;  // elements; a larger arena is not allocated
constexpr std::size_t max_work = std::size_t{1} << 16;   // elements rotated by one call
constexpr std::size_t max_walk = std::size_t{1} << 16;   // tokens walked by one call
constexpr std::size_t max_ids = 512;                     // position ids decoded and allocated
constexpr std::size_t max_rows = std::size_t{1} << 18;   // rows the overlap model enumerates
constexpr std::size_t arena_count = 4;
constexpr std::size_t max_sections = 8;                  // axis sections decoded (the rest are 0)

// The backend that calls rotary::dispatch (the fuzz binaries are built with rotary_add_dispatch).
inline const char* const dispatch_backend = "dispatch";

// An address 4 KiB below the top of the address space: views placed there overflow it quickly.
constexpr std::uintptr_t wild_base = ~std::uintptr_t{0} - 4095;

// ------------------------------------------------------------------------------------------------
// One view as decoded.
struct view_spec {
    std::uint8_t place = 0;         // 0..3: arena; 4: nullptr; 5: near the top of the address space
    std::uint64_t offset = 0;       // elements from the arena's start
    std::uint64_t tokens = 0, heads = 0, head_dim = 0;
    std::uint8_t contiguous = 0;    // bit 0: built by heads_view(data, tokens, heads, head_dim)
    std::int64_t token_stride = 0, head_stride = 0;

    template <class IO>
    void code(IO& io) {
        io(byte_code{}, place);
        io(size_code{}, offset);
        io(size_code{}, tokens);
        io(size_code{}, heads);
        io(size_code{}, head_dim);
        io(byte_code{}, contiguous);
        if (contiguous & 1) return;
        // near: the contiguous strides, so that stride +-1 (overlap by one element) is one tag away
        io(int_code{static_cast<std::int64_t>(wrap_mul<std::uint64_t>(heads, head_dim))}, token_stride);
        io(int_code{static_cast<std::int64_t>(head_dim)}, head_stride);
    }
    std::string describe() const {
        static const char* places[] = {"arena0", "arena1", "arena2", "arena3", "null", "wild"};
        std::string s = std::string(place < 6 ? places[place] : "arena?") + "+" + std::to_string(offset) + " " +
                        std::to_string(tokens) + "x" + std::to_string(heads) + "x" + std::to_string(head_dim);
        if (contiguous & 1) return s + " contiguous";
        return s + " strides(" + std::to_string(token_stride) + ", " + std::to_string(head_stride) + ")";
    }
};

// Seed helpers: a contiguous [tokens, heads, head_dim] view, and one with explicit strides.
inline view_spec contiguous_view(std::uint8_t place, std::uint64_t offset, std::uint64_t tokens, std::uint64_t heads,
                                 std::uint64_t head_dim) {
    view_spec v;
    v.place = place;
    v.offset = offset;
    v.tokens = tokens;
    v.heads = heads;
    v.head_dim = head_dim;
    v.contiguous = 1;
    return v;
}
inline view_spec strided_view(std::uint8_t place, std::uint64_t offset, std::uint64_t tokens, std::uint64_t heads,
                              std::uint64_t head_dim, std::int64_t token_stride, std::int64_t head_stride) {
    view_spec v = contiguous_view(place, offset, tokens, heads, head_dim);
    v.contiguous = 0;
    v.token_stride = token_stride;
    v.head_stride = head_stride;
    return v;
}

// A view as the model sees it.
struct model_view {
    std::string name;
    std::uintptr_t address = 0;
    std::size_t element_size = 0;
    std::uint64_t tokens = 0, heads = 0, head_dim = 0;
    std::int64_t token_stride = 0, head_stride = 0;
    bool sane = true;  // non-negative strides, not null, no overflow: its rows are real memory

    bool has_rows() const noexcept { return tokens != 0 && heads != 0 && head_dim != 0; }
    bool same_fields(const model_view& o) const noexcept {
        return address == o.address && tokens == o.tokens && heads == o.heads && head_dim == o.head_dim &&
               token_stride == o.token_stride && head_stride == o.head_stride;
    }
    // Row (t, h) is the very same memory in both views, for every (t, h).
    bool same_rows(const model_view& o) const noexcept {
        return address == o.address && tokens == o.tokens && heads == o.heads && head_dim == o.head_dim &&
               (tokens < 2 || token_stride == o.token_stride) && (heads < 2 || head_stride == o.head_stride);
    }
    u128 extent() const noexcept {  // elements from the first to one past the last, sane views only
        return u128(tokens - 1) * u128(token_stride) + u128(heads - 1) * u128(head_stride) + head_dim;
    }
    std::uintptr_t first_element() const noexcept { return address / element_size; }
};

// The documented checks of one view.
inline void view_violations(model_view& v, verdict& out) {
    v.sane = true;
    if (v.token_stride < 0) out.must_invalid(v.name + ".token_stride"), v.sane = false;
    if (v.head_stride < 0) out.must_invalid(v.name + ".head_stride"), v.sane = false;
    if (!v.has_rows()) return;
    if (v.address == 0) out.must_invalid(v.name + ".data is null"), v.sane = false;
    if (v.token_stride < 0 || v.head_stride < 0) return;
    const u128 extent = v.extent();
    const u128 ptrdiff_max = static_cast<u128>(PTRDIFF_MAX);
    if (extent > ptrdiff_max || extent * v.element_size > ptrdiff_max ||
        u128(v.address) + extent * v.element_size > u128(~std::uintptr_t{0})) {
        out.must_invalid(v.name + " size overflows");
        v.sane = false;
    }
}

enum class truth { no, yes, unknown };

// The sorted starts of a sane view's rows, in elements; nullopt when there are too many.
inline std::optional<std::vector<u128>> row_starts(const model_view& v, bool distinct) {
    std::vector<u128> starts;
    if (!v.has_rows()) return starts;
    const std::uint64_t tokens = distinct && v.token_stride == 0 ? 1 : v.tokens;
    const std::uint64_t heads = distinct && v.head_stride == 0 ? 1 : v.heads;
    if (u128(tokens) * heads > max_rows) return std::nullopt;
    starts.reserve(static_cast<std::size_t>(tokens * heads));
    for (std::uint64_t t = 0; t < tokens; ++t)
        for (std::uint64_t h = 0; h < heads; ++h)
            starts.push_back(u128(v.first_element()) + u128(t) * u128(v.token_stride) + u128(h) * u128(v.head_stride));
    std::sort(starts.begin(), starts.end());
    if (distinct) starts.erase(std::unique(starts.begin(), starts.end()), starts.end());
    return starts;
}

// The documented guarantee: a view whose rows nest (one stride clears a row, the other clears
// every row along the first) is accepted.
inline bool rows_nest(const model_view& v) {
    const u128 d = v.head_dim, ts = static_cast<u128>(v.token_stride), hs = static_cast<u128>(v.head_stride);
    if (v.tokens <= 1 && v.heads <= 1) return true;
    if (v.tokens <= 1) return hs >= d;
    if (v.heads <= 1) return ts >= d;
    return (ts >= d && hs >= (v.tokens - 1) * ts + d) || (hs >= d && ts >= (v.heads - 1) * hs + d);
}

// Whether two of a view's rows share an element.
inline truth rows_overlap(const model_view& v) {
    if (!v.has_rows()) return truth::no;
    if ((v.tokens > 1 && v.token_stride == 0) || (v.heads > 1 && v.head_stride == 0)) return truth::yes;
    // Nesting rows are apart (each row's successor along one stride starts past it, and each block
    // along that stride ends before the next along the other): no need to enumerate them.
    if (rows_nest(v)) return truth::no;
    const auto starts = row_starts(v, false);
    if (!starts) return truth::unknown;
    for (std::size_t i = 1; i < starts->size(); ++i)
        if ((*starts)[i] - (*starts)[i - 1] < v.head_dim) return truth::yes;
    return truth::no;
}

// The documented guarantee: views whose address ranges are disjoint, or that share a token stride
// with each token's block of rows side by side (slices of one packed projection, two or more
// tokens each), are accepted as not overlapping.
inline bool views_apart(const model_view& a, const model_view& b) {
    if (!a.has_rows() || !b.has_rows()) return true;
    const u128 a0 = a.address, a1 = a0 + a.extent() * a.element_size;
    const u128 b0 = b.address, b1 = b0 + b.extent() * b.element_size;
    if (a1 <= b0 || b1 <= a0) return true;
    const u128 period = static_cast<u128>(a.token_stride);
    if (a.token_stride != b.token_stride || period == 0 || a.tokens < 2 || b.tokens < 2) return false;
    const u128 block_a = u128(a.heads - 1) * u128(a.head_stride) + a.head_dim;
    const u128 block_b = u128(b.heads - 1) * u128(b.head_stride) + b.head_dim;
    if (block_a > period || block_b > period) return false;
    const i128 diff = static_cast<i128>(b.first_element()) - static_cast<i128>(a.first_element());
    const i128 p = static_cast<i128>(period);
    const u128 r = static_cast<u128>(((diff % p) + p) % p);  // b's block within a's period
    return r >= block_a && r + block_b <= period;
}

// Whether a row of a and a row of b share an element.
inline truth views_overlap(const model_view& a, const model_view& b) {
    if (!a.has_rows() || !b.has_rows()) return truth::no;
    if (views_apart(a, b)) return truth::no;  // disjoint ranges, or blocks side by side in each token
    const auto sa = row_starts(a, true), sb = row_starts(b, true);
    if (!sa || !sb) return truth::unknown;
    for (const u128 s : *sb) {
        // an a-row [x, x + a.head_dim) meets [s, s + b.head_dim) iff s - a.head_dim < x < s + b.head_dim
        const u128 lo = s + 1 >= a.head_dim ? s + 1 - a.head_dim : 0;
        const auto it = std::lower_bound(sa->begin(), sa->end(), lo);
        if (it != sa->end() && *it < s + b.head_dim) return truth::yes;
    }
    return truth::no;
}

// ------------------------------------------------------------------------------------------------
// The tables, built once per (type, rotary_dim, max_positions, base) and kept: the apply targets
// test the kernels and the checks, the table target the tables (and the angles at large positions).
template <class C>
const rotary::rope_table<C>& cached_table(std::size_t rotary_dim, std::size_t max_positions, double base) {
    static std::map<std::tuple<std::size_t, std::size_t, double>, std::unique_ptr<rotary::rope_table<C>>> tables;
    auto& t = tables[{rotary_dim, max_positions, base}];
    if (!t) t = std::make_unique<rotary::rope_table<C>>(rotary_dim, max_positions, base);
    return *t;
}

// The same for the table-free source (rotary_dim <= rope_angles' limit: the cache never holds one
// whose constructor throws).
template <class C>
const rotary::rope_angles<C>& cached_angles(std::size_t rotary_dim, double base) {
    static std::map<std::pair<std::size_t, double>, std::unique_ptr<rotary::rope_angles<C>>> angles;
    auto& a = angles[{rotary_dim, base}];
    if (!a) a = std::make_unique<rotary::rope_angles<C>>(rotary_dim, base);
    return *a;
}

// The oracle's theta_i of (rotary_dim, base), computed once per pair of them (powl per pair and
// call was a tenth of the apply targets' time).
inline const std::vector<long double>& cached_oracle_thetas(std::size_t rotary_dim, double base) {
    static std::map<std::pair<std::size_t, double>, std::vector<long double>> thetas;
    auto& t = thetas[{rotary_dim, base}];
    if (t.empty())
        for (std::size_t p = 0; p < rotary_dim / 2; ++p) t.push_back(oracle_theta(p, rotary_dim, base));
    return t;
}

// f(T{}) for the buffers' element type: bits 0-1 of `element`: fp32, fp64, fp16, bf16.
template <class F>
void with_buffer_type(std::uint8_t element, F&& f) {
    switch (element % 4) {
        case 1: return f(double{});
        case 2: return f(Eigen::half{});
        case 3: return f(Eigen::bfloat16{});
        default: return f(float{});
    }
}

// ------------------------------------------------------------------------------------------------
// The 2D axial tables (axial_frequencies), cached as the others; rotary_dim a positive multiple of 4.
template <class C>
const rotary::rope_table<C>& cached_axial_table(std::size_t rotary_dim, std::size_t max_positions, double base) {
    static std::map<std::tuple<std::size_t, std::size_t, double>, std::unique_ptr<rotary::rope_table<C>>> tables;
    auto& t = tables[{rotary_dim, max_positions, base}];
    if (!t) t = std::make_unique<rotary::rope_table<C>>(rotary::axial_frequencies(rotary_dim, base), max_positions);
    return *t;
}

template <std::size_t N, bool TableFree = false, bool MultiAxis = false>
struct rope_call {
    static_assert(N == 1 || N == 2, "apply (1 buffer) or apply_qk (2)");
    static_assert(!(TableFree && MultiAxis), "positions along several axes read a rope_table");

    std::uint8_t element = 0;        // mod 4: fp32, fp64, fp16, bf16 (with_buffer_type)
    std::uint8_t overload = 0;       // bit 0: the in-place overload / the out-of-place one
    std::uint8_t same_mask = 0;      // out-of-place: bit i set passes view in[i] as out[i] too
    std::uint8_t layout_raw = 0;     // cast to rotary::layout as is: 2.. are invalid
    std::uint8_t direction_raw = 0;  // cast to rotary::direction as is
    std::uint8_t pairs_m1 = 31;      // rotary_dim = 2 * (pairs_m1 + 1) below 0x80 (every tail), else 384 or 512
                                     // (table-free: 384, 512, 1024 or 1026, past rope_angles' limit)
    std::uint8_t positions_tag = 2;  // max_positions: 1, 2, 17 or 100 (tag mod 4); table-free: 2^32
    std::uint8_t base_index = 0;     // base 10000 or 10 (bit 0)
    // Table-free only: bit 0 of by_hand builds the rope_angles from a rope_frequencies of theta_i =
    // base^(-2i/rotary_dim) with theta[odd_index % pairs] = odd_theta and the given attention factor
    // (any of them hostile); else rope_angles(rotary_dim, base).
    std::uint8_t by_hand = 0;
    std::uint8_t odd_index = 0;
    double odd_theta = 1.0;
    double attention = 1.0;
    view_spec in[N], out[N];
    std::uint64_t token_begin = 0, token_end = rotary::apply_options::all_tokens;
    std::uint8_t position_kind = 0;  // 0 offset, 1 int32 ids, 2 int64 ids (mod 3)
    std::int64_t start = 0;
    std::uint64_t ids_count = 0;
    std::uint8_t ids_null = 0;
    std::vector<std::int64_t> ids;   // the first min(ids_count, max_ids) ids
                                     // (MultiAxis: of axes * ids_count, axis after axis)
    // MultiAxis only (position_kind bit 0 then picks int32 / int64 ids; ids_count is per axis).
    std::uint8_t axial = 0;          // bit 0: the table of axial_frequencies (2D axial RoPE)
    std::uint8_t axes = 3;           // axis_positions' axis count, as is
    std::uint8_t section_count = 3;  // sections passed to from_ids, as is
    std::vector<std::uint64_t> sections;  // the first min(section_count, max_sections) of them
    std::uint8_t balance = 1;        // bit 0: the last section makes them add up to rotary_dim/2
    std::uint8_t text_mask = 0;      // bit t (t < 8): token t's ids on every axis are axis 0's
    std::uint8_t value_mode = 0;     // see value_source
    std::uint32_t value_seed = 0;

    bool out_of_place() const noexcept { return overload & 1; }
    bool out_is_in(std::size_t i) const noexcept { return !out_of_place() || ((same_mask >> i) & 1); }
    // Few table shapes, so that the tables stay cached (each costs max_positions * pairs angles); the
    // edges of the table come from the positions, which are decoded relative to its size.
    std::size_t rotary_dim() const noexcept {
        static const std::size_t wide[] = {384, 512, 1024, 1026};
        if (pairs_m1 < 0x80) return 2 * (std::size_t{pairs_m1} + 1);
        return TableFree ? wide[pairs_m1 & 3] : wide[pairs_m1 & 1];
    }
    std::uint64_t max_positions() const noexcept {
        static const std::uint64_t sizes[] = {1, 2, 17, 100};
        return TableFree ? rotary::rope_angles<float>::max_positions() : sizes[positions_tag % 4];
    }
    bool given_frequencies() const noexcept { return TableFree && (by_hand & 1); }
    double base() const noexcept { return base_index & 1 ? 10.0 : 10000.0; }
    int kind() const noexcept { return MultiAxis ? 1 + (position_kind & 1) : position_kind % 3; }

    // MultiAxis: the sections passed to from_ids, the ids one axis_positions holds, token t's id on
    // axis a (as the ids array holds it: int32 ids truncated), and whether the library reads the ids
    // (every check before them passes).
    std::vector<std::size_t> section_list() const {
        std::vector<std::size_t> list(section_count, 0);
        for (std::size_t a = 0; a < sections.size(); ++a) list[a] = static_cast<std::size_t>(sections[a]);
        if ((balance & 1) && !list.empty()) {
            u128 others = 0;
            for (std::size_t a = 0; a + 1 < list.size(); ++a) others += list[a];
            if (others <= rotary_dim() / 2) list.back() = rotary_dim() / 2 - static_cast<std::size_t>(others);
        }
        return list;
    }
    // The axis whose position rotates each pair (all 0 with one position per token).
    std::vector<std::size_t> pair_axes() const {
        std::vector<std::size_t> axis(rotary_dim() / 2, 0);
        if (!MultiAxis) return axis;
        std::size_t p = 0;
        const auto list = section_list();
        for (std::size_t a = 0; a < list.size(); ++a)
            for (std::size_t n = 0; n < list[a] && p < axis.size(); ++n) axis[p++] = a;
        return axis;
    }
    u128 id_total() const noexcept { return u128(axes) * ids_count; }
    std::int64_t axis_id(std::size_t a, std::uint64_t t) const {
        const u128 i = u128(t < 8 && ((text_mask >> t) & 1) ? 0 : a) * ids_count + t;
        const std::int64_t id = i < ids.size() ? ids[static_cast<std::size_t>(i)] : 0;
        return kind() == 1 ? static_cast<std::int32_t>(id) : id;
    }
    bool axes_checked_fine(std::uint64_t tokens) const {
        u128 sum = 0;
        for (const std::size_t n : section_list()) sum += n;
        return axes >= 1 && axes <= rotary::axis_positions::max_axes && section_count == axes &&
               sum == rotary_dim() / 2 && ids_count == tokens;
    }

    template <class IO>
    void code(IO& io) {
        io(byte_code{}, element);
        io(byte_code{}, overload);
        io(byte_code{}, same_mask);
        io(byte_code{}, layout_raw);
        io(byte_code{}, direction_raw);
        io(byte_code{}, pairs_m1);
        io(byte_code{}, positions_tag);
        io(byte_code{}, base_index);
        if constexpr (TableFree) {
            io(byte_code{}, by_hand);
            if (by_hand & 1) {
                io(byte_code{}, odd_index);
                io(double_code{}, odd_theta);
                io(double_code{}, attention);
            }
        }
        for (std::size_t i = 0; i < N; ++i) in[i].code(io);
        for (std::size_t i = 0; i < N; ++i)
            if (!out_is_in(i)) out[i].code(io);
        io(size_code{in[0].tokens}, token_begin);
        io(size_code{in[0].tokens}, token_end);
        if constexpr (MultiAxis) {
            io(byte_code{}, axial);
            io(byte_code{}, axes);
            io(byte_code{}, section_count);
            io.sequence(sections, std::min<std::size_t>(section_count, max_sections));
            const std::uint64_t even = rotary_dim() / 2 / std::max<std::uint64_t>(axes, 1);  // near: an even split
            for (std::uint64_t& n : sections) io(size_code{even}, n);
            io(byte_code{}, balance);
            io(byte_code{}, position_kind);
            io(size_code{in[0].tokens}, ids_count);
            io(byte_code{}, ids_null);
            io(byte_code{}, text_mask);
            io.sequence(ids, static_cast<std::size_t>(std::min<u128>(id_total(), max_ids)));
            for (std::int64_t& id : ids) io(int_code{static_cast<std::int64_t>(max_positions())}, id);
            io(byte_code{}, value_mode);
            io(raw_code<std::uint32_t>{}, value_seed);
            return;
        }
        io(byte_code{}, position_kind);
        if (kind() == 0) {
            // near: the largest start whose last token still fits in the table
            io(int_code{static_cast<std::int64_t>(wrap_sub<std::uint64_t>(max_positions(), in[0].tokens))}, start);
        } else {
            io(size_code{in[0].tokens}, ids_count);
            io(byte_code{}, ids_null);
            io.sequence(ids, static_cast<std::size_t>(std::min<std::uint64_t>(ids_count, max_ids)));
            for (std::int64_t& id : ids) io(int_code{static_cast<std::int64_t>(max_positions())}, id);
        }
        io(byte_code{}, value_mode);
        io(raw_code<std::uint32_t>{}, value_seed);
    }

    std::string name(std::size_t i, bool output) const {
        static const char* one[2][2] = {{"x", "x"}, {"in", "out"}};
        static const char* two[2][2][2] = {{{"q", "q"}, {"k", "k"}}, {{"q_in", "q_out"}, {"k_in", "k_out"}}};
        return N == 1 ? one[out_of_place()][output] : two[out_of_place()][i][output];
    }

    std::string describe() const {
        std::string s = std::string(N == 1 ? "apply" : "apply_qk") + (MultiAxis ? "(axes)" : "") + "<" + element_name(element) + "> " +
                        (out_of_place() ? "out-of-place" : "in-place") + " layout=" + std::to_string(layout_raw) +
                        " direction=" + std::to_string(direction_raw);
        if (!TableFree)
            s += " table(rotary_dim=" + std::to_string(rotary_dim()) + ", max_positions=" + std::to_string(max_positions()) +
                 ", base=" + std::to_string(base()) + (MultiAxis && (axial & 1) ? ", axial_frequencies" : "") + ")";
        else if (!given_frequencies())
            s += " rope_angles(rotary_dim=" + std::to_string(rotary_dim()) + ", base=" + std::to_string(base()) + ")";
        else
            s += " rope_angles(rope_frequencies{rotary_dim=" + std::to_string(rotary_dim()) + ", base=" +
                 std::to_string(base()) + ", theta[" + std::to_string(odd_index) + " % pairs]=" + std::to_string(odd_theta) +
                 ", attention_factor=" + std::to_string(attention) + "})";
        for (std::size_t i = 0; i < N; ++i) {
            s += " " + name(i, false) + "{" + in[i].describe() + "}";
            if (out_of_place()) s += " " + name(i, true) + (out_is_in(i) ? "{= " + name(i, false) + "}" : "{" + out[i].describe() + "}");
        }
        s += " tokens[" + std::to_string(token_begin) + ", " +
             (token_end == rotary::apply_options::all_tokens ? std::string("all") : std::to_string(token_end)) + ")";
        if (MultiAxis) {
            s += " axis_positions(axes=" + std::to_string(axes) + ", sections{";
            const auto list = section_list();
            for (std::size_t a = 0; a < list.size(); ++a) s += (a ? "," : "") + std::to_string(list[a]);
            s += std::string("}, ids") + (kind() == 1 ? "32" : "64") + (ids_null & 1 ? "(null)" : "") + "[" +
                 std::to_string(axes) + "x" + std::to_string(ids_count) + "]{";
            const u128 shown = ids_count == 0 ? 0 : std::min<u128>(ids.size(), id_total()) / ids_count;
            for (std::uint64_t a = 0; a < std::min<u128>(shown, axes); ++a) {
                s += a ? "; " : "";
                for (std::uint64_t t = 0; t < ids_count; ++t) s += (t ? "," : "") + std::to_string(axis_id(static_cast<std::size_t>(a), t));
            }
            s += "} text_mask=" + std::to_string(text_mask) + ")";
        } else if (kind() == 0) {
            s += " positions=offset " + std::to_string(start);
        } else {
            s += std::string(" positions=ids") + (kind() == 1 ? "32" : "64") + (ids_null & 1 ? "(null)" : "") + "[" +
                 std::to_string(ids_count) + "]{";
            for (std::size_t t = 0; t < ids.size(); ++t) s += (t ? "," : "") + std::to_string(kind() == 1 ? static_cast<std::int32_t>(ids[t]) : ids[t]);
            s += "}";
        }
        return s + " values=mode" + std::to_string(value_mode % 4) + "/seed" + std::to_string(value_seed);
    }

    void run() const {
        with_buffer_type(element, [&](auto t) { run_typed<decltype(t)>(); });
    }

  private:
    template <class T>
    struct placed {
        model_view model;
        rotary::heads_view<T> view;
        int arena = -1;  // -1: not in an allocated arena
        std::uint64_t offset = 0;
    };

    template <class T>
    struct world {
        std::unique_ptr<T[]> arena[arena_count];
        std::size_t arena_size[arena_count] = {};
        std::unique_ptr<T[]> dummy{new T[1]};  // where views of an arena too large to allocate point
        placed<T> in[N], out[N];
        std::unique_ptr<std::int32_t[]> ids32;
        std::unique_ptr<std::int64_t[]> ids64;
        std::size_t ids_bytes = 0;
    };

    // The heads_view of a spec (its data pointer is set once the arenas are placed). false when its
    // constructor threw, as the model said it must.
    template <class T>
    static bool make_view(const view_spec& s, const std::string& name, rotary::heads_view<T>& view) {
        if (!(s.contiguous & 1)) {
            view = rotary::heads_view<T>(nullptr, s.tokens, s.heads, s.head_dim, s.token_stride, s.head_stride);
            return true;
        }
        verdict v;
        const u128 row = u128(s.heads) * s.head_dim;
        if (row > u128(SIZE_MAX))
            v.must_invalid("heads * head_dim overflows");
        else if (row > u128(PTRDIFF_MAX))
            v.must_invalid("does not fit in ptrdiff_t");
        if (s.head_dim > std::uint64_t{PTRDIFF_MAX}) v.must_invalid("does not fit in ptrdiff_t");  // the head stride
        if (!call_checked(v, name + " constructor", [&] { view = rotary::heads_view<T>(nullptr, s.tokens, s.heads, s.head_dim); }))
            return false;
        check(view.token_stride == static_cast<std::ptrdiff_t>(row) && view.head_stride == static_cast<std::ptrdiff_t>(s.head_dim),
              name + ": the contiguous constructor's strides");
        return true;
    }

    template <class T>
    static u128 arena_need(const view_spec& s, const rotary::heads_view<T>& v) {
        if (v.tokens == 0 || v.heads == 0 || v.head_dim == 0) return s.offset;
        if (v.token_stride < 0 || v.head_stride < 0) return u128(s.offset) + v.head_dim;
        return u128(s.offset) + u128(v.tokens - 1) * u128(v.token_stride) + u128(v.heads - 1) * u128(v.head_stride) +
               v.head_dim;
    }

    template <class T>
    void place(world<T>& w, const view_spec& s, placed<T>& p, const std::string& name) const {
        T* data = nullptr;
        if (s.place < arena_count) {
            if (w.arena[s.place]) {
                data = w.arena[s.place].get() + s.offset;
                p.arena = s.place;
                p.offset = s.offset;
            } else {
                data = w.dummy.get();
            }
        } else if (s.place == 5) {
            data = reinterpret_cast<T*>(wild_base + (s.offset % 256) * sizeof(T));
        }
        p.view.data = data;
        p.model = {name, reinterpret_cast<std::uintptr_t>(data), sizeof(T), p.view.tokens, p.view.heads,
                   p.view.head_dim, p.view.token_stride, p.view.head_stride, true};
    }

    // The contract, from the README and the headers' comments, written without the library's code.
    verdict model(model_view (&ins)[N], model_view (&outs)[N]) const {
        verdict v;
        if (layout_raw > 1) v.must_invalid("layout");
        if (direction_raw > 1) v.must_invalid("direction");
        for (std::size_t i = 0; i < N; ++i) {
            model_view& a = ins[i];
            model_view& b = outs[i];
            view_violations(a, v);
            if (!a.same_fields(b)) view_violations(b, v);
            else b.sane = a.sane;
            if (a.tokens != b.tokens || a.heads != b.heads || a.head_dim != b.head_dim) v.must_invalid(b.name + " is ");
            if (rotary_dim() > a.head_dim) v.must_invalid("exceeds " + a.name + ".head_dim");
            if (i > 0 && a.tokens != ins[0].tokens) v.must_invalid(a.name + ".tokens");
        }
        const auto overlap = [&](truth t, const std::string& keyword, bool guaranteed_apart) {
            if (t == truth::yes)
                v.must_invalid(keyword);
            else if (!guaranteed_apart)
                v.may(error_kind::invalid_argument, keyword);
        };
        bool in_place[N];
        for (std::size_t i = 0; i < N; ++i) {
            const model_view& a = ins[i];
            const model_view& b = outs[i];
            in_place[i] = !out_of_place() || a.same_rows(b);
            if (b.sane && b.has_rows()) {
                const truth t = rows_overlap(b);
                if (t != truth::no || !rows_nest(b)) {  // either name: an out equal to in is in
                    overlap(t, b.name + " rows overlap", rows_nest(b));
                    overlap(t, a.name + " rows overlap", rows_nest(b));
                }
            }
            if (!in_place[i] && a.sane && b.sane) overlap(views_overlap(a, b), "overlap in memory", views_apart(a, b));
        }
        for (std::size_t i = 0; i < N; ++i)
            for (std::size_t j = 0; j < N; ++j) {
                if (i == j || !outs[i].sane) continue;
                if (i < j && outs[j].sane)
                    overlap(views_overlap(outs[i], outs[j]), "overlap in memory", views_apart(outs[i], outs[j]));
                if (!in_place[j] && ins[j].sane)
                    overlap(views_overlap(outs[i], ins[j]), "overlap in memory", views_apart(outs[i], ins[j]));
            }
        const std::uint64_t tokens = ins[0].tokens;
        const std::uint64_t end = token_end == rotary::apply_options::all_tokens ? tokens : token_end;
        if (token_begin > end || end > tokens) {
            v.must_range("token range");
            return v;
        }
        const std::uint64_t max = max_positions();
        if constexpr (MultiAxis) {
            // multi_axis.hpp: 1 .. 4 axes, one section per axis, the sections adding up to
            // rotary_dim/2, one id per token on each axis, and every id the call reads (tokens in
            // the range, every axis) in [0, max_positions).
            if (axes < 1 || axes > rotary::axis_positions::max_axes) v.must_invalid("axes must be 1 .. 4");
            if (section_count != axes) v.must_invalid("sections for");
            u128 sum = 0;
            for (const std::size_t n : section_list()) sum += n;
            if (sum != rotary_dim() / 2) v.must_invalid("add up to");
            if (ids_count != tokens) v.must_invalid("axis positions count");
            if (!axes_checked_fine(tokens) || end == token_begin) return v;
            if (ids_null & 1) {
                v.must_invalid("axis position ids pointer is null");
                return v;
            }
            for (std::size_t a = 0; a < axes; ++a)
                for (std::uint64_t t = token_begin; t < end; ++t) {
                    const std::int64_t id = axis_id(a, t);
                    const std::string where = "ids[" + std::to_string(a) + "][" + std::to_string(t) + "]";
                    if (id < 0) v.must_invalid(where);
                    if (id >= 0 && static_cast<std::uint64_t>(id) >= max) v.must_range(where);
                }
            return v;
        }
        if (kind() == 0) {
            if (start < 0)
                v.must_invalid("position offset");
            else if (end > token_begin && i128(start) + i128(end - 1) >= i128(max))
                v.must_range("max_positions");
            return v;
        }
        if (ids_count != tokens) {
            v.must_invalid("ids count");
            return v;
        }
        if (end == token_begin) return v;
        if (ids_null & 1) {
            v.must_invalid("ids pointer is null");
            return v;
        }
        for (std::uint64_t t = token_begin; t < end; ++t) {
            const std::int64_t id = kind() == 1 ? static_cast<std::int32_t>(ids[t]) : ids[t];
            if (id < 0) v.must_invalid("ids[" + std::to_string(t) + "]");
            if (id >= 0 && static_cast<std::uint64_t>(id) >= max) v.must_range("ids[" + std::to_string(t) + "]");
        }
        return v;
    }

    // What a valid call must leave in each arena element.
    template <class T>
    struct expectation {
        std::vector<std::uint32_t> slot[arena_count];  // index into rotated, or none / copy
        struct rotated {
            long double ref;
            pair_bound<T> bound;
            bool zone;
            bool unchecked;  // Inf or NaN by rounding (see expected()): neither result is compared
        };
        std::vector<rotated> values;
        static constexpr std::uint32_t untouched = 0xFFFFFFFF, copied = 0xFFFFFFFE;
        std::vector<T> copies[arena_count];  // the value of each copied element
    };

    template <class T>
    expectation<T> expected(const world<T>& w, const std::vector<T> (&pristine)[arena_count], std::uint64_t begin,
                            std::uint64_t end, const std::vector<std::int64_t>& positions_of,  // [token - begin][pair]
                            const std::vector<long double>& theta, long double attention) const {
        expectation<T> e;
        for (std::size_t a = 0; a < arena_count; ++a) {
            e.slot[a].assign(w.arena_size[a], expectation<T>::untouched);
            e.copies[a].assign(w.arena_size[a], T(0));
        }
        const std::size_t rd = rotary_dim(), pairs = rd / 2;
        const bool interleaved = layout_raw == 0;
        const long double sign = direction_raw == 1 ? -1.0L : 1.0L;
        // cos and sin of each token's angles, once for all heads and buffers
        std::vector<cos_sin_ld> angles(static_cast<std::size_t>((end - begin) * pairs));
        std::vector<long double> angle_error(angles.size());
        const long double angle_scale = given_frequencies() ? 0x1p-68L : 0x1p-60L;  // see bound_for
        for (std::uint64_t t = begin; t < end; ++t)
            for (std::size_t p = 0; p < pairs; ++p) {
                const std::size_t k = static_cast<std::size_t>((t - begin) * pairs + p);
                const std::int64_t m = positions_of[k];
                angles[k] = oracle_cos_sin(static_cast<std::uint64_t>(m), theta[p]);
                angles[k].sin *= sign;
                angle_error[k] = std::fabs(static_cast<long double>(m) * theta[p]) * angle_scale;
            }
        const auto set = [&](std::size_t arena, std::uint64_t index, std::uint32_t value) {
            if (e.slot[arena][index] != expectation<T>::untouched) fail("model: an element written twice");
            e.slot[arena][index] = value;
        };
        for (std::size_t i = 0; i < N; ++i) {
            const placed<T>& x = w.in[i];
            const placed<T>& y = out_is_in(i) ? w.in[i] : w.out[i];
            const bool in_place = !out_of_place() || x.model.same_rows(y.model);
            const auto& v = x.view;
            for (std::uint64_t t = begin; t < end; ++t) {
                for (std::uint64_t h = 0; h < v.heads; ++h) {
                    const std::uint64_t src = x.offset + t * static_cast<std::uint64_t>(v.token_stride) + h * static_cast<std::uint64_t>(v.head_stride);
                    const std::uint64_t dst = y.offset + t * static_cast<std::uint64_t>(y.view.token_stride) + h * static_cast<std::uint64_t>(y.view.head_stride);
                    const std::vector<T>& input = pristine[x.arena];
                    for (std::size_t p = 0; p < pairs; ++p) {
                        const std::size_t i0 = interleaved ? 2 * p : p, i1 = interleaved ? 2 * p + 1 : p + pairs;
                        const long double x0 = to_ld(input[src + i0]), x1 = to_ld(input[src + i1]);
                        const std::size_t k = static_cast<std::size_t>((t - begin) * pairs + p);
                        const long double c = attention * angles[k].cos, s = attention * angles[k].sin;
                        const long double y0 = x0 * c - x1 * s, y1 = x1 * c + x0 * s;
                        const pair_bound<T> bound = bound_for<T>(x0, x1, attention, angle_error[k]);
                        // the products overflow (or not) in the compute type, the results on store
                        using C = rotary::compute_type_t<T>;
                        const bool product_zone = near_overflow<C>(x0 * c) || near_overflow<C>(x1 * s) ||
                                                  near_overflow<C>(x1 * c) || near_overflow<C>(x0 * s);
                        const bool zone = product_zone || near_overflow<T>(y0) || near_overflow<T>(y1);
                        // A product at or past C's overflow (an attention factor above 1, or an input
                        // within 2^-10 of the largest value) may give Inf - Inf = NaN on one path and
                        // Inf on another (an FMA does not round the product); with an infinite input,
                        // a cos or sin that is not 0 but rounds to 0 in C (below its smallest
                        // subnormal: a tiny theta given by hand) gives Inf * 0 = NaN where the oracle
                        // has Inf. Either is right: such a pair is compared neither with the oracle
                        // nor between backends.
                        const auto vanishes = [](long double v) { return v != 0 && std::fabs(v) <= limit<C>::denorm_min(); };
                        const bool either = product_zone || ((std::isinf(x0) || std::isinf(x1)) && (vanishes(c) || vanishes(s)));
                        set(y.arena, dst + i0, static_cast<std::uint32_t>(e.values.size()));
                        e.values.push_back({y0, bound, zone, either});
                        set(y.arena, dst + i1, static_cast<std::uint32_t>(e.values.size()));
                        e.values.push_back({y1, bound, zone, either});
                    }
                    if (!in_place)
                        for (std::size_t k = rd; k < v.head_dim; ++k) {
                            set(y.arena, dst + k, expectation<T>::copied);
                            e.copies[y.arena][dst + k] = input[src + k];
                        }
                }
            }
        }
        return e;
    }

    template <class T, class Source, class Positions>
    void invoke(const rotary_test::backend& b, const Source& table, const world<T>& w,
                const Positions& pos, const rotary::apply_options& o) const {
        const auto l = static_cast<rotary::layout>(layout_raw);
        const auto out = [&](std::size_t i) { return out_is_in(i) ? w.in[i].view : w.out[i].view; };
        const auto in = [&](std::size_t i) { return rotary::heads_view<const T>(w.in[i].view); };
        if (b.name == dispatch_backend) {  // rotary::dispatch, the arch its registry picks for this CPU
            if constexpr (N == 1) {
                if (!out_of_place())
                    rotary::dispatch::apply(table, l, w.in[0].view, pos, o);
                else
                    rotary::dispatch::apply<T>(table, l, in(0), out(0), pos, o);
            } else {
                if (!out_of_place())
                    rotary::dispatch::apply_qk(table, l, w.in[0].view, w.in[1].view, pos, o);
                else
                    rotary::dispatch::apply_qk<T>(table, l, in(0), out(0), in(1), out(1), pos, o);
            }
            return;
        }
        if constexpr (MultiAxis) {
            // the public entry points (default arch), or the job through the kernel set's multi-axis kernel
            if (b.kernels == nullptr) {
                if constexpr (N == 1) {
                    if (!out_of_place())
                        rotary::apply(table, l, w.in[0].view, pos, o);
                    else
                        rotary::apply<xsimd::default_arch, T>(table, l, in(0), out(0), pos, o);
                } else {
                    if (!out_of_place())
                        rotary::apply_qk(table, l, w.in[0].view, w.in[1].view, pos, o);
                    else
                        rotary::apply_qk<xsimd::default_arch, T>(table, l, in(0), out(0), in(1), out(1), pos, o);
                }
                return;
            }
            const auto run = [&](const auto& job) { b.kernels->template rotate_multi_axis<T>()(job, job.range.begin, job.range.end); };
            if constexpr (N == 1) {
                if (!out_of_place())
                    run(rotary::detail::job_in_place(table, l, w.in[0].view, pos, o));
                else
                    run(rotary::detail::job_out_of_place<T>(table, l, in(0), out(0), pos, o));
            } else {
                if (!out_of_place())
                    run(rotary::detail::job_qk_in_place(table, l, w.in[0].view, w.in[1].view, pos, o));
                else
                    run(rotary::detail::job_qk_out_of_place<T>(table, l, in(0), out(0), in(1), out(1), pos, o));
            }
        } else if constexpr (N == 1) {
            if (!out_of_place())
                rotary_test::apply_in_place(b, table, l, w.in[0].view, pos, o);
            else
                rotary_test::apply_out_of_place<T>(b, table, l, in(0), out(0), pos, o);
        } else {
            if (!out_of_place())
                rotary_test::apply_qk_in_place(b, table, l, w.in[0].view, w.in[1].view, pos, o);
            else
                rotary_test::apply_qk_out_of_place<T>(b, table, l, in(0), out(0), in(1), out(1), pos, o);
        }
    }

    template <class T>
    void run_typed() const {
        using C = rotary::compute_type_t<T>;
        const std::size_t rd = rotary_dim(), pairs = rd / 2;
        std::vector<long double> theta = cached_oracle_thetas(rd, base());
        if constexpr (MultiAxis) {
            if (!(axial & 1)) return run_with<T>(cached_table<C>(rd, max_positions(), base()), theta, 1.0L);
            // 2D axial RoPE: each half of the pairs has the 1-D frequencies of a head of rotary_dim/2
            verdict v;
            if (rd % 4 != 0) v.must_invalid("rotary_dim of 2D axial RoPE");
            if (v.must_reject()) {
                call_checked(v, "axial_frequencies", [&] { rotary::axial_frequencies(rd, base()); });
                return;
            }
            const std::vector<long double>& half = cached_oracle_thetas(rd / 2, base());
            for (std::size_t p = 0; p < pairs; ++p) theta[p] = half[p % (pairs / 2)];
            run_with<T>(cached_axial_table<C>(rd, max_positions(), base()), theta, 1.0L);
        } else if constexpr (!TableFree) {
            run_with<T>(cached_table<C>(rd, max_positions(), base()), theta, 1.0L);
        } else {
            // rope_angles' constructor, and its documented bounds (README.md, table_free.hpp): those
            // of the frequencies (a table's), and a rotary_dim its stack row holds.
            verdict v;
            if (rd > rotary::rope_angles<C>::max_rotary_dim) v.must_invalid("rotary_dim");
            if (!given_frequencies()) {
                if (!v.must_reject()) return run_with<T>(cached_angles<C>(rd, base()), theta, 1.0L);
                call_checked(v, "rope_angles", [&] { rotary::rope_angles<C> angles(rd, base()); });
                return;
            }
            const std::size_t odd = odd_index % pairs;
            theta[odd] = odd_theta;
            if (!(std::fabs(theta[odd]) <= 3.14159265358979323846264338327950288L))  // every frequency has an equivalent there
                v.must_invalid("inverse frequency " + std::to_string(odd));
            if (!(std::isfinite(attention) && attention > 0))
                v.must_invalid("attention_factor");
            else if (attention > limit<C>::max())  // cos and sin times it are rounded to C, as in a table of C
                v.must_invalid("attention_factor");
            rotary::rope_frequencies frequencies;
            frequencies.inverse = theta;
            frequencies.attention_factor = attention;
            std::unique_ptr<rotary::rope_angles<C>> angles;
            if (!call_checked(v, "rope_angles", [&] { angles = std::make_unique<rotary::rope_angles<C>>(frequencies); }))
                return;
            check(angles->rotary_dim() == rd && angles->pairs() == pairs && angles->frequencies().attention_factor == attention,
                  "rope_angles: rotary_dim, pairs or attention_factor");
            run_with<T>(*angles, theta, attention);
        }
    }

    // One call with the cos/sin of `source` (a rope_table or a rope_angles), whose frequencies are
    // theta (the oracle's) and attention factor `attention`.
    template <class T, class Source>
    void run_with(const Source& source, const std::vector<long double>& theta, long double attention) const {
        world<T> w;

        // The views, then the arenas sized to exactly what the views in them span.
        for (std::size_t i = 0; i < N; ++i) {
            if (!make_view(in[i], name(i, false), w.in[i].view)) return note("a view constructor threw, as it must");
            if (!out_is_in(i) && !make_view(out[i], name(i, true), w.out[i].view))
                return note("a view constructor threw, as it must");
        }
        u128 need[arena_count] = {};
        const auto account = [&](const view_spec& s, const rotary::heads_view<T>& v) {
            if (s.place < arena_count) need[s.place] = std::max(need[s.place], arena_need(s, v));
        };
        for (std::size_t i = 0; i < N; ++i) {
            account(in[i], w.in[i].view);
            if (!out_is_in(i)) account(out[i], w.out[i].view);
        }
        value_source values(value_seed);
        for (std::size_t a = 0; a < arena_count; ++a) {
            if (need[a] > max_arena) continue;
            w.arena_size[a] = static_cast<std::size_t>(need[a]);
            w.arena[a].reset(new T[w.arena_size[a]]);
            for (std::size_t k = 0; k < w.arena_size[a]; ++k) w.arena[a][k] = values.template value<T>(value_mode);
        }
        w.dummy[0] = T(1);
        for (std::size_t i = 0; i < N; ++i) {
            place(w, in[i], w.in[i], name(i, false));
            if (out_is_in(i)) {
                w.out[i] = w.in[i];
                w.out[i].model.name = name(i, true);
            } else {
                place(w, out[i], w.out[i], name(i, true));
            }
        }

        // The positions: ids in an array of exactly ids_count elements.
        const std::uint64_t tokens = in[0].tokens;
        rotary::positions pos = rotary::positions::starting_at(start);
        std::optional<rotary::axis_positions> axis_pos;
        if constexpr (MultiAxis) {
            // ids in an array of exactly axes * ids_count elements, axis after axis
            if (axes_checked_fine(tokens) && id_total() > max_ids) return note("skipped: more ids than the harness models");
            const std::size_t n = id_total() > max_ids ? 1 : static_cast<std::size_t>(id_total());
            const auto id_of = [&](std::size_t i) { return axis_id(static_cast<std::size_t>(i / ids_count), i % ids_count); };
            const std::vector<std::size_t> list = section_list();
            verdict sections_rule;
            if (list.size() > rotary::axis_positions::max_axes) sections_rule.must_invalid("at most 4 axes");
            bool made;
            if (kind() == 1) {
                w.ids32.reset(new std::int32_t[n]);
                for (std::size_t i = 0; i < n; ++i) w.ids32[i] = static_cast<std::int32_t>(id_total() > max_ids ? 0 : id_of(i));
                w.ids_bytes = n * sizeof(std::int32_t);
                made = call_checked(sections_rule, "axis_positions", [&] {
                    axis_pos = rotary::axis_positions::from_ids(ids_null & 1 ? nullptr : w.ids32.get(), axes, ids_count, list);
                });
            } else {
                w.ids64.reset(new std::int64_t[n]);
                for (std::size_t i = 0; i < n; ++i) w.ids64[i] = id_total() > max_ids ? 0 : id_of(i);
                w.ids_bytes = n * sizeof(std::int64_t);
                made = call_checked(sections_rule, "axis_positions", [&] {
                    axis_pos = rotary::axis_positions::from_ids(ids_null & 1 ? nullptr : w.ids64.get(), axes, ids_count, list);
                });
            }
            if (!made) return;
            check(axis_pos->axes() == axes && axis_pos->tokens() == ids_count && axis_pos->sections() == list.size(),
                  "axis_positions: axes, tokens or sections");
        } else if (kind() != 0) {
            if (ids_count > max_ids && ids_count == tokens) return note("skipped: more ids than the harness models");
            const std::size_t n = ids_count > max_ids ? 1 : static_cast<std::size_t>(ids_count);
            if (kind() == 1) {
                w.ids32.reset(new std::int32_t[n]);
                for (std::size_t t = 0; t < n; ++t) w.ids32[t] = t < ids.size() ? static_cast<std::int32_t>(ids[t]) : 0;
                pos = rotary::positions::from_ids(ids_null & 1 ? nullptr : w.ids32.get(), ids_count);
                w.ids_bytes = n * sizeof(std::int32_t);
            } else {
                w.ids64.reset(new std::int64_t[n]);
                for (std::size_t t = 0; t < n; ++t) w.ids64[t] = t < ids.size() ? ids[t] : 0;
                pos = rotary::positions::from_ids(ids_null & 1 ? nullptr : w.ids64.get(), ids_count);
                w.ids_bytes = n * sizeof(std::int64_t);
            }
        }
        rotary::apply_options options;
        options.dir = static_cast<rotary::direction>(direction_raw);
        options.token_begin = token_begin;
        options.token_end = token_end;

        model_view ins[N], outs[N];
        for (std::size_t i = 0; i < N; ++i) {
            ins[i] = w.in[i].model;
            outs[i] = w.out[i].model;
        }
        const verdict v = model(ins, outs);

        // A call the model accepts runs only where its memory exists and its work is bounded.
        const std::uint64_t end = token_end == rotary::apply_options::all_tokens ? tokens : token_end;
        if (!v.must_reject()) {
            u128 work = 0;
            for (std::size_t i = 0; i < N; ++i) {
                for (const placed<T>* p : {&w.in[i], &w.out[i]})
                    if (p->model.has_rows() && p->arena < 0) return note("skipped: a valid view of memory not allocated");
                work += u128(end - token_begin) * w.in[i].view.heads * w.in[i].view.head_dim;
            }
            if (end - token_begin > max_walk || work > max_work) return note("skipped: too much work");
        }

        std::vector<T> pristine[arena_count];
        for (std::size_t a = 0; a < arena_count; ++a) pristine[a].assign(w.arena[a].get(), w.arena[a].get() + w.arena_size[a]);
        const void* ids_data = w.ids32 ? static_cast<const void*>(w.ids32.get()) : static_cast<const void*>(w.ids64.get());
        const std::vector<unsigned char> ids_before(static_cast<const unsigned char*>(ids_data),
                                                    static_cast<const unsigned char*>(ids_data) + w.ids_bytes);
        const auto restore = [&] {
            for (std::size_t a = 0; a < arena_count; ++a)
                if (w.arena_size[a]) std::memcpy(w.arena[a].get(), pristine[a].data(), w.arena_size[a] * sizeof(T));
        };

        // The scalar path first: the SIMD paths are compared with it.
        std::optional<bool> accepted;
        std::optional<expectation<T>> expect;
        std::vector<T> scalar_result[arena_count];
        std::vector<std::int64_t> positions_of;
        note([&] { return "model: " + v.describe(); });
        for (const rotary_test::backend& b : scalar_first_backends()) {
            restore();
            const bool ran = call_checked(v, b.name, [&] {
                if constexpr (MultiAxis)
                    invoke(b, source, w, *axis_pos, options);
                else
                    invoke(b, source, w, pos, options);
            });
            check(!accepted || *accepted == ran, [&] { return b.name + ": backends disagree on whether the call is valid"; });
            accepted = ran;
            if (w.ids_bytes)
                check(std::memcmp(ids_data, ids_before.data(), w.ids_bytes) == 0, [&] { return b.name + ": the ids changed"; });
            if (!ran) {
                check(w.dummy[0] == T(1), [&] { return b.name + ": threw but wrote through a view of an unallocated arena"; });
                for (std::size_t a = 0; a < arena_count; ++a)
                    if (w.arena_size[a] && std::memcmp(w.arena[a].get(), pristine[a].data(), w.arena_size[a] * sizeof(T)) != 0)
                        fail(b.name + ": threw but changed arena" + std::to_string(a));
                continue;
            }
            if (!expect) {
                // the position that rotates pair p of token t, [t - begin][p]: its axis' (MultiAxis)
                const std::size_t pairs = rotary_dim() / 2;
                positions_of.assign(static_cast<std::size_t>(end - token_begin) * pairs, 0);
                const std::vector<std::size_t> axis_of_pair = pair_axes();
                for (std::uint64_t t = token_begin; t < end; ++t)
                    for (std::size_t p = 0; p < pairs; ++p) {
                        const std::uint64_t i = MultiAxis ? axis_of_pair[p] * ids_count + t : t;
                        positions_of[static_cast<std::size_t>(t - token_begin) * pairs + p] =
                            kind() == 0 ? start + static_cast<std::int64_t>(t) : kind() == 1 ? w.ids32[i] : w.ids64[i];
                    }
                expect = expected(w, pristine, token_begin, end, positions_of, theta, attention);
            }
            compare(b, w, pristine, *expect, scalar_result);
            if constexpr (MultiAxis)
                if (end > token_begin) dense_check(b, w, pristine, theta, positions_of);
            if (b.name == "scalar")
                for (std::size_t a = 0; a < arena_count; ++a)
                    scalar_result[a].assign(w.arena[a].get(), w.arena[a].get() + w.arena_size[a]);
            note([&] { return b.name + ": valid, " + std::to_string(expect->values.size()) + " rotated elements checked"; });
        }
    }

    static const std::vector<rotary_test::backend>& scalar_first_backends() {
        static const std::vector<rotary_test::backend> backends = [] {
            std::vector<rotary_test::backend> all = rotary_test::backends();
            all.push_back({dispatch_backend, nullptr});
            std::stable_partition(all.begin(), all.end(), [](const auto& b) { return b.name == "scalar"; });
            return all;
        }();
        return backends;
    }

    // The first head of the first token of the range of view 0 against the dense block-diagonal
    // rotation in double (Eigen): pair p's block turns by m_p theta_p, m_p the position of p's axis
    // (the layout's storage order puts the block on rows i0, i1; the entries past rotary_dim, which
    // the identity keeps, are compared with the input directly). Tolerance: the long double oracle's (bound_for) plus the double matrix's own error,
    // (|m theta| + 4) 2^-52 (|x0| + |x1|). Rows holding a non-finite input, or one past 2^1000, and
    // results next to T's overflow are not compared (a dense product meets Inf * 0 there).
    template <class T>
    void dense_check(const rotary_test::backend& b, const world<T>& w, const std::vector<T> (&pristine)[arena_count],
                     const std::vector<long double>& theta, const std::vector<std::int64_t>& positions_of) const {
        const placed<T>& x = w.in[0];
        const placed<T>& y = out_is_in(0) ? w.in[0] : w.out[0];
        const std::size_t d = static_cast<std::size_t>(x.view.head_dim), rd = rotary_dim(), pairs = rd / 2;
        if (x.view.heads == 0 || d == 0 || x.arena < 0 || y.arena < 0) return;
        const std::uint64_t t = token_begin;
        const std::uint64_t src = x.offset + t * static_cast<std::uint64_t>(x.view.token_stride);
        const std::uint64_t dst = y.offset + t * static_cast<std::uint64_t>(y.view.token_stride);
        for (std::size_t k = rd; k < d; ++k)
            check(std::memcmp(&w.arena[y.arena][dst + k], &pristine[x.arena][src + k], sizeof(T)) == 0,
                  [&] { return b.name + ": dense oracle: element " + std::to_string(k) + " past rotary_dim changed"; });
        Eigen::VectorXd in_row(static_cast<Eigen::Index>(rd));
        for (std::size_t k = 0; k < rd; ++k) {
            const long double v = to_ld(pristine[x.arena][src + k]);
            if (!std::isfinite(v) || std::fabs(v) > 0x1p1000L) return;
            in_row(static_cast<Eigen::Index>(k)) = static_cast<double>(v);
        }
        Eigen::MatrixXd r = Eigen::MatrixXd::Identity(static_cast<Eigen::Index>(rd), static_cast<Eigen::Index>(rd));
        const double sign = direction_raw == 1 ? -1.0 : 1.0;
        std::vector<double> angle(pairs);
        for (std::size_t p = 0; p < pairs; ++p) {
            angle[p] = static_cast<double>(positions_of[p]) * static_cast<double>(theta[p]);
            const auto i0 = static_cast<Eigen::Index>(layout_raw == 0 ? 2 * p : p);
            const auto i1 = static_cast<Eigen::Index>(layout_raw == 0 ? 2 * p + 1 : p + pairs);
            r(i0, i0) = r(i1, i1) = std::cos(angle[p]);
            r(i1, i0) = sign * std::sin(angle[p]);
            r(i0, i1) = -r(i1, i0);
        }
        const Eigen::VectorXd want = r * in_row;
        for (std::size_t k = 0; k < rd; ++k) {
            const long double got = to_ld(w.arena[y.arena][dst + k]);
            const long double ref = want(static_cast<Eigen::Index>(k));
            const std::size_t p = layout_raw == 0 ? k / 2 : k % pairs;
            const long double x0 = in_row(static_cast<Eigen::Index>(layout_raw == 0 ? 2 * p : p));
            const long double x1 = in_row(static_cast<Eigen::Index>(layout_raw == 0 ? 2 * p + 1 : p + pairs));
            const long double size = std::fabs(x0) + std::fabs(x1);
            const long double tol = bound_for<T>(x0, x1, 1.0L, std::fabs(angle[p]) * 0x1p-60L).oracle +
                                    (std::fabs(angle[p]) + 4) * 0x1p-52L * size;
            if (near_overflow<T>(ref) || near_overflow<rotary::compute_type_t<T>>(size)) continue;
            check(agrees(got, ref, tol, false), [&] {
                return b.name + ": dense oracle: element " + std::to_string(k) + " of the first row = " +
                       std::to_string(static_cast<double>(got)) + ", the block-diagonal matrix gives " +
                       std::to_string(static_cast<double>(ref)) + " (tolerance " + std::to_string(static_cast<double>(tol)) + ")";
            });
        }
    }

    // Every arena element against the expectation, and the SIMD results against the scalar one.
    template <class T>
    __attribute__((no_sanitize("coverage"))) static void compare(const rotary_test::backend& b, const world<T>& w,
                                                                 const std::vector<T> (&pristine)[arena_count],
                                                                 const expectation<T>& expect,
                                                                 const std::vector<T> (&scalar_result)[arena_count]) {
        const bool simd = b.name != "scalar";
        for (std::size_t a = 0; a < arena_count; ++a) {
            for (std::size_t k = 0; k < w.arena_size[a]; ++k) {
                const std::uint32_t slot = expect.slot[a][k];
                const T got = w.arena[a][k];
                const auto where = [&] { return b.name + ": arena" + std::to_string(a) + "[" + std::to_string(k) + "]"; };
                if (slot == expectation<T>::untouched) {
                    check(std::memcmp(&got, &pristine[a][k], sizeof(T)) == 0,
                          [&] { return where() + " changed, but the call must not write it"; });
                } else if (slot == expectation<T>::copied) {
                    check(std::memcmp(&got, &expect.copies[a][k], sizeof(T)) == 0,
                          [&] { return where() + " is not a bit-exact copy of the input past rotary_dim"; });
                } else if (!expect.values[slot].unchecked) {
                    const auto& r = expect.values[slot];
                    check(agrees(to_ld(got), r.ref, r.bound.oracle, r.zone), [&] {
                        return where() + " = " + std::to_string(static_cast<double>(to_ld(got))) + ", the oracle says " +
                               std::to_string(static_cast<double>(r.ref)) + " (tolerance " +
                               std::to_string(static_cast<double>(r.bound.oracle)) + ")";
                    });
                    if (simd)
                        check(agrees(to_ld(got), to_ld(scalar_result[a][k]), r.bound.simd, r.zone), [&] {
                            return where() + " = " + std::to_string(static_cast<double>(to_ld(got))) + ", the scalar path gave " +
                                   std::to_string(static_cast<double>(to_ld(scalar_result[a][k])));
                        });
                }
            }
        }
    }
};

// One rotary::apply (one view) or rotary::apply_qk (q and k) call, picked by the input's first byte
// (bit 0: apply_qk): the targets that fuzz both entry points with one kind of cos/sin source and of
// positions (table_free, multi_axis). A target derives from it and adds its seeds().
template <bool TableFree, bool MultiAxis>
struct apply_or_qk_call {
    std::uint8_t qk = 0;  // bit 0: apply_qk
    rope_call<1, TableFree, MultiAxis> one;
    rope_call<2, TableFree, MultiAxis> two;

    template <class IO>
    void code(IO& io) {
        io(byte_code{}, qk);
        if (qk & 1)
            two.code(io);
        else
            one.code(io);
    }
    std::string describe() const { return qk & 1 ? two.describe() : one.describe(); }
    void run() const {
        if (qk & 1)
            two.run();
        else
            one.run();
    }
};

}  // namespace rotary_fuzz
