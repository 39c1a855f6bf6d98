// libFuzzer target: the scaling methods (scaling.hpp). One input is a rope_config, every field
// from the input (any rope_type, including unknown ones; rope_theta, head_dim and
// partial_rotary_factor anywhere, 0, negative, NaN, Inf, huge; each optional key present or not,
// with any value; LongRoPE's lists of any length and entries), and a seq_len; then
// frequencies_from_config(config, seq_len) and a rope_table<float> or <double> of its result.
//
// A model written from README.md's table of methods (not from scaling.hpp) says whether the config
// is valid and, if it is, computes the inverse frequencies and the attention factor by those
// formulas in long double. An invalid config must throw std::invalid_argument naming the
// config.json key (or, for frequencies or an attention factor the formulas put out of range,
// "inverse frequency i" / "attention_factor", as custom frequencies do). A valid one must give each
// theta_i within 2^-48 |theta_i| of the model's, the attention factor within 2^-48 of it relative,
// and a table whose entries are the oracle's A cos(m theta_i), A sin(m theta_i) of the frequencies
// it returned (fuzz.hpp's check_table_rows).
#include "fuzz.hpp"

#include <algorithm>
#include <optional>

namespace {

using namespace rotary_fuzz;

constexpr std::size_t max_pairs = std::size_t{1} << 14;    // frequencies computed
constexpr std::size_t max_entries = std::size_t{1} << 13;  // table entries built and checked
constexpr std::size_t max_list = std::size_t{1} << 12;     // LongRoPE list entries allocated
constexpr long double pi_l = 3.141592653589793238462643383279502884L;
constexpr long double relative_tolerance = 0x1p-48L;

const char* const rope_types[] = {"default", "linear", "dynamic", "yarn", "llama3", "longrope", "ntk", "Linear"};

// A LongRoPE list: count entries first + i * step, with entry odd_index = odd_value.
struct list_spec {
    std::uint64_t count = 0;
    double first = 1.0, step = 0.0;
    std::uint8_t odd_index = 0;
    double odd_value = 1.0;

    template <class IO>
    void code(IO& io, std::uint64_t pairs) {
        io(size_code{pairs}, count);
        io(double_code{}, first);
        io(double_code{}, step);
        io(byte_code{}, odd_index);
        io(double_code{}, odd_value);
    }
    std::vector<double> values() const {
        std::vector<double> v(static_cast<std::size_t>(count));
        for (std::size_t i = 0; i < v.size(); ++i) v[i] = first + static_cast<double>(i) * step;
        if (!v.empty()) v[odd_index % v.size()] = odd_value;
        return v;
    }
    std::string describe() const {
        return "[" + std::to_string(count) + "]{" + std::to_string(first) + " + i*" + std::to_string(step) + ", [" +
               std::to_string(odd_index) + " % n]=" + std::to_string(odd_value) + "}";
    }
};

struct scaling_call {
    std::uint8_t element = 0;     // bit 0: rope_table<float> / <double>
    std::uint8_t type_index = 0;  // rope_types[type_index % 8]
    double rope_theta = 10000.0;
    std::int64_t head_dim = 64;
    double partial_rotary_factor = 1.0;
    // Which optional keys are present, one bit each, in the order of the fields below.
    std::uint16_t present = 0;
    std::int64_t max_position_embeddings = 4096, original_max_position_embeddings = 2048;
    double factor = 4.0, low_freq_factor = 1.0, high_freq_factor = 4.0, beta_fast = 32.0, beta_slow = 1.0, mscale = 1.0,
           mscale_all_dim = 1.0, attention_factor = 1.0;
    std::uint8_t truncate = 1;
    list_spec short_factor, long_factor;  // longrope only
    std::uint64_t seq_len = 0;
    std::uint8_t positions_tag = 2;  // the table's max_positions: 1, 2, 17 or 100

    enum key : std::uint16_t {
        has_max_position_embeddings = 1 << 0,
        has_original = 1 << 1,
        has_factor = 1 << 2,
        has_low = 1 << 3,
        has_high = 1 << 4,
        has_beta_fast = 1 << 5,
        has_beta_slow = 1 << 6,
        has_mscale = 1 << 7,
        has_mscale_all_dim = 1 << 8,
        has_attention_factor = 1 << 9,
    };
    bool has(key k) const noexcept { return (present & k) != 0; }
    std::string type() const { return rope_types[type_index % 8]; }
    std::size_t max_positions() const noexcept {
        static const std::size_t sizes[] = {1, 2, 17, 100};
        return sizes[positions_tag % 4];
    }
    // The pair count the lists are decoded near (0 when the dims make none).
    std::uint64_t pairs_hint() const noexcept {
        const double d = static_cast<double>(head_dim) * partial_rotary_factor;
        return d >= 2 && d < 1e6 ? static_cast<std::uint64_t>(d) / 2 : 0;
    }

    template <class IO>
    void code(IO& io) {
        io(byte_code{}, element);
        io(byte_code{}, type_index);
        io(double_code{}, rope_theta);
        io(int_code{}, head_dim);
        io(double_code{}, partial_rotary_factor);
        io(raw_code<std::uint16_t>{}, present);
        if (has(has_max_position_embeddings)) io(int_code{}, max_position_embeddings);
        if (has(has_original)) io(int_code{}, original_max_position_embeddings);
        if (has(has_factor)) io(double_code{}, factor);
        if (has(has_low)) io(double_code{}, low_freq_factor);
        if (has(has_high)) io(double_code{}, high_freq_factor);
        if (has(has_beta_fast)) io(double_code{}, beta_fast);
        if (has(has_beta_slow)) io(double_code{}, beta_slow);
        if (has(has_mscale)) io(double_code{}, mscale);
        if (has(has_mscale_all_dim)) io(double_code{}, mscale_all_dim);
        if (has(has_attention_factor)) io(double_code{}, attention_factor);
        io(byte_code{}, truncate);
        if (type() == "longrope") {
            short_factor.code(io, pairs_hint());
            long_factor.code(io, pairs_hint());
        }
        io(size_code{has(has_original) ? static_cast<std::uint64_t>(original_max_position_embeddings)
                                       : static_cast<std::uint64_t>(max_position_embeddings)},
           seq_len);
        io(byte_code{}, positions_tag);
    }

    std::string describe() const {
        std::string s = std::string("frequencies_from_config -> rope_table<") + (element & 1 ? "double" : "float") +
                        ">: rope_type=" + type() + " rope_theta=" + std::to_string(rope_theta) +
                        " head_dim=" + std::to_string(head_dim) +
                        " partial_rotary_factor=" + std::to_string(partial_rotary_factor);
        const auto opt = [&](key k, const char* name, auto value) {
            if (has(k)) s += std::string(" ") + name + "=" + std::to_string(value);
        };
        opt(has_max_position_embeddings, "max_position_embeddings", max_position_embeddings);
        opt(has_original, "original_max_position_embeddings", original_max_position_embeddings);
        opt(has_factor, "factor", factor);
        opt(has_low, "low_freq_factor", low_freq_factor);
        opt(has_high, "high_freq_factor", high_freq_factor);
        opt(has_beta_fast, "beta_fast", beta_fast);
        opt(has_beta_slow, "beta_slow", beta_slow);
        opt(has_mscale, "mscale", mscale);
        opt(has_mscale_all_dim, "mscale_all_dim", mscale_all_dim);
        opt(has_attention_factor, "attention_factor", attention_factor);
        s += std::string(" truncate=") + (truncate & 1 ? "true" : "false");
        if (type() == "longrope") s += " short_factor" + short_factor.describe() + " long_factor" + long_factor.describe();
        return s + " seq_len=" + std::to_string(seq_len) + " max_positions=" + std::to_string(max_positions());
    }

    rotary::rope_config config() const {
        rotary::rope_config c;
        c.rope_type = type();
        c.rope_theta = rope_theta;
        c.head_dim = head_dim;
        c.partial_rotary_factor = partial_rotary_factor;
        if (has(has_max_position_embeddings)) c.max_position_embeddings = max_position_embeddings;
        if (has(has_original)) c.original_max_position_embeddings = original_max_position_embeddings;
        if (has(has_factor)) c.factor = factor;
        if (has(has_low)) c.low_freq_factor = low_freq_factor;
        if (has(has_high)) c.high_freq_factor = high_freq_factor;
        if (has(has_beta_fast)) c.beta_fast = beta_fast;
        if (has(has_beta_slow)) c.beta_slow = beta_slow;
        if (has(has_mscale)) c.mscale = mscale;
        if (has(has_mscale_all_dim)) c.mscale_all_dim = mscale_all_dim;
        if (has(has_attention_factor)) c.attention_factor = attention_factor;
        c.truncate = truncate & 1;
        if (type() == "longrope") {
            c.short_factor = short_factor.values();
            c.long_factor = long_factor.values();
        }
        return c;
    }

    // ---- The model: README.md's "From a checkpoint's config.json to the frequencies". -----------

    struct expectation {
        verdict v;
        std::vector<long double> theta;  // when valid
        long double attention = 1;
        bool uncertain = false;  // a floor or ceil within rounding of an integer: values not compared
    };

    expectation model() const {
        expectation e;
        verdict& v = e.v;
        static const std::vector<std::string> known(std::begin(rope_types), std::begin(rope_types) + 6);
        const std::string t = type();
        if (std::find(known.begin(), known.end(), t) == known.end()) v.must_invalid("rope_type");
        if (!(std::isfinite(rope_theta) && rope_theta > 1)) v.must_invalid("rope_theta");
        if (head_dim <= 0) v.must_invalid("head_dim");
        if (!(partial_rotary_factor > 0 && partial_rotary_factor <= 1)) v.must_invalid("partial_rotary_factor");
        if (v.must_reject()) return e;
        // d = head_dim * partial_rotary_factor, truncated (Hugging Face: int() of a double product);
        // past int64 there is no such dim.
        const double product = static_cast<double>(head_dim) * partial_rotary_factor;
        if (!(product < 0x1p63)) {
            v.must_invalid("partial_rotary_factor");
            return e;
        }
        const std::int64_t d_int = static_cast<std::int64_t>(product);
        if (d_int <= 0 || d_int % 2 != 0) v.must_invalid("partial_rotary_factor");
        if (has(has_factor) && !(std::isfinite(factor) && factor > 0)) v.must_invalid("factor");
        if (has(has_max_position_embeddings) && max_position_embeddings <= 0) v.must_invalid("max_position_embeddings");
        if (has(has_original) && original_max_position_embeddings <= 0) v.must_invalid("original_max_position_embeddings");
        if (v.must_reject()) return e;

        const std::uint64_t pairs = static_cast<std::uint64_t>(d_int) / 2;
        if (pairs > max_pairs) return e;  // run() skips it
        const long double d = static_cast<long double>(d_int);
        const long double base = rope_theta;
        const long double s = factor;
        const long double M = static_cast<long double>(max_position_embeddings);
        const bool has_o = has(has_original) || has(has_max_position_embeddings);
        const long double O = has(has_original) ? static_cast<long double>(original_max_position_embeddings) : M;
        std::vector<long double>& theta = e.theta;
        theta.resize(static_cast<std::size_t>(pairs));
        for (std::size_t i = 0; i < theta.size(); ++i) theta[i] = std::pow(base, -2.0L * static_cast<long double>(i) / d);
        long double& A = e.attention;
        const auto need = [&](bool ok, const char* key) {
            if (!ok) v.must_invalid(key);
        };
        // g(s, m) = 0.1 m ln s + 1 for s > 1, else 1
        const auto g = [](long double scale, long double m) { return scale > 1 ? 0.1L * m * std::log(scale) + 1 : 1.0L; };

        if (t == "linear") {
            need(has(has_factor), "factor");
            if (v.must_reject()) return e;
            for (long double& x : theta) x /= s;
        } else if (t == "dynamic") {
            need(has(has_factor), "factor");
            need(has(has_max_position_embeddings), "max_position_embeddings");
            need(d > 2, "head_dim");
            if (v.must_reject()) return e;
            const long double L = std::max(static_cast<long double>(seq_len), M);
            if (L > M) {
                const long double scaled = base * std::pow(s * L / M - (s - 1), d / (d - 2));
                for (std::size_t i = 0; i < theta.size(); ++i)
                    theta[i] = std::pow(scaled, -2.0L * static_cast<long double>(i) / d);
            }
        } else if (t == "yarn") {
            need(has(has_factor), "factor");
            need(has_o, "original_max_position_embeddings");
            const long double slow = has(has_beta_slow) ? beta_slow : 1.0L, fast = has(has_beta_fast) ? beta_fast : 32.0L;
            need(std::isfinite(slow) && slow > 0, "beta_slow");
            need(std::isfinite(fast) && fast > slow, "beta_fast");
            const bool by_mscale = !has(has_attention_factor) && has(has_mscale) && has(has_mscale_all_dim);
            if (!has(has_attention_factor)) {  // read only without an attention_factor
                if (has(has_mscale)) need(std::isfinite(mscale), "mscale");
                if (has(has_mscale_all_dim)) need(std::isfinite(mscale_all_dim), "mscale_all_dim");
            }
            if (v.must_reject()) return e;
            // the pair index at which theta turns `rotations` times over O positions
            const auto at = [&](long double rotations) { return d * std::log(O / (2 * pi_l * rotations)) / (2 * std::log(base)); };
            long double low = at(fast), high = at(slow);
            if (truncate & 1) {
                for (const long double x : {low, high})
                    if (std::fabs(x - std::nearbyint(x)) < 1e-9L * (1 + std::fabs(x))) e.uncertain = true;
                low = std::floor(low);
                high = std::ceil(high);
            }
            low = std::min(std::max(low, 0.0L), d - 1);
            high = std::min(std::max(high, 0.0L), d - 1);
            if (low == high) high += 0.001L;
            for (std::size_t i = 0; i < theta.size(); ++i) {
                const long double ramp =
                    std::min(std::max((static_cast<long double>(i) - low) / (high - low), 0.0L), 1.0L);
                theta[i] = theta[i] * (1 - ramp) + theta[i] / s * ramp;
            }
            if (has(has_attention_factor))
                A = attention_factor;
            else if (by_mscale && mscale != 0 && mscale_all_dim != 0)
                A = g(s, mscale) / g(s, mscale_all_dim);
            else
                A = g(s, 1);
        } else if (t == "llama3") {
            need(has(has_factor), "factor");
            need(has(has_low) && std::isfinite(low_freq_factor), "low_freq_factor");
            need(has(has_high) && std::isfinite(high_freq_factor), "high_freq_factor");
            need(has_o, "original_max_position_embeddings");
            if (v.must_reject()) return e;
            need(low_freq_factor > 0, "low_freq_factor");
            need(high_freq_factor > low_freq_factor, "high_freq_factor");
            if (v.must_reject()) return e;
            const long double lo = low_freq_factor, hi = high_freq_factor;
            for (long double& x : theta) {
                const long double wavelength = 2 * pi_l / x;
                if (wavelength > O / lo) {
                    x /= s;
                } else if (wavelength >= O / hi) {
                    const long double w = (O / wavelength - lo) / (hi - lo);
                    x = (1 - w) * x / s + w * x;
                }
            }
        } else if (t == "longrope") {
            need(has_o, "original_max_position_embeddings");
            for (const auto& [list, name] : {std::pair{&short_factor, "short_factor"}, std::pair{&long_factor, "long_factor"}}) {
                if (list->count != pairs) {
                    v.must_invalid(name);
                    continue;
                }
                for (const double x : list->values())
                    if (!(std::isfinite(x) && x > 0)) v.must_invalid(name);
            }
            if (v.must_reject()) return e;
            const std::vector<double> ext = (static_cast<long double>(seq_len) > O ? long_factor : short_factor).values();
            for (std::size_t i = 0; i < theta.size(); ++i) theta[i] /= ext[i];
            if (has(has_attention_factor)) {
                A = attention_factor;
            } else {
                const long double scale = has(has_factor) ? s : has(has_max_position_embeddings) ? M / O : 1.0L;
                if (scale > 1) {
                    need(O > 1, "original_max_position_embeddings");
                    if (v.must_reject()) return e;
                    A = std::sqrt(1 + std::log(scale) / std::log(O));
                }
            }
        }
        // What any frequencies must satisfy (custom_frequencies): near the edges, either outcome.
        for (std::size_t i = 0; i < theta.size(); ++i) {
            const long double margin = std::fabs(std::fabs(theta[i]) - pi_l);
            const std::string name = "inverse frequency " + std::to_string(i);
            if (std::isfinite(theta[i]) && margin <= 4 * relative_tolerance * pi_l)
                v.may(error_kind::invalid_argument, name), e.uncertain = true;
            else if (!(std::fabs(theta[i]) <= pi_l))
                v.must_invalid(name);
        }
        if (std::isfinite(A) && std::fabs(A) <= 1e-30L)
            v.may(error_kind::invalid_argument, "attention_factor"), e.uncertain = true;
        else if (!(std::isfinite(A) && A > 0) || !(A <= static_cast<long double>(std::numeric_limits<double>::max())))
            v.must_invalid("attention_factor");
        return e;
    }

    void run() const {
        with_element_type(element, [&](auto t) { run_typed<decltype(t)>(); });
    }

    template <class C>
    void run_typed() const {
        if (type() == "longrope" && (short_factor.count > max_list || long_factor.count > max_list))
            return note("skipped: a list too long to allocate here");
        const expectation e = model();
        if (!e.v.must_reject() && e.theta.empty()) return note("skipped: too many pairs to compute here");
        const rotary::rope_config c = config();
        rotary::rope_frequencies f;
        if (!call_checked(e.v, "frequencies_from_config", [&] { f = rotary::frequencies_from_config(c, seq_len); })) return;

        // The frequencies and the attention factor against the model's.
        check(f.pairs() == e.theta.size(), [&] {
            return "frequencies_from_config: " + std::to_string(f.pairs()) + " pairs, the model says " + std::to_string(e.theta.size());
        });
        if (!e.uncertain) {
            for (std::size_t i = 0; i < e.theta.size(); ++i)
                check(std::fabs(f.inverse[i] - e.theta[i]) <= relative_tolerance * std::fabs(e.theta[i]), [&] {
                    return "theta_" + std::to_string(i) + " = " + std::to_string(static_cast<double>(f.inverse[i])) +
                           ", the formula gives " + std::to_string(static_cast<double>(e.theta[i]));
                });
            check(std::fabs(f.attention_factor - e.attention) <= relative_tolerance * e.attention, [&] {
                return "attention_factor = " + std::to_string(f.attention_factor) + ", the formula gives " +
                       std::to_string(static_cast<double>(e.attention));
            });
        }

        // A table of them: cos and sin times the factor must have a value in C.
        verdict v;
        if (f.attention_factor > static_cast<double>(std::numeric_limits<C>::max())) v.must_invalid("attention_factor");
        if (!v.must_reject() && max_positions() * f.pairs() > max_entries) return note("skipped: table too large to build here");
        std::unique_ptr<rotary::rope_table<C>> table;
        if (!call_checked(v, "rope_table", [&] { table = std::make_unique<rotary::rope_table<C>>(f, max_positions()); })) return;
        check(table->pairs() == f.pairs() && table->frequencies().attention_factor == f.attention_factor,
              "rope_table: its frequencies are not the ones it was given");
        check_table_rows(*table, f.inverse, f.attention_factor, 0.0L);
        note([&] { return "valid: " + std::to_string(f.pairs()) + " frequencies and the table checked"; });
    }

    // ---- Seeds: real checkpoints' configs, and each kind of bad one. ----------------------------

    static std::vector<std::pair<std::string, scaling_call>> seeds() {
        std::vector<std::pair<std::string, scaling_call>> s;
        const auto add = [&](const char* name, const auto& edit) {
            scaling_call c;
            edit(c);
            s.emplace_back(name, c);
        };
        add("seed-default", [](scaling_call&) {});
        add("seed-default-partial-rotary-f64", [](scaling_call& c) {  // GPT-NeoX: 24 of 96
            c.element = 1, c.head_dim = 96, c.partial_rotary_factor = 0.25, c.positions_tag = 3;
        });
        add("seed-linear", [](scaling_call& c) { c.type_index = 1, c.present = has_factor, c.factor = 2.0; });
        add("seed-dynamic-past-m", [](scaling_call& c) {
            c.type_index = 2, c.present = has_factor | has_max_position_embeddings, c.factor = 2.0,
            c.max_position_embeddings = 2048, c.seq_len = 5000;
        });
        add("seed-dynamic-below-m", [](scaling_call& c) {
            c.type_index = 2, c.present = has_factor | has_max_position_embeddings, c.factor = 4.0,
            c.max_position_embeddings = 2048, c.seq_len = 2048;
        });
        add("seed-yarn", [](scaling_call& c) {  // factor 4, O 4096, beta 32/1
            c.type_index = 3, c.present = has_factor | has_original, c.factor = 4.0, c.original_max_position_embeddings = 4096;
        });
        add("seed-yarn-deepseek-mscale-f64", [](scaling_call& c) {
            c.element = 1, c.type_index = 3, c.head_dim = 64, c.rope_theta = 10000.0;
            c.present = has_factor | has_original | has_beta_fast | has_beta_slow | has_mscale | has_mscale_all_dim;
            c.factor = 40.0, c.original_max_position_embeddings = 4096, c.beta_fast = 32.0, c.beta_slow = 1.0;
            c.mscale = 1.0, c.mscale_all_dim = 1.0;
        });
        add("seed-yarn-no-truncate-attention", [](scaling_call& c) {
            c.type_index = 3, c.truncate = 0, c.present = has_factor | has_max_position_embeddings | has_attention_factor;
            c.factor = 8.0, c.max_position_embeddings = 32768, c.attention_factor = 1.25;
        });
        add("seed-llama3-8b", [](scaling_call& c) {  // LLaMA 3.1 8B
            c.type_index = 4, c.head_dim = 128, c.rope_theta = 500000.0, c.positions_tag = 3;
            c.present = has_factor | has_low | has_high | has_original | has_max_position_embeddings;
            c.factor = 8.0, c.low_freq_factor = 1.0, c.high_freq_factor = 4.0;
            c.original_max_position_embeddings = 8192, c.max_position_embeddings = 131072;
        });
        add("seed-longrope-short", [](scaling_call& c) {  // Phi-3 style, 96 of 96 -> 48 pairs
            c.type_index = 5, c.head_dim = 96, c.present = has_original | has_max_position_embeddings;
            c.original_max_position_embeddings = 4096, c.max_position_embeddings = 131072;
            c.short_factor = {48, 1.0, 0.01, 3, 1.5};
            c.long_factor = {48, 1.0, 0.5, 0, 1.0};
            c.seq_len = 4096;
        });
        add("seed-longrope-long-factor", [](scaling_call& c) {
            c.element = 1, c.type_index = 5, c.head_dim = 96, c.present = has_original | has_factor;
            c.original_max_position_embeddings = 4096, c.factor = 32.0;
            c.short_factor = {48, 1.0, 0.0, 0, 1.0};
            c.long_factor = {48, 1.0, 0.25, 47, 60.0};
            c.seq_len = 4097;
        });
        // Invalid configs: each must throw std::invalid_argument naming the key.
        add("seed-bad-unknown-type", [](scaling_call& c) { c.type_index = 6; });
        add("seed-bad-rope-theta", [](scaling_call& c) { c.rope_theta = 1.0; });
        add("seed-bad-head-dim", [](scaling_call& c) { c.head_dim = -64; });
        add("seed-bad-partial-rotary-odd-dim", [](scaling_call& c) { c.head_dim = 80, c.partial_rotary_factor = 0.4125; });
        add("seed-bad-partial-rotary-nan", [](scaling_call& c) { c.partial_rotary_factor = std::numeric_limits<double>::quiet_NaN(); });
        add("seed-bad-linear-no-factor", [](scaling_call& c) { c.type_index = 1; });
        add("seed-bad-factor-inf", [](scaling_call& c) {
            c.type_index = 1, c.present = has_factor, c.factor = std::numeric_limits<double>::infinity();
        });
        add("seed-bad-dynamic-dim-2", [](scaling_call& c) {
            c.type_index = 2, c.head_dim = 2, c.present = has_factor | has_max_position_embeddings, c.factor = 2.0;
        });
        add("seed-bad-yarn-beta", [](scaling_call& c) {
            c.type_index = 3, c.present = has_factor | has_original | has_beta_fast | has_beta_slow;
            c.factor = 4.0, c.beta_fast = 1.0, c.beta_slow = 1.0;
        });
        add("seed-bad-llama3-freq-factors", [](scaling_call& c) {
            c.type_index = 4, c.present = has_factor | has_low | has_high | has_original;
            c.factor = 8.0, c.low_freq_factor = 4.0, c.high_freq_factor = 1.0;
        });
        add("seed-bad-longrope-list-length", [](scaling_call& c) {
            c.type_index = 5, c.present = has_original, c.short_factor = {31, 1.0, 0.0, 0, 1.0}, c.long_factor = {32, 1.0, 0.0, 0, 1.0};
        });
        add("seed-bad-original-zero", [](scaling_call& c) {
            c.type_index = 3, c.present = has_factor | has_original, c.original_max_position_embeddings = 0;
        });
        add("seed-bad-linear-theta-past-pi", [](scaling_call& c) {  // theta_0 / 1e-300
            c.type_index = 1, c.present = has_factor, c.factor = std::numeric_limits<double>::min();
        });
        add("seed-bad-f32-table-attention", [](scaling_call& c) {  // valid frequencies, no fp32 table
            c.type_index = 3, c.present = has_factor | has_original | has_attention_factor, c.factor = 2.0;
            c.attention_factor = 1e300;
        });
        // Findings (README.md, "Fuzzing"): each input that once failed, kept as a regression test.
        add("regression-head-dim-int64-max", [](scaling_call& c) {  // was UB: the rotary dim 2^63 converted to int64
            c.head_dim = std::numeric_limits<std::int64_t>::max();
        });
        add("regression-yarn-mscale-nan", [](scaling_call& c) {  // was accepted and ignored (factor <= 1)
            c.type_index = 3, c.present = has_factor | has_original | has_mscale | has_mscale_all_dim;
            c.factor = 0.5, c.mscale = std::numeric_limits<double>::quiet_NaN(), c.mscale_all_dim = 1.0;
        });
        add("regression-yarn-mscale-all-dim-inf", [](scaling_call& c) {  // was reported as attention_factor
            c.type_index = 3, c.present = has_factor | has_original | has_mscale | has_mscale_all_dim;
            c.factor = 4.0, c.mscale = 1.0, c.mscale_all_dim = std::numeric_limits<double>::infinity();
        });
        return s;
    }
};

}  // namespace

ROTARY_FUZZ_TARGET(scaling_call)
