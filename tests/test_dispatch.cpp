// Runtime dispatch: this binary is compiled for the x86-64 baseline, with the avx512bf16,
// avx512bw, avx2 and sse2 kernel sets added by rotary_add_dispatch(). It checks which arch is chosen on this machine,
// that forcing works (function and environment variable) and that every forced arch agrees with
// the scalar path.
#include <rotary/dispatch.hpp>

#include "support.hpp"

using namespace rotary_test;
using rotary::heads_view;
using rotary::layout;
using rotary::positions;

namespace {

// The registry order of rotary_add_dispatch(... ARCHS avx512bf16 avx512bw avx2 sse2): the best one
// the CPU runs.
std::string expected_best() {
    if (rotary::cpu_supports<rotary::avx512bf16>()) return "avx512bf16";
    if (rotary::cpu_supports<xsimd::avx512bw>()) return "avx512bw";
    if (rotary::cpu_supports<xsimd::fma3<xsimd::avx2>>()) return "avx2";
    return "sse2";
}

struct DispatchTest : ::testing::Test {
    void TearDown() override { rotary::dispatch::force_arch(nullptr); }
};

TEST_F(DispatchTest, ChoosesTheBestArchThisCpuRuns) {
    if (std::getenv("ROTARY_FORCE_ARCH")) GTEST_SKIP() << "ROTARY_FORCE_ARCH is set";
    std::printf("[ dispatch ] this CPU runs:");
    for (const auto& name : rotary::dispatch::available_archs()) std::printf(" %s", name.c_str());
    std::printf("; chosen: %s\n", rotary::dispatch::active_arch());
    EXPECT_EQ(rotary::dispatch::active_arch(), expected_best());
    EXPECT_EQ(rotary::dispatch::available_archs().front(), expected_best());
    EXPECT_EQ(rotary::dispatch::available_archs().back(), "scalar");
}

template <class T>
std::vector<T> run_forced(const char* arch, layout l, const std::vector<T>& input, std::size_t tokens,
                          std::size_t heads, std::size_t head_dim, const rotary::rope_table<rotary::compute_type_t<T>>& table) {
    rotary::dispatch::force_arch(arch);
    EXPECT_STREQ(rotary::dispatch::active_arch(), arch);
    std::vector<T> q = input, out(input.size());
    std::vector<T> k(input.begin(), input.begin() + static_cast<std::ptrdiff_t>(tokens * head_dim));
    const std::vector<std::int32_t> ids = {5, 900, 17};
    rotary::dispatch::apply_qk(table, l, heads_view<T>(q.data(), tokens, heads, head_dim),
                               heads_view<T>(k.data(), tokens, 1, head_dim), positions::from_ids(ids.data(), tokens));
    rotary::dispatch::apply(table, l, heads_view<const T>(q.data(), tokens, heads, head_dim),
                            heads_view<T>(out.data(), tokens, heads, head_dim), positions::starting_at(3),
                            {rotary::direction::inverse});
    rotary::dispatch::apply(table, l, heads_view<T>(out.data(), tokens, heads, head_dim), positions::starting_at(40));
    rotary::dispatch::apply_qk(table, l, heads_view<const T>(q.data(), tokens, heads, head_dim),
                               heads_view<T>(q.data(), tokens, heads, head_dim),
                               heads_view<const T>(k.data(), tokens, 1, head_dim),
                               heads_view<T>(k.data(), tokens, 1, head_dim), positions::starting_at(1));
    // table-free, and positions along three axes
    const rotary::rope_angles<rotary::compute_type_t<T>> angles(table.frequencies());
    rotary::dispatch::apply(angles, l, heads_view<T>(q.data(), tokens, heads, head_dim), positions::from_ids(ids.data(), tokens));
    const std::vector<std::int64_t> axes = {4, 5, 6, 4, 50, 6, 4, 51, 6};
    const std::size_t p = table.pairs();
    rotary::dispatch::apply_qk(table, l, heads_view<T>(q.data(), tokens, heads, head_dim),
                               heads_view<T>(k.data(), tokens, 1, head_dim),
                               rotary::axis_positions::from_ids(axes.data(), 3, tokens, {p / 3, p / 3, p - 2 * (p / 3)}));
    out.insert(out.end(), q.begin(), q.end());
    out.insert(out.end(), k.begin(), k.end());
    return out;
}

template <class T>
void compare_every_arch_with_scalar(double tolerance) {
    const std::size_t tokens = 3, heads = 4, head_dim = 90, rotary_dim = 86;
    rotary::rope_table<rotary::compute_type_t<T>> table(rotary_dim, 1000);
    const auto x = random_vector<double>(tokens * heads * head_dim, 77);
    std::vector<T> input(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) input[i] = static_cast<T>(x[i]);
    for (layout l : {layout::interleaved, layout::half_split}) {
        const auto want = run_forced("scalar", l, input, tokens, heads, head_dim, table);
        for (const std::string& arch : rotary::dispatch::available_archs()) {
            const auto got = run_forced(arch.c_str(), l, input, tokens, heads, head_dim, table);
            ASSERT_EQ(got.size(), want.size());
            for (std::size_t i = 0; i < got.size(); ++i)
                ASSERT_NEAR(static_cast<double>(got[i]), static_cast<double>(want[i]),
                            tolerance * std::max(1.0, std::fabs(static_cast<double>(want[i]))))
                    << arch << " " << layout_name(l) << " element " << i;
        }
    }
}

TEST_F(DispatchTest, EveryForcedArchAgreesWithScalarFp32) { compare_every_arch_with_scalar<float>(8 * 1.2e-7); }
TEST_F(DispatchTest, EveryForcedArchAgreesWithScalarFp64) { compare_every_arch_with_scalar<double>(8 * 2.3e-16); }
// fp16/bf16: one rounding of an fp32 result that may differ in its last bit between archs (FMA):
// at most one ulp of the storage type.
TEST_F(DispatchTest, EveryForcedArchAgreesWithScalarFp16) { compare_every_arch_with_scalar<Eigen::half>(1e-3); }
TEST_F(DispatchTest, EveryForcedArchAgreesWithScalarBf16) { compare_every_arch_with_scalar<Eigen::bfloat16>(8e-3); }

TEST_F(DispatchTest, ForcingAnUnknownOrMissingArchThrows) {
    try {
        rotary::dispatch::force_arch("avx1024");
        ADD_FAILURE() << "no exception";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("avx1024"), std::string::npos) << e.what();
    }
    if (!rotary::cpu_supports<xsimd::avx512bw>()) {
        EXPECT_THROW(rotary::dispatch::force_arch("avx512bw"), std::invalid_argument);
    }
    if (!rotary::cpu_supports<rotary::avx512bf16>()) {
        EXPECT_THROW(rotary::dispatch::force_arch("avx512bf16"), std::invalid_argument);
    }
}

// Run by the ctest entries dispatch_env_<arch> with ROTARY_FORCE_ARCH=<arch> in the environment.
TEST(DispatchEnvironment, ForcesTheArch) {
    const char* forced = std::getenv("ROTARY_FORCE_ARCH");
    if (forced == nullptr) GTEST_SKIP() << "ROTARY_FORCE_ARCH is not set";
    const auto available = rotary::dispatch::available_archs();
    if (std::find(available.begin(), available.end(), forced) == available.end())
        GTEST_SKIP() << forced << " does not run on this CPU";
    EXPECT_STREQ(rotary::dispatch::active_arch(), forced);
}

}  // namespace
