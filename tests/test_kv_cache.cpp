// The KV cache: prefill then decode equals one causal pass (and the naive oracle); shifting by a
// delta equals filling at the shifted positions (R_{m+delta} = R_delta R_m); context shifting;
// overflow and bad input throw with the cache unchanged.
#include "attention_support.hpp"

#include <functional>

using namespace rotary_test;
using rotary::attention_options;
using rotary::heads_view;
using rotary::kv_cache;
using rotary::layout;
using rotary::positions;

namespace {

// Tokens [first, first + count) of a padded buffer, as a view.
heads_view<const float> tokens_of(const padded_heads& x, std::size_t first, std::size_t count) {
    return {x.row(first, 0), count, x.heads, x.head_dim, x.token_stride, x.head_stride};
}
heads_view<float> tokens_of(padded_heads& x, std::size_t first, std::size_t count) {
    return {x.row(first, 0), count, x.heads, x.head_dim, x.token_stride, x.head_stride};
}

struct cache_state {
    std::vector<float> keys, values;
    std::vector<std::int64_t> positions;
    bool operator==(const cache_state&) const = default;
};

cache_state state_of(const kv_cache& c) {
    cache_state s;
    const auto k = c.keys(), v = c.values();
    s.keys.assign(k.data, k.data + c.size() * c.kv_heads() * c.head_dim());
    s.values.assign(v.data, v.data + c.size() * c.kv_heads() * c.v_dim());
    s.positions.assign(c.position_ids(), c.position_ids() + c.size());
    return s;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    EXPECT_EQ(a.size(), b.size());
    double worst = 0;
    for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
        worst = std::max(worst, static_cast<double>(std::fabs(a[i] - b[i])));
    return worst;
}

TEST(KvCache, PrefillThenDecodeEqualsOneCausalPass) {
    const std::size_t prompt = 23, singles = 9, multi = 4, total = prompt + singles + multi;
    const std::size_t q_heads = 8, kv_heads = 2, d = 64, dv = 48;
    const rotary::rope_table<float> table(d, 512);
    for (layout l : {layout::half_split, layout::interleaved}) {
        padded_heads q(total, q_heads, d), k(total, kv_heads, d), v(total, kv_heads, dv);
        q.fill(1);
        k.fill(2);
        v.fill(3);
        kv_cache cache(table, l, 40, kv_heads, d, dv);
        padded_heads out(total, q_heads, dv);
        // prefill: one causal pass over the prompt
        cache.append(tokens_of(k, 0, prompt), tokens_of(v, 0, prompt));
        cache.attend(tokens_of(q, 0, prompt), tokens_of(out, 0, prompt));
        // decode, token by token
        for (std::size_t t = prompt; t < prompt + singles; ++t) {
            cache.append(tokens_of(k, t, 1), tokens_of(v, t, 1));
            cache.attend(tokens_of(q, t, 1), tokens_of(out, t, 1));
        }
        // a multi-token step (speculative decoding, chunked prefill)
        cache.append(tokens_of(k, prompt + singles, multi), tokens_of(v, prompt + singles, multi));
        cache.attend(tokens_of(q, prompt + singles, multi), tokens_of(out, prompt + singles, multi));
        EXPECT_EQ(cache.size(), total);
        EXPECT_EQ(cache.next_position(), static_cast<std::int64_t>(total));

        // one causal pass over the whole sequence, rotating inside
        padded_heads whole(total, q_heads, dv);
        attention_options causal;
        causal.causal = true;
        rotary::attention(table, l, q.cview(), k.cview(), v.cview(), whole.view(), positions::starting_at(0),
                          positions::starting_at(0), causal);
        EXPECT_LT(max_abs_diff(out.storage, whole.storage), 1e-6) << layout_name(l);

        attention_spec spec;
        spec.causal = true;
        spec.pair_layout = l;
        spec.rotary_dim = d;
        for (std::size_t t = 0; t < total; ++t) {
            spec.q_positions.push_back(static_cast<std::int64_t>(t));
            spec.k_positions.push_back(static_cast<std::int64_t>(t));
        }
        const auto want = naive_attention(q, k, v, spec);
        double worst = 0;
        for (std::size_t t = 0; t < total; ++t)
            for (std::size_t h = 0; h < q_heads; ++h)
                for (std::size_t j = 0; j < dv; ++j)
                    worst = std::max(worst, std::fabs(out.at(t, h, j) - want[(t * q_heads + h) * dv + j]));
        EXPECT_LT(worst, 2e-5) << layout_name(l);
    }
}

TEST(KvCache, ShiftEqualsFillingAtShiftedPositions) {
    const std::size_t n = 30, kv_heads = 3, d = 32;
    const rotary::rope_table<float> table(d, 300);
    padded_heads k(n, kv_heads, d), v(n, kv_heads, d);
    k.fill(4);
    v.fill(5);
    for (layout l : {layout::half_split, layout::interleaved})
        for (auto [start, delta] : {std::pair<std::int64_t, std::int64_t>{0, 17}, {100, -60}, {5, 200}}) {
            kv_cache shifted(table, l, n, kv_heads, d), filled(table, l, n, kv_heads, d);
            shifted.append(k.cview(), v.cview(), positions::starting_at(start));
            shifted.shift(delta);
            filled.append(k.cview(), v.cview(), positions::starting_at(start + delta));
            const cache_state a = state_of(shifted), b = state_of(filled);
            EXPECT_EQ(a.positions, b.positions);
            EXPECT_EQ(a.values, b.values);
            // one more fp32 rounding of each key: |k| <= sqrt(2) per pair
            EXPECT_LT(max_abs_diff(a.keys, b.keys), 1e-6) << layout_name(l) << " delta " << delta;
        }
    // A part of the cache only: tokens [10, 20) move by +5.
    kv_cache part(table, layout::half_split, n, kv_heads, d);
    part.append(k.cview(), v.cview());
    part.shift(5, 10, 20);
    std::vector<std::int64_t> ids(n);
    for (std::size_t t = 0; t < n; ++t) ids[t] = static_cast<std::int64_t>(t) + (t >= 10 && t < 20 ? 5 : 0);
    kv_cache filled(table, layout::half_split, n, kv_heads, d);
    filled.append(k.cview(), v.cview(), positions::from_ids(ids.data(), n));
    EXPECT_EQ(state_of(part).positions, ids);
    EXPECT_LT(max_abs_diff(state_of(part).keys, state_of(filled).keys), 1e-6);
}

// The precision of repeated shifts: every shift rounds the keys once more in fp32. A hundred
// shifts (50 forward by 7, 50 back by 3) stay within 1e-5 of keys rotated once at the final
// positions.
TEST(KvCache, RepeatedShiftsDriftSlowly) {
    const std::size_t n = 16, kv_heads = 2, d = 128;
    const rotary::rope_table<float> table(d, 4096);
    padded_heads k(n, kv_heads, d), v(n, kv_heads, d);
    k.fill(6);
    v.fill(7);
    kv_cache shifted(table, layout::half_split, n, kv_heads, d);
    shifted.append(k.cview(), v.cview(), positions::starting_at(1000));
    for (int i = 0; i < 50; ++i) {
        shifted.shift(7);
        shifted.shift(-3);
    }
    kv_cache once(table, layout::half_split, n, kv_heads, d);
    once.append(k.cview(), v.cview(), positions::starting_at(1200));
    EXPECT_EQ(state_of(shifted).positions, state_of(once).positions);
    const double drift = max_abs_diff(state_of(shifted).keys, state_of(once).keys);
    RecordProperty("max_abs_drift_after_100_shifts", std::to_string(drift));
    EXPECT_LT(drift, 1e-5);
}

// Context shifting as llama.cpp does it: keep the first tokens, drop the next ones, move the rest
// back. Equals a cache filled with the kept tokens at compacted positions, and attends the same.
TEST(KvCache, EraseThenShiftIsAContextShift) {
    const std::size_t n = 30, keep = 4, discard = 10, kv_heads = 2, q_heads = 4, d = 64;
    const rotary::rope_table<float> table(d, 128);
    padded_heads k(n + 1, kv_heads, d), v(n + 1, kv_heads, d), q(1, q_heads, d);
    k.fill(8);
    v.fill(9);
    q.fill(10);
    kv_cache shifted(table, layout::half_split, n + 1, kv_heads, d);
    shifted.append(tokens_of(k, 0, n), tokens_of(v, 0, n));
    shifted.erase(keep, keep + discard);
    shifted.shift(-static_cast<std::int64_t>(discard), keep);
    kv_cache compact(table, layout::half_split, n + 1, kv_heads, d);
    compact.append(tokens_of(k, 0, keep), tokens_of(v, 0, keep));
    compact.append(tokens_of(k, keep + discard, n - keep - discard), tokens_of(v, keep + discard, n - keep - discard));
    ASSERT_EQ(shifted.size(), n - discard);
    EXPECT_EQ(state_of(shifted).positions, state_of(compact).positions);
    EXPECT_EQ(state_of(shifted).values, state_of(compact).values);
    EXPECT_LT(max_abs_diff(state_of(shifted).keys, state_of(compact).keys), 1e-6);
    // the next token lands at position n - discard in both and attends the same
    padded_heads out_a(1, q_heads, d), out_b(1, q_heads, d);
    for (kv_cache* c : {&shifted, &compact}) {
        c->append(tokens_of(k, n, 1), tokens_of(v, n, 1));
        c->attend(q.cview(), (c == &shifted ? out_a : out_b).view());
    }
    EXPECT_EQ(shifted.next_position(), static_cast<std::int64_t>(n - discard + 1));
    EXPECT_LT(max_abs_diff(out_a.storage, out_b.storage), 1e-6);
}

template <class E>
void expect_throw_unchanged(kv_cache& cache, const std::function<void()>& call, const std::vector<std::string>& parts) {
    const cache_state before = state_of(cache);
    expect_exception<E>(call, parts);
    EXPECT_TRUE(state_of(cache) == before) << "the cache changed although the call threw";
}

TEST(KvCache, BadInputThrowsAndLeavesTheCacheUnchanged) {
    const std::size_t kv_heads = 2, d = 16;
    const rotary::rope_table<float> table(d, 64);
    padded_heads k(8, kv_heads, d), v(8, kv_heads, d), q(3, 4, d), out(3, 4, d);
    k.fill(11);
    v.fill(12);
    kv_cache cache(table, layout::interleaved, 10, kv_heads, d);
    cache.append(k.cview(), v.cview(), positions::starting_at(50));
    using R = std::out_of_range;
    using I = std::invalid_argument;
    expect_throw_unchanged<R>(cache, [&] { cache.append(tokens_of(k, 0, 3), tokens_of(v, 0, 3)); },
                              {"appending 3 tokens overflows", "size 8", "max_tokens 10"});
    // positions 58.. would do, but 62, 63, 64: past the table
    expect_throw_unchanged<R>(cache, [&] { cache.append(tokens_of(k, 0, 2), tokens_of(v, 0, 2), positions::starting_at(63)); },
                              {"positions", "max_positions 64"});
    padded_heads k3(2, 3, d);
    expect_throw_unchanged<I>(cache, [&] { cache.append(k3.cview(), tokens_of(v, 0, 2)); }, {"k is 2 tokens x 3 heads"});
    expect_throw_unchanged<I>(cache, [&] { cache.append(tokens_of(k, 0, 2), tokens_of(v, 0, 1)); }, {"v is 1 tokens"});
    expect_throw_unchanged<R>(cache, [&] { cache.shift(64); }, {"delta 64", "max_positions 64"});
    expect_throw_unchanged<R>(cache, [&] { cache.shift(7); }, {"token 7", "position 57 to 64"});
    expect_throw_unchanged<R>(cache, [&] { cache.shift(-51); }, {"token 0", "to -1"});
    expect_throw_unchanged<R>(cache, [&] { cache.shift(1, 5, 9); }, {"shift", "[5, 9)", "8 tokens"});
    expect_throw_unchanged<R>(cache, [&] { cache.erase(6, 4); }, {"erase", "[6, 4)"});
    padded_heads q9(9, 4, d), out9(9, 4, d);
    expect_throw_unchanged<R>(cache, [&] { cache.attend(q9.cview(), out9.view()); }, {"q.tokens 9", "size 8"});
    padded_heads q_odd(3, 3, d);
    expect_throw_unchanged<I>(cache, [&] { cache.attend(q_odd.cview(), out.view()); }, {"q.heads 3", "k.heads 2"});

    EXPECT_THROW(kv_cache(table, layout::half_split, 10, 2, 8), I);  // rotary_dim 16 > head_dim 8
    EXPECT_THROW(kv_cache(table, layout::half_split, 0, 2, 16), I);
    EXPECT_THROW(kv_cache(table, layout::half_split, 10, 0, 16), I);
    EXPECT_THROW(kv_cache(table, static_cast<layout>(3), 10, 2, 16), I);
}

}  // namespace
