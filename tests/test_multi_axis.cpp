// Positions along several axes (M-RoPE, 2D axial) on every path, against an independent dense
// oracle: the block-diagonal rotation of Eq. 15 with each block's angle taken from its own axis'
// position, built in double with Eigen; the reduction to 1-D RoPE; and bad input.
#include "support.hpp"

using namespace rotary_test;
using rotary::axis_positions;
using rotary::heads_view;
using rotary::layout;

namespace {

// Eq. 15 with pair i rotated by angles[i], on the storage order of `layout` (P^T R P).
template <class T>
std::vector<double> dense_rotate_by(layout l, const T* head, std::size_t head_dim, std::size_t rotary_dim,
                                    const std::vector<double>& angles) {
    Eigen::MatrixXd r = Eigen::MatrixXd::Identity(head_dim, head_dim);
    for (std::size_t i = 0; i < rotary_dim / 2; ++i) {
        r(2 * i, 2 * i) = std::cos(angles[i]);
        r(2 * i, 2 * i + 1) = -std::sin(angles[i]);
        r(2 * i + 1, 2 * i) = std::sin(angles[i]);
        r(2 * i + 1, 2 * i + 1) = std::cos(angles[i]);
    }
    Eigen::MatrixXd p = Eigen::MatrixXd::Zero(head_dim, head_dim);
    for (std::size_t k = 0; k < head_dim; ++k) p(k, storage_index(l, k, rotary_dim)) = 1;
    Eigen::VectorXd x(head_dim);
    for (std::size_t k = 0; k < head_dim; ++k) x(k) = static_cast<double>(head[k]);
    const Eigen::VectorXd y = p.transpose() * r * p * x;
    return std::vector<double>(y.data(), y.data() + head_dim);
}

template <class T, class C>
void apply_axes(const backend& b, const rotary::rope_table<C>& table, layout l, const heads_view<T>& q,
                const heads_view<T>& k, const axis_positions& pos) {
    if (!b.kernels) return rotary::apply_qk(table, l, q, k, pos);
    const auto job = rotary::detail::job_qk_in_place(table, l, q, k, pos, {});
    b.kernels->template rotate_multi_axis<T>()(job, job.range.begin, job.range.end);
}

struct axis_case {
    const char* name;
    std::size_t head_dim, rotary_dim;
    std::vector<std::size_t> sections;
    bool axial;  // axial_frequencies instead of the default thetas
};

const axis_case cases[] = {
    {"mrope_qwen2vl", 128, 128, {16, 24, 24}, false},  // Qwen2-VL's mrope_section
    {"mrope_odd_sections_partial", 50, 42, {5, 7, 9}, false},
    {"axial_2d", 64, 64, {16, 16}, true},
    {"four_axes", 80, 72, {9, 9, 9, 9}, false},
};

class MultiAxis : public ::testing::TestWithParam<std::tuple<std::string, layout>> {
  protected:
    backend path;
    void SetUp() override {
        for (const backend& b : backends())
            if (b.name == std::get<0>(GetParam())) path = b;
        if (path.name.empty()) GTEST_SKIP() << std::get<0>(GetParam()) << " does not run on this CPU";
    }

    template <class T>
    void against_dense_oracle() {
        using C = rotary::compute_type_t<T>;
        const layout l = std::get<1>(GetParam());
        const std::size_t tokens = 5, q_heads = 4, k_heads = 2;
        for (const axis_case& c : cases) {
            const std::size_t pairs = c.rotary_dim / 2, axes = c.sections.size();
            const auto freqs = c.axial ? rotary::axial_frequencies(c.rotary_dim, 100.0) : rotary::default_frequencies(c.rotary_dim);
            rotary::rope_table<C> table(freqs, 3000);
            // the oracle's thetas, written out again: axial halves each have base^(-4j/d)
            std::vector<double> thetas(pairs);
            for (std::size_t i = 0; i < pairs; ++i)
                thetas[i] = c.axial ? std::pow(100.0, -4.0 * static_cast<double>(i % (pairs / 2)) / static_cast<double>(c.rotary_dim))
                                    : theta(i, c.rotary_dim);
            std::vector<std::int64_t> ids(axes * tokens);
            std::mt19937 rng(static_cast<std::uint32_t>(c.rotary_dim));
            std::uniform_int_distribution<int> position(0, 2999);
            for (auto& id : ids) id = position(rng);
            for (std::size_t a = 0; a < axes; ++a) ids[a * tokens + 2] = 1234;  // a text token: every axis alike
            const auto q0 = random_vector<T>(tokens * q_heads * c.head_dim, 3), k0 = random_vector<T>(tokens * k_heads * c.head_dim, 4);
            auto q = q0, k = k0;
            apply_axes(path, table, l, heads_view<T>(q.data(), tokens, q_heads, c.head_dim),
                       heads_view<T>(k.data(), tokens, k_heads, c.head_dim),
                       axis_positions::from_ids(ids.data(), axes, tokens, c.sections));
            for (std::size_t t = 0; t < tokens; ++t) {
                std::vector<double> angles(pairs);
                for (std::size_t a = 0, i = 0; a < axes; ++a)
                    for (std::size_t n = 0; n < c.sections[a]; ++n, ++i)
                        angles[i] = static_cast<double>(ids[a * tokens + t]) * thetas[i];
                auto check = [&](const std::vector<T>& in, const std::vector<T>& out, std::size_t heads) {
                    for (std::size_t h = 0; h < heads; ++h) {
                        const std::size_t off = (t * heads + h) * c.head_dim;
                        const auto want = dense_rotate_by(l, in.data() + off, c.head_dim, c.rotary_dim, angles);
                        for (std::size_t e = 0; e < c.head_dim; ++e)
                            ASSERT_NEAR(static_cast<double>(out[off + e]), want[e], tolerance<T>())
                                << c.name << " " << path.name << " token " << t << " head " << h << " element " << e;
                    }
                };
                check(q0, q, q_heads);
                check(k0, k, k_heads);
            }
        }
    }
};

TEST_P(MultiAxis, DenseOracleFp32) { against_dense_oracle<float>(); }
TEST_P(MultiAxis, DenseOracleFp64) { against_dense_oracle<double>(); }

// Text tokens (t = h = w) are plain 1-D RoPE, bit for bit, also when they sit between image tokens.
TEST_P(MultiAxis, EqualAxesReduceTo1D) {
    const layout l = std::get<1>(GetParam());
    const std::size_t tokens = 6, heads = 3, head_dim = 128;
    rotary::rope_table<float> table(head_dim, 512);
    const std::vector<std::int32_t> ids = {7, 8, 9, 10, 11, 12,    // t
                                           7, 8, 40, 10, 11, 12,   // h: token 2 is an image patch
                                           7, 8, 41, 10, 11, 12};  // w
    const std::vector<std::int64_t> one_d = {7, 8, 9, 10, 11, 12};
    const auto x = random_vector<float>(tokens * heads * head_dim, 9);
    auto a = x, b = x, ka = x, kb = x;
    apply_axes(path, table, l, heads_view<float>(a.data(), tokens, heads, head_dim),
               heads_view<float>(ka.data(), tokens, heads, head_dim),
               axis_positions::from_ids(ids.data(), 3, tokens, {16, 24, 24}));
    apply_qk_in_place(path, table, l, heads_view<float>(b.data(), tokens, heads, head_dim),
                      heads_view<float>(kb.data(), tokens, heads, head_dim), rotary::positions::from_ids(one_d.data(), tokens));
    for (std::size_t t = 0; t < tokens; ++t) {
        if (t == 2) continue;
        for (std::size_t e = 0; e < heads * head_dim; ++e) {
            ASSERT_EQ(a[t * heads * head_dim + e], b[t * heads * head_dim + e]) << "token " << t;
            ASSERT_EQ(ka[t * heads * head_dim + e], kb[t * heads * head_dim + e]) << "token " << t;
        }
    }
}

std::vector<std::string> backend_names() {
    std::vector<std::string> names = {"default", "scalar"};
    for (const auto& a : simd_archs()) names.push_back(a.name);
    return names;
}

INSTANTIATE_TEST_SUITE_P(, MultiAxis,
                         ::testing::Combine(::testing::ValuesIn(backend_names()),
                                            ::testing::Values(layout::interleaved, layout::half_split)),
                         [](const auto& info) {
                             return std::get<0>(info.param) + "_" + layout_name(std::get<1>(info.param));
                         });

// Bad input throws before anything is written.
TEST(MultiAxisErrors, BadSectionsAxesAndIds) {
    const std::size_t tokens = 2, head_dim = 64;
    rotary::rope_table<float> table(head_dim, 100);
    auto x = random_vector<float>(tokens * head_dim, 1);
    const auto before = x;
    const heads_view<float> v(x.data(), tokens, 1, head_dim);
    const std::vector<std::int32_t> ids = {1, 2, 3, 4, 5, 6};
    auto expect_invalid = [&](const axis_positions& pos, const char* part) {
        try {
            rotary::apply(table, layout::half_split, v, pos);
            ADD_FAILURE() << "no exception for " << part;
        } catch (const std::invalid_argument& e) {
            EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
        }
        EXPECT_EQ(x, before);
    };
    expect_invalid(axis_positions::from_ids(ids.data(), 3, tokens, {10, 10, 10}), "add up to 30 pairs, rotary_dim/2 is 32");
    expect_invalid(axis_positions::from_ids(ids.data(), 3, tokens, {16, 16}), "2 sections for 3 axes");
    // a sum that wraps to rotary_dim/2 (33 + 2^64 - 1 = 32 mod 2^64; fuzz_multi_axis found it)
    expect_invalid(axis_positions::from_ids(ids.data(), 2, tokens, {33, SIZE_MAX}), "add up to more than SIZE_MAX pairs");
    expect_invalid(axis_positions::from_ids(ids.data(), 0, tokens, std::vector<std::size_t>{}), "axes must be 1 .. 4, got 0");
    expect_invalid(axis_positions::from_ids(ids.data(), 3, tokens + 1, {10, 10, 12}), "count 3 != tokens 2");
    expect_invalid(axis_positions::from_ids(static_cast<const std::int64_t*>(nullptr), 3, tokens, {10, 10, 12}), "null");
    EXPECT_THROW(axis_positions::from_ids(ids.data(), 5, tokens, {8, 8, 8, 4, 4}), std::invalid_argument);
    const std::vector<std::int32_t> bad = {1, 2, 3, -4, 5, 6};
    expect_invalid(axis_positions::from_ids(bad.data(), 3, tokens, {10, 10, 12}), "ids[1][1] must be >= 0, got -4");
    const std::vector<std::int64_t> far = {1, 2, 3, 4, 100, 6};
    try {
        rotary::apply(table, layout::interleaved, v, axis_positions::from_ids(far.data(), 3, tokens, {10, 10, 12}));
        ADD_FAILURE() << "no exception";
    } catch (const std::out_of_range& e) {
        EXPECT_NE(std::string(e.what()).find("ids[2][0] = 100"), std::string::npos) << e.what();
    }
    EXPECT_EQ(x, before);
    EXPECT_THROW(rotary::axial_frequencies(66), std::invalid_argument);
}

}  // namespace
