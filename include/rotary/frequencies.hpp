// rotary: the inverse frequencies theta_i of one head (layer 1 of DESIGN.md).
// SPDX-License-Identifier: MIT
#ifndef ROTARY_FREQUENCIES_HPP
#define ROTARY_FREQUENCIES_HPP

#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "types.hpp"

namespace rotary {

// Per-pair inverse frequencies and the attention factor that multiplies cos and sin (1 unless a
// scaling method such as YaRN or LongRoPE sets it). Kept in long double: at position 2^31 an error
// of one double ulp in theta_i is already 1e-7 rad, the whole fp32 budget.
struct rope_frequencies {
    std::vector<long double> inverse;  // theta_i, i = 0 .. rotary_dim/2 - 1
    double attention_factor = 1.0;

    std::size_t rotary_dim() const noexcept { return 2 * inverse.size(); }
    std::size_t pairs() const noexcept { return inverse.size(); }
};

namespace detail {

constexpr long double max_inverse_frequency = 3.141592653589793238462643383279502884L;

inline void check_frequencies(const rope_frequencies& f) {
    if (f.inverse.empty()) throw_invalid("rotary_dim must be a positive even number, got 0");
    // |theta| <= pi: positions are integers, so a rotation by theta per position is the same as one
    // by theta - 2*pi, and every frequency has an equivalent in [-pi, pi]; within it m*theta stays
    // below 2^31 * 2*pi for every m < 2^32, where reduced_angle() is exact.
    for (std::size_t i = 0; i < f.inverse.size(); ++i)
        if (!(std::fabs(f.inverse[i]) <= max_inverse_frequency))
            throw_invalid("inverse frequency " + std::to_string(i) + " must be finite and within [-pi, pi], got " +
                          std::to_string(static_cast<double>(f.inverse[i])));
    if (!(std::isfinite(f.attention_factor) && f.attention_factor > 0))
        throw_invalid("attention_factor must be finite and > 0, got " + std::to_string(f.attention_factor));
}

// theta_i = base^(-2i / rotary_dim) in long double, for a checked even rotary_dim and base > 1 (the
// scaling methods of scaling.hpp pass a base of their own, computed in long double).
inline std::vector<long double> default_inverse(std::size_t rotary_dim, long double base) {
    std::vector<long double> inverse(rotary_dim / 2);
    const long double log_base = std::log(base);
    for (std::size_t i = 0; i < inverse.size(); ++i)
        inverse[i] = std::exp(-log_base * static_cast<long double>(2 * i) / static_cast<long double>(rotary_dim));
    return inverse;
}

}  // namespace detail

// theta_i = base^(-2i / rotary_dim), i = 0 .. rotary_dim/2 - 1 (paper Sec. 3.2.2; base 10000,
// LLaMA 3 uses 500000).
inline rope_frequencies default_frequencies(std::size_t rotary_dim, double base = 10000.0) {
    if (rotary_dim == 0 || rotary_dim % 2 != 0)
        detail::throw_invalid("rotary_dim must be a positive even number, got " + std::to_string(rotary_dim));
    if (!(std::isfinite(base) && base > 1.0))
        detail::throw_invalid("base (rope_theta) must be finite and > 1, got " + std::to_string(base));
    rope_frequencies f;
    f.inverse = detail::default_inverse(rotary_dim, base);
    return f;
}

// A caller's own inverse frequencies (a framework's exact values, or a scaling method's), taken
// exactly: one per pair, so rotary_dim = 2 * count.
inline rope_frequencies custom_frequencies(const double* inverse, std::size_t count, double attention_factor = 1.0) {
    if (inverse == nullptr && count != 0) detail::throw_invalid("inverse frequencies pointer is null");
    rope_frequencies f;
    f.inverse.assign(inverse, inverse + count);
    f.attention_factor = attention_factor;
    detail::check_frequencies(f);
    return f;
}
inline rope_frequencies custom_frequencies(const std::vector<double>& inverse, double attention_factor = 1.0) {
    return custom_frequencies(inverse.data(), inverse.size(), attention_factor);
}

}  // namespace rotary

#endif  // ROTARY_FREQUENCIES_HPP
