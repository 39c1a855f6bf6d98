// long_term_decay: Figure 2 of the paper (Sec. 3.4.3). For the relative distance r = 0 .. 256 it
// prints, as CSV, the relative upper bound (1/(d/2)) sum_{j=1}^{d/2} |S_j|, S_j = sum_{i<j} e^{i r
// theta_i}, with d = 128 and theta_i = base^(-2i/d), one column per base:
//
//   long_term_decay [base ...]        (default: 10000, the paper's)
//
// The bound is 32.5 at r = 0 and decays, with oscillations: distant tokens are allowed smaller
// scores. A larger base (LLaMA 3's 500000) decays more slowly. The build renders the curve with
// gnuplot (long_term_decay.gp) as long_term_decay.png when gnuplot is installed.
#include <rotary/rotary.hpp>

#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    constexpr std::size_t rotary_dim = 128;
    constexpr int max_distance = 256;
    try {
        const std::vector<std::string> bases = argc > 1 ? std::vector<std::string>(argv + 1, argv + argc)
                                                        : std::vector<std::string>{"10000"};
        std::vector<rotary::rope_frequencies> frequencies;
        for (const std::string& base : bases) {
            std::size_t used = 0;
            const double value = std::stod(base, &used);
            if (used != base.size()) throw std::invalid_argument("base: expected a number, got '" + base + "'");
            frequencies.push_back(rotary::default_frequencies(rotary_dim, value));
        }
        std::printf("relative_distance");
        for (const std::string& base : bases) std::printf(",base_%s", base.c_str());
        std::printf("\n");
        for (int r = 0; r <= max_distance; ++r) {
            std::printf("%d", r);
            for (const auto& f : frequencies) std::printf(",%.6g", rotary::long_term_decay_bound(f, r));
            std::printf("\n");
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "long_term_decay: %s\n", e.what());
        return 1;
    }
}
