// Every SIMD arch this CPU runs against the scalar path, with a table and table-free: rotary_dim
// 2..130 (every tail), head_dim past rotary_dim, odd token counts, misaligned pointers, strided
// views, in place and out of place, start offsets and int32/int64 position ids, forward and
// inverse, fused q/k with GQA. Buffers are allocated to their exact extent, so an over-read or
// over-write is an ASan error, and the gaps between strided rows hold a sentinel that must survive.
#include "support.hpp"

using namespace rotary_test;
using rotary::heads_view;
using rotary::layout;
using rotary::positions;

namespace {

// A strided buffer of exactly the extent of its rows, starting `misalign` elements into its
// allocation; everything that is not a row element holds the sentinel.
template <class T>
struct strided_buffer {
    std::vector<T> storage;
    heads_view<T> view;
    std::size_t misalign = 0;

    strided_buffer(const strided_buffer& other) : storage(other.storage), view(other.view), misalign(other.misalign) {
        view.data = storage.data() + misalign;  // a copy views its own storage
    }
    strided_buffer& operator=(const strided_buffer&) = delete;

    strided_buffer(std::size_t tokens, std::size_t heads, std::size_t head_dim, std::size_t token_pad,
                   std::size_t head_pad, std::size_t misalign_, T sentinel)
        : misalign(misalign_) {
        const std::size_t head_stride = head_dim + head_pad;
        const std::size_t token_stride = heads * head_stride + token_pad;
        const std::size_t extent = (tokens - 1) * token_stride + (heads - 1) * head_stride + head_dim;
        storage.assign(misalign + extent, sentinel);
        view = heads_view<T>(storage.data() + misalign, tokens, heads, head_dim,
                             static_cast<std::ptrdiff_t>(token_stride), static_cast<std::ptrdiff_t>(head_stride));
    }
    void fill_rows(std::uint32_t seed) {
        const auto values = random_vector<T>(view.tokens * view.heads * view.head_dim, seed);
        std::size_t i = 0;
        for (std::size_t t = 0; t < view.tokens; ++t)
            for (std::size_t h = 0; h < view.heads; ++h)
                for (std::size_t e = 0; e < view.head_dim; ++e) view.row(t, h)[e] = values[i++];
    }
    bool is_row_element(const T* p) const {
        for (std::size_t t = 0; t < view.tokens; ++t)
            for (std::size_t h = 0; h < view.heads; ++h)
                if (p >= view.row(t, h) && p < view.row(t, h) + view.head_dim) return true;
        return false;
    }
};

template <class T>
void expect_close(const strided_buffer<T>& got, const strided_buffer<T>& want, T sentinel, const std::string& what) {
    const double eps = std::numeric_limits<T>::epsilon();
    ASSERT_EQ(got.storage.size(), want.storage.size());
    for (std::size_t i = 0; i < got.storage.size(); ++i) {
        const T g = got.storage[i], w = want.storage[i];
        if (!got.is_row_element(&got.storage[i])) {
            ASSERT_EQ(std::memcmp(&g, &sentinel, sizeof(T)), 0) << what << ": wrote outside the rows at " << i;
            continue;
        }
        ASSERT_NEAR(g, w, 4 * eps * std::max(1.0, std::fabs(static_cast<double>(w)))) << what << " at " << i;
    }
}

class SimdVsScalar : public ::testing::TestWithParam<std::string> {
  protected:
    const arch_entry* arch = nullptr;
    void SetUp() override {
        static const std::vector<arch_entry> archs = simd_archs();
        for (const arch_entry& a : archs)
            if (a.name == GetParam()) arch = &a;
        ASSERT_NE(arch, nullptr);
        if (!arch->supported()) GTEST_SKIP() << GetParam() << " does not run on this CPU";
    }

    // table_free: the same sweep with a rope_angles (each token's cos/sin computed) for the table.
    template <class T, bool table_free = false>
    void sweep() {
        using C = rotary::compute_type_t<T>;
        const backend simd{arch->name, &arch->kernels()};
        const backend ref{"scalar", &scalar_kernel_set()};
        const T sentinel = T(-123.25);
        std::size_t cases = 0;
        for (std::size_t rotary_dim = 2; rotary_dim <= 130; rotary_dim += 2) {
            const std::size_t extras[] = {0, 1, 3, 8};
            const std::size_t head_dim = rotary_dim + extras[(rotary_dim / 2) % 4];
            const double base = rotary_dim % 4 == 0 ? 10000.0 : 500000.0;
            const auto table = [&] {
                if constexpr (table_free)
                    return rotary::rope_angles<C>(rotary_dim, base);
                else
                    return rotary::rope_table<C>(rotary_dim, 600, base);
            }();
            for (layout l : {layout::interleaved, layout::half_split}) {
                const std::string what = std::string(arch->name) + " rotary_dim " + std::to_string(rotary_dim) +
                                         " head_dim " + std::to_string(head_dim) + " " + layout_name(l);
                const auto seed = static_cast<std::uint32_t>(rotary_dim * 2 + (l == layout::interleaved));
                const std::size_t tokens = 3 + rotary_dim % 5 * 2;  // odd, 3..11
                // 1. in place, contiguous, start offset, forward
                {
                    strided_buffer<T> a(tokens, 3, head_dim, 0, 0, 0, sentinel);
                    a.fill_rows(seed);
                    strided_buffer<T> b = a;
                    apply_in_place(simd, table, l, a.view, positions::starting_at(17));
                    apply_in_place(ref, table, l, b.view, positions::starting_at(17));
                    expect_close(a, b, sentinel, what + " in place");
                    ++cases;
                }
                // 2. out of place, misaligned and strided on both sides, int64 ids, inverse, a sub-range
                {
                    strided_buffer<T> in(tokens, 5, head_dim, 5, 3, 1, sentinel);
                    in.fill_rows(seed + 1000);
                    strided_buffer<T> a(tokens, 5, head_dim, 2, 1, 3, sentinel), b(tokens, 5, head_dim, 2, 1, 3, sentinel);
                    std::vector<std::int64_t> ids(tokens);
                    for (std::size_t t = 0; t < tokens; ++t) ids[t] = static_cast<std::int64_t>((t * 97 + 13) % 600);
                    const rotary::apply_options o{rotary::direction::inverse, 1, tokens - 1};
                    apply_out_of_place(simd, table, l, heads_view<const T>(in.view), a.view,
                                       positions::from_ids(ids.data(), tokens), o);
                    apply_out_of_place(ref, table, l, heads_view<const T>(in.view), b.view,
                                       positions::from_ids(ids.data(), tokens), o);
                    expect_close(a, b, sentinel, what + " out of place");
                    ++cases;
                }
                // 3. fused q/k, GQA (4 q heads, 1 k head), out of place, int32 ids
                {
                    strided_buffer<T> q(tokens, 4, head_dim, 0, 1, 1, sentinel), k(tokens, 1, head_dim, 3, 0, 2, sentinel);
                    q.fill_rows(seed + 2000);
                    k.fill_rows(seed + 3000);
                    strided_buffer<T> qa(tokens, 4, head_dim, 0, 0, 0, sentinel), qb = qa;
                    strided_buffer<T> ka(tokens, 1, head_dim, 1, 0, 1, sentinel), kb = ka;
                    std::vector<std::int32_t> ids(tokens);
                    for (std::size_t t = 0; t < tokens; ++t) ids[t] = static_cast<std::int32_t>(599 - t * 31);
                    apply_qk_out_of_place(simd, table, l, heads_view<const T>(q.view), qa.view,
                                          heads_view<const T>(k.view), ka.view, positions::from_ids(ids.data(), tokens));
                    apply_qk_out_of_place(ref, table, l, heads_view<const T>(q.view), qb.view,
                                          heads_view<const T>(k.view), kb.view, positions::from_ids(ids.data(), tokens));
                    expect_close(qa, qb, sentinel, what + " fused q");
                    expect_close(ka, kb, sentinel, what + " fused k");
                    ++cases;
                }
                // 4. fused q/k in place, MQA (8 q heads, 1 k head), start offset
                {
                    strided_buffer<T> qa(tokens, 8, head_dim, 0, 2, 1, sentinel), ka(tokens, 1, head_dim, 0, 0, 0, sentinel);
                    qa.fill_rows(seed + 4000);
                    ka.fill_rows(seed + 5000);
                    strided_buffer<T> qb = qa, kb = ka;
                    apply_qk_in_place(simd, table, l, qa.view, ka.view, positions::starting_at(600 - tokens));
                    apply_qk_in_place(ref, table, l, qb.view, kb.view, positions::starting_at(600 - tokens));
                    expect_close(qa, qb, sentinel, what + " fused in place q");
                    expect_close(ka, kb, sentinel, what + " fused in place k");
                    ++cases;
                }
            }
        }
        EXPECT_EQ(cases, 65u * 2u * 4u);
    }
};

TEST_P(SimdVsScalar, Fp32AllTails) { sweep<float>(); }
TEST_P(SimdVsScalar, Fp64AllTails) { sweep<double>(); }
TEST_P(SimdVsScalar, TableFreeFp32AllTails) { sweep<float, true>(); }
TEST_P(SimdVsScalar, TableFreeFp64AllTails) { sweep<double, true>(); }

INSTANTIATE_TEST_SUITE_P(, SimdVsScalar, ::testing::Values("sse2", "avx2", "avx512bw", "avx512bf16"),
                         [](const auto& info) { return info.param; });

// The arch the dispatching code would pick is the best one this CPU runs.
TEST(Archs, ReportWhatThisCpuRuns) {
    for (const arch_entry& a : simd_archs())
        std::printf("[ arch     ] %-9s %s\n", a.name.c_str(), a.supported() ? "runs here" : "not on this CPU (skipped)");
    EXPECT_TRUE(rotary::cpu_supports<xsimd::sse2>());
}

}  // namespace

namespace {

// Out-of-place outputs of 8 MiB and more, 64-byte aligned, are written with streaming stores: each
// arch against the scalar path on such a job (the sweep above only has small buffers).
template <class T>
void streaming_matches_scalar() {
    using C = rotary::compute_type_t<T>;
    using aligned = std::vector<T, xsimd::aligned_allocator<T, 64>>;
    const std::size_t head_dim = 128, heads = 8;
    const std::size_t tokens = rotary::detail::streaming_threshold_bytes / (heads * head_dim * sizeof(T)) + 3;
    rotary::rope_table<C> table(head_dim, tokens + 10);
    aligned in(tokens * heads * head_dim), want(in.size()), got(in.size());
    const auto values = random_vector<T>(in.size(), 17);
    std::copy(values.begin(), values.end(), in.begin());
    for (layout l : {layout::interleaved, layout::half_split}) {
        const heads_view<const T> iv(in.data(), tokens, heads, head_dim);
        const auto job = rotary::detail::job_out_of_place(table, l, iv, heads_view<T>(want.data(), tokens, heads, head_dim),
                                                          positions::starting_at(5), {});
        ASSERT_TRUE(job.streaming);
        scalar_kernel_set().template rotate<T>()(job, 0, tokens);
        for (const arch_entry& a : simd_archs()) {
            if (!a.supported()) continue;
            std::fill(got.begin(), got.end(), T(0));
            const auto j = rotary::detail::job_out_of_place(table, l, iv, heads_view<T>(got.data(), tokens, heads, head_dim),
                                                            positions::starting_at(5), {});
            a.kernels().template rotate<T>()(j, 0, tokens);
            const double eps = std::numeric_limits<T>::epsilon();
            for (std::size_t i = 0; i < got.size(); ++i)
                ASSERT_NEAR(got[i], want[i], 4 * eps * std::max(1.0, std::fabs(static_cast<double>(want[i]))))
                    << a.name << " " << layout_name(l) << " element " << i;
        }
    }
    // Misaligned or in place: ordinary stores.
    const auto misaligned = rotary::detail::job_out_of_place(
        table, layout::half_split, heads_view<const T>(in.data(), tokens - 1, heads, head_dim),
        heads_view<T>(got.data() + 1, tokens - 1, heads, head_dim), positions::starting_at(0), {});
    EXPECT_FALSE(misaligned.streaming);
    const auto in_place = rotary::detail::job_in_place(table, layout::half_split, heads_view<T>(got.data(), tokens, heads, head_dim),
                                                       positions::starting_at(0), {});
    EXPECT_FALSE(in_place.streaming);
}

TEST(StreamingStores, Fp32LargeOutputsMatchScalar) { streaming_matches_scalar<float>(); }
TEST(StreamingStores, Fp64LargeOutputsMatchScalar) { streaming_matches_scalar<double>(); }

}  // namespace
