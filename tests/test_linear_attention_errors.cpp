// Bad input to the linear attention entry points throws std::invalid_argument or
// std::out_of_range naming the parameter and its value, before anything is written: the output
// and the state are bit-for-bit unchanged afterwards.
#include "linear_attention_support.hpp"
#include "throw_checks.hpp"

using namespace rotary_test;
using rotary::heads_view;
using rotary::layout;
using rotary::positions;

namespace {

constexpr std::size_t N = 6, H = 4, G = 2, D = 16, DV = 8;

struct LinearAttentionErrors : ::testing::Test {
    rotary::rope_table<float> table{D, 100};
    std::vector<float> q = random_vector<float>(N * H * D, 1), k = random_vector<float>(N * G * D, 2),
                       v = random_vector<float>(N * G * DV, 3), out = random_vector<float>(N * H * DV, 4);
    heads_view<const float> qv{q.data(), N, H, D}, kv{k.data(), N, G, D}, vv{v.data(), N, G, DV};
    heads_view<float> ov{out.data(), N, H, DV};
    rotary::linear_attention_state<float> state{G, D, DV};

    bytes_of state_bytes(std::size_t g) const { return {state.key_value(g), D * state.value_stride() * sizeof(float)}; }

    // The call through every entry point that takes these arguments; each must throw and write nothing.
    template <class E>
    void expect_all(const heads_view<const float>& q_, const heads_view<const float>& k_,
                    const heads_view<const float>& v_, const heads_view<float>& o_, const positions& pos,
                    const rotary::linear_attention_options& o, const std::vector<std::string>& parts) {
        const std::initializer_list<bytes_of> written = {bytes(out), state_bytes(0), state_bytes(1),
                                                         {state.key_sum(0), D * sizeof(float)}};
        expect_throw_unchanged<E>([&] { rotary::linear_attention(table, layout::interleaved, q_, k_, v_, o_, pos, o); },
                                  written, parts);
        expect_throw_unchanged<E>(
            [&] { rotary::causal_linear_attention(table, layout::interleaved, q_, k_, v_, o_, pos, o); }, written, parts);
        expect_throw_unchanged<E>(
            [&] { rotary::causal_linear_attention(table, layout::interleaved, q_, k_, v_, o_, pos, state, o); },
            written, parts);
    }
};

TEST_F(LinearAttentionErrors, Shapes) {
    using E = std::invalid_argument;
    expect_all<E>(qv, heads_view<const float>(k.data(), N - 1, G, D), vv, ov, positions::starting_at(0), {},
                  {"same tokens", "k is 5 tokens"});
    expect_all<E>(qv, heads_view<const float>(k.data(), N, G, D / 2), vv, ov, positions::starting_at(0), {},
                  {"k.head_dim 8", "q.head_dim 16"});
    expect_all<E>(qv, kv, vv, heads_view<float>(out.data(), N, H, DV / 2), positions::starting_at(0), {},
                  {"out.head_dim 4", "v.head_dim 8"});
    expect_all<E>(qv, kv, vv, heads_view<float>(out.data(), N, H / 2, DV), positions::starting_at(0), {},
                  {"out.heads 2", "q.heads 4"});
    expect_all<E>(qv, kv, heads_view<const float>(v.data(), N, 1, DV), ov, positions::starting_at(0), {},
                  {"v.heads 1", "k.heads 2"});
    expect_all<E>(heads_view<const float>(q.data(), N, 3, D), kv, vv, heads_view<float>(out.data(), N, 3, DV),
                  positions::starting_at(0), {}, {"q.heads 3", "multiple of k.heads 2"});
    expect_all<E>(qv, heads_view<const float>(k.data(), N, 0, D), heads_view<const float>(v.data(), N, 0, DV), ov,
                  positions::starting_at(0), {}, {"k.heads 0"});
    expect_all<E>(heads_view<const float>(q.data(), N, H, 0), heads_view<const float>(k.data(), N, G, 0), vv, ov,
                  positions::starting_at(0), {}, {"head_dim must be > 0"});
    const rotary::rope_table<float> wide(2 * D, 100);
    expect_throw_unchanged<E>([&] { rotary::linear_attention(wide, layout::half_split, qv, kv, vv, ov, positions::starting_at(0)); },
                              {bytes(out)}, {"rotary_dim 32", "q.head_dim 16"});
    expect_throw_unchanged<E>([&] { rotary::linear_attention(table, static_cast<layout>(7), qv, kv, vv, ov, positions::starting_at(0)); },
                              {bytes(out)}, {"layout", "7"});
}

TEST_F(LinearAttentionErrors, BuffersAndOverlap) {
    using E = std::invalid_argument;
    expect_all<E>(heads_view<const float>(nullptr, N, H, D), kv, vv, ov, positions::starting_at(0), {}, {"q.data is null"});
    expect_all<E>(qv, kv, vv, heads_view<float>(out.data(), N, H, DV, -1, DV), positions::starting_at(0), {},
                  {"out.token_stride", "-1"});
    expect_all<E>(qv, kv, vv, heads_view<float>(out.data(), N, H, DV, DV, DV), positions::starting_at(0), {},
                  {"out rows overlap"});
    // out written while q is still read: it may not overlap q, k or v
    std::vector<float> shared(N * H * D, 0.5f);
    const std::vector<float> before = shared;
    heads_view<const float> q_shared(shared.data(), N, H, D);
    heads_view<float> o_shared(shared.data(), N, H, DV, H * D, D);
    expect_throw_unchanged<E>(
        [&] { rotary::causal_linear_attention(table, layout::interleaved, q_shared, kv, vv, o_shared, positions::starting_at(0)); },
        {bytes(shared)}, {"out and q overlap"});
    expect_throw_unchanged<E>(
        [&] {
            rotary::linear_attention(table, layout::interleaved, qv, kv, heads_view<const float>(out.data(), N, G, DV), ov,
                                     positions::starting_at(0));
        },
        {bytes(out)}, {"out and v overlap"});
}

TEST_F(LinearAttentionErrors, PositionsOptionsAndRanges) {
    expect_all<std::out_of_range>(qv, kv, vv, ov, positions::starting_at(95), {}, {"positions 95 + [0, 6)", "max_positions 100"});
    expect_all<std::invalid_argument>(qv, kv, vv, ov, positions::starting_at(-1), {}, {"position offset", "-1"});
    const std::vector<std::int32_t> ids = {0, 1, 2, 300, 4, 5};
    expect_all<std::out_of_range>(qv, kv, vv, ov, positions::from_ids(ids.data(), N), {}, {"ids[3] = 300"});
    expect_all<std::invalid_argument>(qv, kv, vv, ov, positions::from_ids(ids.data(), N - 1), {}, {"ids count 5", "tokens 6"});
    rotary::linear_attention_options o;
    o.epsilon = -1e-3;
    expect_all<std::invalid_argument>(qv, kv, vv, ov, positions::starting_at(0), o, {"epsilon", "-0.001"});
    o = {};
    o.epsilon = std::numeric_limits<double>::infinity();
    expect_all<std::invalid_argument>(qv, kv, vv, ov, positions::starting_at(0), o, {"epsilon", "inf"});
    o = {};
    o.epsilon = 1e39;  // finite in double, past fp32 (the guard is applied in the buffers' type)
    expect_all<std::invalid_argument>(qv, kv, vv, ov, positions::starting_at(0), o, {"epsilon", "3.402823466e+38", "1e+39"});
    o = {};
    o.chunk_size = 0;
    expect_all<std::invalid_argument>(qv, kv, vv, ov, positions::starting_at(0), o, {"chunk_size", "got 0"});
    o.chunk_size = 5000;
    expect_all<std::invalid_argument>(qv, kv, vv, ov, positions::starting_at(0), o, {"chunk_size", "5000"});
    o = {};
    o.head_begin = 3;
    o.head_end = 2;
    expect_all<std::out_of_range>(qv, kv, vv, ov, positions::starting_at(0), o, {"head range [3, 2)", "4 heads"});
    o.head_begin = 0;
    o.head_end = 5;
    expect_all<std::out_of_range>(qv, kv, vv, ov, positions::starting_at(0), o, {"head range [0, 5)"});
    // without rotation, positions are not read (nor checked)
    o = {};
    o.use_rope = false;
    rotary::causal_linear_attention(table, layout::interleaved, qv, kv, vv, ov, positions::starting_at(1000000), o);
}

TEST_F(LinearAttentionErrors, State) {
    using E = std::invalid_argument;
    rotary::linear_attention_state<float> other(G, D, DV + 1);
    expect_throw_unchanged<E>(
        [&] { rotary::causal_linear_attention(table, layout::interleaved, qv, kv, vv, ov, positions::starting_at(0), other); },
        {bytes(out)}, {"state is 2 kv heads x head_dim 16 x value_dim 9", "2 x 16 x 8"});
    rotary::linear_attention_options o;
    o.head_begin = 1;
    o.head_end = 4;
    expect_throw_unchanged<E>(
        [&] { rotary::causal_linear_attention(table, layout::interleaved, qv, kv, vv, ov, positions::starting_at(0), state, o); },
        {bytes(out), state_bytes(0), state_bytes(1)}, {"head range [1, 4)", "multiples of q.heads / k.heads = 2"});
    // a step takes exactly one token
    expect_throw_unchanged<E>(
        [&] { rotary::linear_attention_step(table, layout::interleaved, qv, kv, vv, ov, 0, state); },
        {bytes(out), state_bytes(0), state_bytes(1)}, {"one token", "q.tokens 6"});
    expect_throw_unchanged<std::out_of_range>(
        [&] {
            rotary::linear_attention_step(table, layout::interleaved, heads_view<const float>(q.data(), 1, H, D),
                                          heads_view<const float>(k.data(), 1, G, D),
                                          heads_view<const float>(v.data(), 1, G, DV),
                                          heads_view<float>(out.data(), 1, H, DV), 100, state);
        },
        {bytes(out), state_bytes(0), state_bytes(1)}, {"positions 100 + [0, 1)", "max_positions 100"});
    expect_throw_unchanged<E>([] { rotary::linear_attention_state<float>(0, 4, 4); }, {}, {"kv_heads", "0"});
    expect_throw_unchanged<E>([] { rotary::linear_attention_state<double>(1, 0, 4); }, {}, {"head_dim", "0"});
    expect_throw_unchanged<E>([] { rotary::linear_attention_state<double>(1, 4, 0); }, {}, {"value_dim", "0"});
}

// q with no heads is a multiple of any k.heads: a valid call with nothing to compute, through every
// entry point, that writes nothing (fuzz_linear_attention found it dividing by q.heads / k.heads = 0).
TEST_F(LinearAttentionErrors, NoQueryHeadsIsANoOp) {
    const heads_view<const float> q0(q.data(), N, 0, D), q1(q.data(), 1, 0, D);
    const heads_view<float> o0(out.data(), N, 0, DV), o1(out.data(), 1, 0, DV);
    const auto out_before = out;
    const auto kv_before = std::vector<float>(state.key_value(0), state.key_value(0) + D * state.value_stride());
    rotary::linear_attention(table, layout::interleaved, q0, kv, vv, o0, positions::starting_at(0));
    rotary::causal_linear_attention(table, layout::half_split, q0, kv, vv, o0, positions::starting_at(0));
    rotary::causal_linear_attention(table, layout::half_split, q0, kv, vv, o0, positions::starting_at(0), state);
    rotary::linear_attention_step(table, layout::interleaved, q1, heads_view<const float>(k.data(), 1, G, D),
                                  heads_view<const float>(v.data(), 1, G, DV), o1, 3, state);
    EXPECT_EQ(out, out_before);
    EXPECT_EQ(std::vector<float>(state.key_value(0), state.key_value(0) + D * state.value_stride()), kv_before);
}

}  // namespace
