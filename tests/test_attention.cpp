// Softmax attention (Eq. 2) on RoPE-rotated q and k, against the naive double-precision oracle,
// on every path this CPU runs: the public entry points, the scalar path and each SIMD arch.
#include "attention_support.hpp"

#include <functional>
#include <iterator>

using namespace rotary_test;
using rotary::attention_options;
using rotary::heads_view;
using rotary::layout;
using rotary::positions;

namespace {

struct attention_case {
    std::string name;
    std::size_t tokens, kv_tokens, q_heads, kv_heads, head_dim, v_dim;
    bool causal = false;
    std::int64_t query_offset = attention_options::end_aligned;
    std::optional<float> scale = std::nullopt;
    std::size_t rotary_dim = 0;  // 0: q and k arrive rotated
    layout pair_layout = layout::half_split;
    std::int64_t q_start = 0, k_start = 0;
    bool position_ids = false;   // positions as int32 ids (a permutation-like pattern) instead of an offset
    std::size_t gap = 0, misalign = 0;  // strided, misaligned buffers
    double input_range = 1.0;
};

std::string case_name(const ::testing::TestParamInfo<attention_case>& info) { return info.param.name; }
void PrintTo(const attention_case& c, std::ostream* os) { *os << c.name; }

std::vector<attention_case> oracle_cases() {
    std::vector<attention_case> c;
    // name, tokens, kv_tokens, q_heads, kv_heads, head_dim, v_dim
    c.push_back({"mha_causal_37", 37, 37, 4, 4, 64, 64, true});
    c.push_back({"gqa_noncausal_v48", 100, 133, 8, 2, 80, 48});
    c.push_back({"mqa_causal_odd_dims", 5, 77, 4, 1, 33, 7, true});
    c.push_back({"decode_one_token", 1, 200, 8, 2, 128, 128, true});
    c.push_back({"decode_mha", 1, 150, 4, 4, 64, 64, true});
    c.push_back({"head_dim_128_causal_70", 70, 70, 2, 2, 128, 128, true});
    c.push_back({"odd_head_dim_17_v19", 29, 65, 3, 3, 17, 19});
    c.push_back({"head_dim_1", 9, 21, 2, 1, 1, 3, true});
    c.push_back({"chunk_against_longer_cache", 40, 300, 4, 2, 64, 64, true});
    {
        attention_case x{"explicit_offset", 10, 50, 2, 2, 32, 32, true};
        x.query_offset = 5;
        c.push_back(x);
    }
    {
        attention_case x{"negative_offset_masks_first_rows", 8, 20, 2, 1, 16, 16, true};
        x.query_offset = -3;
        c.push_back(x);
    }
    {
        attention_case x{"empty_keys_give_zeros", 6, 0, 2, 2, 16, 8, false};
        c.push_back(x);
    }
    {
        attention_case x{"scale_option", 33, 47, 4, 2, 64, 40, true};
        x.scale = 0.3f;
        c.push_back(x);
    }
    {
        attention_case x{"large_scores", 50, 90, 2, 2, 48, 48, true};
        x.scale = 4.0f;  // scores up to ~200: softmax nearly one-hot, exp overflows without the running max
        x.input_range = 2.0;
        c.push_back(x);
    }
    {
        attention_case x{"rope_half_split_128", 70, 70, 4, 4, 128, 128, true};
        x.rotary_dim = 128;
        x.q_start = x.k_start = 3;
        c.push_back(x);
    }
    {
        attention_case x{"rope_interleaved_partial", 45, 45, 6, 3, 64, 64};
        x.rotary_dim = 32;
        x.pair_layout = layout::interleaved;
        x.position_ids = true;
        c.push_back(x);
    }
    {
        attention_case x{"rope_decode_gqa", 3, 130, 8, 2, 80, 80, true};
        x.rotary_dim = 80;
        x.q_start = 127;
        c.push_back(x);
    }
    {
        attention_case x{"rope_head_dim_6", 3, 131, 2, 2, 6, 6};
        x.rotary_dim = 6;
        x.k_start = 11;
        x.q_start = 500;
        c.push_back(x);
    }
    {
        attention_case x{"strided_misaligned", 27, 61, 6, 2, 40, 24, true};
        x.gap = 3;
        x.misalign = 1;
        c.push_back(x);
    }
    {
        attention_case x{"strided_misaligned_rope", 19, 19, 4, 4, 64, 64, true};
        x.rotary_dim = 48;
        x.gap = 5;
        x.misalign = 3;
        c.push_back(x);
    }
    return c;
}

class AttentionOracle : public ::testing::TestWithParam<attention_case> {};

TEST_P(AttentionOracle, EveryBackendMatchesNaiveReference) {
    const attention_case& c = GetParam();
    padded_heads q(c.tokens, c.q_heads, c.head_dim, c.gap, c.misalign);
    padded_heads k(c.kv_tokens, c.kv_heads, c.head_dim, c.gap, c.misalign + 1);
    padded_heads v(c.kv_tokens, c.kv_heads, c.v_dim, c.gap, c.misalign + 2);
    q.fill(1, -c.input_range, c.input_range);
    k.fill(2, -c.input_range, c.input_range);
    v.fill(3);

    attention_spec spec;
    spec.causal = c.causal;
    spec.query_offset = c.query_offset;
    if (c.scale) spec.scale = static_cast<double>(*c.scale);
    spec.pair_layout = c.pair_layout;
    spec.rotary_dim = c.rotary_dim;
    std::vector<std::int32_t> q_ids(c.tokens), k_ids(c.kv_tokens);
    if (c.rotary_dim != 0) {
        for (std::size_t t = 0; t < c.tokens; ++t)
            q_ids[t] = static_cast<std::int32_t>(c.position_ids ? (t * 37 + 5) % 400 : c.q_start + static_cast<std::int64_t>(t));
        for (std::size_t n = 0; n < c.kv_tokens; ++n)
            k_ids[n] = static_cast<std::int32_t>(c.position_ids ? (n * 53 + 11) % 400 : c.k_start + static_cast<std::int64_t>(n));
        spec.q_positions.assign(q_ids.begin(), q_ids.end());
        spec.k_positions.assign(k_ids.begin(), k_ids.end());
    }
    const std::vector<double> want = naive_attention(q, k, v, spec);

    const rotary::rope_table<float> table(c.rotary_dim == 0 ? 2 : c.rotary_dim, 1024);
    const positions q_pos = c.position_ids ? positions::from_ids(q_ids.data(), q_ids.size()) : positions::starting_at(c.q_start);
    const positions k_pos = c.position_ids ? positions::from_ids(k_ids.data(), k_ids.size()) : positions::starting_at(c.k_start);
    attention_options options;
    options.causal = c.causal;
    options.query_offset = c.query_offset;
    options.scale = c.scale;

    for (const attention_backend& b : attention_backends()) {
        padded_heads out(c.tokens, c.q_heads, c.v_dim, c.gap, c.misalign);
        const bool rope = c.rotary_dim != 0;
        attention_on(b, rope ? &table : nullptr, c.pair_layout, rope ? &q_pos : nullptr, rope ? &k_pos : nullptr,
                     q.cview(), k.cview(), v.cview(), out.view(), options);
        double worst = 0;
        for (std::size_t t = 0; t < c.tokens; ++t)
            for (std::size_t h = 0; h < c.q_heads; ++h)
                for (std::size_t j = 0; j < c.v_dim; ++j) {
                    const float got = out.at(t, h, j);
                    ASSERT_TRUE(std::isfinite(got)) << b.name << " token " << t << " head " << h << " col " << j;
                    worst = std::max(worst, std::fabs(got - want[(t * c.q_heads + h) * c.v_dim + j]));
                }
        // |v| <= 1: outputs are convex combinations of v; fp32 scores (rotated in fp32, with the
        // table's fp32 cos/sin) and fp32 accumulation over up to 300 keys
        EXPECT_LT(worst, 2e-5) << b.name;
        EXPECT_TRUE(out.gaps_intact()) << b.name << " wrote outside out's rows";
    }
}

INSTANTIATE_TEST_SUITE_P(Cases, AttentionOracle, ::testing::ValuesIn(oracle_cases()), case_name);

// Each SIMD arch against the scalar path over many shapes: every head_dim and v_dim tail, token
// counts on both sides of the panel threshold, key counts around tile multiples, strided and
// misaligned buffers, GQA and MQA, causal or not, rotating inside or not.
TEST(AttentionSimdVsScalar, SweepOfShapes) {
    std::vector<attention_backend> simd;
    for (const attention_backend& b : attention_backends())
        if (b.kernels != nullptr && b.name != "scalar") simd.push_back(b);
    if (simd.empty()) GTEST_SKIP() << "no SIMD arch runs on this CPU";
    const attention_backend scalar{"scalar", &scalar_attention_kernels()};
    const rotary::rope_table<float> table(16, 512);
    std::size_t cases = 0;
    for (std::size_t head_dim : {1, 2, 7, 16, 23, 31, 48, 65, 96, 130})
        for (std::size_t shape = 0; shape < 4; ++shape) {
            const std::size_t tokens[] = {1, 3, 18, 41};
            const std::size_t kv_tokens[] = {17, 63, 65, 130};
            const std::size_t heads[][2] = {{2, 2}, {4, 1}, {6, 3}, {8, 2}};
            const std::size_t t = tokens[shape], n = kv_tokens[(shape + head_dim) % 4];
            const std::size_t qh = heads[(shape + head_dim / 7) % 4][0], kh = heads[(shape + head_dim / 7) % 4][1];
            const std::size_t v_dim = head_dim % 3 == 0 ? head_dim : head_dim + 5;
            const bool causal = (head_dim + shape) % 2 == 0, rope = head_dim >= 16 && shape % 2 == 1;
            const auto seed = static_cast<std::uint32_t>(head_dim * 10 + shape);
            padded_heads q(t, qh, head_dim, shape % 2, shape % 3), k(n, kh, head_dim, 1, 1), v(n, kh, v_dim, 2, 3);
            q.fill(seed);
            k.fill(seed + 1);
            v.fill(seed + 2);
            attention_options o;
            o.causal = causal;
            const positions qp = positions::starting_at(static_cast<std::int64_t>(n - t + 100)), kp = positions::starting_at(100);
            padded_heads want(t, qh, v_dim, 1, 1);
            attention_on(scalar, rope ? &table : nullptr, layout::interleaved, rope ? &qp : nullptr, rope ? &kp : nullptr,
                         q.cview(), k.cview(), v.cview(), want.view(), o);
            for (const attention_backend& b : simd) {
                padded_heads got(t, qh, v_dim, 1, 1);
                attention_on(b, rope ? &table : nullptr, layout::interleaved, rope ? &qp : nullptr, rope ? &kp : nullptr,
                             q.cview(), k.cview(), v.cview(), got.view(), o);
                const std::string what = b.name + " head_dim " + std::to_string(head_dim) + " shape " + std::to_string(shape);
                for (std::size_t i = 0; i < got.storage.size(); ++i)
                    ASSERT_NEAR(got.storage[i], want.storage[i], 2e-6) << what << " at " << i;
                ++cases;
            }
        }
    EXPECT_GT(cases, 0u);
}

// Eq. 16: the scores depend on positions only through m - n, so moving every q and k position by
// the same constant leaves the output unchanged up to rounding.
TEST(Attention, RelativePositionInvariance) {
    padded_heads q(21, 4, 64), k(21, 2, 64), v(21, 2, 64);
    q.fill(11);
    k.fill(12);
    v.fill(13);
    const rotary::rope_table<float> table(64, 70000);
    attention_options o;
    o.causal = true;
    std::vector<float> first;
    for (std::int64_t base : {0, 1, 777, 4096, 65000}) {
        padded_heads out(21, 4, 64);
        rotary::attention(table, layout::half_split, q.cview(), k.cview(), v.cview(), out.view(),
                          positions::starting_at(base), positions::starting_at(base), o);
        if (first.empty()) {
            first = out.storage;
            continue;
        }
        for (std::size_t i = 0; i < first.size(); ++i) ASSERT_NEAR(out.storage[i], first[i], 3e-6) << "offset " << base;
    }
}

// Rotating inside equals rotating with the core first and passing rotated q and k.
TEST(Attention, RotateInsideEqualsPreRotated) {
    const std::size_t tokens = 50, heads = 4, kv_heads = 2, d = 96;
    padded_heads q(tokens, heads, d), k(tokens, kv_heads, d), v(tokens, kv_heads, d);
    q.fill(21);
    k.fill(22);
    v.fill(23);
    const rotary::rope_table<float> table(64, 256);
    attention_options o;
    o.causal = true;
    padded_heads inside(tokens, heads, d), outside(tokens, heads, d);
    rotary::attention(table, layout::interleaved, q.cview(), k.cview(), v.cview(), inside.view(),
                      positions::starting_at(9), positions::starting_at(9), o);
    padded_heads qr = q, kr = k;
    rotary::apply_qk(table, layout::interleaved, qr.view(), kr.view(), positions::starting_at(9));
    rotary::attention(qr.cview(), kr.cview(), v.cview(), outside.view(), o);
    for (std::size_t i = 0; i < inside.storage.size(); ++i) ASSERT_NEAR(inside.storage[i], outside.storage[i], 1e-6);
    // The caller's q and k are not modified by rotating inside.
    padded_heads q0(tokens, heads, d), k0(tokens, kv_heads, d);
    q0.fill(21);
    k0.fill(22);
    EXPECT_EQ(q.storage, q0.storage);
    EXPECT_EQ(k.storage, k0.storage);
}

// A row that sees no key gives zeros, never NaN; the others are unaffected.
TEST(Attention, FullyMaskedRowsGiveZeros) {
    padded_heads q(6, 2, 32), k(10, 2, 32), v(10, 2, 32), out(6, 2, 32);
    q.fill(31);
    k.fill(32);
    v.fill(33);
    attention_options o;
    o.causal = true;
    o.query_offset = -4;  // tokens 0..3 see nothing, token 4 sees key 0, token 5 keys 0..1
    for (const attention_backend& b : attention_backends()) {
        std::fill(out.storage.begin(), out.storage.end(), 1.0f);
        attention_on(b, nullptr, layout::half_split, nullptr, nullptr, q.cview(), k.cview(), v.cview(), out.view(), o);
        for (std::size_t t = 0; t < 4; ++t)
            for (std::size_t h = 0; h < 2; ++h)
                for (std::size_t j = 0; j < 32; ++j) ASSERT_EQ(out.at(t, h, j), 0.0f) << b.name;
        // token 4 sees only key 0: its output is v[0] exactly (p = 1)
        for (std::size_t h = 0; h < 2; ++h)
            for (std::size_t j = 0; j < 32; ++j) ASSERT_FLOAT_EQ(out.at(4, h, j), v.at(0, h, j)) << b.name;
    }
}

// A call without heads is a valid no-op however long its views are (they hold no element), and
// asks no kernel set for a workspace: fuzz_attention's regression-no-heads-workspace-size, whose
// plan for 2^62 query tokens against 2^32 keys wanted 16 GiB.
TEST(Attention, NoHeadsNeedNoWorkspace) {
    const heads_view<const float> q(nullptr, std::size_t{1} << 62, 0, 1), k(nullptr, std::size_t{1} << 32, 0, 1);
    const heads_view<const float> v(nullptr, std::size_t{1} << 32, 0, 51);
    const heads_view<float> out(nullptr, std::size_t{1} << 62, 0, 51);
    const auto job = rotary::detail::make_attention_job<xsimd::default_arch>(nullptr, layout::half_split, nullptr, nullptr,
                                                                            q, k, v, out, attention_options{});
    for (const attention_backend& b : attention_backends()) {
        if (b.kernels != nullptr) EXPECT_EQ(b.kernels->workspace_floats(job, job.token_end - job.token_begin), 0u) << b.name;
        attention_on(b, nullptr, layout::half_split, nullptr, nullptr, q, k, v, out, attention_options{});
    }
}

// Calls on parts of the work (a caller's thread pool) write exactly their rows, and together equal
// one call.
TEST(Attention, RangesComposeToTheWholeCall) {
    const std::size_t tokens = 90, heads = 8, kv_heads = 4, d = 64;
    padded_heads q(tokens, heads, d), k(tokens, kv_heads, d), v(tokens, kv_heads, d);
    q.fill(41);
    k.fill(42);
    v.fill(43);
    attention_options whole;
    whole.causal = true;
    padded_heads want(tokens, heads, d);
    rotary::attention(q.cview(), k.cview(), v.cview(), want.view(), whole);
    padded_heads got(tokens, heads, d);
    const std::size_t token_cuts[] = {0, 7, 40, 41, 90};
    const std::size_t head_cuts[] = {0, 1, 3, 4};
    for (std::size_t i = 0; i + 1 < std::size(token_cuts); ++i)
        for (std::size_t j = 0; j + 1 < std::size(head_cuts); ++j) {
            attention_options part = whole;
            part.token_begin = token_cuts[i];
            part.token_end = token_cuts[i + 1];
            part.kv_head_begin = head_cuts[j];
            part.kv_head_end = head_cuts[j + 1];
            rotary::attention(q.cview(), k.cview(), v.cview(), got.view(), part);
        }
    for (std::size_t i = 0; i < want.storage.size(); ++i) ASSERT_NEAR(got.storage[i], want.storage[i], 1e-6) << i;

    // One part alone writes only its rows.
    padded_heads alone(tokens, heads, d);
    attention_options part = whole;
    part.token_begin = 10;
    part.token_end = 20;
    part.kv_head_begin = 1;
    part.kv_head_end = 2;
    rotary::attention(q.cview(), k.cview(), v.cview(), alone.view(), part);
    for (std::size_t t = 0; t < tokens; ++t)
        for (std::size_t h = 0; h < heads; ++h) {
            const bool inside = t >= 10 && t < 20 && h / 2 == 1;
            for (std::size_t j = 0; j < d; ++j)
                if (!inside) ASSERT_EQ(alone.at(t, h, j), padded_heads::sentinel) << t << " " << h;
        }
}

// ---- Bad input: a clear exception naming the parameter, thrown before out is written ---------

template <class E>
void expect_throw_untouched(const std::function<void()>& call, const padded_heads& out,
                            const std::vector<std::string>& parts) {
    const std::vector<float> before = out.storage;
    expect_exception<E>(call, parts);
    EXPECT_EQ(out.storage, before) << "out changed although the call threw";
}

struct AttentionErrors : ::testing::Test {
    padded_heads q{4, 6, 16}, k{8, 2, 16}, v{8, 2, 12}, out{4, 6, 12};
    rotary::rope_table<float> table{16, 32};
    void SetUp() override {
        q.fill(1);
        k.fill(2);
        v.fill(3);
    }
    void run(const heads_view<const float>& qv, const heads_view<const float>& kv, const heads_view<const float>& vv,
             const heads_view<float>& ov, const attention_options& o = {}) {
        rotary::attention(qv, kv, vv, ov, o);
    }
};

TEST_F(AttentionErrors, Shapes) {
    using E = std::invalid_argument;
    padded_heads k4(8, 4, 16), v4(8, 4, 12);
    expect_throw_untouched<E>([&] { run(q.cview(), k4.cview(), v4.cview(), out.view()); }, out, {"q.heads 6", "k.heads 4"});
    padded_heads k_d(8, 2, 20);
    expect_throw_untouched<E>([&] { run(q.cview(), k_d.cview(), v.cview(), out.view()); }, out,
                              {"q.head_dim 16", "k.head_dim 20"});
    padded_heads v_short(7, 2, 12);
    expect_throw_untouched<E>([&] { run(q.cview(), k.cview(), v_short.cview(), out.view()); }, out,
                              {"v.tokens 7", "k.tokens 8"});
    padded_heads v_heads(8, 3, 12);
    expect_throw_untouched<E>([&] { run(q.cview(), k.cview(), v_heads.cview(), out.view()); }, out,
                              {"v.heads 3", "k.heads 2"});
    padded_heads out_wide(4, 6, 16);
    expect_throw_untouched<E>([&] { run(q.cview(), k.cview(), v.cview(), out_wide.view()); }, out_wide,
                              {"out is 4 tokens x 6 heads x 16", "4 x 6 x 12"});
    expect_throw_untouched<E>(
        [&] { run(heads_view<const float>(nullptr, 4, 6, 16), k.cview(), v.cview(), out.view()); }, out, {"q.data is null"});
    // Rows repeated with stride 0: tiny buffers, a workspace size that overflows.
    const std::size_t huge = std::size_t{1} << 62;
    expect_throw_untouched<E>(
        [&] {
            run(q.cview(), heads_view<const float>(k.cview().data, huge, 2, 16, 0, 16),
                heads_view<const float>(v.cview().data, huge, 2, 12, 0, 12), out.view());
        },
        out, {"attention sizes overflow", "k.tokens 4611686018427387904"});
}

TEST_F(AttentionErrors, OverlappingOutput) {
    using E = std::invalid_argument;
    // out written over q (same buffer), over v, and out's own rows overlapping.
    padded_heads qo(4, 6, 12);
    qo.fill(5);
    padded_heads k12(8, 2, 12);
    k12.fill(6);
    expect_throw_untouched<E>([&] { run(qo.cview(), k12.cview(), v.cview(), qo.view()); }, qo, {"out and q overlap"});
    padded_heads big(4, 6, 12);
    expect_throw_untouched<E>(
        [&] {
            run(q.cview(), k.cview(), heads_view<const float>(big.view().data + 12, 8, 2, 12), big.view());
        },
        big, {"out and v overlap"});
    expect_throw_untouched<E>(
        [&] { run(q.cview(), k.cview(), v.cview(), heads_view<float>(out.view().data, 4, 6, 12, 12, 12)); }, out,
        {"out rows overlap"});
}

TEST_F(AttentionErrors, OptionsOutOfRange) {
    attention_options o;
    o.causal = true;
    o.query_offset = 5;  // tokens 4, kv 8: at most 4
    expect_throw_untouched<std::out_of_range>([&] { run(q.cview(), k.cview(), v.cview(), out.view(), o); }, out,
                                              {"query_offset 5", "[-4, 4]"});
    o.query_offset = -5;
    expect_throw_untouched<std::out_of_range>([&] { run(q.cview(), k.cview(), v.cview(), out.view(), o); }, out,
                                              {"query_offset -5"});
    attention_options s;
    s.scale = std::numeric_limits<float>::infinity();
    expect_throw_untouched<std::invalid_argument>([&] { run(q.cview(), k.cview(), v.cview(), out.view(), s); }, out,
                                                  {"scale must be finite", "inf"});
    s.scale = std::numeric_limits<float>::max();  // finite, but scale * log2(e) is not in fp32 (fuzz_attention)
    expect_throw_untouched<std::invalid_argument>([&] { run(q.cview(), k.cview(), v.cview(), out.view(), s); }, out,
                                                  {"scale must be finite", "2.3587e38"});
    attention_options r;
    r.token_begin = 2;
    r.token_end = 5;
    expect_throw_untouched<std::out_of_range>([&] { run(q.cview(), k.cview(), v.cview(), out.view(), r); }, out,
                                              {"token range [2, 5)", "q.tokens 4"});
    attention_options h;
    h.kv_head_end = 3;
    expect_throw_untouched<std::out_of_range>([&] { run(q.cview(), k.cview(), v.cview(), out.view(), h); }, out,
                                              {"kv head range [0, 3)", "k.heads 2"});
}

TEST_F(AttentionErrors, RotationArguments) {
    const auto call = [&](const rotary::rope_table<float>& t, layout l, const positions& qp, const positions& kp) {
        const rotary::rope_table<float>* tp = &t;
        return [this, tp, l, qp, kp] { rotary::attention(*tp, l, q.cview(), k.cview(), v.cview(), out.view(), qp, kp); };
    };
    expect_throw_untouched<std::out_of_range>(call(table, layout::half_split, positions::starting_at(29), positions::starting_at(0)),
                                              out, {"q_positions", "max_positions 32"});
    expect_throw_untouched<std::out_of_range>(call(table, layout::half_split, positions::starting_at(0), positions::starting_at(25)),
                                              out, {"k_positions", "max_positions 32"});
    expect_throw_untouched<std::invalid_argument>(
        call(table, layout::half_split, positions::starting_at(-1), positions::starting_at(0)), out, {"q_positions", "-1"});
    const std::vector<std::int32_t> ids = {0, 1, 2};
    expect_throw_untouched<std::invalid_argument>(
        call(table, layout::half_split, positions::starting_at(0), positions::from_ids(ids.data(), 3)), out,
        {"k_positions", "count 3", "tokens 8"});
    const rotary::rope_table<float> wide(32, 32);
    expect_throw_untouched<std::invalid_argument>(call(wide, layout::half_split, positions::starting_at(0), positions::starting_at(0)),
                                                  out, {"rotary_dim 32", "q.head_dim 16"});
    expect_throw_untouched<std::invalid_argument>(
        call(table, static_cast<layout>(7), positions::starting_at(0), positions::starting_at(0)), out, {"layout", "7"});
}

}  // namespace
