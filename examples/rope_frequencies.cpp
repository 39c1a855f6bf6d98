// rope_frequencies: what rotary computes for a checkpoint's RoPE config. Pass the keys of the
// model's config.json (its rope_scaling / rope_parameters object, plus rope_theta, head_dim,
// partial_rotary_factor, max_position_embeddings) as key=value, lists comma-separated, booleans
// true/false, and optionally seq_len=N (the current length, read by dynamic and longrope):
//
//   rope_frequencies rope_type=llama3 rope_theta=500000 head_dim=128 factor=8 low_freq_factor=1 \
//                    high_freq_factor=4 original_max_position_embeddings=8192
//
// Prints the attention factor on the first line, then the inverse frequency theta_i of each pair,
// one per line (%.17g): compare them with your framework's inv_freq. A bad key or value prints the
// error and exits with status 1.
#include <rotary/rotary.hpp>

#include <charconv>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>

namespace {

std::size_t parse_seq_len(std::string_view value) {
    std::size_t n = 0;
    const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (value.empty() || error != std::errc() || end != value.data() + value.size())
        throw std::invalid_argument("seq_len: expected a non-negative integer, got '" + std::string(value) + "'");
    return n;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr,
                     "usage: %s key=value ... [seq_len=N]\n"
                     "  keys: rope_type rope_theta head_dim partial_rotary_factor max_position_embeddings factor\n"
                     "        original_max_position_embeddings low_freq_factor high_freq_factor beta_fast beta_slow\n"
                     "        mscale mscale_all_dim attention_factor truncate short_factor long_factor\n"
                     "  prints the attention factor, then one inverse frequency per line\n",
                     argv[0]);
        return 2;
    }
    try {
        rotary::rope_config config;
        std::size_t seq_len = 0;
        for (int a = 1; a < argc; ++a) {
            const std::string_view arg = argv[a];
            const std::size_t eq = arg.find('=');
            if (eq == std::string_view::npos || eq == 0)
                throw std::invalid_argument("expected key=value, got '" + std::string(arg) + "'");
            const std::string_view key = arg.substr(0, eq), value = arg.substr(eq + 1);
            if (key == "seq_len")
                seq_len = parse_seq_len(value);
            else
                rotary::set_config_field(config, key, value);
        }
        const rotary::rope_frequencies f = rotary::frequencies_from_config(config, seq_len);
        std::printf("%.17g\n", f.attention_factor);
        for (const long double theta : f.inverse) std::printf("%.17g\n", static_cast<double>(theta));
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "rope_frequencies: %s\n", e.what());
        return 1;
    }
}
