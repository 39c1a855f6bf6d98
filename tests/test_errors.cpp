// Bad input throws std::invalid_argument or std::out_of_range naming the parameter and its value,
// before anything is written: every buffer is bit-for-bit unchanged afterwards.
#include "support.hpp"
#include "throw_checks.hpp"

using namespace rotary_test;
using rotary::heads_view;
using rotary::layout;
using rotary::positions;

namespace {

constexpr std::size_t D = 64;

struct ErrorsFixture : ::testing::Test {
    rotary::rope_table<float> table{D, 100};
    std::vector<float> x = random_vector<float>(4 * 2 * D, 1);
    std::vector<float> y = random_vector<float>(4 * 2 * D, 2);
    heads_view<float> xv{x.data(), 4, 2, D};
    heads_view<float> yv{y.data(), 4, 2, D};
};

TEST(Errors, TableArguments) {
    using E = std::invalid_argument;
    expect_throw_unchanged<E>([] { rotary::rope_table<float>(63, 10); }, {}, {"rotary_dim", "63"});
    expect_throw_unchanged<E>([] { rotary::rope_table<float>(0, 10); }, {}, {"rotary_dim", "0"});
    expect_throw_unchanged<E>([] { rotary::rope_table<float>(64, 10, 1.0); }, {}, {"base", "1"});
    expect_throw_unchanged<E>([] { rotary::rope_table<float>(64, 10, -5.0); }, {}, {"base", "-5"});
    expect_throw_unchanged<E>([] { rotary::rope_table<float>(64, 0); }, {}, {"max_positions", "0"});
    const std::vector<double> bad = {1.0, std::numeric_limits<double>::infinity()};
    expect_throw_unchanged<E>([&] { rotary::custom_frequencies(bad); }, {}, {"inverse frequency 1", "inf"});
    expect_throw_unchanged<E>([] { rotary::custom_frequencies(std::vector<double>{}); }, {}, {"rotary_dim", "0"});
    expect_throw_unchanged<E>([] { rotary::custom_frequencies(std::vector<double>{1.0}, 0.0); }, {},
                              {"attention_factor", "0"});
    expect_throw_unchanged<E>([] { rotary::custom_frequencies(nullptr, 3); }, {}, {"null"});
}

TEST_F(ErrorsFixture, RotaryDimExceedsHeadDim) {
    rotary::rope_table<float> wide(2 * D, 100);
    expect_throw_unchanged<std::invalid_argument>(
        [&] { rotary::apply(wide, layout::half_split, xv, positions::starting_at(0)); }, {bytes(x)},
        {"rotary_dim 128", "x.head_dim 64"});
}

TEST_F(ErrorsFixture, PositionsOutsideTable) {
    expect_throw_unchanged<std::out_of_range>(
        [&] { rotary::apply(table, layout::interleaved, xv, positions::starting_at(97)); }, {bytes(x)},
        {"100", "max_positions"});
    expect_throw_unchanged<std::invalid_argument>(
        [&] { rotary::apply(table, layout::interleaved, xv, positions::starting_at(-1)); }, {bytes(x)},
        {"position offset", "-1"});
    const std::vector<std::int32_t> negative = {0, 5, -3, 1};
    expect_throw_unchanged<std::invalid_argument>(
        [&] { rotary::apply(table, layout::interleaved, xv, positions::from_ids(negative.data(), 4)); },
        {bytes(x)}, {"ids[2]", "-3"});
    const std::vector<std::int64_t> too_far = {0, 100, 3, 1};
    expect_throw_unchanged<std::out_of_range>(
        [&] { rotary::apply(table, layout::interleaved, xv, positions::from_ids(too_far.data(), 4)); },
        {bytes(x)}, {"ids[1]", "100", "max_positions 100"});
    expect_throw_unchanged<std::invalid_argument>(
        [&] { rotary::apply(table, layout::interleaved, xv, positions::from_ids(too_far.data(), 3)); },
        {bytes(x)}, {"ids count 3", "tokens 4"});
    expect_throw_unchanged<std::invalid_argument>(
        [&] { rotary::apply(table, layout::interleaved, xv, positions::from_ids(static_cast<const std::int32_t*>(nullptr), 4)); },
        {bytes(x)}, {"ids pointer is null"});
    // The fused call checks every id before rotating q: neither buffer is touched.
    expect_throw_unchanged<std::out_of_range>(
        [&] { rotary::apply_qk(table, layout::half_split, xv, yv, positions::from_ids(too_far.data(), 4)); },
        {bytes(x), bytes(y)}, {"ids[1]"});
}

TEST_F(ErrorsFixture, NullBufferAndBadStrides) {
    expect_throw_unchanged<std::invalid_argument>(
        [&] { rotary::apply(table, layout::interleaved, heads_view<float>(nullptr, 4, 2, D), positions::starting_at(0)); },
        {}, {"x.data is null", "4 tokens"});
    // A null buffer with nothing in it is fine.
    rotary::apply(table, layout::interleaved, heads_view<float>(nullptr, 0, 2, D), positions::starting_at(0));
    expect_throw_unchanged<std::invalid_argument>(
        [&] { rotary::apply(table, layout::interleaved, heads_view<float>(x.data(), 4, 2, D, D, D), positions::starting_at(0)); },
        {bytes(x)}, {"x rows overlap", "token_stride 64", "head_stride 64"});
    expect_throw_unchanged<std::invalid_argument>(
        [&] { rotary::apply(table, layout::interleaved, heads_view<float>(x.data(), 4, 2, D, 2 * D, D - 2), positions::starting_at(0)); },
        {bytes(x)}, {"x rows overlap"});
    expect_throw_unchanged<std::invalid_argument>(
        [&] { rotary::apply(table, layout::interleaved, heads_view<float>(x.data(), 4, 2, D, -128, D), positions::starting_at(0)); },
        {bytes(x)}, {"x.token_stride", "-128"});
    expect_throw_unchanged<std::invalid_argument>(
        [&] { rotary::apply(table, layout::interleaved, heads_view<float>(x.data(), 2, 2, D, 2 * D, -1), positions::starting_at(0)); },
        {bytes(x)}, {"x.head_stride", "-1"});
}

TEST_F(ErrorsFixture, SizeOverflow) {
    const std::size_t huge = std::size_t{1} << 62;
    expect_throw_unchanged<std::invalid_argument>(
        [&] { rotary::apply(table, layout::interleaved, heads_view<float>(x.data(), huge, 1, D, 1 << 10, D), positions::starting_at(0)); },
        {bytes(x)}, {"x size overflows"});
    expect_throw_unchanged<std::invalid_argument>([&] { heads_view<float>(x.data(), 2, huge, D); }, {bytes(x)},
                                                  {"heads * head_dim overflows"});
    expect_throw_unchanged<std::invalid_argument>(
        [&] { rotary::apply(table, layout::interleaved, heads_view<float>(x.data(), 3, 1, D, PTRDIFF_MAX / 2, D), positions::starting_at(0)); },
        {bytes(x)}, {"x s"});
}

TEST_F(ErrorsFixture, OverlappingOutput) {
    // out shifted by one element from in: partial overlap.
    expect_throw_unchanged<std::invalid_argument>(
        [&] {
            rotary::apply(table, layout::interleaved, heads_view<const float>(x.data(), 2, 2, D),
                          heads_view<float>(x.data() + 1, 2, 2, D), positions::starting_at(0));
        },
        {bytes(x)}, {"in and out overlap"});
    // Same pointer, other strides: not in place, overlapping.
    expect_throw_unchanged<std::invalid_argument>(
        [&] {
            rotary::apply(table, layout::interleaved, heads_view<const float>(x.data(), 2, 2, D),
                          heads_view<float>(x.data(), 2, 2, D, 4 * D, D), positions::starting_at(0));
        },
        {bytes(x)}, {"in and out overlap"});
    // Fused: k overlaps q.
    expect_throw_unchanged<std::invalid_argument>(
        [&] { rotary::apply_qk(table, layout::half_split, heads_view<float>(x.data(), 2, 2, D), heads_view<float>(x.data() + D, 2, 1, D), positions::starting_at(0)); },
        {bytes(x)}, {"q and k overlap"});
    // Fused out of place: q_out lands on k_in.
    expect_throw_unchanged<std::invalid_argument>(
        [&] {
            rotary::apply_qk(table, layout::half_split, heads_view<const float>(x.data(), 4, 1, D),
                             heads_view<float>(y.data(), 4, 1, D), heads_view<const float>(y.data() + 2 * D, 4, 1, D),
                             heads_view<float>(x.data() + 4 * D, 4, 1, D), positions::starting_at(0));
        },
        {bytes(x), bytes(y)}, {"q_out and k_in overlap"});
}

TEST_F(ErrorsFixture, PackedQkvSlicesAreNotAnOverlap) {
    // q, k, v of a packed [tokens, 3 * heads * D] projection: interleaved spans, disjoint rows.
    const std::size_t tokens = 4, heads = 2, stride = 3 * heads * D;
    auto qkv = random_vector<float>(tokens * stride, 9);
    const auto before = qkv;
    heads_view<float> q(qkv.data(), tokens, heads, D, stride, D), k(qkv.data() + heads * D, tokens, heads, D, stride, D);
    const std::vector<std::int32_t> zeros(tokens, 0);
    EXPECT_NO_THROW(rotary::apply_qk(table, layout::half_split, q, k, positions::from_ids(zeros.data(), tokens)));
    // Position 0 is the identity.
    for (std::size_t i = 0; i < qkv.size(); ++i) ASSERT_EQ(qkv[i], before[i]);
}

TEST_F(ErrorsFixture, ShapesAndRanges) {
    expect_throw_unchanged<std::invalid_argument>(
        [&] {
            rotary::apply(table, layout::interleaved, heads_view<const float>(x.data(), 4, 2, D),
                          heads_view<float>(y.data(), 3, 2, D), positions::starting_at(0));
        },
        {bytes(x), bytes(y)}, {"out is 3 tokens", "in is 4"});
    expect_throw_unchanged<std::invalid_argument>(
        [&] { rotary::apply_qk(table, layout::interleaved, xv, heads_view<float>(y.data(), 3, 2, D), positions::starting_at(0)); },
        {bytes(x), bytes(y)}, {"k.tokens 3", "q.tokens 4"});
    expect_throw_unchanged<std::out_of_range>(
        [&] { rotary::apply(table, layout::interleaved, xv, positions::starting_at(0), {rotary::direction::forward, 2, 5}); },
        {bytes(x)}, {"token range [2, 5)", "4 tokens"});
    expect_throw_unchanged<std::out_of_range>(
        [&] { rotary::apply(table, layout::interleaved, xv, positions::starting_at(0), {rotary::direction::forward, 3, 2}); },
        {bytes(x)}, {"token range [3, 2)"});
    expect_throw_unchanged<std::invalid_argument>(
        [&] { rotary::apply(table, static_cast<layout>(7), xv, positions::starting_at(0)); }, {bytes(x)},
        {"layout", "7"});
    expect_throw_unchanged<std::invalid_argument>(
        [&] { rotary::apply(table, layout::interleaved, xv, positions::starting_at(0), {static_cast<rotary::direction>(3)}); },
        {bytes(x)}, {"direction", "3"});
}

// A sub-range touches only its tokens; the ids outside it are not even read.
TEST_F(ErrorsFixture, SubRangeReadsOnlyItsIds) {
    const std::vector<std::int64_t> ids = {-5, 7, 8, 1000};  // bad ids outside [1, 3)
    const auto before = x;
    rotary::apply(table, layout::interleaved, xv, positions::from_ids(ids.data(), 4), {rotary::direction::forward, 1, 3});
    for (std::size_t i = 0; i < 2 * D; ++i) ASSERT_EQ(x[i], before[i]);
    for (std::size_t i = 3 * 2 * D; i < x.size(); ++i) ASSERT_EQ(x[i], before[i]);
}

}  // namespace
