// Figure 2 of the paper: the relative upper bound (1/(d/2)) sum_j |S_j| of Eq. 37 against the
// relative distance, d = 128, base 10000; checked against the sums written out in long double.
#include "support.hpp"

#include <complex>

namespace {

// (1/(d/2)) sum_{j=1}^{d/2} |sum_{i<j} e^{i r theta_i}|, straight from Eq. 36-37.
long double bound_by_definition(std::size_t d, long double base, long double r) {
    long double total = 0;
    for (std::size_t j = 1; j <= d / 2; ++j) {
        std::complex<long double> s = 0;
        for (std::size_t i = 0; i < j; ++i)
            s += std::polar(1.0L, r * std::pow(base, -2.0L * static_cast<long double>(i) / static_cast<long double>(d)));
        total += std::abs(s);
    }
    return total / static_cast<long double>(d / 2);
}

TEST(LongTermDecay, ValueAtZeroIsExactlyHalfOfPairsPlusOne) {
    EXPECT_EQ(rotary::long_term_decay_bound(rotary::default_frequencies(128), 0), 32.5);
    EXPECT_EQ(rotary::long_term_decay_bound(rotary::default_frequencies(64, 500000.0), 0), 16.5);
}

TEST(LongTermDecay, DecaysWithDistance) {
    const auto f = rotary::default_frequencies(128);
    double tail = 0;
    for (int r = 200; r <= 256; ++r) tail += rotary::long_term_decay_bound(f, r);
    tail /= 57;
    std::printf("[ figure 2 ] d = 128, base 10000: bound 32.5 at r = 0, mean %.4g over r = 200..256\n", tail);
    EXPECT_LT(tail, 32.5 / 3);
}

TEST(LongTermDecay, MatchesTheDefinition) {
    const auto f = rotary::default_frequencies(128);
    for (const std::int64_t r : {1, 2, 17, 100, 255, 256, 100000})
        EXPECT_NEAR(rotary::long_term_decay_bound(f, r), static_cast<double>(bound_by_definition(128, 10000.0L, r)), 1e-12)
            << "r = " << r;
    // Even in r: S_j(-r) is the conjugate of S_j(r).
    EXPECT_EQ(rotary::long_term_decay_bound(f, -37), rotary::long_term_decay_bound(f, 37));
    const auto llama = rotary::default_frequencies(128, 500000.0);
    EXPECT_NEAR(rotary::long_term_decay_bound(llama, 50), static_cast<double>(bound_by_definition(128, 500000.0L, 50)), 1e-12);
}

TEST(LongTermDecay, DistanceOutOfRange) {
    const auto f = rotary::default_frequencies(16);
    EXPECT_THROW(rotary::long_term_decay_bound(f, std::int64_t{1} << 32), std::out_of_range);
    EXPECT_THROW(rotary::long_term_decay_bound(f, -(std::int64_t{1} << 32)), std::out_of_range);
    EXPECT_NO_THROW(rotary::long_term_decay_bound(f, (std::int64_t{1} << 32) - 1));
}

}  // namespace
