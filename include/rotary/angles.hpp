// rotary: cos and sin of m * theta_i, formed and reduced beyond double precision (layer 2 of
// DESIGN.md). Every cos/sin the library produces comes from exact_cos_sin().
// SPDX-License-Identifier: MIT
#ifndef ROTARY_ANGLES_HPP
#define ROTARY_ANGLES_HPP

#include <cmath>
#include <cstdint>

namespace rotary {
namespace detail {

// theta split as hi + mid + lo, hi and mid rounded to 21 significant bits: for a position
// m < 2^32 the products m*hi and m*mid are then exact in double, so the angle m*theta is known to
// ~1e-12 rad where a plain double product is off by up to 2e-7 rad near m = 2^31.
struct split_frequency {
    double hi = 0, mid = 0, lo = 0;
};

inline long double round_to_bits(long double x, int bits) {
    if (x == 0) return 0;
    const int e = std::ilogb(x);
    return std::ldexp(std::nearbyint(std::ldexp(x, bits - 1 - e)), e - (bits - 1));
}

inline split_frequency split(long double theta) {
    split_frequency s;
    const long double hi = round_to_bits(theta, 21);
    const long double mid = round_to_bits(theta - hi, 21);
    s.hi = static_cast<double>(hi);
    s.mid = static_cast<double>(mid);
    s.lo = static_cast<double>(theta - hi - mid);
    return s;
}

// 2*pi = two_pi_1 + two_pi_2 + two_pi_3 (Cody-Waite): the first two have 22 significant bits, so
// k * two_pi_1 and k * two_pi_2 are exact for every k < 2^31; the third carries the rest (the
// sum is 2*pi to within 4e-31).
constexpr double two_pi_1 = 6.283185958862305;        // 0x1.921fb8p+2
constexpr double two_pi_2 = -6.516827397717861e-07;   // -0x1.5dde98p-21
constexpr double two_pi_3 = 2.1561211432632476e-14;   // 0x1.8469898cc517p-46
constexpr double inv_two_pi = 0.15915494309189535;

// m*theta reduced to about [-pi, pi], accurate to ~1e-12 rad for 0 <= m < 2^32, |theta| <= 1.
// D is double, or xsimd::batch<double, Arch> for the table-free path (table_free.hpp): the same
// steps on every lane. An FMA contraction of any step only makes it more exact.
template <class D>
inline D reduce_angle(const D& m, const D& hi, const D& mid, const D& lo) noexcept {
    using std::nearbyint;  // xsimd::nearbyint for batches, found by argument-dependent lookup
    const D x1 = m * hi, x2 = m * mid, x3 = m * lo;  // x1, x2 exact
    const D k = nearbyint((x1 + x2) * D(inv_two_pi));
    // x1 - k*two_pi_1 is exact (both exact, and within a factor 2 of each other: Sterbenz).
    return ((x1 - k * D(two_pi_1)) + (x2 - k * D(two_pi_2))) + (x3 - k * D(two_pi_3));
}

inline double reduced_angle(std::int64_t m, const split_frequency& f) noexcept {
    return reduce_angle(static_cast<double>(m), f.hi, f.mid, f.lo);
}

struct cos_sin {
    double cos, sin;
};

// cos and sin of m*theta; rounded once more to fp32 they are within one fp32 ulp of the truth.
inline cos_sin exact_cos_sin(std::int64_t m, const split_frequency& f) noexcept {
    const double r = reduced_angle(m, f);
    return {std::cos(r), std::sin(r)};
}

}  // namespace detail
}  // namespace rotary

#endif  // ROTARY_ANGLES_HPP
