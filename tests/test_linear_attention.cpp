// Linear attention with RoPE (Eqs. 18-19) on every path (the public entry points, the scalar
// runners, each SIMD arch this CPU runs) against independent oracles in double: Eq. 19 evaluated
// pair by pair, and the recurrent form for long sequences; plus the properties the paper states.
#include "linear_attention_support.hpp"

#include <algorithm>
#include <cstring>

using namespace rotary_test;
using rotary::heads_view;
using rotary::layout;
using rotary::positions;

namespace {

// q, k, v of one call, random in [lo, hi), contiguous [tokens, heads, dim].
template <class T>
struct attention_data {
    std::size_t tokens, q_heads, kv_heads, head_dim, value_dim;
    std::vector<T> q, k, v;

    attention_data(std::size_t n, std::size_t h, std::size_t g, std::size_t d, std::size_t dv, std::uint32_t seed,
                   double lo = -1.0, double hi = 1.0)
        : tokens(n), q_heads(h), kv_heads(g), head_dim(d), value_dim(dv), q(random_vector<T>(n * h * d, seed, lo, hi)),
          k(random_vector<T>(n * g * d, seed + 1, lo, hi)), v(random_vector<T>(n * g * dv, seed + 2)) {}

    heads_view<const T> qv() const { return {q.data(), tokens, q_heads, head_dim}; }
    heads_view<const T> kv() const { return {k.data(), tokens, kv_heads, head_dim}; }
    heads_view<const T> vv() const { return {v.data(), tokens, kv_heads, value_dim}; }
    std::vector<T> output() const { return std::vector<T>(tokens * q_heads * value_dim, T(0)); }
    heads_view<T> out_view(std::vector<T>& o) const { return {o.data(), tokens, q_heads, value_dim}; }
};

template <class T>
void expect_close(const std::vector<T>& got, const std::vector<double>& want, double tolerance, const std::string& what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    double scale = 1.0;
    for (double w : want) scale = std::max(scale, std::fabs(w));
    for (std::size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(static_cast<double>(got[i]), want[i], tolerance * scale) << what << " at element " << i;
}

template <class T>
std::vector<double> as_double(const std::vector<T>& x) {
    return std::vector<double>(x.begin(), x.end());
}

std::vector<std::int64_t> offset_positions(std::size_t n, std::int64_t start) {
    std::vector<std::int64_t> p(n);
    for (std::size_t t = 0; t < n; ++t) p[t] = start + static_cast<std::int64_t>(t);
    return p;
}

struct case_shape {
    std::size_t tokens, q_heads, kv_heads, head_dim, value_dim, rotary_dim, chunk;
};
const case_shape oracle_cases[] = {
    {37, 4, 2, 24, 40, 24, 16},   // the chunk does not divide the length; GQA 2:1; d != d_v
    {64, 2, 2, 64, 64, 64, 32},   // the chunk divides the length
    {130, 3, 1, 16, 8, 16, 50},   // MQA; a ragged last chunk
    {1, 2, 1, 8, 3, 8, 64},       // one token
    {45, 2, 2, 70, 33, 42, 7},    // partial rotary; vector tails in every dimension
    {20, 1, 1, 130, 17, 130, 1},  // a chunk of one token
    {29, 2, 1, 6, 1, 6, 4096},    // one chunk for everything: the quadratic form
};

template <class T, class Phi>
void check_against_eq19(double (*phi_double)(double)) {
    std::uint32_t seed = 100;
    for (const case_shape& c : oracle_cases)
        for (layout l : {layout::interleaved, layout::half_split})
            for (attention_kind kind : {attention_kind::bidirectional, attention_kind::causal}) {
                const attention_data<T> data(c.tokens, c.q_heads, c.kv_heads, c.head_dim, c.value_dim, seed += 3);
                const rotary::rope_table<T> table(c.rotary_dim, 5000);
                // positions: an offset, or scattered int32 ids (causality follows the token order)
                const bool use_ids = seed % 2 == 0;
                std::vector<std::int32_t> ids32(c.tokens);
                for (std::size_t t = 0; t < c.tokens; ++t) ids32[t] = static_cast<std::int32_t>((t * 397 + 11) % 5000);
                const auto pos = use_ids ? positions::from_ids(ids32.data(), c.tokens) : positions::starting_at(900);
                std::vector<std::int64_t> pos_oracle(c.tokens);
                for (std::size_t t = 0; t < c.tokens; ++t) pos_oracle[t] = pos[t];
                oracle_setup setup;
                setup.pair_layout = l;
                setup.rotary_dim = c.rotary_dim;
                setup.phi = phi_double;
                const auto want = eq19_direct(data.qv(), data.kv(), data.vv(), pos_oracle,
                                              kind == attention_kind::causal, setup);
                rotary::linear_attention_options o;
                o.chunk_size = c.chunk;
                for (const la_backend& b : la_backends()) {
                    auto out = data.output();
                    run_attention(b, kind, table, l, data.qv(), data.kv(), data.vv(), data.out_view(out), pos, o,
                                  nullptr, Phi{});
                    expect_close(out, want, attention_tolerance<T>(),
                                 b.name + " " + layout_name(l) + (kind == attention_kind::causal ? " causal" : " bidirectional") +
                                     " tokens " + std::to_string(c.tokens) + " d " + std::to_string(c.head_dim) +
                                     " d_v " + std::to_string(c.value_dim) + " chunk " + std::to_string(c.chunk));
                    if (::testing::Test::HasFatalFailure()) return;
                }
            }
}

TEST(LinearAttention, Eq19DirectEluFp32) { check_against_eq19<float, rotary::feature_maps::elu_plus_one>(&elu_plus_one); }
TEST(LinearAttention, Eq19DirectEluFp64) { check_against_eq19<double, rotary::feature_maps::elu_plus_one>(&elu_plus_one); }
TEST(LinearAttention, Eq19DirectReluFp32) { check_against_eq19<float, rotary::feature_maps::relu>(&relu); }
TEST(LinearAttention, Eq19DirectReluFp64) { check_against_eq19<double, rotary::feature_maps::relu>(&relu); }

// A user's functor: scalar-only (a lambda), and one that also takes xsimd batches.
struct squared_plus_tenth {
    static constexpr bool batch_callable = true;
    template <class X>
    X operator()(const X& x) const {
        return x * x + X(0.1f);
    }
};
double squared_plus_tenth_double(double x) { return x * x + static_cast<double>(0.1f); }

TEST(LinearAttention, UserFeatureMaps) {
    const attention_data<float> data(41, 4, 2, 20, 12, 5);
    const rotary::rope_table<float> table(20, 100);
    oracle_setup setup;
    setup.phi = &squared_plus_tenth_double;
    for (attention_kind kind : {attention_kind::bidirectional, attention_kind::causal}) {
        const auto want = eq19_direct(data.qv(), data.kv(), data.vv(), offset_positions(41, 3),
                                      kind == attention_kind::causal, setup);
        rotary::linear_attention_options o;
        o.chunk_size = 16;
        auto a = data.output(), b = data.output();
        const la_backend& def = *find_la_backend("default");
        run_attention(def, kind, table, layout::interleaved, data.qv(), data.kv(), data.vv(), data.out_view(a),
                      positions::starting_at(3), o, nullptr, squared_plus_tenth{});
        run_attention(def, kind, table, layout::interleaved, data.qv(), data.kv(), data.vv(), data.out_view(b),
                      positions::starting_at(3), o, nullptr, [](float x) { return x * x + 0.1f; });
        expect_close(a, want, attention_tolerance<float>(), "batch-callable functor");
        expect_close(b, want, attention_tolerance<float>(), "scalar lambda");
    }
}

// With use_rope = false the result is Eq. 18, and positions play no part.
TEST(LinearAttention, NoRopeIsEq18) {
    const attention_data<double> data(53, 2, 1, 12, 9, 21);
    const rotary::rope_table<double> table(12, 4000);
    oracle_setup setup;
    setup.use_rope = false;
    rotary::linear_attention_options o;
    o.use_rope = false;
    o.chunk_size = 10;
    for (attention_kind kind : {attention_kind::bidirectional, attention_kind::causal}) {
        const auto want = eq19_direct(data.qv(), data.kv(), data.vv(), offset_positions(53, 0),
                                      kind == attention_kind::causal, setup);
        for (const la_backend& b : la_backends()) {
            auto near = data.output(), far = data.output();
            run_attention(b, kind, table, layout::half_split, data.qv(), data.kv(), data.vv(), data.out_view(near),
                          positions::starting_at(0), o);
            run_attention(b, kind, table, layout::half_split, data.qv(), data.kv(), data.vv(), data.out_view(far),
                          positions::starting_at(3000), o);
            expect_close(near, want, attention_tolerance<double>(), b.name);
            EXPECT_EQ(near, far) << b.name << ": positions changed an Eq. 18 result";
        }
    }
    // Odd head_dim is fine without rotation.
    const attention_data<float> odd(17, 1, 1, 5, 3, 22);
    const auto want = eq19_direct(odd.qv(), odd.kv(), odd.vv(), offset_positions(17, 0), true, setup);
    for (const la_backend& b : la_backends()) {
        auto out = odd.output();
        run_attention(b, attention_kind::causal, rotary::rope_table<float>(2, 10), layout::interleaved, odd.qv(),
                      odd.kv(), odd.vv(), odd.out_view(out), positions::starting_at(0), o);
        expect_close(out, want, attention_tolerance<float>(), b.name + " head_dim 5");
    }
}

// Eq. 16 carried into Eq. 19: the numerator depends on positions only through n - m, so shifting
// every position by one constant leaves the result unchanged (the denominator never sees them).
// Moving positions by different amounts does change it, so the check is not vacuous.
TEST(LinearAttention, NumeratorInvariantUnderPositionShift) {
    const attention_data<double> data(40, 2, 2, 32, 16, 31);
    const rotary::rope_table<double> table(32, 8000);
    std::vector<std::int64_t> ids(40), shifted(40), scrambled(40);
    for (std::size_t t = 0; t < 40; ++t) {
        ids[t] = static_cast<std::int64_t>(t * 7);
        shifted[t] = ids[t] + 5123;
        scrambled[t] = ids[t] + static_cast<std::int64_t>(t % 3) * 11;
    }
    rotary::linear_attention_options o;
    o.chunk_size = 16;
    for (attention_kind kind : {attention_kind::bidirectional, attention_kind::causal})
        for (layout l : {layout::interleaved, layout::half_split})
            for (const la_backend& b : la_backends()) {
                auto a = data.output(), c = data.output(), s = data.output();
                run_attention(b, kind, table, l, data.qv(), data.kv(), data.vv(), data.out_view(a),
                              positions::from_ids(ids.data(), 40), o);
                run_attention(b, kind, table, l, data.qv(), data.kv(), data.vv(), data.out_view(c),
                              positions::from_ids(shifted.data(), 40), o);
                run_attention(b, kind, table, l, data.qv(), data.kv(), data.vv(), data.out_view(s),
                              positions::from_ids(scrambled.data(), 40), o);
                expect_close(c, as_double(a), 1e-11, b.name + " shifted by 5123");
                double moved = 0;
                for (std::size_t i = 0; i < a.size(); ++i) moved = std::max(moved, std::fabs(a[i] - s[i]));
                EXPECT_GT(moved, 1e-3) << b.name << ": unequal shifts left the result unchanged";
            }
}

// The recurrent step (one token on a state) gives the chunked causal result token by token; a
// prefill on a state followed by steps, and two causal calls on a state, give it too; the states
// they leave agree.
template <class T>
void check_step_and_state() {
    const std::size_t N = 75, H = 4, G = 2, d = 24, dv = 20, split = 30;
    const attention_data<T> data(N, H, G, d, dv, 41);
    const rotary::rope_table<T> table(d, 1000);
    const std::int64_t start = 17;
    rotary::linear_attention_options o;
    o.chunk_size = 16;
    const double tol = attention_tolerance<T>();
    for (layout l : {layout::interleaved, layout::half_split})
        for (const la_backend& b : la_backends()) {
            auto whole = data.output();
            run_attention(b, attention_kind::causal, table, l, data.qv(), data.kv(), data.vv(), data.out_view(whole),
                          positions::starting_at(start), o);

            // token by token
            rotary::linear_attention_state<T> stepped(G, d, dv);
            auto steps = data.output();
            for (std::size_t t = 0; t < N; ++t)
                run_step(b, table, l, heads_view<const T>(data.q.data() + t * H * d, 1, H, d),
                         heads_view<const T>(data.k.data() + t * G * d, 1, G, d),
                         heads_view<const T>(data.v.data() + t * G * dv, 1, G, dv),
                         heads_view<T>(steps.data() + t * H * dv, 1, H, dv), start + static_cast<std::int64_t>(t),
                         stepped, o);
            expect_close(steps, as_double(whole), tol, b.name + " steps vs chunked");

            // prefill of `split` tokens on a state, then steps; and two causal calls on a state
            rotary::linear_attention_state<T> prefilled(G, d, dv), two_calls(G, d, dv);
            auto mixed = data.output(), halves = data.output();
            auto part = [&](const std::vector<T>& x, std::size_t heads, std::size_t dim, std::size_t t0, std::size_t n) {
                return heads_view<const T>(x.data() + t0 * heads * dim, n, heads, dim);
            };
            auto out_part = [&](std::vector<T>& x, std::size_t t0, std::size_t n) {
                return heads_view<T>(x.data() + t0 * H * dv, n, H, dv);
            };
            run_attention(b, attention_kind::causal, table, l, part(data.q, H, d, 0, split), part(data.k, G, d, 0, split),
                          part(data.v, G, dv, 0, split), out_part(mixed, 0, split), positions::starting_at(start), o,
                          &prefilled);
            for (std::size_t t = split; t < N; ++t)
                run_step(b, table, l, part(data.q, H, d, t, 1), part(data.k, G, d, t, 1), part(data.v, G, dv, t, 1),
                         out_part(mixed, t, 1), start + static_cast<std::int64_t>(t), prefilled, o);
            expect_close(mixed, as_double(whole), tol, b.name + " prefill + steps");
            for (std::size_t t0 : {std::size_t{0}, split})
                run_attention(b, attention_kind::causal, table, l, part(data.q, H, d, t0, t0 ? N - split : split),
                              part(data.k, G, d, t0, t0 ? N - split : split), part(data.v, G, dv, t0, t0 ? N - split : split),
                              out_part(halves, t0, t0 ? N - split : split),
                              positions::starting_at(start + static_cast<std::int64_t>(t0)), o, &two_calls);
            expect_close(halves, as_double(whole), tol, b.name + " two causal calls on a state");

            for (std::size_t g = 0; g < G; ++g) {
                for (std::size_t i = 0; i < d; ++i) {
                    EXPECT_NEAR(stepped.key_sum(g)[i], prefilled.key_sum(g)[i], tol * N * 3) << b.name;
                    EXPECT_NEAR(stepped.key_sum(g)[i], two_calls.key_sum(g)[i], tol * N * 3) << b.name;
                    for (std::size_t j = 0; j < dv; ++j)
                        EXPECT_NEAR(stepped.key_value(g)[i * stepped.value_stride() + j],
                                    two_calls.key_value(g)[i * two_calls.value_stride() + j], tol * N * 3)
                            << b.name;
                }
            }
            if (::testing::Test::HasFailure()) return;
        }
}

TEST(LinearAttention, StepReproducesChunkedFp32) { check_step_and_state<float>(); }
TEST(LinearAttention, StepReproducesChunkedFp64) { check_step_and_state<double>(); }

TEST(LinearAttention, StateReset) {
    rotary::linear_attention_state<float> s(2, 8, 4);
    const attention_data<float> data(5, 2, 2, 8, 4, 3);
    const rotary::rope_table<float> table(8, 10);
    auto a = data.output(), b = data.output();
    const la_backend& def = *find_la_backend("default");
    run_attention(def, attention_kind::causal, table, layout::interleaved, data.qv(), data.kv(), data.vv(),
                  data.out_view(a), positions::starting_at(0), {}, &s);
    EXPECT_NE(s.key_sum(1)[0], 0.0f);
    s.reset();
    for (std::size_t g = 0; g < 2; ++g)
        for (std::size_t i = 0; i < 8; ++i) {
            EXPECT_EQ(s.key_sum(g)[i], 0.0f);
            for (std::size_t j = 0; j < 4; ++j) EXPECT_EQ(s.key_value(g)[i * s.value_stride() + j], 0.0f);
        }
    run_attention(def, attention_kind::causal, table, layout::interleaved, data.qv(), data.kv(), data.vv(),
                  data.out_view(b), positions::starting_at(0), {}, &s);
    EXPECT_EQ(a, b);
}

// Thousands of tokens through the chunks, fp32, against the recurrent form in double: the sums
// carried from chunk to chunk do not drift.
TEST(LinearAttention, LongSequenceAgainstRecurrentForm) {
    const std::size_t N = 2500;
    const attention_data<float> data(N, 2, 1, 32, 32, 51);
    const rotary::rope_table<float> table(32, 4096);
    oracle_setup setup;
    setup.pair_layout = layout::half_split;
    const auto want = causal_recurrent(data.qv(), data.kv(), data.vv(), offset_positions(N, 1000), setup);
    for (const la_backend& b : la_backends()) {
        auto out = data.output();
        run_attention(b, attention_kind::causal, table, layout::half_split, data.qv(), data.kv(), data.vv(),
                      data.out_view(out), positions::starting_at(1000));
        expect_close(out, want, 2e-5, b.name);
    }
}

// The denominator guard: with elu+1 features it never applies (bit-identical to epsilon = 0);
// when every feature of a query, or of every key, vanishes (relu of negative inputs), the output
// is 0 instead of 0/0 = NaN.
TEST(LinearAttention, EpsilonMattersOnlyWhenFeaturesVanish) {
    const rotary::rope_table<float> table(16, 100);
    rotary::linear_attention_options zero_eps;
    zero_eps.epsilon = 0.0;
    const attention_data<float> normal(33, 2, 1, 16, 8, 61);
    for (attention_kind kind : {attention_kind::bidirectional, attention_kind::causal})
        for (const la_backend& b : la_backends()) {
            auto guarded = normal.output(), unguarded = normal.output();
            run_attention(b, kind, table, layout::interleaved, normal.qv(), normal.kv(), normal.vv(),
                          normal.out_view(guarded), positions::starting_at(0));
            run_attention(b, kind, table, layout::interleaved, normal.qv(), normal.kv(), normal.vv(),
                          normal.out_view(unguarded), positions::starting_at(0), zero_eps);
            EXPECT_EQ(guarded, unguarded) << b.name << ": epsilon changed a result with positive features";
        }

    // relu features: all queries negative (phi(q) = 0), or all keys negative (every phi(k) = 0)
    attention_data<float> no_query(33, 2, 1, 16, 8, 62), no_key(33, 2, 1, 16, 8, 63);
    for (float& x : no_query.q) x = -std::fabs(x) - 0.01f;
    for (float& x : no_key.k) x = -std::fabs(x) - 0.01f;
    for (const attention_data<float>* data : {&no_query, &no_key})
        for (attention_kind kind : {attention_kind::bidirectional, attention_kind::causal})
            for (const la_backend& b : la_backends()) {
                auto guarded = data->output(), unguarded = data->output();
                run_attention(b, kind, table, layout::interleaved, data->qv(), data->kv(), data->vv(),
                              data->out_view(guarded), positions::starting_at(0), {}, nullptr, rotary::feature_maps::relu{});
                run_attention(b, kind, table, layout::interleaved, data->qv(), data->kv(), data->vv(),
                              data->out_view(unguarded), positions::starting_at(0), zero_eps, nullptr,
                              rotary::feature_maps::relu{});
                for (float x : guarded) ASSERT_EQ(x, 0.0f) << b.name;
                for (float x : unguarded) ASSERT_TRUE(std::isnan(x)) << b.name << ": expected 0/0 without the guard";
            }
}

// ---- Every SIMD path against the scalar one on strided, misaligned buffers ----------------------

// A [tokens, heads, dim] buffer with padded token and head strides, `misalign` elements into its
// allocation, allocated to its exact extent; every element that is not in a row holds a sentinel.
template <class T>
struct padded_buffer {
    std::vector<T> storage;
    std::size_t misalign, tokens, heads, dim, token_stride, head_stride;

    padded_buffer(std::size_t n, std::size_t h, std::size_t d, std::size_t token_pad, std::size_t head_pad,
                  std::size_t misalign_, std::uint32_t seed)
        : misalign(misalign_), tokens(n), heads(h), dim(d), token_stride(h * (d + head_pad) + token_pad),
          head_stride(d + head_pad) {
        storage.assign(misalign + (n - 1) * token_stride + (h - 1) * head_stride + d, sentinel());
        const auto values = random_vector<T>(n * h * d, seed);
        std::size_t i = 0;
        for (std::size_t t = 0; t < n; ++t)
            for (std::size_t hh = 0; hh < h; ++hh)
                for (std::size_t e = 0; e < d; ++e) at(t, hh)[e] = values[i++];
    }
    static T sentinel() { return T(-777.25); }
    T* at(std::size_t t, std::size_t h) { return storage.data() + misalign + t * token_stride + h * head_stride; }
    heads_view<T> view() {
        return {storage.data() + misalign, tokens, heads, dim, static_cast<std::ptrdiff_t>(token_stride),
                static_cast<std::ptrdiff_t>(head_stride)};
    }
    heads_view<const T> cview() { return view(); }
    std::vector<T> rows() {
        std::vector<T> r;
        for (std::size_t t = 0; t < tokens; ++t)
            for (std::size_t h = 0; h < heads; ++h) r.insert(r.end(), at(t, h), at(t, h) + dim);
        return r;
    }
    std::size_t sentinels() const { return static_cast<std::size_t>(std::count(storage.begin(), storage.end(), sentinel())); }
};

template <class T>
void check_simd_against_scalar(const la_backend& b) {
    const la_backend& scalar = *find_la_backend("scalar");
    std::uint32_t seed = 500;
    struct dims {
        std::size_t head_dim, value_dim;
    };
    for (const dims& s : {dims{2, 1}, dims{6, 3}, dims{18, 17}, dims{34, 33}, dims{66, 16}, dims{128, 130}})
        for (std::size_t tokens : {std::size_t{1}, std::size_t{13}, std::size_t{67}})
            for (attention_kind kind : {attention_kind::bidirectional, attention_kind::causal}) {
                const layout l = seed % 2 ? layout::interleaved : layout::half_split;
                const std::size_t misalign = seed % 3;
                padded_buffer<T> q(tokens, 4, s.head_dim, 3, 1, misalign, seed += 4), k(tokens, 2, s.head_dim, 1, 2, 1, seed + 1);
                padded_buffer<T> v(tokens, 2, s.value_dim, 2, 3, 1, seed + 2);
                padded_buffer<T> out_simd(tokens, 4, s.value_dim, 5, 1, misalign, seed + 3), out_scalar = out_simd;
                const std::size_t sentinels = out_simd.sentinels();
                const rotary::rope_table<T> table(s.head_dim, 200);
                rotary::linear_attention_options o;
                o.chunk_size = tokens == 67 ? 64 : 5;
                run_attention(b, kind, table, l, q.cview(), k.cview(), v.cview(), out_simd.view(), positions::starting_at(3), o);
                run_attention(scalar, kind, table, l, q.cview(), k.cview(), v.cview(), out_scalar.view(),
                              positions::starting_at(3), o);
                const std::string what = b.name + " d " + std::to_string(s.head_dim) + " d_v " +
                                         std::to_string(s.value_dim) + " tokens " + std::to_string(tokens);
                ASSERT_EQ(out_simd.sentinels(), sentinels) << what << ": wrote outside the output rows";
                expect_close(out_simd.rows(), as_double(out_scalar.rows()), attention_tolerance<T>(), what);
            }
}

class SimdVsScalar : public ::testing::TestWithParam<std::string> {
  protected:
    void SetUp() override {
        if (find_la_backend(GetParam()) == nullptr) GTEST_SKIP() << GetParam() << " does not run on this CPU";
    }
};

TEST_P(SimdVsScalar, StridedMisalignedFp32) { check_simd_against_scalar<float>(*find_la_backend(GetParam())); }
TEST_P(SimdVsScalar, StridedMisalignedFp64) { check_simd_against_scalar<double>(*find_la_backend(GetParam())); }

INSTANTIATE_TEST_SUITE_P(LinearAttention, SimdVsScalar, ::testing::Values("default", "sse2", "avx2", "avx512bw"),
                         [](const auto& info) { return info.param; });

// ---- Head ranges: a caller's thread pool splitting one call ------------------------------------

TEST(LinearAttention, HeadRangesComposeTheWholeCall) {
    const std::size_t N = 50, H = 6, G = 2, d = 16, dv = 8;
    const attention_data<float> data(N, H, G, d, dv, 71);
    const rotary::rope_table<float> table(d, 100);
    for (const la_backend& b : la_backends())
        for (attention_kind kind : {attention_kind::bidirectional, attention_kind::causal}) {
            auto whole = data.output();
            run_attention(b, kind, table, layout::half_split, data.qv(), data.kv(), data.vv(), data.out_view(whole),
                          positions::starting_at(0));
            // heads split inside a kv group (no state): each range computes the sums it needs
            auto split = data.output();
            for (std::size_t h0 : {0, 1, 4}) {
                rotary::linear_attention_options o;
                o.head_begin = h0;
                o.head_end = h0 == 0 ? 1 : h0 == 1 ? 4 : H;
                run_attention(b, kind, table, layout::half_split, data.qv(), data.kv(), data.vv(), data.out_view(split),
                              positions::starting_at(0), o);
            }
            EXPECT_EQ(split, whole) << b.name;
            if (kind == attention_kind::bidirectional) continue;
            // with a state, whole kv groups (3 query heads each)
            rotary::linear_attention_state<float> state(G, d, dv);
            auto grouped = data.output();
            for (std::size_t h0 : {0, 3}) {
                rotary::linear_attention_options o;
                o.head_begin = h0;
                o.head_end = h0 + 3;
                run_attention(b, kind, table, layout::half_split, data.qv(), data.kv(), data.vv(),
                              data.out_view(grouped), positions::starting_at(0), o, &state);
            }
            EXPECT_EQ(grouped, whole) << b.name;
        }
    // A range leaves the other heads' rows alone.
    auto out = data.output();
    std::fill(out.begin(), out.end(), 5.0f);
    rotary::linear_attention_options o;
    o.head_begin = 2;
    o.head_end = 3;
    rotary::causal_linear_attention(table, layout::half_split, data.qv(), data.kv(), data.vv(), data.out_view(out),
                                    positions::starting_at(0), o);
    for (std::size_t t = 0; t < N; ++t)
        for (std::size_t h = 0; h < H; ++h)
            for (std::size_t j = 0; j < dv; ++j)
                if (h != 2) ASSERT_EQ(out[(t * H + h) * dv + j], 5.0f);
}

TEST(LinearAttention, ZeroTokensAndScratchSize) {
    const rotary::rope_table<float> table(8, 10);
    float dummy = 1.0f;
    rotary::linear_attention(table, layout::interleaved, heads_view<const float>(&dummy, 0, 2, 8),
                             heads_view<const float>(&dummy, 0, 1, 8), heads_view<const float>(&dummy, 0, 1, 4),
                             heads_view<float>(nullptr, 0, 2, 4), positions::starting_at(0));
    rotary::causal_linear_attention(table, layout::interleaved, heads_view<const float>(nullptr, 0, 2, 8),
                                    heads_view<const float>(nullptr, 0, 1, 8), heads_view<const float>(nullptr, 0, 1, 4),
                                    heads_view<float>(nullptr, 0, 2, 4), positions::starting_at(0));
    EXPECT_EQ(dummy, 1.0f);
    // independent of the length past the chunk
    EXPECT_EQ(rotary::linear_attention_scratch_bytes<float>(1000, 8, 128, 128),
              rotary::linear_attention_scratch_bytes<float>(1000000, 8, 128, 128));
    EXPECT_LT(rotary::linear_attention_scratch_bytes<float>(10, 8, 128, 128),
              rotary::linear_attention_scratch_bytes<float>(1000, 8, 128, 128));
}

}  // namespace
