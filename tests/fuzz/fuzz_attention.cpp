// libFuzzer target: softmax attention (rotary::attention, both overloads) and the KV cache
// (construct, append, attend, a second append, shift), on every backend this CPU runs.
//
// An input decodes to small shapes (attention is O(tokens * kv_tokens * heads * head_dim), so a
// valid call is kept to at most 2^18 multiply-adds; larger valid calls are skipped), to flags that
// break one documented rule each (mismatched shapes, an output on top of an input or of itself, a
// null q, head counts that do not divide, a causal offset or work range out of range, a
// non-finite scale, positions outside the table, a cache overflow, a shift out of range) and to
// repeated rows (stride 0), through which huge token counts reach the checks with tiny buffers.
// Every buffer is allocated to exactly its extent (padded_heads, with gaps that must keep their
// sentinel).
//
// A call the model says is invalid must throw the documented std::invalid_argument or
// std::out_of_range naming the parameter, leaving every buffer (and the cache: its size, positions,
// keys and values) exactly as it was. A valid call runs on the scalar path, the default arch and
// each SIMD arch; each output is compared with the naive long double oracle of Eq. 2
// (attention_support.hpp: full score row, dense softmax) within
//   |o - o_ref| <= 2 max|v| (2 (2 (d + 8) eps A + 8 eps) + (keys + 8) eps),   eps = 2^-23,
// where A = scale * |q| * max_n |k_n| (Euclidean norms, which rotation keeps) bounds every score:
// fp32 rounding of the rotation and of the d-term dot product moves a score by at most
// (d + 8) eps A, which moves each softmax weight by twice that relatively (the max and the sum move
// too), 8 eps covers exp2 and the folding of scale * log2(e); the P V sum over `keys` visible keys
// rounds by (keys + 8) eps max|v|; the factor 2 is margin. Rows that see no key must be exactly 0,
// and every element outside the call's work range (other kv heads' q heads, other tokens, the
// gaps) must keep its old bits.
#include "fuzz.hpp"

#include "../attention_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

ROTARY_DECLARE_ATTENTION_KERNEL_SET(sse2);
ROTARY_DECLARE_ATTENTION_KERNEL_SET(avx2);
ROTARY_DECLARE_ATTENTION_KERNEL_SET(avx512bw);

namespace {

using rotary::attention_options;
using rotary::heads_view;
using rotary::layout;
using rotary::positions;
using rotary_fuzz::check;
using rotary_fuzz::verdict;
using rotary_test::padded_heads;

constexpr long double eps32 = 0x1p-23L;

// Flags that each break one rule of the contract (bits of `bad`).
enum bad_bits : std::uint16_t {
    bad_k_head_dim = 1,      // k.head_dim = q.head_dim + 1
    bad_v_tokens = 2,        // v has one token more than k
    bad_v_heads = 4,         // v has one head more than k
    bad_out_head_dim = 8,    // out.head_dim = v_dim + 1
    bad_out_on_q = 16,       // out is q's own storage
    bad_out_on_v = 32,       // out is v's own storage
    bad_out_self = 64,       // out's heads overlap (head stride v_dim - 1)
    bad_q_null = 128,        // q.data null
    bad_out_tokens = 256,    // out has one token more than q
};

struct attention_call {
    std::uint8_t op = 0;  // 0: attention on rotated q, k; 1: rotating inside; 2: the KV cache
    std::uint8_t causal = 1;
    std::uint8_t offset_given = 0;
    std::int64_t query_offset = 0;
    std::uint8_t scale_given = 0;
    double scale = 0.125;
    std::uint64_t tokens = 4, kv_tokens = 9, q_heads = 4, kv_heads = 2, head_dim = 16, v_dim = 16;
    std::uint16_t bad = 0;
    std::uint8_t repeat_kv_rows = 0;  // k and v repeat one token (token stride 0)
    std::uint8_t gaps = 0;            // bits 0-1: gap after rows; bits 2-5: misalignment in floats
    std::uint64_t kv_head_begin = 0, kv_head_end = attention_options::all;
    std::uint64_t token_begin = 0, token_end = attention_options::all;
    // RoPE (ops 1 and 2)
    std::uint8_t layout_raw = 1;
    std::uint8_t rotary_pairs = 4;  // rotary_dim = 2 * rotary_pairs
    std::uint64_t max_positions = 64;
    std::int64_t q_start = 5, k_start = 0;
    // KV cache (op 2): max_tokens; after the first append and attend, `extra` more tokens, then
    // shift(delta, shift_first, shift_last)
    std::uint64_t max_tokens = 16, extra = 2;
    std::int64_t delta = 3;
    std::uint64_t shift_first = 0, shift_last = 0;
    // values: uniform in [-magnitude, magnitude], magnitude = 2^(magnitude_log2 % 8)
    std::uint8_t magnitude_log2 = 0;
    std::uint32_t value_seed = 1;

    template <class IO>
    void code(IO& io) {
        using rotary_fuzz::byte_code;
        using rotary_fuzz::double_code;
        using rotary_fuzz::int_code;
        using rotary_fuzz::raw_code;
        using rotary_fuzz::size_code;
        io(byte_code{}, op);
        io(byte_code{}, causal);
        io(byte_code{}, offset_given);
        if (offset_given & 1) io(int_code{}, query_offset);
        io(byte_code{}, scale_given);
        if (scale_given & 1) io(double_code{}, scale);
        io(size_code{}, tokens);
        io(size_code{}, kv_tokens);
        io(size_code{}, q_heads);
        io(size_code{}, kv_heads);
        io(size_code{}, head_dim);
        io(size_code{}, v_dim);
        io(raw_code<std::uint16_t>{}, bad);
        io(byte_code{}, repeat_kv_rows);
        io(byte_code{}, gaps);
        io(size_code{kv_heads}, kv_head_begin);
        io(size_code{attention_options::all}, kv_head_end);
        io(size_code{tokens}, token_begin);
        io(size_code{attention_options::all}, token_end);
        io(byte_code{}, layout_raw);
        io(byte_code{}, rotary_pairs);
        io(size_code{}, max_positions);
        io(int_code{}, q_start);
        io(int_code{}, k_start);
        io(size_code{kv_tokens}, max_tokens);
        io(size_code{}, extra);
        io(int_code{}, delta);
        io(size_code{}, shift_first);
        io(size_code{}, shift_last);
        io(byte_code{}, magnitude_log2);
        io(raw_code<std::uint32_t>{}, value_seed);
    }

    std::string describe() const {
        const auto s = [](std::uint64_t v) { return v == attention_options::all ? std::string("all") : std::to_string(v); };
        std::string d = std::string(op % 3 == 0 ? "attention(rotated)" : op % 3 == 1 ? "attention(rotate inside)" : "kv_cache") +
                        " tokens " + s(tokens) + " kv_tokens " + s(kv_tokens) + " q_heads " + s(q_heads) + " kv_heads " +
                        s(kv_heads) + " head_dim " + s(head_dim) + " v_dim " + s(v_dim) + (causal & 1 ? " causal" : "") +
                        (offset_given & 1 ? " query_offset " + std::to_string(query_offset) : "") +
                        (scale_given & 1 ? " scale " + std::to_string(scale) : "") + " bad " + std::to_string(bad) +
                        (repeat_kv_rows & 1 ? " repeated kv rows" : "") + " gaps " + std::to_string(gaps) +
                        " kv heads [" + s(kv_head_begin) + ", " + s(kv_head_end) + ") tokens [" + s(token_begin) + ", " +
                        s(token_end) + ")";
        if (op % 3 != 0)
            d += " layout " + std::to_string(layout_raw) + " rotary_dim " + std::to_string(2 * rotary_pairs) +
                 " max_positions " + s(max_positions) + " q_start " + std::to_string(q_start) + " k_start " +
                 std::to_string(k_start);
        if (op % 3 == 2)
            d += " max_tokens " + s(max_tokens) + " extra " + s(extra) + " delta " + std::to_string(delta) + " shift [" +
                 s(shift_first) + ", " + s(shift_last) + ")";
        return d + " magnitude 2^" + std::to_string(magnitude_log2 % 8) + " seed " + std::to_string(value_seed);
    }

    static std::vector<std::pair<std::string, attention_call>> seeds();
    void run() const;

  private:
    void run_attention() const;
    void run_cache() const;
};

// ------------------------------------------------------------------------------------------------

struct backend {
    std::string name;
    const rotary::attention_kernel_set* kernels;  // null: the public entry point (default arch)
};

std::vector<backend> backends() {
    std::vector<backend> all = {{"default", nullptr}, {"scalar", &rotary_test::scalar_attention_kernels()}};
    if (rotary::cpu_supports<xsimd::sse2>()) all.push_back({"sse2", &rotary_attention_kernel_set_sse2()});
    if (rotary::cpu_supports<xsimd::fma3<xsimd::avx2>>()) all.push_back({"avx2", &rotary_attention_kernel_set_avx2()});
    if (rotary::cpu_supports<xsimd::avx512bw>()) all.push_back({"avx512bw", &rotary_attention_kernel_set_avx512bw()});
    return all;
}

// Saturating arithmetic for the model (sizes come from the input).
std::uint64_t sat_mul(std::uint64_t a, std::uint64_t b) {
    std::uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? ~std::uint64_t{0} : r;
}
std::uint64_t sat_add(std::uint64_t a, std::uint64_t b) {
    std::uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? ~std::uint64_t{0} : r;
}

// The buffers of one call, each allocated to exactly its extent, and the views on them.
struct buffers {
    std::optional<padded_heads> q, k, v, out;
    heads_view<const float> qv, kv, vv;
    heads_view<float> ov;
    bool allocated = false;
};

constexpr std::uint64_t max_elements = std::uint64_t{1} << 16;  // per buffer

// A buffer's rows filled uniformly in [-m, m) from splitmix64 (rotary_fuzz::value_source): the
// tests' padded_heads::fill draws through std::uniform_real_distribution, whose logl per value was a
// third of this target's time.
void fill(padded_heads& x, std::uint64_t seed, double m) {
    if (x.heads == 0 || x.head_dim == 0) return;  // no rows, however many tokens
    rotary_fuzz::value_source values(seed);
    for (std::size_t t = 0; t < x.tokens; ++t)
        for (std::size_t h = 0; h < x.heads; ++h)
            for (std::size_t j = 0; j < x.head_dim; ++j) x.row(t, h)[j] = static_cast<float>(m * values.uniform());
}

// Shapes of q, k, v, out as the call (and its `bad` flags) makes them; allocates them when small.
buffers make_buffers(const attention_call& c, std::uint64_t q_tokens, std::uint64_t k_tokens) {
    buffers b;
    const std::uint64_t k_dim = c.bad & bad_k_head_dim ? sat_add(c.head_dim, 1) : c.head_dim;
    const std::uint64_t v_tokens = c.bad & bad_v_tokens ? sat_add(k_tokens, 1) : k_tokens;
    const std::uint64_t v_heads = c.bad & bad_v_heads ? sat_add(c.kv_heads, 1) : c.kv_heads;
    const std::uint64_t out_dim = c.bad & bad_out_head_dim ? sat_add(c.v_dim, 1) : c.v_dim;
    const std::uint64_t out_tokens = c.bad & bad_out_tokens ? sat_add(q_tokens, 1) : q_tokens;
    const bool repeat = c.repeat_kv_rows & 1;
    // Stored tokens of k and v: one when rows repeat.
    const std::uint64_t k_stored = repeat ? std::min<std::uint64_t>(k_tokens, 1) : k_tokens;
    const std::uint64_t v_stored = repeat ? std::min<std::uint64_t>(v_tokens, 1) : v_tokens;
    // at least one token: padded_heads forms its token stride (heads x padded head_dim) even for none
    const auto elements = [](std::uint64_t t, std::uint64_t h, std::uint64_t d) {
        return sat_mul(sat_mul(std::max<std::uint64_t>(t, 1), h), sat_add(d, 4));
    };
    if (elements(q_tokens, c.q_heads, c.head_dim) > max_elements || elements(k_stored, c.kv_heads, k_dim) > max_elements ||
        elements(v_stored, v_heads, c.v_dim) > max_elements || elements(out_tokens, c.q_heads, out_dim) > max_elements ||
        std::max({k_dim, out_dim, c.head_dim, c.v_dim}) > max_elements)  // padded_heads adds its gap to head_dim
        return b;
    const std::size_t gap = c.gaps & 3, misalign = (c.gaps >> 2) & 15;
    b.q.emplace(q_tokens, c.q_heads, c.head_dim, gap, misalign);
    b.k.emplace(k_stored, c.kv_heads, k_dim, gap, (misalign + 1) % 16);
    b.v.emplace(v_stored, v_heads, c.v_dim, gap, (misalign + 2) % 16);
    b.out.emplace(out_tokens, c.q_heads, out_dim, gap, (misalign + 3) % 16);
    const double m = std::ldexp(1.0, c.magnitude_log2 % 8);
    fill(*b.q, c.value_seed, m);
    fill(*b.k, c.value_seed ^ 1u, m);
    fill(*b.v, c.value_seed ^ 2u, m);
    b.qv = b.q->cview();
    if (c.bad & bad_q_null) b.qv.data = nullptr;
    b.kv = b.k->cview();
    b.vv = b.v->cview();
    if (repeat) {
        b.kv = heads_view<const float>(b.kv.data, k_tokens, b.kv.heads, b.kv.head_dim, 0, b.kv.head_stride);
        b.vv = heads_view<const float>(b.vv.data, v_tokens, b.vv.heads, b.vv.head_dim, 0, b.vv.head_stride);
    }
    b.ov = b.out->view();
    if (c.bad & (bad_out_on_q | bad_out_on_v)) {
        padded_heads& host = c.bad & bad_out_on_q ? *b.q : *b.v;
        b.ov.data = host.storage.data() + host.offset;  // the shape stays out's: the extents may differ
        if (host.storage.size() - host.offset < b.out->storage.size() - b.out->offset) b.ov.tokens = 0;
    }
    if ((c.bad & bad_out_self) && out_dim > 1 && c.q_heads > 1 && out_tokens > 0) b.ov.head_stride = static_cast<std::ptrdiff_t>(out_dim - 1);
    b.allocated = true;
    return b;
}

// The rules of README.md's attention section ("Errors") that a call breaks.
verdict model(const attention_call& c, const heads_view<const float>& q, const heads_view<const float>& k,
              const heads_view<const float>& vv, const heads_view<float>& out, bool rotate_k, bool rotate_q) {
    verdict v;
    if (q.data == nullptr && q.tokens != 0 && q.heads != 0) v.must_invalid("q.data is null");
    if (q.heads != 0 && (k.heads == 0 || q.heads % k.heads != 0)) v.must_invalid("is not a multiple of k.heads");
    if (vv.heads != k.heads) v.must_invalid("v.heads");
    if (vv.tokens != k.tokens) v.must_invalid("v.tokens");
    if (q.head_dim != k.head_dim) v.must_invalid("q.head_dim");
    if (q.head_dim == 0 && q.tokens != 0 && q.heads != 0) v.must_invalid("head_dim must be > 0");
    if (out.tokens != q.tokens || out.heads != q.heads || out.head_dim != vv.head_dim) v.must_invalid("out is");
    // Overlap: out on top of q or v, or of itself (O(1) checks may also reject nesting rows).
    if (c.bad & (bad_out_on_q | bad_out_on_v | bad_out_self)) {
        const bool empty_out = out.tokens == 0 || out.heads == 0 || out.head_dim == 0;
        const bool empty_host = c.bad & bad_out_on_q ? (q.tokens == 0 || q.heads == 0 || q.head_dim == 0 || q.data == nullptr)
                                                     : (vv.tokens == 0 || vv.heads == 0 || vv.head_dim == 0);
        if ((c.bad & bad_out_self) && !empty_out && out.head_stride < static_cast<std::ptrdiff_t>(out.head_dim))
            v.must_invalid("overlap");
        if ((c.bad & (bad_out_on_q | bad_out_on_v)) && !empty_out && !empty_host) v.must_invalid("overlap");
        v.may(rotary_fuzz::error_kind::invalid_argument, "overlap");
    }
    // The workspace holds kv_tokens x (head_dim + v_dim) floats and more: sizes whose product
    // overflows are rejected; near the edge the library's own bound may reject first.
    const std::uint64_t work = sat_mul(sat_add(k.tokens, sat_mul(q.tokens, q.heads)), sat_add(q.head_dim, vv.head_dim));
    if (work == ~std::uint64_t{0} || sat_mul(work, 4) == ~std::uint64_t{0}) v.must_invalid("attention sizes overflow");
    if (sat_mul(sat_mul(sat_add(sat_add(k.tokens, sat_mul(q.tokens, q.heads)), 1024), sat_add(sat_add(q.head_dim, vv.head_dim), 1024)), 4) ==
        ~std::uint64_t{0})
        v.may(rotary_fuzz::error_kind::invalid_argument, "attention sizes overflow");
    if (c.scale_given & 1) {
        // finite in fp32, and within fp32 once multiplied by log2(e) (the kernels' exp2): at the
        // edge the double product's rounding decides, so either outcome is right there
        const long double s = std::fabs(static_cast<long double>(c.scale)) * 1.4426950408889634074L;
        const long double edge = std::numeric_limits<float>::max();
        if (!std::isfinite(static_cast<float>(c.scale)) || s > edge * (1 + 0x1p-40L))
            v.must_invalid("scale must be finite");
        else if (s > edge * (1 - 0x1p-40L))
            v.may(rotary_fuzz::error_kind::invalid_argument, "scale must be finite");
    }
    if (c.causal & 1) {
        // Allowed: -tokens <= offset <= kv_tokens - tokens (exact, in __int128). INT64_MIN given is
        // attention_options::end_aligned, the default: kv_tokens - tokens.
        const __int128 t = q.tokens, n = k.tokens;
        const bool given = (c.offset_given & 1) && c.query_offset != attention_options::end_aligned;
        const __int128 offset = given ? c.query_offset : n - t;
        if (offset < -t || offset > n - t) v.must_range("query_offset");
        // Token counts past INT64_MAX cannot be described by an int64 offset: any message will do.
        if (t > INT64_MAX || n > INT64_MAX) v.may(rotary_fuzz::error_kind::out_of_range, "query_offset");
    }
    const std::uint64_t head_end = c.kv_head_end == attention_options::all ? k.heads : c.kv_head_end;
    if (c.kv_head_begin > head_end || head_end > k.heads) v.must_range("kv head range");
    const std::uint64_t token_end = c.token_end == attention_options::all ? q.tokens : c.token_end;
    if (c.token_begin > token_end || token_end > q.tokens) v.must_range("token range");
    if (rotate_q || rotate_k) {
        const std::uint64_t rotary_dim = 2u * c.rotary_pairs;
        if (c.layout_raw > 1) v.must_invalid("layout must be");
        if (rotary_dim > q.head_dim) v.must_invalid("rotary_dim");
        const auto positions_rule = [&](const char* name, std::int64_t start, std::uint64_t count) {
            if (start < 0)
                v.must_invalid(name);
            else if (count != 0 && sat_add(static_cast<std::uint64_t>(start), count - 1) >= c.max_positions)
                v.must_range(name);
        };
        if (rotate_q) positions_rule("q_positions", c.q_start, q.tokens);
        if (rotate_k) positions_rule("k_positions", c.k_start, k.tokens);
    }
    return v;
}

// Whether a valid call is small enough to run on every backend and the oracle.
bool small_enough(const heads_view<const float>& q, const heads_view<const float>& k, std::uint64_t v_dim) {
    const std::uint64_t macs = sat_mul(sat_mul(sat_mul(q.tokens, q.heads), k.tokens), sat_add(q.head_dim, v_dim));
    // the oracle copies every key and value row whatever the queries (k and v rows repeated by a
    // token stride of 0 reach any count without queries: 12 GB once)
    const std::uint64_t kv_elements = sat_mul(sat_mul(k.tokens, k.heads), sat_add(k.head_dim, v_dim));
    return macs <= (std::uint64_t{1} << 18) && kv_elements <= (std::uint64_t{1} << 18);
}

// Compares out with the oracle over the call's work range; everything else must equal `before`.
// `tokens` is the out view's: the buffer may hold more (out placed on q's storage keeps no tokens
// when q's is the smaller buffer), and only the view's rows are the call's (and the oracle's).
void check_output(const attention_call& c, const std::string& who, std::size_t tokens, const padded_heads& out,
                  const std::vector<float>& before, const std::vector<double>& want, const padded_heads& q,
                  const padded_heads& k, const padded_heads& v, std::int64_t query_offset, double scale) {
    const std::size_t q_heads = out.heads, dv = out.head_dim, d = q.head_dim;
    const std::size_t group = k.heads == 0 ? 0 : q_heads / k.heads, kv_tokens = k.tokens;  // no kv heads: no q heads
    const std::size_t head_begin = c.kv_head_begin, head_end = c.kv_head_end == attention_options::all ? k.heads : c.kv_head_end;
    const std::size_t token_begin = c.token_begin, token_end = c.token_end == attention_options::all ? tokens : c.token_end;
    long double vmax = 0, kmax = 0;
    for (std::size_t n = 0; n < v.tokens; ++n)
        for (std::size_t h = 0; h < v.heads; ++h)
            for (std::size_t j = 0; j < v.head_dim; ++j) vmax = std::max<long double>(vmax, std::fabs(v.at(n, h, j)));
    for (std::size_t n = 0; n < k.tokens; ++n)
        for (std::size_t h = 0; h < k.heads; ++h) {
            long double s = 0;
            for (std::size_t j = 0; j < d; ++j) s += static_cast<long double>(k.at(n, h, j)) * k.at(n, h, j);
            kmax = std::max(kmax, std::sqrt(s));
        }
    std::vector<bool> in_work(out.storage.size(), false);
    for (std::size_t t = token_begin; t < token_end; ++t)
        for (std::size_t h = head_begin * group; h < head_end * group; ++h) {
            long double qn = 0;
            for (std::size_t j = 0; j < d; ++j) qn += static_cast<long double>(q.at(t, h, j)) * q.at(t, h, j);
            const long double a = std::fabs(scale) * std::sqrt(qn) * kmax;
            const std::int64_t last = (c.causal & 1) ? query_offset + static_cast<std::int64_t>(t)
                                                     : static_cast<std::int64_t>(kv_tokens) - 1;
            const std::size_t keys = last < 0 ? 0 : std::min<std::size_t>(kv_tokens, static_cast<std::size_t>(last) + 1);
            const long double tol =
                2 * vmax * (2 * (2 * (d + 8) * eps32 * a + 8 * eps32) + (keys + 8) * eps32) + 1e-30L;
            // Scores that may leave fp32's range (a scale near FLT_MAX): Inf - Inf in the softmax, not compared.
            const bool overflow = a * 1.4426950408889634L * static_cast<long double>(d + 1) >= std::numeric_limits<float>::max();
            for (std::size_t j = 0; j < dv; ++j) {
                const float got = out.at(t, h, j);
                const double ref = want[(t * q_heads + h) * dv + j];
                in_work[static_cast<std::size_t>(out.row(t, h) + j - out.storage.data())] = true;
                if (keys == 0)
                    check(got == 0.0f, [&] { return who + ": a row that sees no key is " + std::to_string(got) + ", not 0"; });
                if (overflow) continue;
                check(std::isfinite(got) && std::fabs(static_cast<long double>(got) - ref) <= tol, [&] {
                    return who + ": out[" + std::to_string(t) + "][" + std::to_string(h) + "][" + std::to_string(j) +
                           "] = " + std::to_string(got) + ", oracle " + std::to_string(ref) + ", tolerance " +
                           std::to_string(static_cast<double>(tol));
                });
            }
        }
    for (std::size_t i = 0; i < out.storage.size(); ++i)
        if (!in_work[i])
            check(std::memcmp(&out.storage[i], &before[i], sizeof(float)) == 0,
                  [&] { return who + ": wrote element " + std::to_string(i) + " of out's storage, outside its work range"; });
}

void attention_call::run() const {
    if (op % 3 == 2)
        run_cache();
    else
        run_attention();
}

// The oracle of a valid call: naive_attention over k and v with repeated rows written out.
struct oracle_result {
    std::vector<double> out;
    std::optional<padded_heads> k, v;
};

oracle_result oracle(const attention_call& c, const buffers& b, const attention_options& o, bool rope,
                     const std::vector<std::int64_t>& q_positions, const std::vector<std::int64_t>& k_positions) {
    rotary_test::attention_spec spec;
    spec.causal = o.causal;
    spec.query_offset = o.query_offset;
    if (o.scale) spec.scale = static_cast<double>(*o.scale);
    if (rope) {
        spec.pair_layout = static_cast<layout>(c.layout_raw);
        spec.rotary_dim = 2u * c.rotary_pairs;
        spec.q_positions = q_positions;
        spec.k_positions = k_positions;
    }
    oracle_result r;
    r.k.emplace(b.kv.tokens, b.kv.heads, b.kv.head_dim);
    r.v.emplace(b.vv.tokens, b.vv.heads, b.vv.head_dim);
    for (std::size_t n = 0; n < b.kv.tokens; ++n)
        for (std::size_t h = 0; h < b.kv.heads; ++h) {
            if (b.kv.head_dim != 0) std::memcpy(r.k->row(n, h), b.kv.row(n, h), b.kv.head_dim * sizeof(float));
            if (b.vv.head_dim != 0) std::memcpy(r.v->row(n, h), b.vv.row(n, h), b.vv.head_dim * sizeof(float));
        }
    if (b.qv.heads != 0) r.out = rotary_test::naive_attention(*b.q, *r.k, *r.v, spec);  // no q heads: no output
    return r;
}

std::vector<std::int64_t> run_of(std::int64_t start, std::uint64_t count) {
    std::vector<std::int64_t> p;
    for (std::uint64_t i = 0; i < count; ++i) p.push_back(start + static_cast<std::int64_t>(i));
    return p;
}

attention_options options_of(const attention_call& c) {
    attention_options o;
    o.causal = c.causal & 1;
    if (c.offset_given & 1) o.query_offset = c.query_offset;
    if (c.scale_given & 1) o.scale = static_cast<float>(c.scale);
    o.kv_head_begin = c.kv_head_begin, o.kv_head_end = c.kv_head_end, o.token_begin = c.token_begin, o.token_end = c.token_end;
    return o;
}

std::int64_t offset_of(const attention_options& o, std::uint64_t tokens, std::uint64_t kv_tokens) {
    return o.query_offset == attention_options::end_aligned ? static_cast<std::int64_t>(kv_tokens) - static_cast<std::int64_t>(tokens)
                                                           : o.query_offset;
}

double scale_of(const attention_options& o, std::uint64_t head_dim) {
    return o.scale ? static_cast<double>(*o.scale) : 1.0 / std::sqrt(static_cast<double>(head_dim == 0 ? 1 : head_dim));
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

void attention_call::run_attention() const {
    const bool rope = op % 3 == 1;
    buffers b = make_buffers(*this, tokens, kv_tokens);
    if (!b.allocated) return rotary_fuzz::note("skipped: buffers too large");
    std::optional<rotary::rope_table<float>> table;
    if (rope) {
        if (rotary_pairs == 0 || max_positions == 0 || max_positions > 4096) return rotary_fuzz::note("skipped: table");
        table.emplace(2u * rotary_pairs, max_positions);
    }
    const verdict expected = model(*this, b.qv, b.kv, b.vv, b.ov, rope, rope);
    if (!expected.must_reject() && !small_enough(b.qv, b.kv, b.vv.head_dim)) return rotary_fuzz::note("skipped: valid and large");
    const attention_options o = options_of(*this);
    const layout pair_layout = static_cast<layout>(layout_raw);
    const positions qp = positions::starting_at(q_start), kp = positions::starting_at(k_start);

    const std::vector<float> q0 = b.q->storage, k0 = b.k->storage, v0 = b.v->storage, out0 = b.out->storage;
    std::optional<oracle_result> want;
    for (const backend& be : backends()) {
        b.out->storage = out0;  // same allocation: the views stay valid
        const bool returned = rotary_fuzz::call_checked(expected, be.name, [&] {
            rotary_test::attention_on({be.name, be.kernels}, rope ? &*table : nullptr, pair_layout, rope ? &qp : nullptr,
                                      rope ? &kp : nullptr, b.qv, b.kv, b.vv, b.ov, o);
        });
        check(same_bits(b.q->storage, q0) && same_bits(b.k->storage, k0) && same_bits(b.v->storage, v0),
              [&] { return be.name + ": an input buffer changed"; });
        if (!returned) {
            check(same_bits(b.out->storage, out0), [&] { return be.name + ": threw after writing out"; });
            continue;
        }
        if (b.qv.heads == 0) {  // no output rows (however many tokens: up to 2^64 - 1), nothing written
            check(same_bits(b.out->storage, out0), [&] { return be.name + ": wrote with no q heads"; });
            continue;
        }
        // positions only with RoPE inside: pre-rotated calls take any start, which may sit at INT64_MAX
        if (!want)
            want = oracle(*this, b, o, rope, rope ? run_of(q_start, tokens) : std::vector<std::int64_t>{},
                          rope ? run_of(k_start, kv_tokens) : std::vector<std::int64_t>{});
        check_output(*this, be.name, b.ov.tokens, *b.out, out0, want->out, *b.q, *want->k, *want->v, offset_of(o, tokens, kv_tokens), scale_of(o, head_dim));
    }
}

// The cache's observable state, to check that a rejected call leaves it unchanged.
struct cache_state {
    std::size_t size;
    std::int64_t next;
    std::vector<float> keys, values;
    std::vector<std::int64_t> positions;
    bool operator==(const cache_state& o) const {
        return size == o.size && next == o.next && same_bits(keys, o.keys) && same_bits(values, o.values) &&
               positions == o.positions;
    }
};

cache_state state_of(const rotary::kv_cache& cache) {
    cache_state s{cache.size(), cache.next_position(), {}, {}, {}};
    const auto kv = cache.keys(), vv = cache.values();
    for (std::size_t t = 0; t < kv.tokens; ++t)
        for (std::size_t h = 0; h < kv.heads; ++h) {
            s.keys.insert(s.keys.end(), kv.row(t, h), kv.row(t, h) + kv.head_dim);
            s.values.insert(s.values.end(), vv.row(t, h), vv.row(t, h) + vv.head_dim);
        }
    const auto p = cache.key_positions();
    for (std::size_t t = 0; t < cache.size(); ++t) s.positions.push_back(p[t]);
    return s;
}

// The KV cache: construct, append kv_tokens tokens, attend the last `tokens` of them (every
// backend, against the oracle), append `extra` more, shift.
void attention_call::run_cache() const {
    if (rotary_pairs == 0 || max_positions == 0 || max_positions > 4096) return rotary_fuzz::note("skipped: table");
    const rotary::rope_table<float> table(2u * rotary_pairs, max_positions);
    const layout pair_layout = static_cast<layout>(layout_raw);
    if (sat_mul(sat_mul(max_tokens, kv_heads), sat_add(head_dim, v_dim)) > max_elements)
        return rotary_fuzz::note("skipped: cache too large");
    verdict construct;
    if (layout_raw > 1) construct.must_invalid("layout must be");
    if (max_tokens == 0) construct.must_invalid("max_tokens");
    if (kv_heads == 0) construct.must_invalid("kv_heads");
    if (head_dim == 0) construct.must_invalid("head_dim");
    if (v_dim == 0) construct.must_invalid("v_dim");
    if (2u * rotary_pairs > head_dim) construct.must_invalid("rotary_dim");
    std::optional<rotary::kv_cache> cache;
    if (!rotary_fuzz::call_checked(construct, "kv_cache(...)",
                                   [&] { cache.emplace(table, pair_layout, max_tokens, kv_heads, head_dim, v_dim); }))
        return;

    // append(k, v) at positions next_position() = 0 ..
    buffers b = make_buffers(*this, tokens, kv_tokens);
    if (!b.allocated) return rotary_fuzz::note("skipped: buffers too large");
    verdict append;
    {
        const auto &k = b.kv, &v = b.vv;
        if (k.heads != kv_heads || k.head_dim != head_dim) append.must_invalid("k is");
        if (v.tokens != k.tokens || v.heads != kv_heads || v.head_dim != v_dim) append.must_invalid("v is");
        if (k.tokens > max_tokens) append.must_range("overflows the cache");
        if (k.tokens != 0 && k.tokens - 1 >= max_positions) append.must_range("positions");
    }
    const cache_state empty = state_of(*cache);
    if (!rotary_fuzz::call_checked(append, "append", [&] { cache->append(b.kv, b.vv); })) {
        check(state_of(*cache) == empty, "a rejected append changed the cache");
        return;
    }
    check(cache->size() == kv_tokens && cache->next_position() == static_cast<std::int64_t>(kv_tokens),
          "append: wrong size or next_position");

    // attend(q, out): the last `tokens` cached tokens' queries, causal by default (or the options).
    {
        const attention_options o = options_of(*this);
        // The cache's own views as k and v; q and out as decoded (out on top of the caller's v is no
        // overlap here: attend does not read it, so out stays in its own buffer).
        buffers a;
        a.qv = b.qv;
        a.kv = cache->keys();
        a.vv = cache->values();
        a.ov = b.ov;
        // (with both flags out lies on q, which attend does read: it stays there)
        const bool out_on_v = (bad & bad_out_on_v) && !(bad & bad_out_on_q);
        if (out_on_v) a.ov.data = b.out->storage.data() + b.out->offset, a.ov.tokens = b.out->tokens;
        attention_call shifted = *this;  // the queries sit at the last `tokens` cached positions
        shifted.bad = static_cast<std::uint16_t>(out_on_v ? bad & ~bad_out_on_v : bad);
        shifted.q_start = static_cast<std::int64_t>(cache->size()) - static_cast<std::int64_t>(std::min<std::uint64_t>(tokens, cache->size()));
        verdict attend = model(shifted, a.qv, a.kv, a.vv, a.ov, false, true);
        if (tokens > cache->size()) attend.must_range("exceeds the cache's size");
        const std::vector<float> out0 = b.out->storage;
        const cache_state before = state_of(*cache);
        std::optional<oracle_result> want;
        const bool small = small_enough(a.qv, a.kv, a.vv.head_dim);
        for (const backend& be : backends()) {
            if (!attend.must_reject() && !small) break;
            b.out->storage = out0;
            const bool returned = rotary_fuzz::call_checked(attend, "attend on " + be.name, [&] {
                if (be.kernels == nullptr) return cache->attend(a.qv, a.ov, o);
                if (tokens > cache->size()) return cache->attend(a.qv, a.ov, o);  // the same check, then the same job
                const positions qp = positions::from_ids(cache->key_positions().ids64() + (cache->size() - tokens), tokens);
                rotary_test::run_attention_job(*be.kernels, rotary::detail::make_attention_job<xsimd::default_arch>(
                                                                &table, pair_layout, &qp, nullptr, a.qv, a.kv, a.vv, a.ov, o));
            });
            check(state_of(*cache) == before, [&] { return "attend on " + be.name + " changed the cache"; });
            if (!returned) {
                check(same_bits(b.out->storage, out0), [&] { return "attend on " + be.name + ": threw after writing out"; });
                continue;
            }
            if (!want) {
                // The oracle sees the unrotated k and v as appended, at positions 0 .. size - 1.
                buffers raw = b;
                want = oracle(*this, raw, o, true, run_of(shifted.q_start, tokens), run_of(0, kv_tokens));
            }
            check_output(*this, "attend on " + be.name, a.ov.tokens, *b.out, out0, want->out, *b.q, *want->k, *want->v, offset_of(o, tokens, kv_tokens), scale_of(o, head_dim));
        }
    }

    // A second append of `extra` tokens: an overflow throws and leaves the cache unchanged.
    if (extra <= max_elements) {
        buffers more = make_buffers(*this, 0, extra);
        if (more.allocated) {
            verdict second;
            if (more.kv.heads != kv_heads || more.kv.head_dim != head_dim) second.must_invalid("k is");
            if (more.vv.tokens != more.kv.tokens || more.vv.heads != kv_heads || more.vv.head_dim != v_dim) second.must_invalid("v is");
            if (extra > max_tokens - cache->size()) second.must_range("overflows the cache");
            if (extra != 0 && sat_add(cache->size(), extra - 1) >= max_positions) second.must_range("positions");
            const cache_state before = state_of(*cache);
            if (!rotary_fuzz::call_checked(second, "second append", [&] { cache->append(more.kv, more.vv); }))
                check(state_of(*cache) == before, "a rejected second append changed the cache");
        }
    }

    // shift(delta, first, last): keys rotated once more by delta (R_{m+delta} = R_delta R_m).
    {
        const std::size_t size = cache->size();
        const std::uint64_t last = shift_last == 0 ? size : shift_last - 1;  // 0 encodes "all"
        verdict shift;
        if (shift_first > last || last > size) shift.must_range("token range");
        const __int128 magnitude = delta < 0 ? -static_cast<__int128>(delta) : delta;
        const bool moves = delta != 0 && shift_first < last && last <= size;
        if (moves && magnitude >= static_cast<__int128>(max_positions)) shift.must_range("shift delta");
        const cache_state before = state_of(*cache);
        if (moves)
            for (std::size_t i = shift_first; i < last; ++i) {
                const __int128 to = static_cast<__int128>(before.positions[i]) + delta;
                if (to < 0 || to >= static_cast<__int128>(max_positions)) shift.must_range("shift delta");
            }
        const bool returned = rotary_fuzz::call_checked(shift, "shift", [&] {
            if (shift_last == 0)
                cache->shift(delta, shift_first);
            else
                cache->shift(delta, shift_first, shift_last - 1);
        });
        if (!returned) return check(state_of(*cache) == before, "a rejected shift changed the cache");
        // Each shifted key against the oracle rotation of the key before the shift by delta (the
        // stored fp32 key, rotated in long double): one more fp32 rotation, 4 eps (|x0| + |x1|).
        const cache_state after = state_of(*cache);
        const std::size_t rotary_dim = 2u * rotary_pairs, row = kv_heads * head_dim;
        for (std::size_t t = 0; t < size; ++t) {
            const bool in = moves && t >= shift_first && t < last;
            check(after.positions[t] == before.positions[t] + (in ? delta : 0), "shift: wrong position");
            for (std::size_t h = 0; h < kv_heads; ++h) {
                const float* old = before.keys.data() + t * row + h * head_dim;
                const float* now = after.keys.data() + t * row + h * head_dim;
                const auto ref = rotary_test::complex_rotate(pair_layout, old, head_dim, rotary_dim,
                                                             static_cast<long double>(in ? delta : 0));
                long double size_bound = 0;
                for (std::size_t j = 0; j < head_dim; ++j) size_bound = std::max<long double>(size_bound, std::fabs(old[j]));
                for (std::size_t j = 0; j < head_dim; ++j)
                    check(std::fabs(static_cast<long double>(now[j]) - ref[j]) <= 8 * eps32 * size_bound + 1e-30L, [&] {
                        return "shift: key " + std::to_string(t) + " head " + std::to_string(h) + " [" + std::to_string(j) +
                               "] = " + std::to_string(now[j]) + ", oracle " + std::to_string(static_cast<double>(ref[j]));
                    });
            }
        }
        check(same_bits(after.values, before.values), "shift changed the values");
    }
}


std::vector<std::pair<std::string, attention_call>> attention_call::seeds() {
    std::vector<std::pair<std::string, attention_call>> s;
    const auto add = [&](const char* name, const auto& edit) {
        attention_call c;  // GQA 4 q heads on 2 kv heads, head_dim 16, causal, 4 queries on 9 keys
        c.value_seed = rotary_fuzz::seed_of(name);
        edit(c);
        s.emplace_back(name, c);
    };
    add("seed-gqa-causal-rotated", [](attention_call&) {});
    add("seed-rotate-inside-interleaved", [](attention_call& c) { c.op = 1, c.layout_raw = 0, c.q_start = 9, c.k_start = 4; });
    add("seed-mqa-noncausal-odd-dims", [](attention_call& c) {
        c.causal = 0, c.q_heads = 3, c.kv_heads = 1, c.head_dim = 17, c.v_dim = 5, c.gaps = 1 | (3 << 2);
    });
    add("seed-decode-one-token-long-keys", [](attention_call& c) { c.tokens = 1, c.kv_tokens = 130, c.head_dim = 64, c.v_dim = 64; });
    add("seed-prefill-panel-path", [](attention_call& c) { c.op = 1, c.tokens = c.kv_tokens = 40, c.q_heads = 2, c.kv_heads = 1; });
    add("seed-negative-offset-scale", [](attention_call& c) {
        c.offset_given = 1, c.query_offset = -2, c.scale_given = 1, c.scale = 0.5, c.magnitude_log2 = 3;
    });
    add("seed-work-range", [](attention_call& c) { c.kv_head_begin = 1, c.kv_head_end = 2, c.token_begin = 1, c.token_end = 3; });
    add("seed-repeated-kv-rows", [](attention_call& c) { c.repeat_kv_rows = 1, c.kv_tokens = 70; });
    add("seed-no-keys", [](attention_call& c) { c.causal = 0, c.kv_tokens = 0; });
    add("seed-cache-prefill-decode-shift", [](attention_call& c) {
        c.op = 2, c.max_tokens = 24, c.extra = 3, c.delta = -2, c.shift_first = 3, c.shift_last = 0;
    });
    add("seed-cache-decode-one-token", [](attention_call& c) { c.op = 2, c.tokens = 1, c.kv_tokens = 20, c.max_tokens = 32, c.delta = 5; });
    // Invalid calls.
    add("seed-bad-heads-not-divisible", [](attention_call& c) { c.q_heads = 3; });
    add("seed-bad-head-dim-mismatch", [](attention_call& c) { c.bad = bad_k_head_dim; });
    add("seed-bad-out-on-q", [](attention_call& c) { c.bad = bad_out_on_q, c.v_dim = 16; });
    add("seed-bad-out-overlaps-itself", [](attention_call& c) { c.bad = bad_out_self; });
    add("seed-bad-offset", [](attention_call& c) { c.offset_given = 1, c.query_offset = 6; });
    add("seed-bad-scale-nan", [](attention_call& c) { c.scale_given = 1, c.scale = std::numeric_limits<double>::quiet_NaN(); });
    add("seed-bad-q-positions-past-table", [](attention_call& c) { c.op = 1, c.q_start = 61; });
    add("seed-bad-huge-repeated-keys", [](attention_call& c) { c.repeat_kv_rows = 1, c.kv_tokens = std::uint64_t{1} << 62; });
    add("seed-bad-cache-overflow", [](attention_call& c) { c.op = 2, c.max_tokens = 8; });
    add("seed-bad-cache-second-append-overflows", [](attention_call& c) { c.op = 2, c.max_tokens = 10, c.extra = 2; });
    add("seed-bad-cache-shift-past-table", [](attention_call& c) { c.op = 2, c.delta = 60; });
    add("seed-bad-cache-attend-more-than-cached", [](attention_call& c) { c.op = 2, c.tokens = 12; });
    // Findings (README.md, "Fuzzing"): each input that once failed, kept as a regression test.
    add("regression-scale-flt-max-times-log2e", [](attention_call& c) {  // scale * log2(e) was Inf in fp32: NaN out
        c.causal = 0, c.q_heads = c.kv_heads = 50, c.head_dim = 2, c.v_dim = 1, c.scale_given = 1;
        c.scale = std::numeric_limits<float>::max(), c.token_end = 1;
    });
    add("regression-out-buffer-longer-than-view", [](attention_call& c) {  // the check read past the oracle's rows
        c.tokens = 0, c.bad = bad_out_tokens | bad_out_on_q;  // out on q's empty storage: a view of 0 tokens
    });
    add("regression-offset-int64-min-is-end-aligned", [](attention_call& c) {  // the model took it for an offset
        c.offset_given = 1, c.query_offset = attention_options::end_aligned;
    });
    add("regression-shift-negative-delta-wraps", [](attention_call& c) {  // |delta| formed by a wrapping 0 - delta
        c.op = 2, c.max_tokens = 24, c.delta = std::numeric_limits<std::int64_t>::min();
    });
    return s;
}

}  // namespace

ROTARY_FUZZ_TARGET(attention_call)
