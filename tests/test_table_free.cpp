// Exact angles and the table-free path. Every cos/sin the library produces, from a table or
// table-free, on every path (scalar, default arch, each SIMD arch this CPU runs), is within 1.2e-7
// (one fp32 ulp of 1.0) of the true cos/sin of m*theta_i, computed independently here in long
// double, at positions up to 2^31 - 1 and beyond; the table-free path gives the table's results.
#include "support.hpp"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <limits>

using namespace rotary_test;
using rotary::heads_view;
using rotary::layout;
using rotary::positions;

namespace {

constexpr double fp32_bound = 1.2e-7;  // one ulp of 1.0f

long double theta_l(std::size_t i, std::size_t rotary_dim, long double base) {
    return std::pow(base, -2.0L * static_cast<long double>(i) / static_cast<long double>(rotary_dim));
}

// Heads whose pairs are all (1, 0). Rotated, pair i holds exactly (cos, sin) of the angle used:
// 1*c - 0*s = c and 0*c + 1*s = s, with no rounding, so the public entry points show the cos/sin
// row they computed or looked up.
template <class T>
std::vector<T> unit_pairs(layout l, std::size_t rows, std::size_t rotary_dim) {
    std::vector<T> x(rows * rotary_dim, T(0));
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t i = 0; i < rotary_dim / 2; ++i) x[r * rotary_dim + (l == layout::interleaved ? 2 * i : i)] = T(1);
    return x;
}
template <class T>
std::pair<double, double> cos_sin_of_pair(layout l, const T* head, std::size_t i, std::size_t rotary_dim) {
    const std::size_t a = l == layout::interleaved ? 2 * i : i, b = l == layout::interleaved ? 2 * i + 1 : i + rotary_dim / 2;
    return {static_cast<double>(head[a]), static_cast<double>(head[b])};
}

// The largest |cos - cos(m theta_i)|, |sin - sin(m theta_i)| over the rows that rotating unit pairs
// at `ids` shows, against long double (its product m*theta is good to ~2e-10 rad at m = 2^32).
template <class T, class Source>
double max_angle_error(const backend& b, const Source& source, layout l, const std::vector<std::int64_t>& ids,
                       long double base, long double scale = 1.0L) {
    const std::size_t d = source.rotary_dim();
    const auto x = unit_pairs<T>(l, ids.size(), d);
    std::vector<T> y(x.size());
    apply_out_of_place(b, source, l, heads_view<const T>(x.data(), ids.size(), 1, d), heads_view<T>(y.data(), ids.size(), 1, d),
                       positions::from_ids(ids.data(), ids.size()));
    double worst = 0;
    for (std::size_t t = 0; t < ids.size(); ++t)
        for (std::size_t i = 0; i < d / 2; ++i) {
            const long double angle = static_cast<long double>(ids[t]) * theta_l(i, d, base);
            const auto [c, s] = cos_sin_of_pair(l, y.data() + t * d, i, d);
            worst = std::max({worst, static_cast<double>(std::fabs(c - scale * std::cos(angle))),
                              static_cast<double>(std::fabs(s - scale * std::sin(angle)))});
        }
    return worst;
}

std::vector<std::int64_t> huge_positions() {
    std::vector<std::int64_t> ids = {0, 1, 1 << 16, 1000000, 1 << 24, (std::int64_t{1} << 31) - 1,
                                     std::int64_t{1} << 31, 3000000000, (std::int64_t{1} << 32) - 1};
    std::mt19937_64 rng(2024);
    std::uniform_int_distribution<std::int64_t> any(0, (std::int64_t{1} << 31) - 1);
    for (int k = 0; k < 300; ++k) ids.push_back(any(rng));
    return ids;
}

class TableFree : public ::testing::TestWithParam<std::string> {
  protected:
    backend path() const {
        for (const backend& b : backends())
            if (b.name == GetParam()) return b;
        return {};
    }
    void SetUp() override {
        if (path().name.empty()) GTEST_SKIP() << GetParam() << " does not run on this CPU";
    }
};

// The bound at 0, 1, 2^16, 10^6, 2^24, 2^31 - 1, up to 2^32 - 1 and 300 random positions,
// both layouts, LLaMA's base and the paper's.
TEST_P(TableFree, AnglesWithinOneFp32UlpAtHugePositions) {
    const auto ids = huge_positions();
    const rotary::rope_angles<float> paper(128), llama(128, 500000.0);
    const double e1 = max_angle_error<float>(path(), paper, layout::interleaved, ids, 10000.0L);
    const double e2 = max_angle_error<float>(path(), llama, layout::half_split, ids, 500000.0L);
    std::printf("[ accuracy ] %s fp32 table-free: max |error| %.3g (base 1e4), %.3g (base 5e5)\n", GetParam().c_str(), e1, e2);
    EXPECT_LE(e1, fp32_bound);
    EXPECT_LE(e2, fp32_bound);
    // fp64: the angle is good to ~1e-12 rad (angles.hpp). Up to 2^32 the long double reference is
    // itself only good to ~2e-10 (its product m*theta has 64 bits), below 2^20 to ~1e-13.
    const rotary::rope_angles<double> paper64(128);
    const double e3 = max_angle_error<double>(path(), paper64, layout::half_split, ids, 10000.0L);
    std::vector<std::int64_t> moderate(ids.size());
    for (std::size_t t = 0; t < ids.size(); ++t) moderate[t] = ids[t] % (1 << 20);
    const double e4 = max_angle_error<double>(path(), paper64, layout::interleaved, moderate, 10000.0L);
    std::printf("[ accuracy ] %s fp64 table-free: max |error| %.3g (up to 2^32), %.3g (below 2^20)\n", GetParam().c_str(), e3, e4);
    EXPECT_LE(e3, 5e-10);
    EXPECT_LE(e4, 1e-12);
}

// A scaling method's frequencies (taken exactly) and an attention factor multiplied into cos/sin.
TEST_P(TableFree, CustomFrequenciesAndAttentionFactor) {
    std::vector<double> inv(40);
    for (std::size_t i = 0; i < inv.size(); ++i) inv[i] = std::pow(1e6, -static_cast<double>(i) / 40.0) / (1 + i % 3);
    const auto f = rotary::custom_frequencies(inv, 1.25);
    const rotary::rope_angles<float> angles(f);
    const auto ids = huge_positions();
    const auto x = unit_pairs<float>(layout::half_split, ids.size(), 80);
    std::vector<float> y(x.size());
    apply_out_of_place(path(), angles, layout::half_split, heads_view<const float>(x.data(), ids.size(), 1, 80),
                       heads_view<float>(y.data(), ids.size(), 1, 80), positions::from_ids(ids.data(), ids.size()));
    double worst = 0;
    for (std::size_t t = 0; t < ids.size(); ++t)
        for (std::size_t i = 0; i < inv.size(); ++i) {
            const long double angle = static_cast<long double>(ids[t]) * static_cast<long double>(inv[i]);
            const auto [c, s] = cos_sin_of_pair(layout::half_split, y.data() + t * 80, i, 80);
            worst = std::max({worst, static_cast<double>(std::fabs(c - 1.25L * std::cos(angle))),
                              static_cast<double>(std::fabs(s - 1.25L * std::sin(angle)))});
        }
    EXPECT_LE(worst, 1.25 * fp32_bound);
}

// Table and table-free give the same rotation: every cos/sin of either is within 6e-8 + 1e-12 of
// the truth, so with |x| <= 1 an output differs by at most 2 * 1.2e-7 plus one fp32 rounding. The
// scalar path computes both rows with the very same code, so there they agree bit for bit. Ids
// repeat (a row is reused for the next token at the same position) and GQA q/k are fused.
TEST_P(TableFree, EqualsTable) {
    const std::size_t tokens = 41, q_heads = 6, k_heads = 2, head_dim = 100, rotary_dim = 64;
    static const rotary::rope_table<float> table(rotary_dim, 70000, 500000.0);
    const rotary::rope_angles<float> angles(table.frequencies());
    std::mt19937 rng(7);
    std::uniform_int_distribution<std::int32_t> any(0, 69999);
    std::vector<std::int32_t> ids(tokens);
    for (auto& id : ids) id = any(rng);
    ids[5] = ids[6] = ids[7] = 69999;
    ids[8] = 0;
    const auto q0 = random_vector<float>(tokens * q_heads * head_dim, 1);
    const auto k0 = random_vector<float>(tokens * k_heads * head_dim, 2);
    const bool bitwise = GetParam() == "scalar";
    const auto compare = [&](const std::vector<float>& a, const std::vector<float>& b, const char* what) {
        for (std::size_t i = 0; i < a.size(); ++i) {
            if (bitwise || i % head_dim >= rotary_dim)
                ASSERT_EQ(a[i], b[i]) << what << " at " << i;
            else
                ASSERT_NEAR(a[i], b[i], 2 * fp32_bound + 2 * std::numeric_limits<float>::epsilon()) << what << " at " << i;
        }
    };
    for (layout l : {layout::interleaved, layout::half_split}) {
        auto qt = q0, kt = k0, qa = q0, ka = k0;
        apply_qk_in_place(path(), table, l, heads_view<float>(qt.data(), tokens, q_heads, head_dim),
                          heads_view<float>(kt.data(), tokens, k_heads, head_dim), positions::from_ids(ids.data(), tokens));
        apply_qk_in_place(path(), angles, l, heads_view<float>(qa.data(), tokens, q_heads, head_dim),
                          heads_view<float>(ka.data(), tokens, k_heads, head_dim), positions::from_ids(ids.data(), tokens));
        compare(qt, qa, "fused q");
        compare(kt, ka, "fused k");
        std::vector<float> yt(q0.size()), ya(q0.size());
        const rotary::apply_options inverse{rotary::direction::inverse, 3, tokens - 2};
        apply_out_of_place(path(), table, l, heads_view<const float>(q0.data(), tokens, q_heads, head_dim),
                           heads_view<float>(yt.data(), tokens, q_heads, head_dim), positions::starting_at(69000), inverse);
        apply_out_of_place(path(), angles, l, heads_view<const float>(q0.data(), tokens, q_heads, head_dim),
                           heads_view<float>(ya.data(), tokens, q_heads, head_dim), positions::starting_at(69000), inverse);
        compare(yt, ya, "out of place, inverse, sub-range");
    }
}

// The table holds the same values: every position of a table up to 2^17 against long double. Its
// rows come from the scalar table-free algorithm (EqualsTable, bit for bit), checked above to 2^32.
TEST(ExactAngles, TableWithinOneFp32UlpForEveryPosition) {
    const std::size_t d = 16, max_positions = std::size_t{1} << 17;
    const rotary::rope_table<float> table(d, max_positions);
    double worst = 0;
    for (std::size_t m = 0; m < max_positions; ++m)
        for (std::size_t i = 0; i < d / 2; ++i) {
            const long double angle = static_cast<long double>(m) * theta_l(i, d, 10000.0L);
            worst = std::max({worst, static_cast<double>(std::fabs(table.cos(m)[i] - std::cos(angle))),
                              static_cast<double>(std::fabs(table.sin(m)[i] - std::sin(angle)))});
        }
    std::printf("[ accuracy ] fp32 table, positions 0 .. 2^17-1: max |error| %.3g\n", worst);
    EXPECT_LE(worst, fp32_bound);
}

// How far the usual fp32 shortcuts are off, for contrast (d = 128, base 10000): a naive fp32
// product float(m) * float(theta_i), and an fp32 running product of theta (ggml's CPU path:
// theta_0 = m, theta_{i+1} = theta_i * base^(-2/d)), both with cos/sin taken exactly of the fp32
// angle, against the library's table-free path.
TEST(ExactAngles, Fp32AnglesContrast) {
    const std::size_t d = 128;
    const float step = std::pow(10000.0f, -2.0f / static_cast<float>(d));
    const rotary::rope_angles<float> angles(d);
    for (const std::int64_t m : {std::int64_t{1000000}, std::int64_t{1} << 24}) {
        double naive = 0, running = 0;
        float running_angle = static_cast<float>(m);
        for (std::size_t i = 0; i < d / 2; ++i) {
            const long double truth = static_cast<long double>(m) * theta_l(i, d, 10000.0L);
            const float naive_angle = static_cast<float>(m) * static_cast<float>(theta_l(i, d, 10000.0L));
            naive = std::max(naive, static_cast<double>(std::fabs(std::cos(static_cast<long double>(naive_angle)) - std::cos(truth))));
            naive = std::max(naive, static_cast<double>(std::fabs(std::sin(static_cast<long double>(naive_angle)) - std::sin(truth))));
            running = std::max(running, static_cast<double>(std::fabs(std::cos(static_cast<long double>(running_angle)) - std::cos(truth))));
            running = std::max(running, static_cast<double>(std::fabs(std::sin(static_cast<long double>(running_angle)) - std::sin(truth))));
            running_angle *= step;
        }
        const double ours = max_angle_error<float>({"default", nullptr}, angles, layout::half_split, {m}, 10000.0L);
        std::printf("[ contrast ] m = %lld: naive fp32 m*theta off by %.3g, fp32 running product by %.3g, rotary by %.3g\n",
                    static_cast<long long>(m), naive, running, ours);
        EXPECT_LE(ours, fp32_bound);
        EXPECT_GT(naive, 1e-2) << "the naive fp32 product should be far off at m = " << m;
        EXPECT_GT(running, 1e-2) << "the fp32 running product should be far off at m = " << m;
    }
}

// Bad input throws before anything is written, naming the parameter; the limit is 2^32.
TEST(TableFreeErrors, PositionsRotaryDimAndSize) {
    const rotary::rope_angles<float> angles(64);
    std::vector<float> x = random_vector<float>(3 * 2 * 64, 3);
    const auto before = x;
    const heads_view<float> v(x.data(), 3, 2, 64);
    const auto expect_throw = [&](auto exception, const std::function<void()>& call, std::vector<std::string> parts) {
        using E = decltype(exception);
        try {
            call();
            ADD_FAILURE() << "no exception";
        } catch (const E& e) {
            for (const auto& part : parts) EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
        }
        EXPECT_EQ(x, before);
    };
    const std::vector<std::int64_t> too_far = {0, std::int64_t{1} << 32, 5};
    expect_throw(std::out_of_range(""), [&] { rotary::apply(angles, layout::half_split, v, positions::from_ids(too_far.data(), 3)); },
                 {"ids[1]", "4294967296", "table-free max_positions"});
    const std::vector<std::int32_t> negative = {0, 4, -7};
    expect_throw(std::invalid_argument(""), [&] { rotary::apply(angles, layout::interleaved, v, positions::from_ids(negative.data(), 3)); },
                 {"ids[2]", "-7"});
    expect_throw(std::out_of_range(""),
                 [&] { rotary::apply(angles, layout::interleaved, v, positions::starting_at((std::int64_t{1} << 32) - 2)); },
                 {"4294967296", "table-free max_positions"});
    const rotary::rope_angles<float> wide(128);
    expect_throw(std::invalid_argument(""), [&] { rotary::apply_qk(wide, layout::interleaved, v, v, positions::starting_at(0)); },
                 {"rotary_dim 128", "q.head_dim 64"});
    expect_throw(std::invalid_argument(""), [&] { rotary::rope_angles<float> huge(2048); }, {"rotary_dim", "1024", "2048"});
    expect_throw(std::invalid_argument(""), [&] { rotary::rope_angles<double> odd(7); }, {"rotary_dim", "7"});
    // The largest allowed position works.
    rotary::apply(angles, layout::half_split, heads_view<float>(x.data(), 1, 2, 64), positions::starting_at((std::int64_t{1} << 32) - 1));
}

std::vector<std::string> path_names() {
    std::vector<std::string> names = {"default", "scalar"};
    for (const auto& a : simd_archs()) names.push_back(a.name);
    return names;
}

INSTANTIATE_TEST_SUITE_P(, TableFree, ::testing::ValuesIn(path_names()), [](const auto& info) { return info.param; });

}  // namespace
