// The scaling methods of config.json against their formulas, written out again here in long double
// from the definitions (the issue's, after HF transformers' modeling_rope_utils), never by calling
// the library: default, linear, dynamic NTK, YaRN (with and without truncate, DeepSeek's mscale),
// LLaMA 3 and LongRoPE, each with partial rotary; then bad configs and the key=value parser.
#include "support.hpp"

#include <functional>

using rotary::rope_config;

namespace {

constexpr long double pi = 3.141592653589793238462643383279502884L;

std::vector<long double> thetas(std::size_t d, long double base) {
    std::vector<long double> t(d / 2);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = std::pow(base, -2.0L * static_cast<long double>(i) / static_cast<long double>(d));
    return t;
}

void expect_frequencies(const rotary::rope_frequencies& got, const std::vector<long double>& want, long double attention,
                        const std::string& what) {
    ASSERT_EQ(got.inverse.size(), want.size()) << what;
    for (std::size_t i = 0; i < want.size(); ++i)
        EXPECT_NEAR(static_cast<double>(got.inverse[i] / want[i]), 1.0, 1e-17) << what << ", pair " << i;
    EXPECT_NEAR(got.attention_factor, static_cast<double>(attention), 1e-15) << what;
}

rope_config config(const std::string& type, std::int64_t head_dim, double base, double partial = 1.0) {
    rope_config c;
    c.rope_type = type;
    c.head_dim = head_dim;
    c.rope_theta = base;
    c.partial_rotary_factor = partial;
    return c;
}

// YaRN with factor s over an original context O, base 10000.
rope_config yarn(std::int64_t head_dim, double factor, std::int64_t original, double partial = 1.0) {
    rope_config c = config("yarn", head_dim, 10000.0, partial);
    c.factor = factor;
    c.original_max_position_embeddings = original;
    return c;
}

// LLaMA 3.1 8B's config.json: rope_theta 500000, factor 8, low 1, high 4, O 8192, M 131072.
rope_config llama31_8b(double partial = 1.0) {
    rope_config c = config("llama3", 128, 500000.0, partial);
    c.factor = 8.0;
    c.low_freq_factor = 1.0;
    c.high_freq_factor = 4.0;
    c.original_max_position_embeddings = 8192;
    c.max_position_embeddings = 131072;
    return c;
}

// ---- default and linear -------------------------------------------------------------------------

TEST(Scaling, DefaultAndLinear) {
    for (const double partial : {1.0, 0.5}) {
        const std::size_t d = static_cast<std::size_t>(128 * partial);
        auto c = config("default", 128, 10000.0, partial);
        expect_frequencies(rotary::frequencies_from_config(c), thetas(d, 10000.0L), 1, "default");
        c.rope_type = "linear";
        c.factor = 4.0;
        auto want = thetas(d, 10000.0L);
        for (auto& t : want) t /= 4;
        expect_frequencies(rotary::frequencies_from_config(c), want, 1, "linear");
    }
    // The rotary dim truncates head_dim * partial_rotary_factor as HF does: 80 * 0.4 = 32.000000000000004.
    EXPECT_EQ(rotary::frequencies_from_config(config("default", 80, 10000.0, 0.4)).rotary_dim(), 32u);
}

// ---- dynamic NTK: below, at and above M ----------------------------------------------------------

TEST(Scaling, DynamicNtk) {
    for (const double partial : {1.0, 0.25}) {
        const std::size_t d = static_cast<std::size_t>(128 * partial);
        auto c = config("dynamic", 128, 10000.0, partial);
        c.factor = 2.0;
        c.max_position_embeddings = 4096;
        for (const std::size_t seq_len : {std::size_t{0}, std::size_t{1000}, std::size_t{4096}})
            expect_frequencies(rotary::frequencies_from_config(c, seq_len), thetas(d, 10000.0L), 1,
                               "dynamic at seq_len " + std::to_string(seq_len));
        for (const std::size_t seq_len : {std::size_t{4097}, std::size_t{8192}, std::size_t{100000}}) {
            const long double l = static_cast<long double>(seq_len), m = 4096, s = 2, dd = static_cast<long double>(d);
            const long double base = 10000.0L * std::pow(s * l / m - (s - 1), dd / (dd - 2));
            expect_frequencies(rotary::frequencies_from_config(c, seq_len), thetas(d, base), 1,
                               "dynamic at seq_len " + std::to_string(seq_len));
        }
    }
    // At L = 2M with factor 2: base' = base * 3^(d/(d-2)); theta_1 = base'^(-2/d).
    auto c = config("dynamic", 64, 10000.0);
    c.factor = 2.0;
    c.max_position_embeddings = 2048;
    EXPECT_NEAR(static_cast<double>(rotary::frequencies_from_config(c, 4096).inverse[1]),
                std::pow(10000.0 * std::pow(3.0, 64.0 / 62.0), -2.0 / 64.0), 1e-15);
}

// ---- YaRN ---------------------------------------------------------------------------------------

struct yarn_case {
    std::size_t d;
    long double base, s, o, beta_fast = 32, beta_slow = 1;
    bool truncate = true;
};

// The YaRN frequencies from the definition: correction dims, the clamped ramp, the blend.
std::vector<long double> yarn_thetas(const yarn_case& y, long double* low_out = nullptr, long double* high_out = nullptr) {
    const long double d = static_cast<long double>(y.d);
    auto corr = [&](long double r) { return d * std::log(y.o / (2 * pi * r)) / (2 * std::log(y.base)); };
    long double low = corr(y.beta_fast), high = corr(y.beta_slow);
    if (y.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
    }
    low = std::min(std::max(low, 0.0L), d - 1);
    high = std::min(std::max(high, 0.0L), d - 1);
    if (low == high) high += 0.001L;
    if (low_out) *low_out = low;
    if (high_out) *high_out = high;
    auto t = thetas(y.d, y.base);
    for (std::size_t i = 0; i < t.size(); ++i) {
        const long double ramp = std::min(std::max((static_cast<long double>(i) - low) / (high - low), 0.0L), 1.0L);
        t[i] = t[i] * (1 - ramp) + t[i] / y.s * ramp;
    }
    return t;
}

long double g(long double s, long double m) { return s <= 1 ? 1.0L : 0.1L * m * std::log(s) + 1; }

TEST(Scaling, YarnFactor4Original4096) {
    for (const bool truncate : {true, false}) {
        for (const double partial : {1.0, 0.5}) {
            const std::size_t d = static_cast<std::size_t>(128 * partial);
            auto c = yarn(128, 4.0, 4096, partial);
            c.max_position_embeddings = 16384;
            c.beta_fast = 32.0;
            c.beta_slow = 1.0;
            c.truncate = truncate;
            const yarn_case y{d, 10000.0L, 4.0L, 4096.0L, 32, 1, truncate};
            const std::string what = std::string("yarn truncate=") + (truncate ? "true" : "false") + " d=" + std::to_string(d);
            const auto f = rotary::frequencies_from_config(c);
            expect_frequencies(f, yarn_thetas(y), 0.1L * std::log(4.0L) + 1, what);
            // beta_fast/beta_slow default to 32/1
            c.beta_fast.reset();
            c.beta_slow.reset();
            expect_frequencies(rotary::frequencies_from_config(c), yarn_thetas(y), g(4, 1), what + " default betas");
        }
    }
    // The numbers for d = 128: c(32) = 20.94 and c(1) = 45.03, so with truncate pairs 0..20 keep
    // theta_i, pairs 46.. are theta_i / 4 and pair 33 is halfway.
    long double low = 0, high = 0;
    yarn_thetas({128, 10000.0L, 4.0L, 4096.0L}, &low, &high);
    EXPECT_EQ(low, 20.0L);
    EXPECT_EQ(high, 46.0L);
    auto c = yarn(128, 4.0, 4096);
    const auto f = rotary::frequencies_from_config(c);
    const auto t = thetas(128, 10000.0L);
    EXPECT_EQ(f.inverse[0], t[0]);
    EXPECT_NEAR(static_cast<double>(f.inverse[20] / t[20]), 1.0, 1e-18);
    EXPECT_NEAR(static_cast<double>(f.inverse[33] / t[33]), 0.5 + 0.5 / 4, 1e-18);
    EXPECT_NEAR(static_cast<double>(f.inverse[46] / t[46]), 0.25, 1e-18);
    EXPECT_NEAR(f.attention_factor, 1.1386294361119891, 1e-15);  // 0.1 ln 4 + 1
    // Without truncate the ramp runs between the unrounded correction dims.
    c.truncate = false;
    yarn_thetas({128, 10000.0L, 4.0L, 4096.0L, 32, 1, false}, &low, &high);
    EXPECT_NEAR(static_cast<double>(low), 20.94448, 1e-5);
    EXPECT_NEAR(static_cast<double>(high), 45.02688, 1e-5);
    EXPECT_NEAR(static_cast<double>(rotary::frequencies_from_config(c).inverse[21] / t[21]),
                static_cast<double>(1 - (21 - low) / (high - low) * 0.75L), 1e-15);
}

TEST(Scaling, YarnDeepSeekMscale) {
    for (const double partial : {1.0, 0.5}) {
        // DeepSeek-V3: rope dim 64, factor 40, O 4096, mscale = mscale_all_dim = 1: the factors cancel.
        const std::size_t d = static_cast<std::size_t>(64 * partial);
        auto c = yarn(64, 40.0, 4096, partial);
        c.max_position_embeddings = 163840;
        c.beta_fast = 32.0;
        c.beta_slow = 1.0;
        c.mscale = 1.0;
        c.mscale_all_dim = 1.0;
        const yarn_case y{d, 10000.0L, 40.0L, 4096.0L};
        expect_frequencies(rotary::frequencies_from_config(c), yarn_thetas(y), 1, "deepseek v3");
        // Different mscales: g(s, mscale) / g(s, mscale_all_dim).
        c.mscale = 0.707;
        c.mscale_all_dim = 1.0;
        expect_frequencies(rotary::frequencies_from_config(c), yarn_thetas(y), g(40, 0.707L) / g(40, 1), "mscale ratio");
        // Only mscale set: g(s) with mscale 1; mscale_all_dim 0 counts as unset.
        c.mscale_all_dim = 0.0;
        expect_frequencies(rotary::frequencies_from_config(c), yarn_thetas(y), g(40, 1), "mscale_all_dim 0");
        c.mscale_all_dim.reset();
        expect_frequencies(rotary::frequencies_from_config(c), yarn_thetas(y), g(40, 1), "no mscale_all_dim");
        // A given attention_factor wins.
        c.attention_factor = 0.8;
        expect_frequencies(rotary::frequencies_from_config(c), yarn_thetas(y), 0.8L, "given attention_factor");
    }
    // The number: (0.1 * 0.707 * ln 40 + 1) / (0.1 * ln 40 + 1).
    auto c = yarn(64, 40.0, 4096);
    c.mscale = 0.707;
    c.mscale_all_dim = 1.0;
    EXPECT_NEAR(rotary::frequencies_from_config(c).attention_factor, 0.9210423553163399, 1e-15);
}

// ---- LLaMA 3 ------------------------------------------------------------------------------------

std::vector<long double> llama3_thetas(std::size_t d, long double base, long double s, long double low, long double high,
                                       long double o) {
    auto t = thetas(d, base);
    for (auto& theta : t) {
        const long double lambda = 2 * pi / theta;
        if (lambda > o / low) {
            theta = theta / s;
        } else if (lambda < o / high) {
            // kept
        } else {
            const long double smooth = (o / lambda - low) / (high - low);
            theta = (1 - smooth) * theta / s + smooth * theta;
        }
    }
    return t;
}

TEST(Scaling, Llama31_8B) {
    for (const double partial : {1.0, 0.5}) {
        const std::size_t d = static_cast<std::size_t>(128 * partial);
        expect_frequencies(rotary::frequencies_from_config(llama31_8b(partial)), llama3_thetas(d, 500000.0L, 8, 1, 4, 8192), 1,
                           "llama3 d=" + std::to_string(d));
    }
    // The numbers for d = 128: pairs 0..28 (wavelength < 2048) keep theta_i, pairs 35..63
    // (wavelength > 8192) are theta_i / 8, pairs 29..34 are blended.
    const auto f = rotary::frequencies_from_config(llama31_8b());
    const auto t = thetas(128, 500000.0L);
    for (std::size_t i = 0; i < 64; ++i) {
        const double ratio = static_cast<double>(f.inverse[i] / t[i]);
        if (i <= 28)
            EXPECT_EQ(ratio, 1.0) << i;
        else if (i >= 35)
            EXPECT_NEAR(ratio, 0.125, 1e-18) << i;
        else
            EXPECT_TRUE(ratio > 0.125 && ratio < 1) << i << " " << ratio;
    }
    EXPECT_EQ(static_cast<double>(f.inverse[0]), 1.0);
    EXPECT_NEAR(static_cast<double>(f.inverse[63]), std::pow(500000.0, -126.0 / 128.0) / 8, 1e-21);
    EXPECT_EQ(f.attention_factor, 1.0);
}

// ---- LongRoPE: the short list up to O, the long one past it ------------------------------------

TEST(Scaling, LongRopeSwitchesAtOriginalLength) {
    for (const double partial : {1.0, 0.5}) {
        // Phi-3-mini-128k: head_dim 96, O 4096, M 131072.
        const std::size_t d = static_cast<std::size_t>(96 * partial);
        auto c = config("longrope", 96, 10000.0, partial);
        c.original_max_position_embeddings = 4096;
        c.max_position_embeddings = 131072;
        for (std::size_t i = 0; i < d / 2; ++i) {
            c.short_factor.push_back(1.0 + 0.01 * static_cast<double>(i));
            c.long_factor.push_back(1.0 + 0.5 * static_cast<double>(i));
        }
        auto expect_list = [&](const std::vector<double>& ext, std::size_t seq_len, long double attention) {
            auto want = thetas(d, 10000.0L);
            for (std::size_t i = 0; i < want.size(); ++i) want[i] /= ext[i];
            expect_frequencies(rotary::frequencies_from_config(c, seq_len), want, attention,
                               "longrope d=" + std::to_string(d) + " seq_len " + std::to_string(seq_len));
        };
        // factor not given: M / O = 32, attention sqrt(1 + ln 32 / ln 4096)
        const long double a32 = std::sqrt(1 + std::log(32.0L) / std::log(4096.0L));
        expect_list(c.short_factor, 0, a32);
        expect_list(c.short_factor, 4096, a32);
        expect_list(c.long_factor, 4097, a32);
        expect_list(c.long_factor, 131072, a32);
        c.factor = 4.0;  // given: it wins over M / O
        expect_list(c.long_factor, 5000, std::sqrt(1 + std::log(4.0L) / std::log(4096.0L)));
        c.factor = 1.0;  // no extension: 1
        expect_list(c.short_factor, 10, 1);
        c.attention_factor = 1.3;
        expect_list(c.long_factor, 4097, 1.3L);
    }
    EXPECT_NEAR(std::sqrt(1 + std::log(32.0) / std::log(4096.0)), 1.1902380714238083, 1e-15);
}

// ---- Bad configs: std::invalid_argument naming the config.json field ----------------------------

void expect_bad(const rope_config& c, const std::vector<std::string>& parts, std::size_t seq_len = 0) {
    try {
        rotary::frequencies_from_config(c, seq_len);
        ADD_FAILURE() << "no exception for " << parts.front();
    } catch (const std::invalid_argument& e) {
        for (const auto& part : parts) EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
}

TEST(ScalingErrors, NameTheField) {
    const rope_config llama = llama31_8b();
    rotary::frequencies_from_config(llama);  // valid
    {
        auto c = llama;
        c.factor = 0.0;
        expect_bad(c, {"factor", "> 0", "got 0"});
        c.factor = -2.0;
        expect_bad(c, {"factor", "got -2"});
        c.factor.reset();
        expect_bad(c, {"factor", "required", "llama3"});
    }
    {
        auto c = llama;
        c.original_max_position_embeddings = 0;
        expect_bad(c, {"original_max_position_embeddings", "got 0"});
        c.original_max_position_embeddings = -5;
        expect_bad(c, {"original_max_position_embeddings", "got -5"});
        c.high_freq_factor = 0.5;
        c.original_max_position_embeddings = 8192;
        expect_bad(c, {"high_freq_factor", "low_freq_factor"});
    }
    {
        auto c = llama;
        c.rope_theta = 1.0;
        expect_bad(c, {"rope_theta", "> 1", "got 1"});
        c.rope_theta = 0.5;
        expect_bad(c, {"rope_theta", "got 0.5"});
    }
    {
        auto c = llama;
        c.rope_type = "ntk-by-parts";
        expect_bad(c, {"rope_type", "ntk-by-parts", "default, linear, dynamic, yarn, llama3, longrope"});
    }
    {
        auto c = yarn(64, 4.0, 4096);
        c.beta_fast = 1.0;
        c.beta_slow = 32.0;
        expect_bad(c, {"beta_fast", "beta_slow 32", "got 1"});
        c.beta_fast = 2.0;
        c.beta_slow = 2.0;
        expect_bad(c, {"beta_fast"});
        c.beta_slow = 0.0;
        expect_bad(c, {"beta_slow", "got 0"});
    }
    {
        auto c = config("longrope", 64, 10000.0);
        c.original_max_position_embeddings = 4096;
        c.short_factor.assign(32, 1.0);
        c.long_factor.assign(31, 1.0);
        expect_bad(c, {"long_factor", "32 entries", "got 31"});
        c.long_factor.assign(32, 1.0);
        c.short_factor.assign(33, 1.0);
        expect_bad(c, {"short_factor", "32 entries", "got 33"});
        c.short_factor.assign(32, 1.0);
        c.short_factor[3] = -1.0;
        expect_bad(c, {"short_factor", "entry 3", "got -1"});
    }
    expect_bad(config("default", 0, 10000.0), {"head_dim", "got 0"});
    expect_bad(config("default", 64, 10000.0, 1.5), {"partial_rotary_factor", "1.5"});
    expect_bad(config("default", 64, 10000.0, 0.3), {"partial_rotary_factor", "even", "19"});
    {
        auto c = config("dynamic", 2, 10000.0);
        c.factor = 2.0;
        c.max_position_embeddings = 100;
        expect_bad(c, {"head_dim", "> 2", "dynamic"});
        c.head_dim = 64;
        c.max_position_embeddings.reset();
        expect_bad(c, {"max_position_embeddings", "required", "dynamic"});
        c.max_position_embeddings = 0;
        expect_bad(c, {"max_position_embeddings", "got 0"});
    }
    {
        auto c = yarn(64, 4.0, 4096);
        c.original_max_position_embeddings.reset();
        expect_bad(c, {"original_max_position_embeddings", "required", "yarn"});
        c.original_max_position_embeddings = 4096;
        c.attention_factor = -1.0;
        expect_bad(c, {"attention_factor", "got -1"});
    }
}

// ---- set_config_field: config.json keys and values as text -------------------------------------

TEST(ConfigField, ParsesEveryKey) {
    rope_config c;
    const std::vector<std::pair<std::string, std::string>> fields = {
        {"rope_type", "\"yarn\""}, {"rope_theta", "500000.0"}, {"head_dim", "128"}, {"partial_rotary_factor", "0.5"},
        {"max_position_embeddings", "131072"}, {"factor", "8"}, {"original_max_position_embeddings", "8192"},
        {"low_freq_factor", "1"}, {"high_freq_factor", "4.0"}, {"beta_fast", "32"}, {"beta_slow", "1"},
        {"mscale", "0.707"}, {"mscale_all_dim", "1e0"}, {"attention_factor", " 1.25 "}, {"truncate", "false"},
        {"short_factor", "1,1.5, 2"}, {"long_factor", "[3.0, 4e1]"}};
    for (const auto& [key, value] : fields) rotary::set_config_field(c, key, value);
    EXPECT_EQ(c.rope_type, "yarn");
    EXPECT_EQ(c.rope_theta, 500000.0);
    EXPECT_EQ(c.head_dim, 128);
    EXPECT_EQ(c.partial_rotary_factor, 0.5);
    EXPECT_EQ(c.max_position_embeddings, 131072);
    EXPECT_EQ(c.factor, 8.0);
    EXPECT_EQ(c.original_max_position_embeddings, 8192);
    EXPECT_EQ(c.low_freq_factor, 1.0);
    EXPECT_EQ(c.high_freq_factor, 4.0);
    EXPECT_EQ(c.beta_fast, 32.0);
    EXPECT_EQ(c.beta_slow, 1.0);
    EXPECT_EQ(c.mscale, 0.707);
    EXPECT_EQ(c.mscale_all_dim, 1.0);
    EXPECT_EQ(c.attention_factor, 1.25);
    EXPECT_FALSE(c.truncate);
    EXPECT_EQ(c.short_factor, (std::vector<double>{1.0, 1.5, 2.0}));
    EXPECT_EQ(c.long_factor, (std::vector<double>{3.0, 40.0}));
    rotary::set_config_field(c, "type", "linear");  // older configs' spelling
    EXPECT_EQ(c.rope_type, "linear");
}

TEST(ConfigField, BadKeysAndValuesNameTheKey) {
    rope_config c;
    const std::vector<std::vector<std::string>> bad = {
        {"rope_thetta", "10000", "unknown config key 'rope_thetta'"},
        {"factor", "eight", "factor", "'eight'"},
        {"factor", "", "factor", "a finite number"},
        {"factor", "inf", "factor", "a finite number"},
        {"factor", "4x", "factor", "'4x'"},
        {"head_dim", "128.5", "head_dim", "an integer"},
        {"original_max_position_embeddings", "-", "original_max_position_embeddings", "an integer"},
        {"truncate", "yes", "truncate", "true or false"},
        {"short_factor", "1,,2", "short_factor", "comma-separated"},
        {"long_factor", "1,2,", "long_factor", "comma-separated"},
        {"long_factor", "1;2", "long_factor", "'1;2'"},
    };
    for (const auto& b : bad) {
        try {
            rotary::set_config_field(c, b[0], b[1]);
            ADD_FAILURE() << "no exception for " << b[0] << "=" << b[1];
        } catch (const std::invalid_argument& e) {
            for (std::size_t i = 2; i < b.size(); ++i)
                EXPECT_NE(std::string(e.what()).find(b[i]), std::string::npos) << e.what();
        }
    }
}

}  // namespace
