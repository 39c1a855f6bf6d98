// The harness shared by the libFuzzer targets in tests/fuzz: the input coding, the check of a call
// against the violations an independent model of the contract predicts, the tolerances, and the
// libFuzzer glue. A target is one "spec" type:
//
//   struct my_call {
//       // The fields, listed once: the reader decodes a fuzz input into them, the writer encodes a
//       // seed from them (tests/fuzz/corpus/<target>/ is written by `fuzz_<target> --write-seeds=DIR`).
//       template <class IO> void code(IO& io);
//       std::string describe() const;                               // printed when a check fails
//       static std::vector<std::pair<std::string, my_call>> seeds(); // named seed inputs
//       void run() const;  // the call and every check; rotary_fuzz::fail() on a violation
//   };
//   ROTARY_FUZZ_TARGET(my_call)
//
// README.md's "Fuzzing" section says how to add one.
#pragma once

#include "../support.hpp"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace rotary_fuzz {

// ------------------------------------------------------------------------------------------------
// Failure reporting: print what failed and the decoded call, then abort, so that libFuzzer saves
// the input as a crash artifact.

// The call being checked, described only when needed (describing every input would cost more than
// checking it).
inline std::function<std::string()>& current_call() {
    static std::function<std::string()> call = [] { return std::string("?"); };
    return call;
}

[[noreturn]] inline void fail(const std::string& what) {
    std::fprintf(stderr, "\nrotary fuzz: CHECK FAILED: %s\n  call: %s\n", what.c_str(), current_call()().c_str());
    std::fflush(stderr);
    std::abort();
}

// check(ok, message): message is a string, or a callable that builds it only on failure.
template <class Message>
void check(bool ok, const Message& what) {
    if (ok) return;
    if constexpr (std::is_invocable<const Message&>::value)
        fail(what());
    else
        fail(std::string(what));
}

// With ROTARY_FUZZ_VERBOSE=1 in the environment, each input prints its call and outcome (valid and
// checked, rejected with which message, or skipped and why): for looking at a corpus.
inline bool verbose() {
    static const bool on = [] {
        const char* v = std::getenv("ROTARY_FUZZ_VERBOSE");
        return v != nullptr && *v != '\0' && *v != '0';
    }();
    return on;
}
// note(message): a string or a callable, printed only in verbose mode.
template <class Message>
void note(const Message& what) {
    if (!verbose()) return;
    if constexpr (std::is_invocable<const Message&>::value)
        std::fprintf(stderr, "  -> %s\n", std::string(what()).c_str());
    else
        std::fprintf(stderr, "  -> %s\n", std::string(what).c_str());
}

// Wrapping arithmetic, spelled out: the fuzzers also run UBSan's unsigned-integer-overflow check,
// so that a silent wrap in the library is a finding, and the harness must not wrap by accident.
template <class I>
I wrap_add(I a, I b) noexcept {
    I r;
    __builtin_add_overflow(a, b, &r);
    return r;
}
template <class I>
I wrap_sub(I a, I b) noexcept {
    I r;
    __builtin_sub_overflow(a, b, &r);
    return r;
}
template <class I>
I wrap_mul(I a, I b) noexcept {
    I r;
    __builtin_mul_overflow(a, b, &r);
    return r;
}

// f(T{}) with T = double when bit 0 of `element` is set, else float: a spec's element type.
template <class F>
void with_element_type(std::uint8_t element, F&& f) {
    if (element & 1)
        f(double{});
    else
        f(float{});
}

// The half storage types (Eigen::half, Eigen::bfloat16), computed in fp32: their conversions are
// explicit, so the harness reads every element type through to_ld and limit<T>.
template <class T>
constexpr bool is_half = rotary::detail::is_half_type<T>;

template <class T>
long double to_ld(T x) noexcept {
    if constexpr (is_half<T>)
        return static_cast<float>(x);
    else
        return x;
}
template <class T>
struct limit {
    // 2^(1 - digits): Eigen 3.4's numeric_limits<Eigen::half>::epsilon() is 2^-13, not 2^-10.
    static long double eps() noexcept { return std::ldexp(1.0L, 1 - std::numeric_limits<T>::digits); }
    static long double max() noexcept { return to_ld(std::numeric_limits<T>::max()); }
    static long double denorm_min() noexcept { return to_ld(std::numeric_limits<T>::denorm_min()); }
};

inline const char* element_name(std::size_t element_type) noexcept {
    static const char* names[] = {"float", "double", "half", "bfloat16"};
    return names[element_type % 4];
}

// ------------------------------------------------------------------------------------------------
// Input coding. A short input reads as zeros, so every byte string decodes to some call.

class reader {
  public:
    reader(const std::uint8_t* data, std::size_t size) noexcept : p_(data), n_(size) {}

    template <class U>
    U raw() noexcept {
        static_assert(std::is_trivially_copyable<U>::value, "raw() reads plain values");
        unsigned char bytes[sizeof(U)] = {};
        const std::size_t k = n_ < sizeof(U) ? n_ : sizeof(U);
        if (k != 0) {
            std::memcpy(bytes, p_, k);
            p_ += k;
            n_ -= k;
        }
        U v;
        std::memcpy(&v, bytes, sizeof(U));
        return v;
    }

    template <class Code, class V>
    void operator()(const Code& code, V& v) {
        v = static_cast<V>(code.decode(*this));
    }
    // A decoded sequence of n elements (n already decoded).
    template <class V>
    void sequence(std::vector<V>& v, std::size_t n) {
        v.assign(n, V{});
    }

  private:
    const std::uint8_t* p_;
    std::size_t n_;
};

class writer {
  public:
    template <class U>
    void raw(U v) {
        static_assert(std::is_trivially_copyable<U>::value, "raw() writes plain values");
        unsigned char b[sizeof(U)];
        std::memcpy(b, &v, sizeof(U));
        bytes.insert(bytes.end(), b, b + sizeof(U));
    }

    template <class Code, class V>
    void operator()(const Code& code, const V& v) {
        code.encode(*this, v);
    }
    template <class V>
    void sequence(const std::vector<V>& v, std::size_t n) {
        if (v.size() != n) throw std::logic_error("seed: a sequence's length differs from its count");
    }

    std::vector<std::uint8_t> bytes;
};

// One byte, as is (enums are decoded through it, so out-of-range values reach the library).
struct byte_code {
    std::uint8_t decode(reader& r) const noexcept { return r.raw<std::uint8_t>(); }
    void encode(writer& w, std::uint64_t v) const {
        if (v > 0xFF) throw std::logic_error("seed: byte_code value > 255");
        w.raw(static_cast<std::uint8_t>(v));
    }
};

// A size: a byte below 0xF0 is the value; the tags above it read a raw u16/u32/u64, pick a value
// where overflow hides, or a value next to `near` (a table size, a token count).
struct size_code {
    std::uint64_t near = 0;

    static constexpr std::uint64_t specials[] = {
        ~std::uint64_t{0},        std::uint64_t{1} << 63, std::uint64_t{1} << 62,
        std::uint64_t{1} << 32,   std::uint64_t{1} << 31, std::uint64_t{PTRDIFF_MAX},
        (std::uint64_t{1} << 32) + 1, std::uint64_t{1} << 61, (std::uint64_t{1} << 62) + 1,
        std::uint64_t{PTRDIFF_MAX} / 2 + 1};  // tags 0xF3 ..
    static constexpr std::uint8_t first_special = 0xF3;

    std::uint64_t decode(reader& r) const noexcept {
        const std::uint8_t b = r.raw<std::uint8_t>();
        if (b < 0xF0) return b;
        if (b == 0xF0) return r.raw<std::uint16_t>();
        if (b == 0xF1) return r.raw<std::uint32_t>();
        if (b >= first_special && b - first_special < std::size(specials)) return specials[b - first_special];
        if (b == 0xFD) return wrap_sub<std::uint64_t>(near, 1);
        if (b == 0xFE) return near;
        if (b == 0xFF) return wrap_add<std::uint64_t>(near, 1);
        return r.raw<std::uint64_t>();  // 0xF2 and the unused tags
    }
    void encode(writer& w, std::uint64_t v) const {
        if (v < 0xF0) return w.raw(static_cast<std::uint8_t>(v));
        for (std::size_t i = 0; i < std::size(specials); ++i)
            if (v == specials[i]) return w.raw(static_cast<std::uint8_t>(first_special + i));
        if (v == near) return w.raw(std::uint8_t{0xFE});
        if (v <= 0xFFFF) {
            w.raw(std::uint8_t{0xF0});
            return w.raw(static_cast<std::uint16_t>(v));
        }
        if (v <= 0xFFFFFFFF) {
            w.raw(std::uint8_t{0xF1});
            return w.raw(static_cast<std::uint32_t>(v));
        }
        w.raw(std::uint8_t{0xF2});
        w.raw(v);
    }
};

// A signed 64-bit value (strides, position offsets and ids): a byte below 0xE0 is the value; the
// tags above it read a raw i16/i32/i64, pick a negative or extreme value, or one next to `near`.
struct int_code {
    std::int64_t near = 0;

    static constexpr std::int64_t specials[] = {-1,
                                                std::numeric_limits<std::int64_t>::min(),
                                                std::numeric_limits<std::int64_t>::max(),
                                                std::numeric_limits<std::int32_t>::min(),
                                                std::numeric_limits<std::int32_t>::max(),
                                                -2,
                                                std::int64_t{1} << 32,
                                                -(std::int64_t{1} << 32),
                                                std::int64_t{1} << 62,
                                                -(std::int64_t{1} << 62)};  // tags 0xE3 ..
    static constexpr std::uint8_t first_special = 0xE3;

    std::int64_t decode(reader& r) const noexcept {
        const std::uint8_t b = r.raw<std::uint8_t>();
        if (b < 0xE0) return b;
        if (b == 0xE0) return r.raw<std::int16_t>();
        if (b == 0xE1) return r.raw<std::int32_t>();
        if (b >= first_special && b - first_special < std::size(specials)) return specials[b - first_special];
        if (b == 0xFC) return wrap_sub<std::int64_t>(0, near);
        if (b == 0xFD) return wrap_sub<std::int64_t>(near, 1);
        if (b == 0xFE) return near;
        if (b == 0xFF) return wrap_add<std::int64_t>(near, 1);
        return r.raw<std::int64_t>();  // 0xE2 and the unused tags
    }
    void encode(writer& w, std::int64_t v) const {
        if (v >= 0 && v < 0xE0) return w.raw(static_cast<std::uint8_t>(v));
        for (std::size_t i = 0; i < std::size(specials); ++i)
            if (v == specials[i]) return w.raw(static_cast<std::uint8_t>(first_special + i));
        if (v == near) return w.raw(std::uint8_t{0xFE});
        if (v >= std::numeric_limits<std::int16_t>::min() && v <= std::numeric_limits<std::int16_t>::max()) {
            w.raw(std::uint8_t{0xE0});
            return w.raw(static_cast<std::int16_t>(v));
        }
        if (v >= std::numeric_limits<std::int32_t>::min() && v <= std::numeric_limits<std::int32_t>::max()) {
            w.raw(std::uint8_t{0xE1});
            return w.raw(static_cast<std::int32_t>(v));
        }
        w.raw(std::uint8_t{0xE2});
        w.raw(v);
    }
};

// Plain bytes of U (a seed for the buffers' values).
template <class U>
struct raw_code {
    U decode(reader& r) const noexcept { return r.raw<U>(); }
    void encode(writer& w, U v) const { w.raw(v); }
};

// A double: a tag picks one of the values below (real bases and factors, and the edges: 1, 0, -1,
// Inf, NaN, the largest and smallest doubles, fp32's largest, pi and its neighbours), or reads 8 raw
// bytes.
struct double_code {
    static constexpr double specials[] = {10000.0,
                                          500000.0,
                                          1e6,
                                          10.0,
                                          2.0,
                                          1.0,
                                          1.0000000000000002,  // next double after 1
                                          0.0,
                                          -1.0,
                                          std::numeric_limits<double>::infinity(),
                                          -std::numeric_limits<double>::infinity(),
                                          std::numeric_limits<double>::quiet_NaN(),
                                          std::numeric_limits<double>::max(),
                                          std::numeric_limits<double>::min(),
                                          std::numeric_limits<double>::denorm_min(),
                                          3.141592653589793,   // pi, rounded down
                                          3.1415926535897936,  // the next double
                                          3.4028234663852886e38,  // FLT_MAX
                                          3.4028234663852889e38,  // the next double
                                          0.5,
                                          1e-30,
                                          0.1,
                                          4.0,
                                          1e300,
                                          -0.0};
    static constexpr std::uint8_t raw_tag = 0xFF;

    double decode(reader& r) const noexcept {
        const std::uint8_t b = r.raw<std::uint8_t>();
        if (b < std::size(specials)) return specials[b];
        return r.raw<double>();
    }
    void encode(writer& w, double v) const {
        for (std::size_t i = 0; i < std::size(specials); ++i)
            if (std::memcmp(&v, &specials[i], sizeof v) == 0) return w.raw(static_cast<std::uint8_t>(i));
        w.raw(raw_tag);
        w.raw(v);
    }
};

// ------------------------------------------------------------------------------------------------
// Expected errors. A model of the documented contract, written independently of the library's
// checks, lists the violations of a call: `must` (the call has to throw) or `may` (the library may
// reject it with a conservative O(1) check, e.g. rows that interleave without sharing an element).
// A call that throws must throw the type of one of them with a message that names it.

enum class error_kind { invalid_argument, out_of_range };

class verdict {
  public:
    void must(error_kind kind, std::string keyword) { add(kind, std::move(keyword), true); }
    void may(error_kind kind, std::string keyword) { add(kind, std::move(keyword), false); }
    void must_invalid(std::string keyword) { must(error_kind::invalid_argument, std::move(keyword)); }
    void must_range(std::string keyword) { must(error_kind::out_of_range, std::move(keyword)); }

    bool must_reject() const noexcept { return must_; }
    bool allows(error_kind kind, const std::string& what) const {
        for (const auto& v : list_)
            if (v.kind == kind && what.find(v.keyword) != std::string::npos) return true;
        return false;
    }
    std::string describe() const {
        if (list_.empty()) return "valid";
        std::string s;
        for (const auto& v : list_)
            s += std::string(v.certain ? "must " : "may ") +
                 (v.kind == error_kind::invalid_argument ? "invalid_argument" : "out_of_range") + " '" + v.keyword + "'; ";
        return s;
    }

  private:
    struct violation {
        error_kind kind;
        std::string keyword;
        bool certain;
    };
    void add(error_kind kind, std::string keyword, bool certain) {
        list_.push_back({kind, std::move(keyword), certain});
        must_ = must_ || certain;
    }
    std::vector<violation> list_;
    bool must_ = false;
};

// Calls f(); returns whether it returned normally. Fails unless the outcome is one the verdict
// allows: returning only if no violation is certain; throwing only std::invalid_argument or
// std::out_of_range, of a listed kind, with a message that starts "rotary: " and names a listed
// violation.
template <class F>
bool call_checked(const verdict& v, const std::string& who, F&& f) {
    const auto caught = [&](error_kind kind, const char* type, const char* what) {
        const std::string message = what;
        note([&] { return who + " threw " + type + ": " + message; });
        check(message.rfind("rotary: ", 0) == 0,
              [&] { return who + " threw " + type + " without the 'rotary: ' prefix: " + message; });
        check(v.allows(kind, message), [&] { return who + " threw " + type + " '" + message + "', expected: " + v.describe(); });
    };
    try {
        f();
    } catch (const std::invalid_argument& e) {
        caught(error_kind::invalid_argument, "invalid_argument", e.what());
        return false;
    } catch (const std::out_of_range& e) {
        caught(error_kind::out_of_range, "out_of_range", e.what());
        return false;
    } catch (const std::exception& e) {
        fail(who + " threw an undocumented exception: " + e.what() + "; expected: " + v.describe());
    } catch (...) {
        fail(who + " threw a non-std exception; expected: " + v.describe());
    }
    check(!v.must_reject(), [&] { return who + " returned normally; expected: " + v.describe(); });
    return true;
}

// ------------------------------------------------------------------------------------------------
// The numerical oracle: cos and sin of m*theta in long double, independent of the library's angle
// code (which splits theta into 21-bit doubles and reduces with a Cody-Waite 2*pi in double). Here
// theta is split into a 32-bit head and the rest, m * head is exact in long double for m < 2^32,
// cosl/sinl reduce that exact argument themselves, and the angle-addition formula adds the tail.

struct cos_sin_ld {
    long double cos, sin;
};

inline cos_sin_ld oracle_cos_sin(std::uint64_t m, long double theta) {
    if (theta == 0 || !std::isfinite(theta)) return {std::cos(static_cast<long double>(m) * theta),
                                                     std::sin(static_cast<long double>(m) * theta)};
    const int e = std::ilogb(theta);
    const long double head = std::ldexp(std::trunc(std::ldexp(theta, 31 - e)), e - 31);  // 32 bits
    const long double tail = theta - head;                                                 // exact
    const long double a = static_cast<long double>(m) * head;  // exact: 32 + 32 bits <= 64
    const long double b = static_cast<long double>(m) * tail;  // |b| < |a| * 2^-31
    const long double ca = std::cos(a), sa = std::sin(a), cb = std::cos(b), sb = std::sin(b);
    return {ca * cb - sa * sb, sa * cb + ca * sb};
}

// theta_i = base^(-2i/rotary_dim) (Sec. 3.2.2), in long double, as the oracle computes it.
inline long double oracle_theta(std::size_t i, std::size_t rotary_dim, long double base) {
    return std::pow(base, -2.0L * static_cast<long double>(i) / static_cast<long double>(rotary_dim));
}

// The tolerances, for one rotated pair (x0, x1) -> (y0, y1) of element type T, computed in
// C = compute_type_t<T>, with cos/sin scaled by the attention factor A:
//   against the oracle:   |y - y_ref| <= 4 eps_C A (|x0| + |x1|) + angle + table + 8 denorm_min_C + storage
//   SIMD against scalar:  |y - y_scalar| <= 2 eps_C A (|x0| + |x1|) + table + 8 denorm_min_C + storage
// where eps_C is the machine epsilon (2^-23 fp32, 2^-52 fp64) and angle = |m theta| 2^-60 A
// (|x0| + |x1|) when theta is computed (default frequencies: library and oracle each hold theta in
// long double to ~2^-63), |m theta| 2^-68 A (|x0| + |x1|) when the caller gave theta (the
// library's reduction by 2 pi in double: its middle term is rounded to 2^-53 of |m theta| 2^-20;
// under 2^-52 A for every m below 2^17). The bound covers the rounding of cos/sin to C (1/2 eps),
// the two products and the sum (1/2 eps each) with a factor ~2 to spare. table = (|x0| + |x1|)
// denorm_min_C: an entry A cos or A sin below C's smallest normal (a tiny attention factor) is
// rounded to C's subnormal spacing, an absolute error of up to denorm_min_C / 2 that the product
// with x0 or x1 scales (fuzz_table_free's regression-subnormal-table-entries: A ~ 1e-300, fp64).
// storage is 0 for fp32 and fp64 buffers. fp16 and bf16 buffers hold their inputs exactly (the
// oracle reads the stored values, so the inputs carry no rounding error of their own) and round
// the fp32 result once on store: half an ulp of |y| <= A (|x0| + |x1|), or half of T's smallest
// subnormal; storage = eps_T A (|x0| + |x1|) + denorm_min_T, eps_T = 2^-10 (fp16) or 2^-7 (bf16),
// which also covers two backends' fp32 results rounding to neighbouring values of T.
// Results whose exact value, or one of whose products, lies within 2^-10 of T's largest finite
// value are not compared (the fp rounding may or may not overflow there); a NaN reference must
// give NaN, an infinite one the same infinity.
template <class T>
struct pair_bound {
    long double oracle, simd;
};

template <class T>
pair_bound<T> bound_for(long double x0, long double x1, long double attention, long double angle_term) {
    using C = rotary::compute_type_t<T>;
    const long double eps = limit<C>::eps();
    const long double floor = 8.0L * limit<C>::denorm_min();
    const long double size = attention * (std::fabs(x0) + std::fabs(x1));
    const long double table = (std::fabs(x0) + std::fabs(x1)) * limit<C>::denorm_min();
    const long double storage = std::is_same<T, C>::value ? 0.0L : limit<T>::eps() * size + limit<T>::denorm_min();
    return {4 * eps * size + angle_term * size + table + floor + storage, 2 * eps * size + table + floor + storage};
}

// Whether a computed value agrees with a reference within tol (see above for the non-finite rules).
inline bool agrees(long double got, long double ref, long double tol, bool overflow_zone) {
    if (std::isnan(ref)) return std::isnan(got);
    if (std::isinf(ref)) return got == ref;
    if (overflow_zone) return true;
    return std::isfinite(got) && std::fabs(got - ref) <= tol;
}

template <class T>
bool near_overflow(long double v) {
    return std::isfinite(v) && std::fabs(v) > limit<T>::max() * (1 - 0x1p-10L);
}

// A valid table's layout and entries: each half row padded with zeros to a multiple of 64 bytes
// plus half a vector, and for every position m and pair i, A cos(m theta_i) and A sin(m theta_i)
// within (4 eps_C + |m theta_i| angle_scale) A + denorm_min_C of the oracle (theta: the oracle's
// frequencies; angle_scale: how far the table's theta may be from them, relative).
template <class C>
void check_table_rows(const rotary::rope_table<C>& table, const std::vector<long double>& theta, long double factor,
                      long double angle_scale) {
    const std::size_t pairs = theta.size();
    const std::size_t padded = table.padded_pairs();
    const std::size_t half_vector = 32 / sizeof(C);
    check(padded >= pairs + half_vector && padded * sizeof(C) % 64 == 0,
          "table: each half of a row must be padded to a multiple of 64 bytes, with at least half a vector");
    check(table.row_stride() == 2 * padded, "table: row_stride");
    for (std::size_t m = 0; m < table.max_positions(); ++m) {
        const C* c = table.cos(m);
        const C* s = table.sin(m);
        check(c == table.data() + m * table.row_stride() && s == c + padded, "table: row addresses");
        for (std::size_t i = 0; i < pairs; ++i) {
            const cos_sin_ld ref = oracle_cos_sin(m, theta[i]);
            const long double a = factor;
            const long double angle = std::fabs(static_cast<long double>(m) * theta[i]) * angle_scale;
            const long double tol = (4 * limit<C>::eps() + angle) * a + limit<C>::denorm_min();
            const auto where = [&](const char* what, C got, long double want) {
                return std::string("table: ") + what + "(" + std::to_string(m) + ")[" + std::to_string(i) + "] = " +
                       std::to_string(static_cast<double>(got)) + ", the oracle says " +
                       std::to_string(static_cast<double>(want)) + " (theta " + std::to_string(static_cast<double>(theta[i])) +
                       ")";
            };
            check(agrees(c[i], a * ref.cos, tol, near_overflow<C>(a * ref.cos)), [&] { return where("cos", c[i], a * ref.cos); });
            check(agrees(s[i], a * ref.sin, tol, near_overflow<C>(a * ref.sin)), [&] { return where("sin", s[i], a * ref.sin); });
        }
        for (std::size_t i = pairs; i < padded; ++i)
            check(c[i] == C(0) && s[i] == C(0), [&] { return "table: padding of row " + std::to_string(m) + " is not zero"; });
    }
}

// ------------------------------------------------------------------------------------------------
// Deterministic values from a seed (splitmix64): the buffers' contents.

class value_source {
  public:
    explicit value_source(std::uint64_t seed) noexcept : s_(seed) {}
    __attribute__((no_sanitize("unsigned-integer-overflow"))) std::uint64_t next() noexcept {
        std::uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1p-53 * 2.0 - 1.0; }  // [-1, 1)

    // mode 0: uniform in [-1, 1); 1: random sign and magnitude 10^[-30, 30); 2: any bit pattern
    // (NaN, Inf, subnormals); 3: uniform with a sprinkling of 0, -0, +-Inf, NaN, subnormals and
    // T's largest value.
    // For fp16 (largest value 65504) mode 1 spans 10^[-5, 5).
    template <class T>
    T value(std::uint8_t mode) noexcept {
        using bits = std::conditional_t<sizeof(T) == 2, std::uint16_t,
                                        std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>;
        const double decades = std::is_same<T, Eigen::half>::value ? 5.0 : 30.0;
        switch (mode % 4) {
            case 1: return static_cast<T>(std::copysign(std::pow(10.0, decades * uniform()), uniform()));
            case 2: {
                const bits b = static_cast<bits>(next());
                T v;
                std::memcpy(&v, &b, sizeof v);
                return v;
            }
            case 3: {
                const std::uint64_t r = next();
                if (r % 8 != 0) return static_cast<T>(uniform());
                const T specials[] = {T(0), -T(0), std::numeric_limits<T>::infinity(), -std::numeric_limits<T>::infinity(),
                                      std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::denorm_min(),
                                      std::numeric_limits<T>::max(), -std::numeric_limits<T>::max()};
                return specials[(r / 8) % 8];
            }
            default: return static_cast<T>(uniform());
        }
    }

  private:
    std::uint64_t s_;
};

// A seed's value seed from its name (FNV-1a): adding a seed leaves the others' files as they were.
inline std::uint32_t seed_of(const char* name) noexcept {
    std::uint32_t h = 2166136261u;
    for (; *name; ++name) h = wrap_mul<std::uint32_t>(h ^ static_cast<unsigned char>(*name), 16777619u);
    return h;
}

// ------------------------------------------------------------------------------------------------
// libFuzzer glue.

template <class Spec>
std::vector<std::uint8_t> encode(const Spec& spec) {
    writer w;
    const_cast<Spec&>(spec).code(w);  // code() only reads the fields through a writer
    return w.bytes;
}

template <class Spec>
Spec decode(const std::uint8_t* data, std::size_t size) {
    reader r(data, size);
    Spec spec;
    spec.code(r);
    return spec;
}

// --write-seeds=DIR writes each seed (after checking that it decodes to itself); --describe FILE...
// prints the call each input decodes to. Both exit. libFuzzer ignores flags that start with "--".
template <class Spec>
int initialize(int* argc, char*** argv) {
    bool describe = false;
    for (int i = 1; i < *argc; ++i) {
        const std::string arg = (*argv)[i];
        const std::string seeds_flag = "--write-seeds=";
        if (arg.rfind(seeds_flag, 0) == 0) {
            const std::string dir = arg.substr(seeds_flag.size());
            for (const auto& [name, spec] : Spec::seeds()) {
                const auto bytes = encode(spec);
                const Spec back = decode<Spec>(bytes.data(), bytes.size());
                if (encode(back) != bytes || back.describe() != spec.describe()) {
                    std::fprintf(stderr, "seed %s does not decode to itself:\n  %s\n  %s\n", name.c_str(),
                                 spec.describe().c_str(), back.describe().c_str());
                    std::exit(1);
                }
                std::ofstream out(dir + "/" + name, std::ios::binary);
                out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
                if (!out) {
                    std::fprintf(stderr, "cannot write %s/%s\n", dir.c_str(), name.c_str());
                    std::exit(1);
                }
                std::printf("%s: %s\n", name.c_str(), spec.describe().c_str());
            }
            std::exit(0);
        }
        if (arg == "--describe") {
            describe = true;
        } else if (describe) {
            std::ifstream in(arg, std::ios::binary);
            const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            std::printf("%s: %s\n", arg.c_str(), decode<Spec>(bytes.data(), bytes.size()).describe().c_str());
        }
    }
    if (describe) std::exit(0);
    return 0;
}

template <class Spec>
void test_one(const std::uint8_t* data, std::size_t size) {
    const Spec spec = decode<Spec>(data, size);
    current_call() = [&spec] { return spec.describe(); };
    if (verbose()) std::fprintf(stderr, "%s\n", spec.describe().c_str());
    spec.run();
}

}  // namespace rotary_fuzz

#define ROTARY_FUZZ_TARGET(Spec)                                                           \
    extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {                         \
        return ::rotary_fuzz::initialize<Spec>(argc, argv);                                \
    }                                                                                      \
    extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {    \
        ::rotary_fuzz::test_one<Spec>(data, size);                                         \
        return 0;                                                                          \
    }
