// libFuzzer target: the tables and their frequencies. One input is one of
//   rope_table<C>(rotary_dim, max_positions, base)
//   rope_table<C>(default_frequencies(rotary_dim, base), max_positions)
//   rope_table<C>(custom_frequencies(std::vector<double>, attention_factor), max_positions)
//   rope_table<C>(custom_frequencies(pointer or nullptr, count, attention_factor), max_positions)
//   rope_table<C>(rope_frequencies{...} built by hand, max_positions)
// for C = float or double, with any rotary_dim, base, frequencies (Inf, NaN, huge, negative),
// attention factor and table size. Invalid arguments must throw the documented exception naming
// them (before allocating anything large); a valid table must hold, for every position m and pair
// i, A cos(m theta_i) and A sin(m theta_i) within the tolerance of fuzz.hpp against the long double
// oracle, zeros in its padding, and the documented row layout.
#include "fuzz.hpp"

#include <algorithm>

namespace {

using namespace rotary_fuzz;

constexpr std::size_t max_pairs = std::size_t{1} << 14;     // frequencies computed
constexpr std::size_t max_entries = std::size_t{1} << 13;   // table entries built and checked

struct table_call {
    std::uint8_t element = 0;  // bit 0: rope_table<float> / rope_table<double>
    std::uint8_t source = 0;   // mod 5: the five constructions above, in that order
    std::uint64_t rotary_dim = 64;
    double base = 10000.0;
    std::uint8_t null_pointer = 0;  // source 3: bit 0 passes nullptr with the count
    std::vector<double> inverse;    // sources 2-4: theta_i as given
    double attention = 1.0;
    std::uint64_t max_positions = 16;

    int kind() const noexcept { return source % 5; }
    bool computed() const noexcept { return kind() < 2; }

    template <class IO>
    void code(IO& io) {
        io(byte_code{}, element);
        io(byte_code{}, source);
        if (computed()) {
            io(size_code{}, rotary_dim);
            io(double_code{}, base);
        } else {
            std::uint8_t count = static_cast<std::uint8_t>(inverse.size());
            io(byte_code{}, count);
            io.sequence(inverse, count);
            for (double& t : inverse) io(double_code{}, t);
            io(double_code{}, attention);
            io(byte_code{}, null_pointer);
        }
        io(size_code{std::uint64_t{1} << 32}, max_positions);
    }

    std::string describe() const {
        static const char* sources[] = {"rope_table(rotary_dim, max_positions, base)", "default_frequencies",
                                        "custom_frequencies(vector)", "custom_frequencies(pointer, count)",
                                        "rope_frequencies by hand"};
        std::string s = std::string("rope_table<") + (element & 1 ? "double" : "float") + "> from " + sources[kind()];
        if (computed()) {
            s += " rotary_dim=" + std::to_string(rotary_dim) + " base=" + std::to_string(base);
        } else {
            s += " theta[" + std::to_string(inverse.size()) + "]{";
            for (std::size_t i = 0; i < inverse.size(); ++i) s += (i ? "," : "") + std::to_string(inverse[i]);
            s += "} attention_factor=" + std::to_string(attention);
            if (kind() == 3 && (null_pointer & 1)) s += " (null pointer)";
        }
        return s + " max_positions=" + std::to_string(max_positions);
    }

    static std::vector<std::pair<std::string, table_call>> seeds() {
        std::vector<std::pair<std::string, table_call>> s;
        const auto add = [&](const char* name, const auto& edit) {
            table_call c;
            edit(c);
            s.emplace_back(name, c);
        };
        add("seed-default-f32", [](table_call&) {});
        add("seed-default-f64-llama3", [](table_call& c) { c.element = 1, c.rotary_dim = 128, c.base = 500000, c.max_positions = 300; });
        add("seed-default-frequencies-odd-tail", [](table_call& c) { c.source = 1, c.rotary_dim = 70, c.max_positions = 500; });
        add("seed-custom-vector", [](table_call& c) {
            c.source = 2, c.inverse = {1.0, 0.1, 0.01, 0.001, 1e-4}, c.attention = 1.25, c.max_positions = 2000;
        });
        add("seed-custom-pointer-f64", [](table_call& c) {
            c.element = 1, c.source = 3, c.inverse = {0.5, 0.25, 3.0}, c.attention = 0.5, c.max_positions = 4096;
        });
        add("seed-by-hand", [](table_call& c) { c.source = 4, c.inverse = {1.0, 1e-30}, c.max_positions = 7; });
        add("seed-one-position", [](table_call& c) { c.rotary_dim = 2, c.max_positions = 1; });
        // Invalid arguments.
        add("seed-bad-odd-rotary-dim", [](table_call& c) { c.rotary_dim = 63; });
        add("seed-bad-zero-rotary-dim", [](table_call& c) { c.source = 1, c.rotary_dim = 0; });
        add("seed-bad-base", [](table_call& c) { c.base = 1.0; });
        add("seed-bad-nan-base", [](table_call& c) { c.source = 1, c.base = std::numeric_limits<double>::quiet_NaN(); });
        add("seed-bad-zero-positions", [](table_call& c) { c.max_positions = 0; });
        add("seed-bad-too-many-positions", [](table_call& c) { c.max_positions = (std::uint64_t{1} << 32) + 1; });
        add("seed-bad-infinite-theta", [](table_call& c) {
            c.source = 2, c.inverse = {1.0, std::numeric_limits<double>::infinity()};
        });
        add("seed-bad-attention", [](table_call& c) { c.source = 2, c.inverse = {1.0}, c.attention = 0.0; });
        add("seed-bad-null-pointer", [](table_call& c) { c.source = 3, c.inverse = {1.0, 0.5}, c.null_pointer = 1; });
        add("seed-bad-empty", [](table_call& c) { c.source = 4; });
        // Findings (README.md, "Fuzzing"): each input that once failed, kept as a regression test.
        add("regression-attention-factor-past-fp32", [](table_call& c) {  // was accepted: UB converting cos*A to float
            c.source = 2, c.inverse = {1.0}, c.attention = 3.5525934213764931e59, c.max_positions = 76;
        });
        add("regression-theta-far-past-pi", [](table_call& c) {  // cos(1)[1] was -9572 for 3328: the reduction was inexact
            c.element = 1, c.source = 3, c.inverse = {0.5, 1.736934399089672e98, 0.0}, c.attention = 10000, c.max_positions = 4;
        });
        add("regression-theta-just-past-pi", [](table_call& c) {
            c.element = 1, c.source = 4, c.inverse = {3.1415926535897936}, c.max_positions = 2;
        });
        add("seed-theta-pi", [](table_call& c) { c.source = 2, c.inverse = {3.141592653589793, -1.0}, c.max_positions = 4000; });
        return s;
    }

    void run() const {
        with_element_type(element, [&](auto t) { run_typed<decltype(t)>(); });
    }

  private:
    // The contract of the frequencies, from the README and frequencies.hpp: what custom_frequencies
    // checks (it does not know the table's type), then what a table of C adds.
    void custom_violations(verdict& v) const {
        if (kind() == 3 && (null_pointer & 1) && !inverse.empty()) {
            v.must_invalid("null");
            return;
        }
        if (inverse.empty()) v.must_invalid("rotary_dim");
        for (std::size_t i = 0; i < inverse.size(); ++i)  // |theta| <= pi: every frequency has an equivalent there
            if (!(std::fabs(inverse[i]) <= 3.14159265358979323846264338327950288L))
                v.must_invalid("inverse frequency " + std::to_string(i));
        if (!(std::isfinite(attention) && attention > 0)) v.must_invalid("attention_factor");
    }

    template <class C>
    verdict frequency_violations() const {
        verdict v;
        if (computed()) {
            if (rotary_dim == 0 || rotary_dim % 2 != 0) v.must_invalid("rotary_dim");
            if (!(std::isfinite(base) && base > 1.0)) v.must_invalid("base");
            return v;
        }
        custom_violations(v);
        // cos and sin times the factor are stored as C: a factor past C's range has no value there
        // (converting it would be undefined behaviour, [conv.double]).
        if (std::isfinite(attention) && attention > static_cast<double>(std::numeric_limits<C>::max()))
            v.must_invalid("attention_factor");
        return v;
    }

    rotary::rope_frequencies make_frequencies() const {
        switch (kind()) {
            case 1: return rotary::default_frequencies(rotary_dim, base);
            case 2: return rotary::custom_frequencies(inverse, attention);
            case 3: {  // an array of exactly count elements
                std::unique_ptr<double[]> copy(new double[inverse.size()]);
                std::copy(inverse.begin(), inverse.end(), copy.get());
                return rotary::custom_frequencies(null_pointer & 1 ? nullptr : copy.get(), inverse.size(), attention);
            }
            default: {
                rotary::rope_frequencies f;
                f.inverse.assign(inverse.begin(), inverse.end());
                f.attention_factor = attention;
                return f;
            }
        }
    }

    template <class C>
    void run_typed() const {
        const std::uint64_t pairs = computed() ? rotary_dim / 2 : inverse.size();
        const double factor = computed() ? 1.0 : attention;
        std::vector<long double> theta(pairs > max_pairs ? 0 : static_cast<std::size_t>(pairs));
        for (std::size_t i = 0; i < theta.size(); ++i)
            theta[i] = computed() ? oracle_theta(i, rotary_dim, base) : static_cast<long double>(inverse[i]);

        const verdict fv = frequency_violations<C>();
        if (!fv.must_reject() && pairs > max_pairs) return note("skipped: too many pairs to build here");

        // The frequencies, where the construction has that step of its own.
        rotary::rope_frequencies frequencies;
        if (kind() >= 1 && kind() <= 3) {
            verdict v = fv;
            if (kind() != 1) {  // custom_frequencies does not know the table's type
                v = verdict{};
                custom_violations(v);
            }
            if (!call_checked(v, "frequencies", [&] { frequencies = make_frequencies(); })) return;
            check(frequencies.pairs() == pairs && frequencies.rotary_dim() == 2 * pairs, "frequencies: pair count");
            check(frequencies.attention_factor == factor, "frequencies: attention_factor");
            for (std::size_t i = 0; i < theta.size(); ++i) check_theta("frequencies", frequencies.inverse[i], theta, i);
        } else if (kind() == 4) {
            frequencies = make_frequencies();
        }

        // The table.
        verdict v = fv;
        if (max_positions == 0 || max_positions > (std::uint64_t{1} << 32)) v.must_invalid("max_positions");
        if (u128_mul(max_positions, 2 * pairs) > ~std::uint64_t{0}) v.must_invalid("overflows");
        if (!v.must_reject() && u128_mul(max_positions, pairs) > max_entries) return note("skipped: table too large to build here");
        std::unique_ptr<rotary::rope_table<C>> table;
        if (!call_checked(v, "rope_table", [&] {
                table = kind() == 0 ? std::make_unique<rotary::rope_table<C>>(rotary_dim, max_positions, base)
                                    : std::make_unique<rotary::rope_table<C>>(frequencies, max_positions);
            }))
            return;

        check(table->rotary_dim() == 2 * pairs && table->pairs() == pairs && table->max_positions() == max_positions,
              "table: rotary_dim, pairs or max_positions");
        check(table->frequencies().attention_factor == factor, "table: attention_factor");
        for (std::size_t i = 0; i < pairs; ++i) check_theta("table.frequencies()", table->frequencies().inverse[i], theta, i);
        check_table_rows(*table, theta, factor, computed() ? 0x1p-60L : 0.0L);
        note([&] { return "valid: " + std::to_string(max_positions * pairs) + " cos/sin pairs checked"; });
    }

    // theta_i as the library holds it: exactly the caller's, or within a few long double ulps of
    // base^(-2i/rotary_dim) (exp of a logarithm: the error grows with |ln theta|).
    void check_theta(const char* who, long double got, const std::vector<long double>& theta, std::size_t i) const {
        const long double tol = computed() ? (std::fabs(std::log(theta[i])) + 4) * 0x1p-62L * theta[i] : 0.0L;
        check(std::fabs(got - theta[i]) <= tol || (!computed() && got == theta[i]), [&] {
            return std::string(who) + ": theta_" + std::to_string(i) + " = " + std::to_string(static_cast<double>(got)) +
                   ", the oracle says " + std::to_string(static_cast<double>(theta[i]));
        });
    }

    static unsigned __int128 u128_mul(std::uint64_t a, std::uint64_t b) noexcept {
        return static_cast<unsigned __int128>(a) * b;
    }
};

}  // namespace

ROTARY_FUZZ_TARGET(table_call)
