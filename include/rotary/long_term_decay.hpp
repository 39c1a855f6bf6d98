// rotary: the long-term decay of RoPE (Sec. 3.4.3 and Figure 2 of the paper), for any frequencies:
// how a choice of base or a scaling method shapes the bound on the attention score over distance.
// SPDX-License-Identifier: MIT
#ifndef ROTARY_LONG_TERM_DECAY_HPP
#define ROTARY_LONG_TERM_DECAY_HPP

#include <cmath>
#include <cstdint>
#include <string>

#include "angles.hpp"
#include "frequencies.hpp"
#include "types.hpp"

namespace rotary {

// The relative upper bound of Eq. 37 at relative distance r = m - n: (1/(d/2)) sum_{j=1}^{d/2} |S_j|
// with S_j = sum_{i<j} e^{i r theta_i} (Eq. 36), the curve of Figure 2. It is (d/2 + 1)/2 at r = 0
// and decays, with oscillations, as |r| grows (theta_i = 10000^(-2i/d) in the paper). The angles
// r * theta_i are the library's exact ones (angles.hpp), so any |r| < 2^32 is accepted; the bound
// is even in r (S_j(-r) is the conjugate of S_j(r)). The attention factor plays no part.
inline double long_term_decay_bound(const rope_frequencies& frequencies, std::int64_t distance) {
    detail::check_frequencies(frequencies);
    if (distance <= -(std::int64_t{1} << 32) || distance >= (std::int64_t{1} << 32))
        detail::throw_range("distance must be in (-2^32, 2^32), got " + std::to_string(distance));
    const std::int64_t r = distance < 0 ? -distance : distance;
    double re = 0, im = 0, sum = 0;  // S_j and the sum of |S_j|
    for (const long double theta : frequencies.inverse) {
        const detail::cos_sin e = detail::exact_cos_sin(r, detail::split(theta));
        re += e.cos;
        im += e.sin;
        sum += std::hypot(re, im);
    }
    return sum / static_cast<double>(frequencies.pairs());
}

}  // namespace rotary

#endif  // ROTARY_LONG_TERM_DECAY_HPP
