// rotary: the frequency scaling methods of long-context checkpoints (layer 1 of DESIGN.md), selected
// by the RoPE fields of a model's config.json. Each method rewrites the inverse frequencies
// theta_i = base^(-2i/d) and may set an attention factor, which the table (and the table-free
// path) multiplies into cos and sin where it builds them, never in the kernels' loop.
// SPDX-License-Identifier: MIT
#ifndef ROTARY_SCALING_HPP
#define ROTARY_SCALING_HPP

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "frequencies.hpp"
#include "types.hpp"

namespace rotary {

// The RoPE fields of a model's config.json: those of its `rope_scaling` (or `rope_parameters`)
// object, and rope_theta, head_dim, partial_rotary_factor and max_position_embeddings from the top
// level. Every member is named after its config.json key, so a checkpoint's config maps one to
// one; an optional member is a key the file may leave out. Which method reads which key: README.md.
struct rope_config {
    std::string rope_type = "default";  // default, linear, dynamic, yarn, llama3, longrope
    double rope_theta = 10000.0;        // the base
    std::int64_t head_dim = 0;          // required; hidden_size / num_attention_heads where a config has no head_dim
    double partial_rotary_factor = 1.0;  // rotary dim d = head_dim * partial_rotary_factor (truncated, as HF does)
    std::optional<std::int64_t> max_position_embeddings;           // M
    std::optional<double> factor;                                  // the context extension factor s
    std::optional<std::int64_t> original_max_position_embeddings;  // O; M when absent
    std::optional<double> low_freq_factor, high_freq_factor;       // llama3
    std::optional<double> beta_fast, beta_slow;                    // yarn; 32 and 1 when absent
    std::optional<double> mscale, mscale_all_dim;                  // yarn (DeepSeek)
    std::optional<double> attention_factor;                        // yarn, longrope: overrides the computed one
    bool truncate = true;                                          // yarn: floor/ceil the correction range
    std::vector<double> short_factor, long_factor;                 // longrope: d/2 entries each
};

namespace detail {

constexpr long double pi_l = 3.141592653589793238462643383279502884L;

// What every method starts from, checked: the config, the current sequence length, the rotary
// dim d and the base. The methods below get theta_i = base^(-2i/d) in f and rewrite it.
struct scaling_input {
    const rope_config& config;
    std::size_t seq_len;
    std::size_t rotary_dim;
    long double base;
};

[[noreturn]] ROTARY_COLD inline void fail_field(const char* field, const std::string& what) {
    throw_invalid(std::string(field) + " " + what);
}

inline std::string number_text(long double x) {
    char text[32];
    std::snprintf(text, sizeof text, "%.10g", static_cast<double>(x));
    return text;
}

inline long double required(const std::optional<double>& value, const char* field, const scaling_input& in) {
    if (!value) fail_field(field, "is required by rope_type " + in.config.rope_type);
    if (!std::isfinite(*value)) fail_field(field, "must be finite, got " + number_text(*value));
    return *value;
}
inline long double required(const std::optional<std::int64_t>& value, const char* field, const scaling_input& in) {
    if (!value) fail_field(field, "is required by rope_type " + in.config.rope_type);
    return static_cast<long double>(*value);
}
// The context length the checkpoint was trained with: original_max_position_embeddings, or
// max_position_embeddings when the config has no separate original.
inline long double original_length(const scaling_input& in) {
    const rope_config& c = in.config;
    if (c.original_max_position_embeddings) return static_cast<long double>(*c.original_max_position_embeddings);
    if (c.max_position_embeddings) return static_cast<long double>(*c.max_position_embeddings);
    fail_field("original_max_position_embeddings", "(or max_position_embeddings) is required by rope_type " + c.rope_type);
}

// g(s, m) = 0.1 m ln s + 1 for s > 1, else 1: YaRN's attention factor for scale s.
inline long double yarn_mscale(long double s, long double m) { return s <= 1 ? 1.0L : 0.1L * m * std::log(s) + 1.0L; }

// ---- The methods: each rewrites f.inverse (theta_i) and may set f.attention_factor. ------------

inline void scale_default(const scaling_input&, rope_frequencies&) {}

// linear (position interpolation): theta_i / factor.
inline void scale_linear(const scaling_input& in, rope_frequencies& f) {
    const long double s = required(in.config.factor, "factor", in);
    for (long double& theta : f.inverse) theta /= s;
}

// dynamic (NTK-aware): for L = max(seq_len, M) > M, base' = base * (s*L/M - (s - 1))^(d/(d-2)).
// The base depends on the sequence length: keys cached with one base must be rotated again when
// it changes (HF recomputes the frequencies whenever the sequence outgrows the last length).
inline void scale_dynamic(const scaling_input& in, rope_frequencies& f) {
    const long double s = required(in.config.factor, "factor", in);
    const long double m = required(in.config.max_position_embeddings, "max_position_embeddings", in);
    if (in.rotary_dim <= 2) fail_field("head_dim", "* partial_rotary_factor must be > 2 for rope_type dynamic (the base is raised to d/(d-2)), got 2");
    if (static_cast<long double>(in.seq_len) <= m) return;  // identical to default up to M
    const long double d = static_cast<long double>(in.rotary_dim);
    const long double l = static_cast<long double>(in.seq_len);
    f.inverse = default_inverse(in.rotary_dim, in.base * std::pow(s * l / m - (s - 1), d / (d - 2)));
}

// yarn: pairs that turn fewer than beta_slow times over the original context are interpolated
// (theta_i / s), pairs that turn more than beta_fast times are kept, a linear ramp in between;
// cos and sin are scaled by the attention factor.
inline void scale_yarn(const scaling_input& in, rope_frequencies& f) {
    const rope_config& c = in.config;
    const long double s = required(c.factor, "factor", in);
    const long double o = original_length(in);
    const long double beta_fast = c.beta_fast.value_or(32.0), beta_slow = c.beta_slow.value_or(1.0);
    if (!(std::isfinite(beta_slow) && beta_slow > 0)) fail_field("beta_slow", "must be finite and > 0, got " + number_text(beta_slow));
    if (!(std::isfinite(beta_fast) && beta_fast > beta_slow))
        fail_field("beta_fast", "must be finite and > beta_slow " + number_text(beta_slow) + ", got " + number_text(beta_fast));
    // mscale and mscale_all_dim are read when there is no attention_factor (even where s <= 1 makes
    // them irrelevant, a NaN or Inf there is a broken config, not a value to ignore)
    if (!c.attention_factor)
        for (const auto& [value, key] : {std::pair{&c.mscale, "mscale"}, std::pair{&c.mscale_all_dim, "mscale_all_dim"}})
            if (*value && !std::isfinite(**value)) fail_field(key, "must be finite, got " + number_text(**value));
    const long double d = static_cast<long double>(in.rotary_dim);
    // the pair index i at which theta_i turns `rotations` times over o positions
    const auto correction_dim = [&](long double rotations) {
        return d * std::log(o / (2 * pi_l * rotations)) / (2 * std::log(in.base));
    };
    long double low = correction_dim(beta_fast), high = correction_dim(beta_slow);
    if (c.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
    }
    low = std::clamp(low, 0.0L, d - 1);
    high = std::clamp(high, 0.0L, d - 1);
    if (low == high) high += 0.001L;
    for (std::size_t i = 0; i < f.inverse.size(); ++i) {
        const long double ramp = std::clamp((static_cast<long double>(i) - low) / (high - low), 0.0L, 1.0L);
        f.inverse[i] = f.inverse[i] * (1 - ramp) + f.inverse[i] / s * ramp;
    }
    if (c.attention_factor)
        f.attention_factor = *c.attention_factor;
    else if (c.mscale && c.mscale_all_dim && *c.mscale != 0 && *c.mscale_all_dim != 0)
        f.attention_factor = static_cast<double>(yarn_mscale(s, *c.mscale) / yarn_mscale(s, *c.mscale_all_dim));
    else
        f.attention_factor = static_cast<double>(yarn_mscale(s, 1));
}

// llama3: wavelengths longer than O/low_freq_factor are interpolated (theta_i / s), shorter than
// O/high_freq_factor kept, and blended in between.
inline void scale_llama3(const scaling_input& in, rope_frequencies& f) {
    const rope_config& c = in.config;
    const long double s = required(c.factor, "factor", in);
    const long double low = required(c.low_freq_factor, "low_freq_factor", in);
    const long double high = required(c.high_freq_factor, "high_freq_factor", in);
    const long double o = original_length(in);
    if (!(low > 0)) fail_field("low_freq_factor", "must be > 0, got " + number_text(low));
    if (!(high > low))
        fail_field("high_freq_factor", "must be > low_freq_factor " + number_text(low) + ", got " + number_text(high));
    for (long double& theta : f.inverse) {
        const long double wavelength = 2 * pi_l / theta;
        if (wavelength > o / low) {
            theta /= s;
        } else if (!(wavelength < o / high)) {
            const long double smooth = (o / wavelength - low) / (high - low);
            theta = (1 - smooth) * theta / s + smooth * theta;
        }
    }
}

// longrope: theta_i / long_factor[i] once the sequence is longer than O, theta_i / short_factor[i]
// up to O. Switching lists changes every angle: keys cached under one list must be rotated again.
inline void scale_longrope(const scaling_input& in, rope_frequencies& f) {
    const rope_config& c = in.config;
    const long double o = original_length(in);
    const auto check_list = [&](const std::vector<double>& list, const char* name) {
        if (list.size() != f.pairs())
            fail_field(name, "must have rotary_dim / 2 = " + std::to_string(f.pairs()) + " entries, got " +
                                 std::to_string(list.size()));
        for (std::size_t i = 0; i < list.size(); ++i)
            if (!(std::isfinite(list[i]) && list[i] > 0))
                fail_field(name, "entry " + std::to_string(i) + " must be finite and > 0, got " + number_text(list[i]));
    };
    check_list(c.short_factor, "short_factor");
    check_list(c.long_factor, "long_factor");
    const std::vector<double>& ext = static_cast<long double>(in.seq_len) > o ? c.long_factor : c.short_factor;
    for (std::size_t i = 0; i < f.inverse.size(); ++i) f.inverse[i] /= ext[i];
    if (c.attention_factor) {
        f.attention_factor = *c.attention_factor;
        return;
    }
    const long double s = c.factor ? static_cast<long double>(*c.factor)
                                   : c.max_position_embeddings ? static_cast<long double>(*c.max_position_embeddings) / o : 1.0L;
    if (s > 1) {
        if (!(o > 1)) fail_field("original_max_position_embeddings", "must be > 1 for longrope's attention factor, got " + number_text(o));
        f.attention_factor = static_cast<double>(std::sqrt(1 + std::log(s) / std::log(o)));
    }
}

struct scaling_method {
    const char* rope_type;
    void (*scale)(const scaling_input&, rope_frequencies&);
};

// One line per method: adding a method is a function above and a line here.
inline constexpr scaling_method scaling_methods[] = {
    {"default", &scale_default}, {"linear", &scale_linear}, {"dynamic", &scale_dynamic},
    {"yarn", &scale_yarn},       {"llama3", &scale_llama3}, {"longrope", &scale_longrope},
};

}  // namespace detail

// The inverse frequencies and attention factor of a checkpoint's RoPE config. seq_len is the
// current sequence length, read by `dynamic` (a larger base past max_position_embeddings) and
// `longrope` (long_factor past original_max_position_embeddings); 0 means short / not known.
// Throws std::invalid_argument naming the config.json field for a missing or bad value.
inline rope_frequencies frequencies_from_config(const rope_config& config, std::size_t seq_len = 0) {
    using detail::fail_field;
    using detail::number_text;
    const detail::scaling_method* method = nullptr;
    std::string known;
    for (const detail::scaling_method& m : detail::scaling_methods) {
        if (config.rope_type == m.rope_type) method = &m;
        known += known.empty() ? m.rope_type : std::string(", ") + m.rope_type;
    }
    if (method == nullptr) fail_field("rope_type", "'" + config.rope_type + "' is not one of " + known);
    if (!(std::isfinite(config.rope_theta) && config.rope_theta > 1))
        fail_field("rope_theta", "must be finite and > 1, got " + number_text(config.rope_theta));
    if (config.head_dim <= 0) fail_field("head_dim", "must be > 0, got " + std::to_string(config.head_dim));
    if (!(config.partial_rotary_factor > 0 && config.partial_rotary_factor <= 1))
        fail_field("partial_rotary_factor", "must be in (0, 1], got " + number_text(config.partial_rotary_factor));
    // Truncated as Hugging Face does (int() of a double product). A product of 2^63 or more (head_dim
    // near INT64_MAX rounds up to it) has no int64 value: converting it would be undefined behaviour.
    const double product = static_cast<double>(config.head_dim) * config.partial_rotary_factor;
    if (!(product < 0x1p63))
        fail_field("partial_rotary_factor", "* head_dim must give a rotary dim below 2^63, got " + number_text(product));
    const auto rotary_dim = static_cast<std::int64_t>(product);
    if (rotary_dim <= 0 || rotary_dim % 2 != 0)
        fail_field("partial_rotary_factor", "* head_dim must give a positive even rotary dim, got " +
                                                std::to_string(rotary_dim) + " = " + std::to_string(config.head_dim) +
                                                " * " + number_text(config.partial_rotary_factor));
    if (config.factor && !(std::isfinite(*config.factor) && *config.factor > 0))
        fail_field("factor", "must be finite and > 0, got " + number_text(*config.factor));
    if (config.max_position_embeddings && *config.max_position_embeddings <= 0)
        fail_field("max_position_embeddings", "must be > 0, got " + std::to_string(*config.max_position_embeddings));
    if (config.original_max_position_embeddings && *config.original_max_position_embeddings <= 0)
        fail_field("original_max_position_embeddings",
                   "must be > 0, got " + std::to_string(*config.original_max_position_embeddings));

    rope_frequencies f;
    f.inverse = detail::default_inverse(static_cast<std::size_t>(rotary_dim), config.rope_theta);
    method->scale({config, seq_len, static_cast<std::size_t>(rotary_dim), config.rope_theta}, f);
    detail::check_frequencies(f);
    return f;
}

namespace detail {

inline std::string_view trim(std::string_view s) {
    const auto first = s.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) return {};
    return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

[[noreturn]] ROTARY_COLD inline void fail_value(std::string_view key, std::string_view value, const char* expected) {
    throw_invalid(std::string(key) + ": expected " + expected + ", got '" + std::string(value) + "'");
}

inline double parse_number(std::string_view key, std::string_view text) {
    const std::string_view t = trim(text);
    double x = 0;
    const auto [end, error] = std::from_chars(t.data(), t.data() + t.size(), x);
    if (t.empty() || error != std::errc() || end != t.data() + t.size() || !std::isfinite(x))
        fail_value(key, text, "a finite number");
    return x;
}

inline std::int64_t parse_integer(std::string_view key, std::string_view text) {
    const std::string_view t = trim(text);
    std::int64_t x = 0;
    const auto [end, error] = std::from_chars(t.data(), t.data() + t.size(), x);
    if (t.empty() || error != std::errc() || end != t.data() + t.size()) fail_value(key, text, "an integer");
    return x;
}

inline std::vector<double> parse_list(std::string_view key, std::string_view text) {
    std::string_view t = trim(text);
    if (t.size() >= 2 && t.front() == '[' && t.back() == ']') t = trim(t.substr(1, t.size() - 2));
    std::vector<double> values;
    while (!t.empty()) {
        const std::size_t comma = t.find(',');
        const std::string_view item = t.substr(0, comma);
        if (trim(item).empty()) fail_value(key, text, "comma-separated numbers");
        values.push_back(parse_number(key, item));
        if (comma == std::string_view::npos) break;
        t = t.substr(comma + 1);
        if (trim(t).empty()) fail_value(key, text, "comma-separated numbers");
    }
    return values;
}

}  // namespace detail

// Sets the member of `config` named `key` (a config.json key; `type` is accepted for rope_type, as
// in older configs) from its value written as text: a number, an integer, true/false, or a list
// of comma-separated numbers (brackets optional), quotes around a rope_type allowed. For command
// lines, and JSON readers that hand out raw values. Throws std::invalid_argument naming the key
// for an unknown key or a value that does not parse.
inline void set_config_field(rope_config& config, std::string_view key, std::string_view value) {
    using namespace detail;
    const auto number = [&] { return parse_number(key, value); };
    const auto integer = [&] { return parse_integer(key, value); };
    if (key == "rope_type" || key == "type") {
        std::string_view t = trim(value);
        if (t.size() >= 2 && t.front() == '"' && t.back() == '"') t = t.substr(1, t.size() - 2);
        config.rope_type = std::string(t);
    } else if (key == "rope_theta") {
        config.rope_theta = number();
    } else if (key == "head_dim") {
        config.head_dim = integer();
    } else if (key == "partial_rotary_factor") {
        config.partial_rotary_factor = number();
    } else if (key == "max_position_embeddings") {
        config.max_position_embeddings = integer();
    } else if (key == "factor") {
        config.factor = number();
    } else if (key == "original_max_position_embeddings") {
        config.original_max_position_embeddings = integer();
    } else if (key == "low_freq_factor") {
        config.low_freq_factor = number();
    } else if (key == "high_freq_factor") {
        config.high_freq_factor = number();
    } else if (key == "beta_fast") {
        config.beta_fast = number();
    } else if (key == "beta_slow") {
        config.beta_slow = number();
    } else if (key == "mscale") {
        config.mscale = number();
    } else if (key == "mscale_all_dim") {
        config.mscale_all_dim = number();
    } else if (key == "attention_factor") {
        config.attention_factor = number();
    } else if (key == "truncate") {
        const std::string_view t = trim(value);
        if (t != "true" && t != "false") fail_value(key, value, "true or false");
        config.truncate = t == "true";
    } else if (key == "short_factor") {
        config.short_factor = parse_list(key, value);
    } else if (key == "long_factor") {
        config.long_factor = parse_list(key, value);
    } else {
        throw_invalid("unknown config key '" + std::string(key) +
                      "' (known: rope_type, rope_theta, head_dim, partial_rotary_factor, max_position_embeddings, "
                      "factor, original_max_position_embeddings, low_freq_factor, high_freq_factor, beta_fast, "
                      "beta_slow, mscale, mscale_all_dim, attention_factor, truncate, short_factor, long_factor)");
    }
}

}  // namespace rotary

#endif  // ROTARY_SCALING_HPP
