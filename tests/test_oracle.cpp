// Every path (default arch, scalar, each SIMD arch this CPU runs) against independent oracles:
// the dense rotation matrix of Eq. 15 in double (Eigen), the complex form of Eq. 12 in long double,
// and the mathematical properties of R_m.
#include "support.hpp"

#include <algorithm>
#include <numeric>

using namespace rotary_test;
using rotary::heads_view;
using rotary::layout;
using rotary::positions;

namespace {

struct shape {
    std::size_t head_dim, rotary_dim;
};
// Real model shapes (LLaMA 128/128, GPT-J-ish 64/64, phi-2 32 of 80, stablelm 20 of 80) and odd ones.
const shape shapes[] = {{128, 128}, {64, 64}, {80, 32}, {80, 20}, {9, 6}, {130, 130}, {2, 2}, {70, 42}};

class Oracle : public ::testing::TestWithParam<std::tuple<std::string, layout>> {
  protected:
    backend path() const {
        for (const backend& b : backends())
            if (b.name == std::get<0>(GetParam())) return b;
        return {};
    }
    void SetUp() override {
        if (path().name.empty()) GTEST_SKIP() << std::get<0>(GetParam()) << " does not run on this CPU";
    }
    layout pair_layout() const { return std::get<1>(GetParam()); }
};

template <class T>
void check_dense(const backend& b, layout l, bool in_place, rotary::direction dir) {
    using C = rotary::compute_type_t<T>;
    const std::size_t tokens = 5, heads = 3;
    for (const shape& s : shapes) {
        rotary::rope_table<C> table(s.rotary_dim, 5000);
        const auto thetas = default_thetas(s.rotary_dim);
        const auto x = random_vector<T>(tokens * heads * s.head_dim, 7u + static_cast<std::uint32_t>(s.head_dim));
        std::vector<T> y = in_place ? x : std::vector<T>(x.size(), T(0));
        const std::vector<std::int64_t> ids = {0, 1, 17, 4095, 4999};
        const heads_view<const T> in(x.data(), tokens, heads, s.head_dim);
        const heads_view<T> out(y.data(), tokens, heads, s.head_dim);
        const rotary::apply_options opts{dir};
        if (in_place)
            apply_in_place(b, table, l, out, positions::from_ids(ids.data(), ids.size()), opts);
        else
            apply_out_of_place(b, table, l, in, out, positions::from_ids(ids.data(), ids.size()), opts);
        for (std::size_t t = 0; t < tokens; ++t)
            for (std::size_t h = 0; h < heads; ++h) {
                const auto want = dense_rotate(l, in.row(t, h), s.head_dim, s.rotary_dim, static_cast<double>(ids[t]),
                                               thetas, dir == rotary::direction::inverse);
                for (std::size_t k = 0; k < s.head_dim; ++k)
                    ASSERT_NEAR(static_cast<double>(out.row(t, h)[k]), want[k], tolerance<T>())
                        << "head_dim " << s.head_dim << " rotary_dim " << s.rotary_dim << " token " << t << " head "
                        << h << " element " << k;
            }
    }
}

TEST_P(Oracle, DenseMatrixFp32OutOfPlace) { check_dense<float>(path(), pair_layout(), false, rotary::direction::forward); }
TEST_P(Oracle, DenseMatrixFp32InPlace) { check_dense<float>(path(), pair_layout(), true, rotary::direction::forward); }
TEST_P(Oracle, DenseMatrixFp32Inverse) { check_dense<float>(path(), pair_layout(), false, rotary::direction::inverse); }
TEST_P(Oracle, DenseMatrixFp64OutOfPlace) { check_dense<double>(path(), pair_layout(), false, rotary::direction::forward); }
TEST_P(Oracle, DenseMatrixFp64InPlaceInverse) { check_dense<double>(path(), pair_layout(), true, rotary::direction::inverse); }

// Eq. 12 in long double at positions up to 60000, with a start offset instead of ids.
TEST_P(Oracle, ComplexFormLargePositions) {
    const std::size_t head_dim = 96, rotary_dim = 64, tokens = 4, heads = 2;
    rotary::rope_table<double> table(rotary_dim, 60004);
    const auto x = random_vector<double>(tokens * heads * head_dim, 11);
    std::vector<double> y(x.size());
    apply_out_of_place(path(), table, pair_layout(), heads_view<const double>(x.data(), tokens, heads, head_dim),
                       heads_view<double>(y.data(), tokens, heads, head_dim), positions::starting_at(60000));
    for (std::size_t t = 0; t < tokens; ++t)
        for (std::size_t h = 0; h < heads; ++h) {
            const std::size_t off = (t * heads + h) * head_dim;
            const auto want = complex_rotate(pair_layout(), x.data() + off, head_dim, rotary_dim, 60000.0L + t);
            for (std::size_t k = 0; k < head_dim; ++k)
                ASSERT_NEAR(y[off + k], static_cast<double>(want[k]), 1e-12) << "token " << t << " element " << k;
        }
}

// Strided views: [batch=1, heads, seq, dim] (BHSD) in, a slice of a packed QKV projection out.
TEST_P(Oracle, StridedViews) {
    const std::size_t tokens = 6, heads = 4, head_dim = 64, rotary_dim = 64;
    rotary::rope_table<float> table(rotary_dim, 64);
    const auto thetas = default_thetas(rotary_dim);
    const auto x = random_vector<float>(heads * tokens * head_dim, 5);
    const heads_view<const float> bhsd(x.data(), tokens, heads, head_dim, head_dim, tokens * head_dim);
    std::vector<float> qkv(tokens * 3 * heads * head_dim, -7.0f);
    const heads_view<float> k_slice(qkv.data() + heads * head_dim, tokens, heads, head_dim, 3 * heads * head_dim,
                                    head_dim);
    apply_out_of_place(path(), table, pair_layout(), bhsd, k_slice, positions::starting_at(3));
    for (std::size_t t = 0; t < tokens; ++t)
        for (std::size_t h = 0; h < heads; ++h) {
            const auto want = dense_rotate(pair_layout(), bhsd.row(t, h), head_dim, rotary_dim, 3.0 + t, thetas);
            for (std::size_t k = 0; k < head_dim; ++k) ASSERT_NEAR(k_slice.row(t, h)[k], want[k], 2e-6);
        }
    // The q and v slices are untouched.
    for (std::size_t t = 0; t < tokens; ++t)
        for (std::size_t e = 0; e < heads * head_dim; ++e) {
            ASSERT_EQ(qkv[t * 3 * heads * head_dim + e], -7.0f);
            ASSERT_EQ(qkv[t * 3 * heads * head_dim + 2 * heads * head_dim + e], -7.0f);
        }
}

// Fused q and k with GQA (8 q heads, 2 k heads), in place, int32 ids: equals the dense oracle.
TEST_P(Oracle, FusedQkGqa) {
    const std::size_t tokens = 7, q_heads = 8, k_heads = 2, head_dim = 80, rotary_dim = 40;
    rotary::rope_table<float> table(rotary_dim, 1000, 500000.0);
    const auto thetas = default_thetas(rotary_dim, 500000.0);
    auto q = random_vector<float>(tokens * q_heads * head_dim, 21);
    auto k = random_vector<float>(tokens * k_heads * head_dim, 22);
    const auto q0 = q, k0 = k;
    const std::vector<std::int32_t> ids = {999, 0, 5, 5, 640, 2, 1};
    apply_qk_in_place(path(), table, pair_layout(), heads_view<float>(q.data(), tokens, q_heads, head_dim),
                      heads_view<float>(k.data(), tokens, k_heads, head_dim), positions::from_ids(ids.data(), tokens));
    for (std::size_t t = 0; t < tokens; ++t) {
        for (std::size_t h = 0; h < q_heads; ++h) {
            const std::size_t off = (t * q_heads + h) * head_dim;
            const auto want = dense_rotate(pair_layout(), q0.data() + off, head_dim, rotary_dim, ids[t], thetas);
            for (std::size_t e = 0; e < head_dim; ++e) ASSERT_NEAR(q[off + e], want[e], 2e-6);
        }
        for (std::size_t h = 0; h < k_heads; ++h) {
            const std::size_t off = (t * k_heads + h) * head_dim;
            const auto want = dense_rotate(pair_layout(), k0.data() + off, head_dim, rotary_dim, ids[t], thetas);
            for (std::size_t e = 0; e < head_dim; ++e) ASSERT_NEAR(k[off + e], want[e], 2e-6);
        }
    }
}

// ---- Properties of R_m -------------------------------------------------------------------------

double dot(const float* a, const float* b, std::size_t n) {
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
    return s;
}

TEST_P(Oracle, NormPreserved) {
    const std::size_t tokens = 16, heads = 4, head_dim = 128;
    rotary::rope_table<float> table(head_dim, 8192);
    const auto x = random_vector<float>(tokens * heads * head_dim, 3);
    std::vector<float> y(x.size());
    apply_out_of_place(path(), table, pair_layout(), heads_view<const float>(x.data(), tokens, heads, head_dim),
                       heads_view<float>(y.data(), tokens, heads, head_dim), positions::starting_at(8000));
    for (std::size_t r = 0; r < tokens * heads; ++r) {
        const double nx = std::sqrt(dot(&x[r * head_dim], &x[r * head_dim], head_dim));
        const double ny = std::sqrt(dot(&y[r * head_dim], &y[r * head_dim], head_dim));
        ASSERT_NEAR(ny, nx, 1e-5 * nx);
    }
}

// Eq. 16: q_m . k_n depends only on m - n, so shifting both by t changes nothing.
TEST_P(Oracle, RelativePositionEq16) {
    const std::size_t head_dim = 128;
    rotary::rope_table<float> table(head_dim, 70000);
    const auto q = random_vector<float>(head_dim, 31), k = random_vector<float>(head_dim, 32);
    std::mt19937 rng(33);
    std::uniform_int_distribution<int> pos(0, 30000);
    for (int trial = 0; trial < 20; ++trial) {
        const int m = pos(rng), n = pos(rng), shift = pos(rng);
        std::vector<float> qm(head_dim), kn(head_dim), qs(head_dim), ks(head_dim);
        auto rot = [&](const std::vector<float>& in, std::vector<float>& out, int p) {
            apply_out_of_place(path(), table, pair_layout(), heads_view<const float>(in.data(), 1, 1, head_dim),
                               heads_view<float>(out.data(), 1, 1, head_dim), positions::starting_at(p));
        };
        rot(q, qm, m);
        rot(k, kn, n);
        rot(q, qs, m + shift);
        rot(k, ks, n + shift);
        ASSERT_NEAR(dot(qm.data(), kn.data(), head_dim), dot(qs.data(), ks.data(), head_dim), 2e-5)
            << "m " << m << " n " << n << " shift " << shift;
    }
}

TEST_P(Oracle, InverseUndoesForwardAndComposes) {
    const std::size_t tokens = 9, heads = 3, head_dim = 72, rotary_dim = 66;
    rotary::rope_table<double> table(rotary_dim, 4096);
    const auto x = random_vector<double>(tokens * heads * head_dim, 41);
    auto y = x;
    const heads_view<double> v(y.data(), tokens, heads, head_dim);
    apply_in_place(path(), table, pair_layout(), v, positions::starting_at(1000));
    apply_in_place(path(), table, pair_layout(), v, positions::starting_at(1000), {rotary::direction::inverse});
    for (std::size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(y[i], x[i], 1e-14);
    // R_p2 R_p1 = R_{p1+p2}
    auto a = x, b = x;
    const std::vector<std::int64_t> p1(tokens, 700), p2(tokens, 2300), p12(tokens, 3000);
    const heads_view<double> va(a.data(), tokens, heads, head_dim), vb(b.data(), tokens, heads, head_dim);
    apply_in_place(path(), table, pair_layout(), va, positions::from_ids(p1.data(), tokens));
    apply_in_place(path(), table, pair_layout(), va, positions::from_ids(p2.data(), tokens));
    apply_in_place(path(), table, pair_layout(), vb, positions::from_ids(p12.data(), tokens));
    for (std::size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-13);
}

TEST_P(Oracle, PositionZeroIsIdentityAndTailUntouched) {
    const std::size_t tokens = 3, heads = 5, head_dim = 50, rotary_dim = 34;
    rotary::rope_table<float> table(rotary_dim, 16);
    auto x = random_vector<float>(tokens * heads * head_dim, 51);
    x[head_dim - 1] = std::numeric_limits<float>::quiet_NaN();  // past rotary_dim: copied as is
    std::vector<float> y(x.size(), 0.0f);
    const std::vector<std::int32_t> zeros(tokens, 0);
    apply_out_of_place(path(), table, pair_layout(), heads_view<const float>(x.data(), tokens, heads, head_dim),
                       heads_view<float>(y.data(), tokens, heads, head_dim), positions::from_ids(zeros.data(), tokens));
    for (std::size_t r = 0; r < tokens * heads; ++r)
        for (std::size_t e = 0; e < head_dim; ++e) {
            const std::size_t i = r * head_dim + e;
            if (e < rotary_dim)
                ASSERT_EQ(y[i], x[i]);
            else
                ASSERT_EQ(std::memcmp(&y[i], &x[i], sizeof(float)), 0) << "pass-through not bit-exact at " << i;
        }
    // In place, entries past rotary_dim are not even written: a NaN payload survives bit for bit.
    auto z = x;
    apply_in_place(path(), table, pair_layout(), heads_view<float>(z.data(), tokens, heads, head_dim),
                   positions::starting_at(9));
    for (std::size_t r = 0; r < tokens * heads; ++r)
        ASSERT_EQ(std::memcmp(&z[r * head_dim + rotary_dim], &x[r * head_dim + rotary_dim],
                              (head_dim - rotary_dim) * sizeof(float)),
                  0);
}

TEST_P(Oracle, NanAndInfPropagate) {
    const std::size_t head_dim = 64;
    rotary::rope_table<float> table(head_dim, 16);
    std::vector<float> x(head_dim, 0.5f);
    x[0] = std::numeric_limits<float>::quiet_NaN();
    x[10] = std::numeric_limits<float>::infinity();
    apply_in_place(path(), table, pair_layout(), heads_view<float>(x.data(), 1, 1, head_dim), positions::starting_at(3));
    // The pair holding the NaN is NaN in both entries; the pair holding the Inf is non-finite.
    const std::size_t nan_partner = pair_layout() == layout::interleaved ? 1 : head_dim / 2;
    EXPECT_TRUE(std::isnan(x[0]));
    EXPECT_TRUE(std::isnan(x[nan_partner]));
    EXPECT_FALSE(std::isfinite(x[10]));
    std::size_t finite = 0;
    for (float v : x) finite += std::isfinite(v) ? 1 : 0;
    EXPECT_EQ(finite, head_dim - 4);
}

std::vector<std::string> backend_names() {
    std::vector<std::string> names = {"default", "scalar"};
    for (const auto& a : simd_archs()) names.push_back(a.name);
    return names;
}

INSTANTIATE_TEST_SUITE_P(, Oracle,
                         ::testing::Combine(::testing::ValuesIn(backend_names()),
                                            ::testing::Values(layout::interleaved, layout::half_split)),
                         [](const auto& info) {
                             return std::get<0>(info.param) + "_" + layout_name(std::get<1>(info.param));
                         });

// ---- The table ---------------------------------------------------------------------------------

TEST(Table, ValuesMatchLongDoubleAndPaddingIsZero) {
    rotary::rope_table<float> table(100, 3000, 500000.0);
    EXPECT_EQ(table.rotary_dim(), 100u);
    EXPECT_EQ(table.pairs(), 50u);
    EXPECT_EQ(table.padded_pairs() % 16, 0u);
    EXPECT_GE(table.padded_pairs(), table.pairs() + 8);
    for (std::size_t m : {0u, 1u, 2u, 1234u, 2999u})
        for (std::size_t i = 0; i < table.pairs(); ++i) {
            const long double th = std::pow(500000.0L, -2.0L * i / 100.0L);
            EXPECT_NEAR(table.cos(m)[i], std::cos(static_cast<long double>(m) * th), 6e-8);
            EXPECT_NEAR(table.sin(m)[i], std::sin(static_cast<long double>(m) * th), 6e-8);
        }
    for (std::size_t m = 0; m < 3000; ++m)
        for (std::size_t i = table.pairs(); i < table.padded_pairs(); ++i) {
            ASSERT_EQ(table.cos(m)[i], 0.0f);
            ASSERT_EQ(table.sin(m)[i], 0.0f);
        }
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(table.data()) % 64, 0u);
}

TEST(Table, CustomFrequenciesTakenExactly) {
    const std::vector<double> inv = {1.0, 0.25, 1e-3, 3e-7};
    rotary::rope_table<double> table(rotary::custom_frequencies(inv, 2.0), 50);
    EXPECT_EQ(table.rotary_dim(), 8u);
    for (std::size_t m = 0; m < 50; ++m)
        for (std::size_t i = 0; i < inv.size(); ++i) {
            EXPECT_NEAR(table.cos(m)[i], 2.0 * std::cos(static_cast<double>(m) * inv[i]), 1e-15);
            EXPECT_NEAR(table.sin(m)[i], 2.0 * std::sin(static_cast<double>(m) * inv[i]), 1e-15);
        }
}

// The angle is formed and reduced beyond double precision: at positions near 2^31 the table's
// cos/sin match long double (itself good to ~5e-10 there) to 1e-9, where plain double m*theta
// is off by ~1e-7.
TEST(Table, ExactAnglesAtHugePositions) {
    const auto f = rotary::default_frequencies(128);
    for (std::int64_t m : {std::int64_t{1} << 16, std::int64_t{1000000}, std::int64_t{1} << 24,
                           (std::int64_t{1} << 31) - 1, (std::int64_t{1} << 32) - 1})
        for (std::size_t i = 0; i < f.pairs(); i += 7) {
            const long double th = std::pow(10000.0L, -2.0L * i / 128.0L);
            const auto cs = rotary::detail::exact_cos_sin(m, rotary::detail::split(th));
            EXPECT_NEAR(cs.cos, std::cos(static_cast<long double>(m) * th), 1e-9) << m << " " << i;
            EXPECT_NEAR(cs.sin, std::sin(static_cast<long double>(m) * th), 1e-9) << m << " " << i;
        }
}

}  // namespace
