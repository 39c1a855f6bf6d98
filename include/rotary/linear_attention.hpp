// rotary: linear attention with RoPE (paper Sec. 3.3, Eqs. 18-19), causal and bidirectional, in
// O(N) time and memory (layer 6 of DESIGN.md: helpers).
//
//   Eq. 19:  out_m = sum_n (R_m phi(q_m))^T (R_n phi(k_n)) v_n  /  sum_n phi(q_m)^T phi(k_n)
//
// The numerator rotates the features, the denominator does not (so that it stays positive); with
// use_rope = false the numerator is unrotated too, which is Eq. 18. Associativity makes it linear:
// with S = sum_n (R_n phi(k_n)) v_n^T (head_dim x value_dim) and z = sum_n phi(k_n),
//   out_m = (R_m phi(q_m))^T S / phi(q_m)^T z,
// over all n (bidirectional) or over n <= m (causal, S and z then run with m).
//
// The causal path works in chunks of C tokens (Katharopoulos et al. 2020, as chunked in
// flash-linear-attention): inside a chunk the pairs n <= m are summed quadratically through block
// products, Q~ K~^T masked and times V; the chunks before it arrive through the state S (Q~ S);
// then S += K~^T V. That is O(N (C (d + d_v) + d d_v)) with dense, cache-resident block products.
//
// Every function the per-arch runners call is templated on Arch (see detail/kernels.hpp): the
// validation and the scratch allocation happen in the entry points, the runners only compute. The
// block products are our own xsimd tiles rather than Eigen's GEMM because Eigen's kernels are not
// templated on the arch: compiled with -mavx512f in one translation unit and without in another,
// the linker may keep the AVX-512 copy for both.
// SPDX-License-Identifier: MIT
#ifndef ROTARY_LINEAR_ATTENTION_HPP
#define ROTARY_LINEAR_ATTENTION_HPP

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "apply.hpp"
#include "detail/checks.hpp"
#include "detail/kernels.hpp"
#include "detail/simd.hpp"
#include "scaling.hpp"  // detail::number_text
#include "table.hpp"
#include "types.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

ROTARY_DIAGNOSTIC_PUSH

namespace rotary {

// The feature maps phi of Eq. 18-19, applied element-wise to q and k of every head. Any callable
// `T operator()(T) const` works; one that is also callable on xsimd::batch<T, Arch> says so with
// `static constexpr bool batch_callable = true` and is then applied a vector at a time.
namespace feature_maps {

// elu(x) + 1 (Katharopoulos et al. 2020, the paper's choice): x + 1 for x > 0, exp(x) otherwise.
// Always positive, so the denominator of Eq. 19 is too.
struct elu_plus_one {
    static constexpr bool batch_callable = true;
    template <class T>
    T operator()(T x) const noexcept {
        return x > T(0) ? x + T(1) : std::exp(x);
    }
    template <class T, class Arch>
    xsimd::batch<T, Arch> operator()(const xsimd::batch<T, Arch>& x) const noexcept {
        return xsimd::select(x > xsimd::batch<T, Arch>(T(0)), x + xsimd::batch<T, Arch>(T(1)), xsimd::exp(x));
    }
};

// max(x, 0): features that can all vanish, where the denominator guard (epsilon) takes over.
struct relu {
    static constexpr bool batch_callable = true;
    template <class T>
    T operator()(T x) const noexcept {
        return x > T(0) ? x : T(0);
    }
    template <class T, class Arch>
    xsimd::batch<T, Arch> operator()(const xsimd::batch<T, Arch>& x) const noexcept {
        return xsimd::max(x, xsimd::batch<T, Arch>(T(0)));
    }
};

}  // namespace feature_maps

template <class T>
class linear_attention_state;
namespace detail {
template <class T>
struct state_access;
}  // namespace detail

struct linear_attention_options {
    static constexpr std::size_t all_heads = std::numeric_limits<std::size_t>::max();
    // Tokens per block of the chunked paths. Measured on Zen 4 (bench/bench_linear_attention.cpp,
    // the causal_chunk rows, 8k tokens): 32 and 48 are the fastest at head_dim 64 and 128, 64 is
    // 5-15% slower, 256 1.5-1.7x slower (the quadratic work inside a chunk grows with it).
    static constexpr std::size_t default_chunk_size = 32;
    static constexpr std::size_t max_chunk_size = 4096;  // the scratch holds a chunk x chunk block

    // true: Eq. 19, the numerator with the rotated features R_m phi(q_m), R_n phi(k_n).
    // false: Eq. 18, no rotation at all (the table and positions are then not read).
    bool use_rope = true;
    // The denominator guard: out_m = numerator_m / max(denominator_m, epsilon), 0 .. the largest
    // value of the buffers' type (FLT_MAX for fp32: it is applied in T). With elu+1 features
    // the denominator is a sum of positive terms far above it, so it never applies; it replaces
    // 0/0 by 0 when all features of a query (or of every key) vanish, as relu's can.
    double epsilon = 1e-6;
    // Tokens per block of the chunked causal path (and of the bidirectional one's block products),
    // 1 .. max_chunk_size. A chunk longer than the sequence is the quadratic form of Eq. 19.
    std::size_t chunk_size = default_chunk_size;
    // The query heads [head_begin, head_end) this call computes, so a caller's thread pool can
    // split a call over heads. Each range computes the sums of the kv heads its query heads read;
    // with GQA, ranges on multiples of q_heads / kv_heads share no kv head and repeat no work.
    std::size_t head_begin = 0;
    std::size_t head_end = all_heads;  // all_heads: up to the view's head count
};

// The running sums a causal call leaves behind, for each kv head: S = sum_n (R_n phi(k_n)) v_n^T
// (head_dim x value_dim) and z = sum_n phi(k_n) (head_dim), over every token absorbed since
// construction or reset(). A causal call that is given a state starts from it and leaves it at its
// last token; linear_attention_step() absorbs one token. T is float or double, the buffers' type.
template <class T>
class linear_attention_state {
    static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                  "linear_attention_state holds fp32 or fp64 sums");

  public:
    using value_type = T;

    linear_attention_state(std::size_t kv_heads, std::size_t head_dim, std::size_t value_dim)
        : kv_heads_(kv_heads), head_dim_(head_dim), value_dim_(value_dim),
          key_stride_(padded(head_dim)), value_stride_(padded(value_dim)) {
        if (kv_heads == 0) detail::throw_invalid("linear_attention_state: kv_heads must be > 0, got 0");
        if (head_dim == 0) detail::throw_invalid("linear_attention_state: head_dim must be > 0, got 0");
        if (value_dim == 0) detail::throw_invalid("linear_attention_state: value_dim must be > 0, got 0");
        const std::size_t per_head = detail::checked_mul(head_dim, value_stride_, "head_dim * value_dim");
        key_value_.assign(detail::checked_mul(kv_heads, per_head, "state size"), T(0));
        key_sum_.assign(detail::checked_mul(kv_heads, key_stride_, "state size"), T(0));
    }

    std::size_t kv_heads() const noexcept { return kv_heads_; }
    std::size_t head_dim() const noexcept { return head_dim_; }
    std::size_t value_dim() const noexcept { return value_dim_; }

    // S of a kv head: head_dim rows of value_dim values, row i at key_value(h) + i * value_stride().
    const T* key_value(std::size_t kv_head) const noexcept {
        return key_value_.data() + kv_head * head_dim_ * value_stride_;
    }
    std::size_t value_stride() const noexcept { return value_stride_; }
    // z of a kv head: head_dim values.
    const T* key_sum(std::size_t kv_head) const noexcept { return key_sum_.data() + kv_head * key_stride_; }

    // Back to no tokens (a new sequence).
    void reset() noexcept {
        std::memset(key_value_.data(), 0, key_value_.size() * sizeof(T));
        std::memset(key_sum_.data(), 0, key_sum_.size() * sizeof(T));
    }

  private:
    friend struct detail::state_access<T>;

    // Rows padded to 64 bytes, so that the runners read and write whole vectors (the padding stays 0).
    static std::size_t padded(std::size_t n) {
        constexpr std::size_t w = 64 / sizeof(T);
        return detail::checked_mul((n + w - 1) / w, w, "padded row");
    }

    std::size_t kv_heads_, head_dim_, value_dim_, key_stride_, value_stride_;
    std::vector<T, xsimd::aligned_allocator<T, 64>> key_value_;
    std::vector<T, xsimd::aligned_allocator<T, 64>> key_sum_;
};

namespace detail {

// The runners write the sums in place, through the pointers of the validated job.
template <class T>
struct state_access {
    static T* key_value(linear_attention_state<T>& s) noexcept { return s.key_value_.data(); }
    static T* key_sum(linear_attention_state<T>& s) noexcept { return s.key_sum_.data(); }
    static std::size_t key_stride(const linear_attention_state<T>& s) noexcept { return s.key_stride_; }
};

template <class F, class = void>
struct is_batch_callable : std::false_type {};
template <class F>
struct is_batch_callable<F, std::void_t<decltype(F::batch_callable)>> : std::bool_constant<F::batch_callable> {};

enum class linear_kind { bidirectional, causal, step };

// Where each block of a runner's scratch starts (elements from a 64-byte aligned base; every block
// and every padded row is 64-byte aligned). Rows are padded so that the block products and the
// feature loops work on whole vectors; the padding is zero and stays zero.
struct linear_scratch_layout {
    std::size_t chunk = 0;     // tokens per block, <= the sequence
    std::size_t ld_key = 0;    // head_dim padded
    std::size_t ld_value = 0;  // value_dim padded
    std::size_t ld_chunk = 0;  // chunk padded
    std::size_t key_features = 0;    // chunk x ld_key: phi(k), rotated in place
    std::size_t key_prefix = 0;      // chunk x ld_key: z + phi(k) summed up to each token (causal)
    std::size_t keys_by_feature = 0; // head_dim x ld_chunk: the rotated key features transposed
    std::size_t values = 0;          // chunk x ld_value: v, padded
    std::size_t query_features = 0;  // chunk x ld_key: phi(q), rotated in place
    std::size_t denominators = 0;    // ld_chunk
    std::size_t scores = 0;          // chunk x ld_chunk: (R phi(q))^T (R phi(k)) within the chunk (causal)
    std::size_t numerators = 0;      // chunk x ld_value
    std::size_t key_value = 0;       // kv_heads x head_dim x ld_value: S when the call keeps no state
    std::size_t key_sum = 0;         // kv_heads x ld_key: z when the call keeps no state
    std::size_t elements = 0;
};

// sum_heads: the kv heads whose sums S, z live in the scratch (0 when a state holds them).
template <class T>
inline linear_scratch_layout make_scratch_layout(std::size_t chunk, std::size_t head_dim, std::size_t value_dim,
                                                 std::size_t sum_heads) {
    constexpr std::size_t w = 64 / sizeof(T);
    auto pad = [](std::size_t n) { return (n + w - 1) / w * w; };
    linear_scratch_layout s;
    s.chunk = chunk;
    s.ld_key = pad(head_dim);
    s.ld_value = pad(value_dim);
    s.ld_chunk = pad(chunk);
    std::size_t at = 0;
    auto take = [&](std::size_t rows, std::size_t ld) {
        const std::size_t start = at;
        at = checked_mul(rows, ld, "linear attention scratch") + at;
        if (at < start) throw_invalid("linear attention scratch overflows");
        return start;
    };
    s.key_features = take(chunk, s.ld_key);
    s.key_prefix = take(chunk, s.ld_key);
    s.keys_by_feature = take(head_dim, s.ld_chunk);
    s.values = take(chunk, s.ld_value);
    s.query_features = take(chunk, s.ld_key);
    s.denominators = take(1, s.ld_chunk);
    s.scores = take(chunk, s.ld_chunk);
    s.numerators = take(chunk, s.ld_value);
    s.key_value = take(checked_mul(sum_heads, head_dim, "kv_heads * head_dim"), s.ld_value);
    s.key_sum = take(sum_heads, s.ld_key);
    s.elements = at;
    return s;
}

// A validated call. Building one (make_linear_job) does every check; running one does none.
template <class T>
struct linear_job {
    linear_kind kind;
    const T* q;
    const T* k;
    const T* v;
    T* out;
    std::ptrdiff_t q_token_stride, q_head_stride, k_token_stride, k_head_stride;
    std::ptrdiff_t v_token_stride, v_head_stride, out_token_stride, out_head_stride;
    std::size_t tokens, q_heads, kv_heads, head_dim, value_dim;
    std::size_t head_begin, head_end;  // the query heads of the call
    bool use_rope;
    rope_job<T, T> rope;  // the table and positions; its buffers are filled per block by the runner
    T epsilon;
    linear_scratch_layout scratch;
    T* state_key_value;  // null: the sums start from zero in the scratch
    T* state_key_sum;
    std::size_t state_key_stride;  // between kv heads in state_key_sum
};

struct linear_views_names {
    const char *q, *k, *v, *out;
};

template <class T>
linear_job<T> make_linear_job(linear_kind kind, const rope_table<T>& table, layout pair_layout,
                              const heads_view<const T>& q, const heads_view<const T>& k,
                              const heads_view<const T>& v, const heads_view<T>& out, const positions& pos,
                              const linear_attention_options& options, identity_t<linear_attention_state<T>>* state) {
    static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                  "linear attention computes on fp32 or fp64 buffers");
    if (pair_layout != layout::interleaved && pair_layout != layout::half_split)
        fail_invalid([&] {
            return "layout must be layout::interleaved or layout::half_split, got " +
                   std::to_string(static_cast<int>(pair_layout));
        });
    checked_view cq, ck, cv, co;
    check_view(q, "q", cq);
    check_view(k, "k", ck);
    check_view(v, "v", cv);
    check_view(out, "out", co);
    auto shape = [](const checked_view& c) {
        return std::string(c.name) + " is " + std::to_string(c.tokens) + " tokens x " + std::to_string(c.heads) +
               " heads x " + std::to_string(c.head_dim);
    };
    if (k.tokens != q.tokens || v.tokens != q.tokens || out.tokens != q.tokens)
        fail_invalid([&] {
            return "q, k, v and out must have the same tokens: " + shape(cq) + ", " + shape(ck) + ", " + shape(cv) +
                   ", " + shape(co);
        });
    if (q.head_dim == 0 || v.head_dim == 0)
        fail_invalid([&] {
            return "q.head_dim and v.head_dim must be > 0, got " + std::to_string(q.head_dim) + " and " +
                   std::to_string(v.head_dim);
        });
    if (k.head_dim != q.head_dim)
        fail_invalid([&] { return "k.head_dim " + std::to_string(k.head_dim) + " != q.head_dim " + std::to_string(q.head_dim); });
    if (out.head_dim != v.head_dim)
        fail_invalid([&] { return "out.head_dim " + std::to_string(out.head_dim) + " != v.head_dim " + std::to_string(v.head_dim); });
    if (out.heads != q.heads)
        fail_invalid([&] { return "out.heads " + std::to_string(out.heads) + " != q.heads " + std::to_string(q.heads); });
    if (v.heads != k.heads)
        fail_invalid([&] { return "v.heads " + std::to_string(v.heads) + " != k.heads " + std::to_string(k.heads); });
    if (k.heads == 0 || q.heads % k.heads != 0)
        fail_invalid([&] {
            return "q.heads " + std::to_string(q.heads) + " must be a multiple of k.heads " + std::to_string(k.heads) +
                   " (each kv head serves q.heads / k.heads query heads)";
        });
    if (options.use_rope && table.rotary_dim() > q.head_dim)
        fail_invalid([&] {
            return "rotary_dim " + std::to_string(table.rotary_dim()) + " exceeds q.head_dim " + std::to_string(q.head_dim);
        });
    // The guard is applied in T: past T's largest value it would become Inf (undefined behaviour).
    if (!(options.epsilon >= 0.0) || !(options.epsilon <= static_cast<double>(std::numeric_limits<T>::max())))
        fail_invalid([&] {
            return "epsilon must be finite, >= 0 and at most the buffers' largest value " +
                   number_text(static_cast<double>(std::numeric_limits<T>::max())) + ", got " + number_text(options.epsilon);
        });
    if (options.chunk_size == 0 || options.chunk_size > linear_attention_options::max_chunk_size)
        fail_invalid([&] {
            return "chunk_size must be in 1 .. " + std::to_string(linear_attention_options::max_chunk_size) + ", got " +
                   std::to_string(options.chunk_size);
        });
    const std::size_t head_end = options.head_end == linear_attention_options::all_heads ? q.heads : options.head_end;
    if (options.head_begin > head_end || head_end > q.heads)
        fail_range([&] {
            return "head range [" + std::to_string(options.head_begin) + ", " +
                   (options.head_end == linear_attention_options::all_heads ? std::string("all") : std::to_string(head_end)) +
                   ") is not within q's " + std::to_string(q.heads) + " heads";
        });
    const std::size_t group = q.heads / k.heads;
    if (state != nullptr) {
        if (state->kv_heads() != k.heads || state->head_dim() != q.head_dim || state->value_dim() != v.head_dim)
            fail_invalid([&] {
                return "state is " + std::to_string(state->kv_heads()) + " kv heads x head_dim " +
                       std::to_string(state->head_dim()) + " x value_dim " + std::to_string(state->value_dim()) +
                       ", the call has " + std::to_string(k.heads) + " x " + std::to_string(q.head_dim) + " x " +
                       std::to_string(v.head_dim);
            });
        // Two ranges that share a kv head would both update its sums. (group 0: q has no heads, the
        // range is empty.)
        if (group != 0 && (options.head_begin % group != 0 || (head_end % group != 0 && head_end != options.head_begin)))
            fail_invalid([&] {
                return "with a state, the head range [" + std::to_string(options.head_begin) + ", " +
                       std::to_string(head_end) + ") must start and end on multiples of q.heads / k.heads = " +
                       std::to_string(group);
            });
    }
    if (kind == linear_kind::step && q.tokens != 1)
        fail_invalid([&] { return "a step takes one token, got q.tokens " + std::to_string(q.tokens); });
    // out is written block by block while q, k and v are still read.
    check_rows_disjoint(co);
    check_disjoint(co, cq);
    check_disjoint(co, ck);
    check_disjoint(co, cv);

    linear_job<T> job{};
    job.kind = kind;
    set_qkvo(job, q, k, v, out);
    job.tokens = q.tokens;
    job.q_heads = q.heads;
    job.kv_heads = k.heads;
    job.head_dim = q.head_dim;
    job.value_dim = v.head_dim;
    job.head_begin = options.head_begin;
    job.head_end = head_end;
    job.use_rope = options.use_rope;
    // The core's rope job: the table, the positions (checked here), one buffer set per block.
    job.rope.range = {0, q.tokens};
    if (options.use_rope)
        set_positions(job.rope, pos, q.tokens, table.max_positions(), position_limit_name(table), table.pairs());
    set_source(job.rope, table);
    job.rope.pairs = table.pairs();
    job.rope.pair_layout = pair_layout;
    job.rope.sign = T(1);
    job.rope.streaming = false;  // the rotated rows stay in the scratch, in cache
    job.rope.buffers = 1;
    // A positive guard below 1 / T's largest value would make 1 / max(den, epsilon) infinite, and
    // 0 * Inf = NaN where Eq. 19 gives 0 (found by fuzz_linear_attention): it is raised to that.
    const T smallest_guard = T(1) / std::numeric_limits<T>::max();
    job.epsilon = options.epsilon > 0 && static_cast<T>(options.epsilon) < smallest_guard ? smallest_guard
                                                                                        : static_cast<T>(options.epsilon);
    const std::size_t chunk = q.tokens < options.chunk_size ? (q.tokens == 0 ? 1 : q.tokens) : options.chunk_size;
    job.scratch = make_scratch_layout<T>(chunk, q.head_dim, v.head_dim, state ? 0 : k.heads);
    job.state_key_value = state ? state_access<T>::key_value(*state) : nullptr;
    job.state_key_sum = state ? state_access<T>::key_sum(*state) : nullptr;
    job.state_key_stride = state ? state_access<T>::key_stride(*state) : 0;
    return job;
}

// ---- The runners: everything below is templated on Arch ------------------------------------------

template <class Arch>
constexpr bool is_scalar_arch = std::is_same<Arch, scalar>::value;

template <class Arch, class T>
constexpr std::size_t lanes() noexcept {
    if constexpr (is_scalar_arch<Arch>)
        return 1;
    else
        return xsimd::batch<T, Arch>::size;
}

// Register tiles of the block products: rows x vectors accumulators, plus the vectors of one row of
// B and one broadcast. 6 x 4 = 24 of AVX-512's 32 registers, 6 x 2 = 12 of AVX's and SSE's 16.
template <class Arch>
constexpr std::size_t tile_rows = 6;
template <class Arch>
constexpr std::size_t tile_vectors = is_avx512<Arch> ? 4 : 2;

// Which part of a block product is needed, for the causal mask of a chunk (row i is query i,
// column or depth index j is key j; query i sees keys j <= i).
enum class triangle {
    none,     // all of it
    columns,  // at least the columns j <= i of row i (the scores Q~ K~^T; the rest is left unused)
    depth,    // exactly the terms j <= i of row i (the scores times V)
};

// One depth step j of a register tile: acc[i][v] += a(i, j) * b(j, v) for the rows i >= first_row
// (the rows before it are masked at this j: the causal diagonal). Plain functions, always inlined,
// so that the accumulators stay in registers.
template <class Arch, class T, std::size_t NR, std::size_t NV, std::size_t... V>
ROTARY_ALWAYS_INLINE void tile_row_step(xsimd::batch<T, Arch> (&acc)[NR][NV], std::size_t i, T a,
                                        const xsimd::batch<T, Arch> (&bv)[NV], std::index_sequence<V...>) noexcept {
    const xsimd::batch<T, Arch> ai(a);
    ((acc[i][V] = fmadd<Arch>(ai, bv[V], acc[i][V])), ...);
}
template <class Arch, class T, bool Masked, std::size_t NR, std::size_t NV, std::size_t... R, std::size_t... V>
ROTARY_ALWAYS_INLINE void tile_step(xsimd::batch<T, Arch> (&acc)[NR][NV], std::index_sequence<R...>,
                                    std::index_sequence<V...> v, const T* aj, std::ptrdiff_t a_row, const T* bj,
                                    std::size_t first_row) noexcept {
    using batch = xsimd::batch<T, Arch>;
    const batch bv[NV] = {batch::load_aligned(bj + V * batch::size)...};
    ((Masked && R < first_row ? void() : tile_row_step<Arch, T>(acc, R, aj[static_cast<std::ptrdiff_t>(R) * a_row], bv, v)),
     ...);
}

// One register tile: c(R, V) (+)= sum_j a(R, j) * b(j, V) over j in [0, depth): rows R of a at
// a + R * a_row, depth step a_col; row j of b at b + j * ldb. For j >= first_masked, row R takes the
// term only if j - first_masked <= R (the causal diagonal).
template <class Arch, class T, bool Accumulate, std::size_t... R, std::size_t... V>
inline void product_tile(std::index_sequence<R...> rows, std::index_sequence<V...> vectors, std::size_t depth,
                         std::size_t first_masked, const T* a, std::ptrdiff_t a_row, std::ptrdiff_t a_col, const T* b,
                         std::size_t ldb, T* c, std::size_t ldc) noexcept {
    using batch = xsimd::batch<T, Arch>;
    constexpr std::size_t W = batch::size, NR = sizeof...(R), NV = sizeof...(V);
    batch acc[NR][NV];
    for (std::size_t i = 0; i < NR; ++i)
        for (std::size_t v = 0; v < NV; ++v)
            acc[i][v] = Accumulate ? batch::load_aligned(c + i * ldc + v * W) : batch(T(0));
    const std::size_t full = first_masked < depth ? first_masked : depth;
    for (std::size_t j = 0; j < full; ++j)
        tile_step<Arch, T, false>(acc, rows, vectors, a + static_cast<std::ptrdiff_t>(j) * a_col, a_row, b + j * ldb, 0);
    for (std::size_t j = full; j < depth; ++j)
        tile_step<Arch, T, true>(acc, rows, vectors, a + static_cast<std::ptrdiff_t>(j) * a_col, a_row, b + j * ldb,
                                 j - first_masked);
    for (std::size_t i = 0; i < NR; ++i)
        for (std::size_t v = 0; v < NV; ++v) acc[i][v].store_aligned(c + i * ldc + v * W);
}

// C (rows x cols) (+)= A (rows x depth) * B (depth x cols), the block products of the chunked
// algorithm. A(i, j) at a[i * a_row + j * a_col] (any layout: it is broadcast); B row j at b + j * ldb
// and C row i at c + i * ldc, 64-byte aligned, cols a multiple of lanes<Arch, T>() within ldb, ldc.
template <class Arch, class T, bool Accumulate>
inline void block_product(triangle part, std::size_t rows, std::size_t cols, std::size_t depth, const T* a,
                          std::ptrdiff_t a_row, std::ptrdiff_t a_col, const T* b, std::size_t ldb, T* c,
                          std::size_t ldc) {
    if constexpr (is_scalar_arch<Arch>) {
        for (std::size_t i = 0; i < rows; ++i) {
            const std::size_t n_cols = part == triangle::columns && i + 1 < cols ? i + 1 : cols;
            const std::size_t n_depth = part == triangle::depth && i + 1 < depth ? i + 1 : depth;
            for (std::size_t col = 0; col < n_cols; ++col) {
                T sum = Accumulate ? c[i * ldc + col] : T(0);
                for (std::size_t j = 0; j < n_depth; ++j)
                    sum += a[static_cast<std::ptrdiff_t>(i) * a_row + static_cast<std::ptrdiff_t>(j) * a_col] *
                           b[j * ldb + col];
                c[i * ldc + col] = sum;
            }
        }
    } else {
        constexpr std::size_t W = lanes<Arch, T>();
        constexpr std::size_t MR = tile_rows<Arch>;
        constexpr std::size_t NV = tile_vectors<Arch>;
        for (std::size_t i0 = 0; i0 < rows; i0 += MR) {
            const std::size_t mr = rows - i0 < MR ? rows - i0 : MR;
            std::size_t tile_cols = cols, tile_depth = depth, first_masked = depth;
            if (part == triangle::columns) {
                const std::size_t needed = (i0 + mr + W - 1) / W * W;
                if (needed < tile_cols) tile_cols = needed;
            } else if (part == triangle::depth) {
                if (i0 + mr < tile_depth) tile_depth = i0 + mr;
                first_masked = i0;
            }
            const std::size_t vectors = tile_cols / W;
            const T* a_rows = a + static_cast<std::ptrdiff_t>(i0) * a_row;
            for (std::size_t v0 = 0; v0 < vectors; v0 += NV) {
                const std::size_t nv = vectors - v0 < NV ? vectors - v0 : NV;
                with_vector_count<MR>(mr, [&](auto r) {
                    with_vector_count<NV>(nv, [&](auto n) {
                        product_tile<Arch, T, Accumulate>(std::make_index_sequence<decltype(r)::value>{},
                                                          std::make_index_sequence<decltype(n)::value>{}, tile_depth,
                                                          first_masked, a_rows, a_row, a_col, b + v0 * W, ldb,
                                                          c + i0 * ldc + v0 * W, ldc);
                    });
                });
            }
        }
    }
}

// f[0 .. n) = phi(x[0 .. n)); f is padded and 64-byte aligned, its padding is left as it is (zero).
template <class Arch, class T, class Phi>
inline void feature_row(const Phi& phi, const T* x, std::size_t n, T* f) {
    std::size_t j = 0;
    if constexpr (!is_scalar_arch<Arch> && is_batch_callable<Phi>::value) {
        using batch = xsimd::batch<T, Arch>;
        constexpr std::size_t W = batch::size;
        for (; j + W <= n; j += W) phi(batch::load_unaligned(x + j)).store_aligned(f + j);
        if (j < n) {  // the tail through a zero-padded vector: nothing read or written past a row
            alignas(64) T tail[W] = {};
            for (std::size_t i = 0; j + i < n; ++i) tail[i] = x[j + i];
            phi(batch::load_aligned(tail)).store_aligned(tail);
            for (std::size_t i = 0; j + i < n; ++i) f[j + i] = tail[i];
        }
    } else {
        for (; j < n; ++j) f[j] = static_cast<T>(phi(x[j]));
    }
}

// sum_i a[i] * b[i] over n elements, n a multiple of lanes<Arch, T>(), a and b aligned.
template <class Arch, class T>
inline T dot(const T* a, const T* b, std::size_t n) {
    if constexpr (is_scalar_arch<Arch>) {
        T sum = T(0);
        for (std::size_t i = 0; i < n; ++i) sum += a[i] * b[i];
        return sum;
    } else {
        using batch = xsimd::batch<T, Arch>;
        constexpr std::size_t W = batch::size;
        batch sum(T(0));
        for (std::size_t i = 0; i < n; i += W)
            sum = fmadd<Arch>(batch::load_aligned(a + i), batch::load_aligned(b + i), sum);
        return xsimd::hadd(sum);
    }
}

// out[i] = a[i] + b[i] over n elements, n a multiple of lanes<Arch, T>(), all aligned.
template <class Arch, class T>
inline void add(const T* a, const T* b, T* out, std::size_t n) {
    if constexpr (is_scalar_arch<Arch>) {
        for (std::size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
    } else {
        using batch = xsimd::batch<T, Arch>;
        for (std::size_t i = 0; i < n; i += batch::size)
            (batch::load_aligned(a + i) + batch::load_aligned(b + i)).store_aligned(out + i);
    }
}

// out[0 .. n) = numerator[0 .. n) / max(denominator, epsilon): one output row of Eq. 19.
template <class Arch, class T>
inline void divide_row(const T* numerator, T denominator, T epsilon, std::size_t n, T* out) {
    const T inverse = T(1) / (denominator > epsilon ? denominator : epsilon);
    std::size_t j = 0;
    if constexpr (!is_scalar_arch<Arch>) {
        using batch = xsimd::batch<T, Arch>;
        for (; j + batch::size <= n; j += batch::size)
            (batch::load_aligned(numerator + j) * batch(inverse)).store_unaligned(out + j);
    }
    for (; j < n; ++j) out[j] = numerator[j] * inverse;
}

// Rotates rows [0, n) of f (row stride ld) in place by the angles of tokens t0 .. t0+n-1: Eq. 34
// through the core's kernels, on a rope job whose positions start at token t0.
template <class Arch, class T>
inline void rotate_rows(const linear_job<T>& job, std::size_t t0, std::size_t n, T* f, std::size_t ld) {
    rope_job<T, T> rope = job.rope;
    switch (rope.position_source) {
        case positions::kind::offset: rope.start += static_cast<std::int64_t>(t0); break;
        case positions::kind::ids32: rope.ids = static_cast<const std::int32_t*>(rope.ids) + t0; break;
        default: rope.ids = static_cast<const std::int64_t*>(rope.ids) + t0; break;
    }
    const auto stride = static_cast<std::ptrdiff_t>(ld);
    rope.buffer[0] = {f, f, 1, job.head_dim, stride, stride, stride, stride};
    run_tokens<Arch>(rope, 0, n);
}

// Asks for one row (bytes long) to be brought into the cache (L2) ahead of its chunk. Rows of a
// [tokens, heads, dim] buffer sit heads * dim elements apart, often a page or more, where the
// hardware prefetchers do not follow; the chunked paths ask for the rows prefetch_chunks chunks
// ahead, one per row they compute, which keeps the misses in flight without filling the queue
// (one chunk ahead left the time per token 5-8% higher once q, k, v, out outgrow the L3).
constexpr std::size_t prefetch_chunks = 2;

template <class Arch, class T>
inline void prefetch_row(const T* row, std::size_t bytes, bool for_writing) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    const char* p = reinterpret_cast<const char*>(row);
    for (std::size_t b = 0; b < bytes; b += 64) {
        if (for_writing)
            __builtin_prefetch(p + b, 1, 2);
        else
            __builtin_prefetch(p + b, 0, 2);
    }
#else
    (void)row, (void)bytes, (void)for_writing;
#endif
}

// The next chunk of a head: tokens [t0, t0 + n) clipped to the sequence.
template <class Arch, class T>
inline std::size_t chunk_length(const linear_job<T>& job, std::size_t t0) noexcept {
    return t0 >= job.tokens ? 0 : (job.tokens - t0 < job.scratch.chunk ? job.tokens - t0 : job.scratch.chunk);
}

// Pointers to the blocks of one runner's scratch.
template <class T>
struct scratch_blocks {
    T *key_features, *key_prefix, *keys_by_feature, *values, *query_features, *denominators, *scores, *numerators,
        *key_value, *key_sum;
};

template <class Arch, class T>
inline scratch_blocks<T> blocks_of(const linear_scratch_layout& s, T* base) noexcept {
    return {base + s.key_features, base + s.key_prefix, base + s.keys_by_feature, base + s.values,
            base + s.query_features, base + s.denominators, base + s.scores, base + s.numerators,
            base + s.key_value, base + s.key_sum};
}

// How load_keys sums phi(k), unrotated (the denominator's features): into z, or as the running
// sums z + phi(k_t0) + .. + phi(k_t) of every token t of the block (the causal denominators).
enum class key_sums { add_to_z, running };

// Tokens [t0, t0 + n) of kv head g into the scratch: phi(k), summed as asked; then R_n phi(k_n),
// transposed for the block products; and v.
template <class Arch, class T, class Phi>
inline void load_keys(const linear_job<T>& job, const Phi& phi, std::size_t g, std::size_t t0, std::size_t n,
                      key_sums sums, T* z, const scratch_blocks<T>& s) {
    const linear_scratch_layout& l = job.scratch;
    const auto h = static_cast<std::ptrdiff_t>(g);
    const std::size_t next = chunk_length<Arch>(job, t0 + prefetch_chunks * job.scratch.chunk);
    for (std::size_t m = 0; m < n; ++m) {
        const auto t = static_cast<std::ptrdiff_t>(t0 + m);
        if (m < next) {
            const auto ahead = static_cast<std::ptrdiff_t>(t0 + prefetch_chunks * job.scratch.chunk + m);
            prefetch_row<Arch>(job.k + ahead * job.k_token_stride + h * job.k_head_stride, job.head_dim * sizeof(T), false);
            prefetch_row<Arch>(job.v + ahead * job.v_token_stride + h * job.v_head_stride, job.value_dim * sizeof(T), false);
        }
        T* fk = s.key_features + m * l.ld_key;
        feature_row<Arch>(phi, job.k + t * job.k_token_stride + h * job.k_head_stride, job.head_dim, fk);
        if (sums == key_sums::add_to_z)
            add<Arch>(z, fk, z, l.ld_key);
        else
            add<Arch>(m == 0 ? z : s.key_prefix + (m - 1) * l.ld_key, fk, s.key_prefix + m * l.ld_key, l.ld_key);
        std::memcpy(s.values + m * l.ld_value, job.v + t * job.v_token_stride + h * job.v_head_stride,
                    job.value_dim * sizeof(T));
    }
    if (job.use_rope) rotate_rows<Arch>(job, t0, n, s.key_features, l.ld_key);
    for (std::size_t i = 0; i < job.head_dim; ++i)
        for (std::size_t m = 0; m < n; ++m) s.keys_by_feature[i * l.ld_chunk + m] = s.key_features[m * l.ld_key + i];
}

// Tokens [t0, t0 + n) of query head h: phi(q) into the scratch, the denominators
// phi(q_m)^T z_m (unrotated, Eq. 19) with z_m = key_sum_of(m), then R_m phi(q_m) in place.
template <class Arch, class T, class Phi, class KeySumOf>
inline void load_queries(const linear_job<T>& job, const Phi& phi, std::size_t h, std::size_t t0, std::size_t n,
                         KeySumOf key_sum_of, const scratch_blocks<T>& s) {
    const linear_scratch_layout& l = job.scratch;
    const auto head = static_cast<std::ptrdiff_t>(h);
    const std::size_t next = chunk_length<Arch>(job, t0 + prefetch_chunks * job.scratch.chunk);
    for (std::size_t m = 0; m < n; ++m) {
        const auto t = static_cast<std::ptrdiff_t>(t0 + m);
        if (m < next) {
            const auto ahead = static_cast<std::ptrdiff_t>(t0 + prefetch_chunks * job.scratch.chunk + m);
            prefetch_row<Arch>(job.q + ahead * job.q_token_stride + head * job.q_head_stride, job.head_dim * sizeof(T), false);
            prefetch_row<Arch>(job.out + ahead * job.out_token_stride + head * job.out_head_stride,
                               job.value_dim * sizeof(T), true);
        }
        T* fq = s.query_features + m * l.ld_key;
        feature_row<Arch>(phi, job.q + t * job.q_token_stride + head * job.q_head_stride, job.head_dim, fq);
        s.denominators[m] = dot<Arch>(fq, key_sum_of(m), l.ld_key);
    }
    if (job.use_rope) rotate_rows<Arch>(job, t0, n, s.query_features, l.ld_key);
}

template <class Arch, class T>
inline void store_outputs(const linear_job<T>& job, std::size_t h, std::size_t t0, std::size_t n,
                          const scratch_blocks<T>& s) {
    for (std::size_t m = 0; m < n; ++m)
        divide_row<Arch>(s.numerators + m * job.scratch.ld_value, s.denominators[m], job.epsilon, job.value_dim,
                         job.out + static_cast<std::ptrdiff_t>(t0 + m) * job.out_token_stride +
                             static_cast<std::ptrdiff_t>(h) * job.out_head_stride);
}

template <class Arch, class T>
constexpr std::size_t round_up_to_lanes(std::size_t n) noexcept {
    return (n + lanes<Arch, T>() - 1) / lanes<Arch, T>() * lanes<Arch, T>();
}

// The sums S, z of kv head g: the state's, or the scratch's.
template <class T>
struct kv_sums {
    T* key_value;
    T* key_sum;
};
template <class Arch, class T>
inline kv_sums<T> sums_of(const linear_job<T>& job, std::size_t g, const scratch_blocks<T>& s) noexcept {
    const linear_scratch_layout& l = job.scratch;
    if (job.state_key_value != nullptr)
        return {job.state_key_value + g * job.head_dim * l.ld_value, job.state_key_sum + g * job.state_key_stride};
    return {s.key_value + g * job.head_dim * l.ld_value, s.key_sum + g * l.ld_key};
}

// S += (R phi(K))^T V over the n tokens in the scratch.
template <class Arch, class T>
inline void absorb_keys(const linear_job<T>& job, std::size_t n, T* key_value, const scratch_blocks<T>& s) {
    const linear_scratch_layout& l = job.scratch;
    block_product<Arch, T, true>(triangle::none, job.head_dim, round_up_to_lanes<Arch, T>(job.value_dim), n,
                                 s.keys_by_feature, static_cast<std::ptrdiff_t>(l.ld_chunk), 1, s.values, l.ld_value,
                                 key_value, l.ld_value);
}

// The kv groups of the query heads [h0, h1): group g serves query heads [g * size, (g + 1) * size).
struct head_groups {
    std::size_t size, first, end;
};
template <class Arch, class T>
inline head_groups groups_of(const linear_job<T>& job, std::size_t h0, std::size_t h1) noexcept {
    const std::size_t size = job.q_heads / job.kv_heads;
    if (size == 0) return {1, 0, 0};  // q_heads 0 (a multiple of any kv_heads): no query head, no group
    return {size, h0 / size, h0 == h1 ? h0 / size : (h1 + size - 1) / size};
}

// Bidirectional (and the recurrent step, a one-token call on a state): S and z over all tokens
// first, then every query reads them: out_m = (R_m phi(q_m))^T S / phi(q_m)^T z. Chunk by chunk,
// every head of a chunk before the next chunk: a token's rows of all heads are usually one
// contiguous stretch of memory, read once while it is in the cache.
template <class Arch, class T, class Phi>
void run_bidirectional(const linear_job<T>& job, const Phi& phi, const scratch_blocks<T>& s, std::size_t h0,
                       std::size_t h1) {
    const linear_scratch_layout& l = job.scratch;
    const head_groups groups = groups_of<Arch>(job, h0, h1);
    for (std::size_t t0 = 0; t0 < job.tokens; t0 += l.chunk) {
        const std::size_t n = chunk_length<Arch>(job, t0);
        for (std::size_t g = groups.first; g < groups.end; ++g) {
            const kv_sums<T> sums = sums_of<Arch>(job, g, s);
            load_keys<Arch>(job, phi, g, t0, n, key_sums::add_to_z, sums.key_sum, s);
            absorb_keys<Arch>(job, n, sums.key_value, s);
        }
    }
    for (std::size_t t0 = 0; t0 < job.tokens; t0 += l.chunk) {
        const std::size_t n = chunk_length<Arch>(job, t0);
        for (std::size_t h = h0; h < h1; ++h) {
            const kv_sums<T> sums = sums_of<Arch>(job, h / groups.size, s);
            const T* z = sums.key_sum;
            load_queries<Arch>(job, phi, h, t0, n, [z](std::size_t) { return z; }, s);
            block_product<Arch, T, false>(triangle::none, n, round_up_to_lanes<Arch, T>(job.value_dim), job.head_dim,
                                          s.query_features, static_cast<std::ptrdiff_t>(l.ld_key), 1, sums.key_value,
                                          l.ld_value, s.numerators, l.ld_value);
            store_outputs<Arch>(job, h, t0, n, s);
        }
    }
}

// Causal, chunk by chunk (every head of a chunk before the next, as above): within a chunk the
// pairs n <= m through the masked block products (R phi(Q)) (R phi(K))^T and its product with V;
// the chunks before it through S; then the chunk joins S. The denominators use the running sums of
// the unrotated phi(k).
template <class Arch, class T, class Phi>
void run_causal(const linear_job<T>& job, const Phi& phi, const scratch_blocks<T>& s, std::size_t h0,
                std::size_t h1) {
    const linear_scratch_layout& l = job.scratch;
    const head_groups groups = groups_of<Arch>(job, h0, h1);
    const std::size_t value_cols = round_up_to_lanes<Arch, T>(job.value_dim);
    const auto ld_key = static_cast<std::ptrdiff_t>(l.ld_key), ld_chunk = static_cast<std::ptrdiff_t>(l.ld_chunk);
    for (std::size_t t0 = 0; t0 < job.tokens; t0 += l.chunk) {
        const std::size_t n = chunk_length<Arch>(job, t0);
        for (std::size_t g = groups.first; g < groups.end; ++g) {
            const kv_sums<T> sums = sums_of<Arch>(job, g, s);
            load_keys<Arch>(job, phi, g, t0, n, key_sums::running, sums.key_sum, s);
            const std::size_t first = g * groups.size < h0 ? h0 : g * groups.size;
            const std::size_t end = (g + 1) * groups.size < h1 ? (g + 1) * groups.size : h1;
            for (std::size_t h = first; h < end; ++h) {
                load_queries<Arch>(job, phi, h, t0, n, [&](std::size_t m) { return s.key_prefix + m * l.ld_key; }, s);
                block_product<Arch, T, false>(triangle::columns, n, round_up_to_lanes<Arch, T>(n), job.head_dim,
                                              s.query_features, ld_key, 1, s.keys_by_feature, l.ld_chunk, s.scores,
                                              l.ld_chunk);
                block_product<Arch, T, false>(triangle::depth, n, value_cols, n, s.scores, ld_chunk, 1, s.values,
                                              l.ld_value, s.numerators, l.ld_value);
                block_product<Arch, T, true>(triangle::none, n, value_cols, job.head_dim, s.query_features, ld_key, 1,
                                             sums.key_value, l.ld_value, s.numerators, l.ld_value);
                store_outputs<Arch>(job, h, t0, n, s);
            }
            absorb_keys<Arch>(job, n, sums.key_value, s);
            std::memcpy(sums.key_sum, s.key_prefix + (n - 1) * l.ld_key, l.ld_key * sizeof(T));
        }
    }
}

// Query heads [head_begin, head_end) of a validated job with a scratch of job.scratch.elements
// elements, 64-byte aligned and zero-filled (the padding of its rows must be zero; the sums it
// holds for a call without a state start at zero).
template <class Arch, class T, class Phi>
void run_linear(const linear_job<T>& job, const Phi& phi, T* scratch, std::size_t head_begin, std::size_t head_end) {
    const scratch_blocks<T> s = blocks_of<Arch>(job.scratch, scratch);
    if (job.kind == linear_kind::causal)
        run_causal<Arch>(job, phi, s, head_begin, head_end);
    else
        run_bidirectional<Arch>(job, phi, s, head_begin, head_end);
}

template <class T>
using aligned_buffer = std::vector<T, xsimd::aligned_allocator<T, 64>>;

template <class Arch, class T, class Phi>
void run_serial(const linear_job<T>& job, const Phi& phi) {
    aligned_buffer<T> scratch(job.scratch.elements, T(0));
    run_linear<Arch>(job, phi, scratch.data(), job.head_begin, job.head_end);
}

// Share i of `threads` of the job's query heads: whole kv groups when there are enough of them (no
// work repeated) or when a state is updated (a kv head's sums must have one writer), else heads.
template <class T>
token_span head_share(const linear_job<T>& job, std::size_t threads, std::size_t i) noexcept {
    const std::size_t group = job.q_heads / job.kv_heads;
    const std::size_t b = job.head_begin, e = job.head_end;
    auto split = [&](std::size_t first, std::size_t count) {
        const std::size_t share = count / threads, extra = count % threads;
        const std::size_t begin = first + i * share + (i < extra ? i : extra);
        return token_span{begin, begin + share + (i < extra ? 1 : 0)};
    };
    if (b == e) return {b, b};
    const std::size_t first_group = b / group, end_group = (e + group - 1) / group;
    if (job.state_key_value == nullptr && end_group - first_group < threads) return split(b, e - b);
    const token_span groups = split(first_group, end_group - first_group);
    const std::size_t begin = groups.begin * group < b ? b : groups.begin * group;
    const std::size_t end = groups.end * group > e ? e : groups.end * group;
    return begin < end ? token_span{begin, end} : token_span{b, b};
}

#if defined(_OPENMP)
template <class Arch, class T, class Phi>
void run_parallel(const linear_job<T>& job, const Phi& phi) {
    const auto max_threads = static_cast<std::size_t>(omp_get_max_threads());
    aligned_buffer<T> scratch(checked_mul(job.scratch.elements, max_threads, "linear attention scratch"), T(0));
#pragma omp parallel
    {
        const auto threads = static_cast<std::size_t>(omp_get_num_threads());
        const auto i = static_cast<std::size_t>(omp_get_thread_num());
        const token_span heads = head_share(job, threads, i);
        run_linear<Arch>(job, phi, scratch.data() + i * job.scratch.elements, heads.begin, heads.end);
    }
}
#endif

}  // namespace detail

// Bidirectional linear attention with RoPE, Eq. 19 (Eq. 18 with options.use_rope = false):
//   out_m = sum_n (R_m phi(q_m))^T (R_n phi(k_n)) v_n / max(sum_n phi(q_m)^T phi(k_n), epsilon)
// over all n, in O(N d d_v). q, k: [tokens, heads, head_dim]; v, out: [tokens, heads, value_dim],
// any strides; k and v may have fewer heads than q (GQA: query head h reads kv head
// h / (q.heads / k.heads)). Token t sits at position pos[t] (the table's layout and angles, as in
// apply). Arch: an xsimd arch (default: the one the compile flags allow) or rotary::scalar.
// Allocates rotary::linear_attention_scratch_bytes() per call. Throws std::invalid_argument /
// std::out_of_range before writing anything; phi must not throw.
template <class Arch = default_arch, class T, class Phi = feature_maps::elu_plus_one>
void linear_attention(const rope_table<T>& table, layout pair_layout, const heads_view<const detail::identity_t<T>>& q,
                      const heads_view<const detail::identity_t<T>>& k, const heads_view<const detail::identity_t<T>>& v,
                      const heads_view<T>& out, const positions& pos, const linear_attention_options& options = {},
                      const Phi& phi = {}) {
    detail::run_serial<Arch>(
        detail::make_linear_job(detail::linear_kind::bidirectional, table, pair_layout, q, k, v, out, pos, options, nullptr),
        phi);
}

// Causal linear attention with RoPE: Eq. 19 over n <= m, chunk by chunk (options.chunk_size).
template <class Arch = default_arch, class T, class Phi = feature_maps::elu_plus_one>
void causal_linear_attention(const rope_table<T>& table, layout pair_layout,
                             const heads_view<const detail::identity_t<T>>& q,
                             const heads_view<const detail::identity_t<T>>& k,
                             const heads_view<const detail::identity_t<T>>& v, const heads_view<T>& out,
                             const positions& pos, const linear_attention_options& options = {}, const Phi& phi = {}) {
    detail::run_serial<Arch>(
        detail::make_linear_job(detail::linear_kind::causal, table, pair_layout, q, k, v, out, pos, options, nullptr), phi);
}

// The same, continuing from `state` (the tokens a previous call or step absorbed come before these)
// and leaving it at the last token: prefill a prompt, then decode with linear_attention_step. Only
// the kv heads of the head range are read and updated (the range must hold whole kv groups).
template <class Arch = default_arch, class T, class Phi = feature_maps::elu_plus_one>
void causal_linear_attention(const rope_table<T>& table, layout pair_layout,
                             const heads_view<const detail::identity_t<T>>& q,
                             const heads_view<const detail::identity_t<T>>& k,
                             const heads_view<const detail::identity_t<T>>& v, const heads_view<T>& out,
                             const positions& pos, linear_attention_state<T>& state,
                             const linear_attention_options& options = {}, const Phi& phi = {}) {
    detail::run_serial<Arch>(
        detail::make_linear_job(detail::linear_kind::causal, table, pair_layout, q, k, v, out, pos, options, &state), phi);
}

// One token of causal linear attention, in recurrent form: the token at `position` joins the state
// (S += (R phi(k)) v^T, z += phi(k)), then out = (R phi(q))^T S / max(phi(q)^T z, epsilon). q, k,
// v, out are views of one token. O(d d_v) per head, whatever the length so far.
template <class Arch = default_arch, class T, class Phi = feature_maps::elu_plus_one>
void linear_attention_step(const rope_table<T>& table, layout pair_layout,
                           const heads_view<const detail::identity_t<T>>& q,
                           const heads_view<const detail::identity_t<T>>& k,
                           const heads_view<const detail::identity_t<T>>& v, const heads_view<T>& out,
                           std::int64_t position, linear_attention_state<T>& state,
                           const linear_attention_options& options = {}, const Phi& phi = {}) {
    detail::run_serial<Arch>(detail::make_linear_job(detail::linear_kind::step, table, pair_layout, q, k, v, out,
                                                     positions::starting_at(position), options, &state),
                             phi);
}

// The scratch a call without a state allocates (per thread for the OpenMP entry points), in bytes:
// independent of the length once it exceeds the chunk, about (4 d + 2 d_v + C) C elements plus the
// sums, kv_heads (d d_v + d) (which a call with a state keeps in the state instead).
template <class T>
std::size_t linear_attention_scratch_bytes(std::size_t tokens, std::size_t kv_heads, std::size_t head_dim,
                                           std::size_t value_dim, const linear_attention_options& options = {}) {
    const std::size_t chunk = tokens < options.chunk_size ? (tokens == 0 ? 1 : tokens) : options.chunk_size;
    return detail::make_scratch_layout<T>(chunk, head_dim, value_dim, kv_heads).elements * sizeof(T);
}

#if defined(_OPENMP)
// The same entry points with the heads split over the OpenMP threads (whole kv groups when there are
// at least as many as threads, or when a state is updated); validation happens once, before the
// parallel region. Declared only when the including translation unit has OpenMP.
template <class Arch = default_arch, class T, class Phi = feature_maps::elu_plus_one>
void linear_attention_parallel(const rope_table<T>& table, layout pair_layout,
                               const heads_view<const detail::identity_t<T>>& q,
                               const heads_view<const detail::identity_t<T>>& k,
                               const heads_view<const detail::identity_t<T>>& v, const heads_view<T>& out,
                               const positions& pos, const linear_attention_options& options = {}, const Phi& phi = {}) {
    detail::run_parallel<Arch>(
        detail::make_linear_job(detail::linear_kind::bidirectional, table, pair_layout, q, k, v, out, pos, options, nullptr),
        phi);
}
template <class Arch = default_arch, class T, class Phi = feature_maps::elu_plus_one>
void causal_linear_attention_parallel(const rope_table<T>& table, layout pair_layout,
                                      const heads_view<const detail::identity_t<T>>& q,
                                      const heads_view<const detail::identity_t<T>>& k,
                                      const heads_view<const detail::identity_t<T>>& v, const heads_view<T>& out,
                                      const positions& pos, const linear_attention_options& options = {},
                                      const Phi& phi = {}) {
    detail::run_parallel<Arch>(
        detail::make_linear_job(detail::linear_kind::causal, table, pair_layout, q, k, v, out, pos, options, nullptr), phi);
}
template <class Arch = default_arch, class T, class Phi = feature_maps::elu_plus_one>
void causal_linear_attention_parallel(const rope_table<T>& table, layout pair_layout,
                                      const heads_view<const detail::identity_t<T>>& q,
                                      const heads_view<const detail::identity_t<T>>& k,
                                      const heads_view<const detail::identity_t<T>>& v, const heads_view<T>& out,
                                      const positions& pos, linear_attention_state<T>& state,
                                      const linear_attention_options& options = {}, const Phi& phi = {}) {
    detail::run_parallel<Arch>(
        detail::make_linear_job(detail::linear_kind::causal, table, pair_layout, q, k, v, out, pos, options, &state), phi);
}
#endif

}  // namespace rotary

ROTARY_DIAGNOSTIC_POP

#endif  // ROTARY_LINEAR_ATTENTION_HPP
