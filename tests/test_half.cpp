// fp16 and bf16 buffers: every path (default arch, scalar, each SIMD arch this CPU runs) computes
// in fp32 and rounds once, so its output must equal, bit for bit, the same path's fp32 output on
// the widened input rounded once to the storage type (Eigen's round-to-nearest-even). The fp32
// path itself is checked against the dense oracle in test_oracle.cpp.
#include "support.hpp"

#include <bitset>

using namespace rotary_test;
using rotary::heads_view;
using rotary::layout;
using rotary::positions;

namespace {

template <class H>
std::uint16_t bits_of(H h) {
    std::uint16_t b;
    std::memcpy(&b, &h, sizeof b);
    return b;
}

template <class H>
bool same_half(H a, H b) {
    const float fa = static_cast<float>(a), fb = static_cast<float>(b);
    if (std::isnan(fa) || std::isnan(fb)) return std::isnan(fa) && std::isnan(fb);
    return bits_of(a) == bits_of(b);
}

// Random values spread over the type's range, with the special values mixed in.
template <class H>
std::vector<H> half_inputs(std::size_t n, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> mantissa(-1.0f, 1.0f);
    std::uniform_int_distribution<int> exponent(-8, 8);
    std::vector<H> v(n);
    for (auto& x : v) x = static_cast<H>(std::ldexp(mantissa(rng), exponent(rng)));
    const float specials[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity(), 0.0f, -0.0f,
                              static_cast<float>(std::numeric_limits<H>::denorm_min()),
                              -3 * static_cast<float>(std::numeric_limits<H>::denorm_min()),
                              static_cast<float>(std::numeric_limits<H>::min()) * 0.5f,
                              static_cast<float>(std::numeric_limits<H>::max()) * 0.5f};
    for (std::size_t i = 0; i < sizeof(specials) / sizeof(specials[0]) && 7 * i + 3 < n; ++i)
        v[7 * i + 3] = static_cast<H>(specials[i]);
    return v;
}

class HalfPaths : public ::testing::TestWithParam<std::string> {
  protected:
    backend path;
    void SetUp() override {
        for (const backend& b : backends())
            if (b.name == GetParam()) path = b;
        if (path.name.empty()) GTEST_SKIP() << GetParam() << " does not run on this CPU";
    }

    template <class H>
    void sweep() {
        std::size_t cases = 0;
        for (std::size_t rotary_dim = 2; rotary_dim <= 130; rotary_dim += 2) {
            const std::size_t head_dim = rotary_dim + (rotary_dim / 2) % 3;  // partial rotary for 2 of 3
            const std::size_t tokens = 3, heads = 3;
            rotary::rope_table<float> table(rotary_dim, 4096);
            for (layout l : {layout::interleaved, layout::half_split})
                for (const bool in_place : {true, false}) {
                    const std::size_t n = tokens * heads * head_dim;
                    // misaligned by one element: the storage starts one past its allocation
                    std::vector<H> storage(n + 1);
                    const auto inputs = half_inputs<H>(n, static_cast<std::uint32_t>(rotary_dim * 4 + in_place));
                    std::copy(inputs.begin(), inputs.end(), storage.begin() + 1);
                    std::vector<float> widened(n);
                    for (std::size_t i = 0; i < n; ++i) widened[i] = static_cast<float>(inputs[i]);
                    std::vector<H> out(n);
                    const positions pos = positions::starting_at(4090);
                    const heads_view<H> x(storage.data() + 1, tokens, heads, head_dim);
                    if (in_place)
                        apply_in_place(path, table, l, x, pos);
                    else
                        apply_out_of_place(path, table, l, heads_view<const H>(x), heads_view<H>(out.data(), tokens, heads, head_dim), pos);
                    apply_in_place(path, table, l, heads_view<float>(widened.data(), tokens, heads, head_dim), pos);
                    const H* got = in_place ? storage.data() + 1 : out.data();
                    for (std::size_t i = 0; i < n; ++i) {
                        const H want = static_cast<H>(widened[i]);
                        ASSERT_TRUE(same_half(got[i], want))
                            << path.name << " rotary_dim " << rotary_dim << " head_dim " << head_dim << " "
                            << layout_name(l) << (in_place ? " in place" : " out of place") << " element " << i
                            << ": got " << std::bitset<16>(bits_of(got[i])) << " want " << std::bitset<16>(bits_of(want))
                            << " (input " << static_cast<float>(inputs[i]) << ")";
                    }
                    ++cases;
                }
        }
        EXPECT_EQ(cases, 65u * 4u);
    }
};

TEST_P(HalfPaths, Fp16EqualsFp32RoundedOnce) { sweep<Eigen::half>(); }
TEST_P(HalfPaths, Bf16EqualsFp32RoundedOnce) { sweep<Eigen::bfloat16>(); }

// Results in and near the type's subnormal range: both elements of a pair tiny, so that the fp32
// result itself is tiny (for bf16 an fp32 subnormal, which vcvtne2ps2bf16 would flush to zero).
// Blocks of 32 elements alternate tiny values, zeros and normal values, so that vectors of only
// tiny results, of zeros without tiny results and of normal results all occur.
template <class H>
void tiny_results(const backend& path) {
    const std::size_t tokens = 5, heads = 4, head_dim = 136, rotary_dim = 128, n = tokens * heads * head_dim;
    const int tiny_exponent = std::numeric_limits<H>::min_exponent - 1;  // the top of the subnormals
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> mantissa(-1.0f, 1.0f);
    std::uniform_int_distribution<int> below(0, 9);
    std::vector<H> inputs(n);
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t block = i / 32 % 3;
        const float value = block == 0 ? std::ldexp(mantissa(rng), tiny_exponent - below(rng))
                            : block == 1 ? (i % 5 == 0 ? mantissa(rng) : 0.0f)
                                         : mantissa(rng);
        inputs[i] = static_cast<H>(value);
    }
    std::vector<float> widened(n);
    for (std::size_t i = 0; i < n; ++i) widened[i] = static_cast<float>(inputs[i]);
    const rotary::rope_table<float> table(rotary_dim, 64);
    const positions pos = positions::starting_at(7);
    apply_in_place(path, table, layout::interleaved, heads_view<float>(widened.data(), tokens, heads, head_dim), pos);
    std::vector<float> widened_half = std::vector<float>(n);
    for (std::size_t i = 0; i < n; ++i) widened_half[i] = static_cast<float>(inputs[i]);
    apply_in_place(path, table, layout::half_split, heads_view<float>(widened_half.data(), tokens, heads, head_dim), pos);
    std::size_t tiny = 0;
    for (layout l : {layout::interleaved, layout::half_split}) {
        const std::vector<float>& want = l == layout::interleaved ? widened : widened_half;
        std::vector<H> x = inputs, out(n);
        apply_in_place(path, table, l, heads_view<H>(x.data(), tokens, heads, head_dim), pos);
        apply_out_of_place(path, table, l, heads_view<const H>(inputs.data(), tokens, heads, head_dim),
                           heads_view<H>(out.data(), tokens, heads, head_dim), pos);
        for (std::size_t i = 0; i < n; ++i) {
            const H w = static_cast<H>(want[i]);
            tiny += std::fpclassify(want[i]) == FP_SUBNORMAL || (want[i] != 0 && std::fabs(want[i]) < static_cast<float>(std::numeric_limits<H>::min()));
            ASSERT_TRUE(same_half(x[i], w)) << path.name << " " << layout_name(l) << " in place, element " << i << ": got "
                                            << std::bitset<16>(bits_of(x[i])) << " want " << std::bitset<16>(bits_of(w));
            ASSERT_TRUE(same_half(out[i], w)) << path.name << " " << layout_name(l) << " out of place, element " << i;
        }
    }
    EXPECT_GT(tiny, n / 4) << "the inputs must give results below the type's smallest normal";
}
TEST_P(HalfPaths, Fp16TinyResultsEqualFp32RoundedOnce) { tiny_results<Eigen::half>(path); }
TEST_P(HalfPaths, Bf16TinyResultsEqualFp32RoundedOnce) { tiny_results<Eigen::bfloat16>(path); }

// The table-free path with half storage: the same rule against the same path's fp32 result.
template <class H>
void table_free_half(const backend& path) {
    const std::size_t tokens = 5, heads = 3, head_dim = 136, rotary_dim = 130;
    const rotary::rope_angles<float> angles(rotary_dim);
    const auto inputs = half_inputs<H>(tokens * heads * head_dim, 5);
    std::vector<float> widened(inputs.size());
    for (std::size_t i = 0; i < inputs.size(); ++i) widened[i] = static_cast<float>(inputs[i]);
    auto x = inputs;
    const std::vector<std::int64_t> ids = {3, 2147483000, 77777, 3, 1};
    const auto pos = positions::from_ids(ids.data(), tokens);
    for (layout l : {layout::interleaved, layout::half_split}) {
        x = inputs;
        auto w = widened;
        const heads_view<H> xv(x.data(), tokens, heads, head_dim);
        const heads_view<float> wv(w.data(), tokens, heads, head_dim);
        if (path.kernels) {
            const auto jx = rotary::detail::job_in_place(angles, l, xv, pos, {});
            const auto jw = rotary::detail::job_in_place(angles, l, wv, pos, {});
            path.kernels->rotate_table_free<H>()(jx, 0, tokens);
            path.kernels->rotate_table_free<float>()(jw, 0, tokens);
        } else {
            rotary::apply(angles, l, xv, pos);
            rotary::apply(angles, l, wv, pos);
        }
        for (std::size_t i = 0; i < x.size(); ++i)
            ASSERT_TRUE(same_half(x[i], static_cast<H>(w[i]))) << path.name << " " << layout_name(l) << " element " << i;
    }
}
TEST_P(HalfPaths, TableFreeFp16EqualsFp32RoundedOnce) { table_free_half<Eigen::half>(path); }
TEST_P(HalfPaths, TableFreeBf16EqualsFp32RoundedOnce) { table_free_half<Eigen::bfloat16>(path); }

INSTANTIATE_TEST_SUITE_P(, HalfPaths, ::testing::Values("default", "scalar", "sse2", "avx2", "avx512bw", "avx512bf16"),
                         [](const auto& info) { return info.param; });

// The rotation preserves each pair's norm r = |(x_a, x_b)|, so a component never exceeds r: an fp16
// pair with r below 65504 (fp16's largest finite value) never overflows, at any position. A pair
// with r above 65520 (where rounding reaches Inf) overflows at the positions that turn it close to
// an axis: e.g. (46341, 46341), r = 65536.4, reaches Inf where the angle is near a multiple of
// pi/4 away from its own 45 degrees.
TEST(HalfOverflow, Fp16OverflowsOnlyAbovePairNorm65520) {
    rotary::rope_table<float> table(2, 4096);  // one pair, theta_0 = 1 rad per position
    std::size_t overflowing = 0;
    for (std::size_t m = 0; m < 4096; ++m) {
        Eigen::half safe[2] = {Eigen::half(46300.0f), Eigen::half(46300.0f)};  // r = 65478
        Eigen::half big[2] = {Eigen::half(46336.0f), Eigen::half(46336.0f)};  // r = 65529
        const std::int64_t id = static_cast<std::int64_t>(m);
        rotary::apply(table, layout::interleaved, heads_view<Eigen::half>(safe, 1, 1, 2), positions::from_ids(&id, 1));
        rotary::apply(table, layout::interleaved, heads_view<Eigen::half>(big, 1, 1, 2), positions::from_ids(&id, 1));
        ASSERT_TRUE(std::isfinite(static_cast<float>(safe[0])) && std::isfinite(static_cast<float>(safe[1]))) << m;
        overflowing += !std::isfinite(static_cast<float>(big[0])) || !std::isfinite(static_cast<float>(big[1]));
    }
    EXPECT_GT(overflowing, 0u);
}

}  // namespace
