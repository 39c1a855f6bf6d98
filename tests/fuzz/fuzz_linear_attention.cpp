// libFuzzer target: linear attention with RoPE (paper Eqs. 18-19), every entry point:
// linear_attention (bidirectional), causal_linear_attention without and with a state, and
// linear_attention_step. The input decodes to the entry point, fp32 or fp64, the layout (also values
// that are no enumerator), use_rope, the feature map (elu+1, relu), rotary_dim and the table size,
// the four views q, k, v, out (shapes, strides, the contiguous constructor, and where each lies: one
// of four arenas at any offset, null, or near the top of the address space; as in rope_call.hpp),
// chunk_size, epsilon, the head range, the position offset, the state's shape and the values.
//
// A model of the contract written from README.md and the header's comments (model() below) lists
// the violations. An invalid call must throw the documented exception naming one of them, through
// every backend, and leave every arena and the state byte-for-byte unchanged. A valid call runs on
// the default arch, the scalar runners and each SIMD arch this CPU runs (their runner sets, compiled
// per arch); each output is compared with Eq. 19 evaluated directly in double (every (m, n) pair,
// the dense rotation matrix; tests/linear_attention_support.hpp) and with the scalar result, within
//   |out - ref| <= 8 eps (N + d) (|ref| + sum_n |w_mn| |v_nj| / max(den_m, epsilon))
// where w_mn = sum_i |(R phi(q_m))_i (R phi(k_n))_i| (the terms of the score before they cancel),
// N the tokens summed, d head_dim: the rounding of sums of N and d products, relative to the sizes
// of their terms. Outputs whose denominator lies within 1e-3 of epsilon are not compared (the guard
// may switch on one side of the rounding and not on the other), nor those whose guarded denominator
// lies in T's underflow range (below (N + 1)(d + 1) 8 FLT_MIN for fp32). Every arena element outside
// out's rows must be unchanged.
#include "rope_call.hpp"

#include "../linear_attention_support.hpp"

namespace {

using rotary_fuzz::byte_code;
using rotary_fuzz::check;
using rotary_fuzz::contiguous_view;
using rotary_fuzz::double_code;
using rotary_fuzz::int_code;
using rotary_fuzz::model_view;
using rotary_fuzz::note;
using rotary_fuzz::raw_code;
using rotary_fuzz::size_code;
using rotary_fuzz::strided_view;
using rotary_fuzz::truth;
using rotary_fuzz::u128;
using rotary_fuzz::verdict;
using rotary_fuzz::view_spec;

constexpr std::size_t arena_count = rotary_fuzz::arena_count;
constexpr std::size_t max_arena = std::size_t{1} << 15;      // elements
constexpr std::size_t max_oracle_work = std::size_t{1} << 19;  // tokens^2 * q_heads * (d + d_v)
constexpr std::size_t max_state = std::size_t{1} << 16;      // state elements

enum class entry : std::uint8_t { bidirectional, causal, causal_state, step };

struct linear_attention_call {
    std::uint8_t element = 0;     // bit 0: fp32 / fp64
    std::uint8_t entry_raw = 1;   // entry, mod 4
    std::uint8_t layout_raw = 0;  // cast to rotary::layout as is
    std::uint8_t flags = 0;       // bit 0: use_rope = false; bit 1: relu; bit 2: head_end = all_heads
    std::uint8_t pairs_m1 = 3;    // rotary_dim = 2 * (pairs_m1 % 64 + 1)
    std::uint8_t positions_tag = 3;  // max_positions: 1, 2, 17 or 100
    view_spec q, k, v, out;
    std::uint64_t chunk_size = 4;
    double epsilon = 1e-6;
    std::uint64_t head_begin = 0, head_end = 0;
    std::int64_t start = 0;
    std::uint64_t state_kv = 0, state_d = 0, state_dv = 0;  // the state's shape (state entries)
    std::uint8_t value_mode = 0;  // bit 0: values in [-8, 8) rather than [-1, 1)
    std::uint32_t value_seed = 0;

    entry kind() const noexcept { return static_cast<entry>(entry_raw % 4); }
    bool use_rope() const noexcept { return !(flags & 1); }
    bool relu() const noexcept { return flags & 2; }
    bool all_heads() const noexcept { return flags & 4; }
    // The head range's end: all_heads (the flag, or the value itself) means q.heads.
    std::uint64_t end_head() const noexcept {
        return all_heads() || head_end == rotary::linear_attention_options::all_heads ? q.heads : head_end;
    }
    bool has_state() const noexcept { return kind() == entry::causal_state || kind() == entry::step; }
    std::size_t rotary_dim() const noexcept { return 2 * (std::size_t{pairs_m1} % 64 + 1); }
    std::size_t max_positions() const noexcept {
        static const std::size_t sizes[] = {1, 2, 17, 100};
        return sizes[positions_tag % 4];
    }

    template <class IO>
    void code(IO& io) {
        io(byte_code{}, element);
        io(byte_code{}, entry_raw);
        io(byte_code{}, layout_raw);
        io(byte_code{}, flags);
        io(byte_code{}, pairs_m1);
        io(byte_code{}, positions_tag);
        q.code(io);
        k.code(io);
        v.code(io);
        out.code(io);
        io(size_code{q.tokens}, chunk_size);
        io(double_code{}, epsilon);
        io(size_code{q.heads}, head_begin);
        if (!all_heads()) io(size_code{q.heads}, head_end);
        io(int_code{static_cast<std::int64_t>(rotary_fuzz::wrap_sub<std::uint64_t>(max_positions(), q.tokens))}, start);
        if (has_state()) {
            io(size_code{k.heads}, state_kv);
            io(size_code{q.head_dim}, state_d);
            io(size_code{v.head_dim}, state_dv);
        }
        io(byte_code{}, value_mode);
        io(raw_code<std::uint32_t>{}, value_seed);
    }

    std::string describe() const {
        static const char* entries[] = {"linear_attention", "causal_linear_attention", "causal_linear_attention(state)",
                                        "linear_attention_step"};
        std::string s = std::string(entries[static_cast<int>(kind())]) + "<" + (element & 1 ? "double" : "float") +
                        "> layout=" + std::to_string(layout_raw) + (use_rope() ? " rope" : " no-rope (Eq. 18)") +
                        (relu() ? " relu" : " elu+1") + " table(rotary_dim=" + std::to_string(rotary_dim()) +
                        ", max_positions=" + std::to_string(max_positions()) + ") q{" + q.describe() + "} k{" +
                        k.describe() + "} v{" + v.describe() + "} out{" + out.describe() + "} chunk_size=" +
                        std::to_string(chunk_size) + " epsilon=" + std::to_string(epsilon) + " heads[" +
                        std::to_string(head_begin) + ", " + (all_heads() ? std::string("all") : std::to_string(head_end)) +
                        ") start=" + std::to_string(start);
        if (has_state())
            s += " state(" + std::to_string(state_kv) + ", " + std::to_string(state_d) + ", " + std::to_string(state_dv) + ")";
        return s + " values=mode" + std::to_string(value_mode % 2) + "/seed" + std::to_string(value_seed);
    }

    static std::vector<std::pair<std::string, linear_attention_call>> seeds() {
        std::vector<std::pair<std::string, linear_attention_call>> s;
        const auto add = [&](const char* name, const auto& edit) {
            linear_attention_call c;
            c.q = contiguous_view(0, 0, 9, 4, 8);  // GQA: 4 query heads, 2 kv heads, d = 8, d_v = 6
            c.k = contiguous_view(1, 0, 9, 2, 8);
            c.v = contiguous_view(2, 0, 9, 2, 6);
            c.out = contiguous_view(3, 0, 9, 4, 6);
            c.flags = 4;
            c.value_seed = rotary_fuzz::seed_of(name);
            edit(c);
            c.state_kv = c.k.heads, c.state_d = c.q.head_dim, c.state_dv = c.v.head_dim;
            s.emplace_back(name, c);
        };
        add("seed-causal-gqa", [](linear_attention_call&) {});
        add("seed-bidirectional-f64-half-split", [](linear_attention_call& c) {
            c.entry_raw = 0, c.element = 1, c.layout_raw = 1;
        });
        add("seed-causal-state-relu-partial-rotary", [](linear_attention_call& c) {
            c.entry_raw = 2, c.flags = 2 | 4, c.pairs_m1 = 1, c.start = 50;
        });
        add("seed-step", [](linear_attention_call& c) {
            c.entry_raw = 3, c.q.tokens = c.k.tokens = c.v.tokens = c.out.tokens = 1, c.start = 99;
        });
        add("seed-packed-qkv-strided-out", [](linear_attention_call& c) {  // q, k, v of one projection
            const std::int64_t stride = (4 + 2 + 2) * 8;
            c.q = strided_view(0, 0, 9, 4, 8, stride, 8);
            c.k = strided_view(0, 32, 9, 2, 8, stride, 8);
            c.v = strided_view(0, 48, 9, 2, 6, stride, 8);
            c.out = strided_view(1, 3, 9, 4, 6, 29, 7);
            c.chunk_size = 3;
        });
        add("seed-head-range-no-rope", [](linear_attention_call& c) {
            c.flags = 1, c.head_begin = 2, c.head_end = 4, c.chunk_size = 100;
        });
        add("seed-bad-out-overlaps-q", [](linear_attention_call& c) { c.out = contiguous_view(0, 4, 9, 4, 6); });
        add("seed-bad-chunk-zero", [](linear_attention_call& c) { c.chunk_size = 0; });
        add("seed-bad-epsilon-nan", [](linear_attention_call& c) { c.epsilon = std::nan(""); });
        add("seed-bad-heads-not-multiple", [](linear_attention_call& c) {
            c.k = contiguous_view(1, 0, 9, 3, 8), c.v = contiguous_view(2, 0, 9, 3, 6);
        });
        add("seed-bad-position-past-table", [](linear_attention_call& c) { c.start = 95; });
        add("seed-bad-head-range", [](linear_attention_call& c) { c.flags = 0, c.head_begin = 3, c.head_end = 5; });
        add("seed-bad-step-two-tokens", [](linear_attention_call& c) {
            c.entry_raw = 3, c.q.tokens = c.k.tokens = c.v.tokens = c.out.tokens = 2;
        });
        add("seed-bad-state-shape", [](linear_attention_call& c) { c.entry_raw = 2; });  // state_dv edited below
        s.back().second.state_dv = 7;
        add("seed-bad-layout", [](linear_attention_call& c) { c.layout_raw = 2; });
        // Findings (README.md, "Fuzzing"): each input that once failed, kept as a regression test.
        add("regression-epsilon-past-fp32", [](linear_attention_call& c) {  // was cast to float: Inf, outputs 0
            c.chunk_size = 198, c.epsilon = 2.4807215961941413e40;
        });
        add("regression-head-end-all-heads-value", [](linear_attention_call& c) {  // the harness's model missed it
            c.flags = 0, c.head_begin = 2, c.head_end = rotary::linear_attention_options::all_heads;
        });
        return s;
    }

    void run() const {
        rotary_fuzz::with_element_type(element, [&](auto t) { run_typed<decltype(t)>(); });
    }

  private:
    // The contract (README.md "Linear attention", the header's comments), without the library's code.
    verdict model(model_view& mq, model_view& mk, model_view& mv, model_view& mo, double largest) const {
        verdict r;
        if (layout_raw > 1) r.must_invalid("layout");
        for (model_view* m : {&mq, &mk, &mv, &mo}) rotary_fuzz::view_violations(*m, r);
        if (k.tokens != q.tokens || v.tokens != q.tokens || out.tokens != q.tokens) r.must_invalid("same tokens");
        if (q.head_dim == 0 || v.head_dim == 0) r.must_invalid("must be > 0");
        if (k.head_dim != q.head_dim) r.must_invalid("k.head_dim");
        if (out.head_dim != v.head_dim) r.must_invalid("out.head_dim");
        if (out.heads != q.heads) r.must_invalid("out.heads");
        if (v.heads != k.heads) r.must_invalid("v.heads");
        if (k.heads == 0 || q.heads % k.heads != 0) r.must_invalid("multiple of k.heads");
        if (use_rope() && rotary_dim() > q.head_dim) r.must_invalid("exceeds q.head_dim");
        if (!(epsilon >= 0) || !(epsilon <= largest)) r.must_invalid("epsilon");  // largest: of the element type
        if (chunk_size == 0 || chunk_size > rotary::linear_attention_options::max_chunk_size) r.must_invalid("chunk_size");
        const std::uint64_t end = end_head();
        if (head_begin > end || end > q.heads) r.must_range("head range");
        if (has_state()) {
            if (state_kv != k.heads || state_d != q.head_dim || state_dv != v.head_dim) r.must_invalid("state is");
            const std::uint64_t group = k.heads == 0 || q.heads % k.heads != 0 ? 0 : q.heads / k.heads;
            if (group != 0 && head_begin <= end && end <= q.heads &&
                (head_begin % group != 0 || (end % group != 0 && end != head_begin)))
                r.must_invalid("with a state");
        }
        if (kind() == entry::step && q.tokens != 1) r.must_invalid("one token");
        const auto overlap = [&](truth t, const std::string& keyword, bool guaranteed_apart) {
            if (t == truth::yes)
                r.must_invalid(keyword);
            else if (!guaranteed_apart)
                r.may(rotary_fuzz::error_kind::invalid_argument, keyword);
        };
        if (mo.sane && mo.has_rows()) {
            const truth t = rotary_fuzz::rows_overlap(mo);
            if (t != truth::no || !rotary_fuzz::rows_nest(mo)) overlap(t, "out rows overlap", rotary_fuzz::rows_nest(mo));
            for (const model_view* in : {&mq, &mk, &mv})
                if (in->sane)
                    overlap(rotary_fuzz::views_overlap(mo, *in), "overlap in memory", rotary_fuzz::views_apart(mo, *in));
        }
        if (use_rope()) {  // positions are read (and checked) only when the features rotate
            if (start < 0)
                r.must_invalid("position offset");
            else if (q.tokens > 0 && rotary_fuzz::i128(start) + rotary_fuzz::i128(q.tokens - 1) >=
                                          rotary_fuzz::i128(max_positions()))
                r.must_range("max_positions");
        }
        return r;
    }

    template <class T>
    struct placed {
        rotary::heads_view<T> view;
        model_view model;
        int arena = -1;
    };

    // A spec's strides; false when its contiguous strides do not fit (the constructor's own checks
    // are fuzz_apply's business).
    static bool strides_of(const view_spec& s, std::int64_t& ts, std::int64_t& hs) {
        ts = s.token_stride, hs = s.head_stride;
        if (!(s.contiguous & 1)) return true;
        const u128 row = u128(s.heads) * s.head_dim;
        if (row > u128(PTRDIFF_MAX) || s.head_dim > std::uint64_t{PTRDIFF_MAX}) return false;
        ts = static_cast<std::int64_t>(row), hs = static_cast<std::int64_t>(s.head_dim);
        return true;
    }

    // The view of a spec at its place; false when the harness does not model it (strides as above,
    // or an arena too large to allocate).
    template <class T>
    static bool make(const view_spec& s, const char* name, std::unique_ptr<T[]> (&arenas)[arena_count],
                     const u128 (&sizes)[arena_count], placed<T>& p) {
        static T empty[1] = {};  // where a view without rows in an empty arena points
        std::int64_t ts = 0, hs = 0;
        if (!strides_of(s, ts, hs)) return false;
        T* data = nullptr;
        if (s.place < arena_count) {
            const bool rows = s.tokens != 0 && s.heads != 0 && s.head_dim != 0;
            if (arenas[s.place] && (rows || s.offset <= sizes[s.place])) {
                data = arenas[s.place].get() + s.offset;
                p.arena = s.place;
            } else if (!rows) {
                data = empty;
            } else {
                return false;
            }
        } else if (s.place == 5) {
            data = reinterpret_cast<T*>(rotary_fuzz::wild_base + (s.offset % 256) * sizeof(T));
        }
        p.view = rotary::heads_view<T>(data, s.tokens, s.heads, s.head_dim, ts, hs);
        p.model = {name, reinterpret_cast<std::uintptr_t>(data), sizeof(T), s.tokens, s.heads, s.head_dim, ts, hs, true};
        return true;
    }

    // Elements from an arena's start to the end of the view's last row (0 when it has no rows).
    // (Products of two 64-bit values and sums of a few fit in 128 bits: no wrap.)
    static u128 need(const view_spec& s) {
        if (s.tokens == 0 || s.heads == 0 || s.head_dim == 0) return 0;
        std::int64_t ts = 0, hs = 0;
        if (!strides_of(s, ts, hs)) return 0;
        if (ts < 0 || hs < 0) return u128(s.offset) + s.head_dim;
        return u128(s.offset) + u128(s.tokens - 1) * u128(ts) + u128(s.heads - 1) * u128(hs) + s.head_dim;
    }

    template <class T>
    void run_typed() const {
        // Arenas of exactly the extent of the views in them.
        const view_spec* specs[4] = {&q, &k, &v, &out};
        u128 size[arena_count] = {};
        for (const view_spec* s : specs)
            if (s->place < arena_count) size[s->place] = std::max(size[s->place], need(*s));
        std::unique_ptr<T[]> arenas[arena_count];
        std::vector<T> pristine[arena_count];
        rotary_fuzz::value_source values(value_seed);
        const T scale = value_mode & 1 ? T(8) : T(1);
        for (std::size_t a = 0; a < arena_count; ++a) {
            if (size[a] == 0 || size[a] > max_arena) continue;
            arenas[a].reset(new T[static_cast<std::size_t>(size[a])]);
            pristine[a].resize(static_cast<std::size_t>(size[a]));
            for (T& x : pristine[a]) x = static_cast<T>(values.uniform()) * scale;
        }
        placed<T> pq, pk, pv, po;
        if (!make(q, "q", arenas, size, pq) || !make(k, "k", arenas, size, pk) || !make(v, "v", arenas, size, pv) ||
            !make(out, "out", arenas, size, po))
            return note("skipped: a view the harness does not model (too large, or contiguous strides that overflow)");
        const verdict expect = model(pq.model, pk.model, pv.model, po.model, static_cast<double>(std::numeric_limits<T>::max()));
        note([&] { return "model: " + expect.describe(); });

        std::unique_ptr<rotary::linear_attention_state<T>> state;
        if (has_state()) {
            if (state_kv > max_state || state_d > max_state || state_dv > max_state ||
                u128(state_kv) * state_d * state_dv > max_state)
                return note("skipped: a state too large to allocate");
            verdict state_rules;
            if (state_kv == 0 || state_d == 0 || state_dv == 0) state_rules.must_invalid("must be > 0");
            if (!rotary_fuzz::call_checked(state_rules, "state constructor", [&] {
                    state = std::make_unique<rotary::linear_attention_state<T>>(state_kv, state_d, state_dv);
                }))
                return;
        }
        const bool valid = !expect.must_reject();
        if (valid)
            for (const placed<T>* p : {&pq, &pk, &pv, &po})
                if (p->model.has_rows() && p->arena < 0) return note("skipped: a valid view of memory not allocated");
        if (valid) {
            const long double work = static_cast<long double>(q.tokens) * static_cast<long double>(q.tokens) *
                                     static_cast<long double>(q.heads) *
                                     (static_cast<long double>(q.head_dim) + static_cast<long double>(v.head_dim));
            if (work > static_cast<long double>(max_oracle_work)) return note("skipped: too much work for the oracle");
        }

        const rotary::rope_table<T>& table =
            rotary_fuzz::cached_table<T>(rotary_dim(), max_positions(), 10000.0);
        rotary::linear_attention_options o;
        o.use_rope = use_rope();
        o.epsilon = epsilon;
        o.chunk_size = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_size, SIZE_MAX));
        o.head_begin = static_cast<std::size_t>(head_begin);
        o.head_end = all_heads() ? rotary::linear_attention_options::all_heads : static_cast<std::size_t>(head_end);
        const auto pair_layout = static_cast<rotary::layout>(layout_raw);
        const rotary::heads_view<const T> cq(pq.view.data, pq.view.tokens, pq.view.heads, pq.view.head_dim,
                                             pq.view.token_stride, pq.view.head_stride);
        const rotary::heads_view<const T> ck(pk.view.data, pk.view.tokens, pk.view.heads, pk.view.head_dim,
                                             pk.view.token_stride, pk.view.head_stride);
        const rotary::heads_view<const T> cv(pv.view.data, pv.view.tokens, pv.view.heads, pv.view.head_dim,
                                             pv.view.token_stride, pv.view.head_stride);

        std::vector<T> scalar_out;
        std::vector<double> reference, magnitude, denominators;
        for (const rotary_test::la_backend& b : rotary_test::la_backends()) {
            for (std::size_t a = 0; a < arena_count; ++a)
                if (arenas[a]) std::memcpy(arenas[a].get(), pristine[a].data(), pristine[a].size() * sizeof(T));
            if (state) state->reset();
            const bool ran = rotary_fuzz::call_checked(expect, b.name, [&] { invoke<T>(b, table, pair_layout, cq, ck, cv, po.view, o, state.get()); });
            if (!ran) {
                for (std::size_t a = 0; a < arena_count; ++a)
                    check(!arenas[a] || std::memcmp(arenas[a].get(), pristine[a].data(), pristine[a].size() * sizeof(T)) == 0,
                          [&] { return b.name + ": threw but arena " + std::to_string(a) + " changed"; });
                if (state) check(state_is_zero(*state), b.name + ": threw but the state changed");
                continue;
            }
            if (reference.empty()) oracle(cq, ck, cv, reference, magnitude, denominators);
            compare(b.name, po, arenas, pristine, reference, magnitude, denominators, scalar_out, b.name == "scalar");
        }
    }

    template <class T>
    static bool state_is_zero(const rotary::linear_attention_state<T>& s) {
        for (std::size_t g = 0; g < s.kv_heads(); ++g) {
            for (std::size_t i = 0; i < s.head_dim(); ++i) {
                if (s.key_sum(g)[i] != T(0)) return false;
                for (std::size_t j = 0; j < s.value_dim(); ++j)
                    if (s.key_value(g)[i * s.value_stride() + j] != T(0)) return false;
            }
        }
        return true;
    }

    template <class T>
    void invoke(const rotary_test::la_backend& b, const rotary::rope_table<T>& table, rotary::layout l,
                const rotary::heads_view<const T>& cq, const rotary::heads_view<const T>& ck,
                const rotary::heads_view<const T>& cv, const rotary::heads_view<T>& o_view,
                const rotary::linear_attention_options& o, rotary::linear_attention_state<T>* state) const {
        const auto pos = rotary::positions::starting_at(start);
        if (relu()) return invoke_with<T>(b, table, l, cq, ck, cv, o_view, pos, o, state, rotary::feature_maps::relu{});
        invoke_with<T>(b, table, l, cq, ck, cv, o_view, pos, o, state, rotary::feature_maps::elu_plus_one{});
    }
    template <class T, class Phi>
    void invoke_with(const rotary_test::la_backend& b, const rotary::rope_table<T>& table, rotary::layout l,
                     const rotary::heads_view<const T>& cq, const rotary::heads_view<const T>& ck,
                     const rotary::heads_view<const T>& cv, const rotary::heads_view<T>& o_view,
                     const rotary::positions& pos, const rotary::linear_attention_options& o,
                     rotary::linear_attention_state<T>* state, const Phi& phi) const {
        switch (kind()) {
            case entry::bidirectional:
                return rotary_test::run_attention<T>(b, rotary_test::attention_kind::bidirectional, table, l, cq, ck, cv,
                                                     o_view, pos, o, nullptr, phi);
            case entry::causal:
                return rotary_test::run_attention<T>(b, rotary_test::attention_kind::causal, table, l, cq, ck, cv, o_view,
                                                     pos, o, nullptr, phi);
            case entry::causal_state:
                return rotary_test::run_attention<T>(b, rotary_test::attention_kind::causal, table, l, cq, ck, cv, o_view,
                                                     pos, o, state, phi);
            case entry::step:
                return rotary_test::run_step<T>(b, table, l, cq, ck, cv, o_view, start, *state, o, phi);
        }
    }

    // Eq. 19 directly, in double, and each output's error scale (see the top of the file).
    template <class T>
    void oracle(const rotary::heads_view<const T>& cq, const rotary::heads_view<const T>& ck,
                const rotary::heads_view<const T>& cv, std::vector<double>& ref, std::vector<double>& magnitude,
                std::vector<double>& denominators) const {
        rotary_test::oracle_setup s;
        s.pair_layout = static_cast<rotary::layout>(layout_raw);
        s.rotary_dim = rotary_dim();
        s.use_rope = use_rope();
        s.epsilon = epsilon;
        s.phi = relu() ? &rotary_test::relu : &rotary_test::elu_plus_one;
        const bool causal = kind() != entry::bidirectional;
        std::vector<std::int64_t> pos(cq.tokens);
        for (std::size_t t = 0; t < pos.size(); ++t) pos[t] = start + static_cast<std::int64_t>(t);
        ref = rotary_test::eq19_direct(cq, ck, cv, pos, causal, s);
        const std::size_t N = cq.tokens, H = cq.heads, G = ck.heads, d = cq.head_dim, dv = cv.head_dim;
        magnitude.assign(N * H * dv, 0.0);
        denominators.assign(N * H, 0.0);
        for (std::size_t m = 0; m < N; ++m)
            for (std::size_t h = 0; h < H; ++h) {
                const std::size_t g = h / (H / G);
                const auto fq = rotary_test::features(cq.row(m, h), d, s.phi);
                const auto rq = rotary_test::rotated(fq, s, pos[m]);
                double den = 0;
                std::vector<double> mag(dv, 0.0);
                for (std::size_t n = 0; n < (causal ? m + 1 : N); ++n) {
                    const auto fk = rotary_test::features(ck.row(n, g), d, s.phi);
                    const auto rk = rotary_test::rotated(fk, s, pos[n]);
                    double w = 0;
                    for (std::size_t i = 0; i < d; ++i) w += std::fabs(rq[i] * rk[i]);
                    den += rotary_test::dot(fq, fk);
                    for (std::size_t j = 0; j < dv; ++j) mag[j] += w * std::fabs(static_cast<double>(cv.row(n, g)[j]));
                }
                denominators[m * H + h] = den;
                for (std::size_t j = 0; j < dv; ++j) magnitude[(m * H + h) * dv + j] = mag[j] / std::max(den, epsilon);
            }
    }

    // out's rows against the oracle and the scalar result; everything else in the arenas unchanged.
    template <class T>
    void compare(const std::string& who, const placed<T>& po, const std::unique_ptr<T[]> (&arenas)[arena_count],
                 const std::vector<T> (&pristine)[arena_count], const std::vector<double>& ref,
                 const std::vector<double>& magnitude, const std::vector<double>& denominators,
                 std::vector<T>& scalar_out, bool is_scalar) const {
        const rotary::heads_view<T>& o = po.view;
        const std::size_t H = o.heads, dv = o.head_dim;
        const std::size_t h0 = static_cast<std::size_t>(head_begin);
        const std::size_t h1 = static_cast<std::size_t>(end_head());
        const double eps = std::numeric_limits<T>::epsilon();
        std::vector<T> got(o.tokens * H * dv);
        std::vector<char> written(po.arena >= 0 ? pristine[po.arena].size() : 0, 0);
        for (std::size_t m = 0; m < o.tokens; ++m)
            for (std::size_t h = h0; h < h1; ++h) {
                const T* row = o.row(m, h);
                const std::size_t summed = kind() == entry::bidirectional ? o.tokens : m + 1;
                const double tol_scale = 8 * eps * (static_cast<double>(summed) + static_cast<double>(q.head_dim));
                const bool guard_edge = std::fabs(denominators[m * H + h] - epsilon) <= 1e-3 * std::max(epsilon, 1e-300);
                // Underflow zone: a guarded denominator below (N + 1)(d + 1) times T's smallest normal
                // value is a sum of products that may have lost their digits to subnormals (or to 0) in
                // T, where the double one has not: its quotient (0/0 = NaN with epsilon 0) is not
                // compared.
                const bool underflow = std::max(denominators[m * H + h], epsilon) <
                                       8 * static_cast<double>(summed + 1) * static_cast<double>(q.head_dim + 1) *
                                           static_cast<double>(std::numeric_limits<T>::min());
                for (std::size_t j = 0; j < dv; ++j) {
                    const std::size_t i = (m * H + h) * dv + j;
                    got[i] = row[j];
                    if (po.arena >= 0) written[static_cast<std::size_t>(row + j - arenas[po.arena].get())] = 1;
                    if (guard_edge || underflow) continue;
                    if (std::isnan(ref[i])) {  // 0 / 0: every feature zero and epsilon = 0
                        check(std::isnan(row[j]), [&] { return who + ": Eq. 19 in double is 0/0 (NaN), got " + std::to_string(row[j]); });
                        continue;
                    }
                    const double tol = tol_scale * (std::fabs(ref[i]) + magnitude[i]) + 8 * std::numeric_limits<T>::denorm_min();
                    check(std::isfinite(static_cast<double>(row[j])) && std::fabs(static_cast<double>(row[j]) - ref[i]) <= tol, [&] {
                        return who + ": out[" + std::to_string(m) + "][" + std::to_string(h) + "][" + std::to_string(j) +
                               "] = " + std::to_string(row[j]) + ", Eq. 19 in double gives " + std::to_string(ref[i]) +
                               " (tolerance " + std::to_string(tol) + ")";
                    });
                    if (!is_scalar && !scalar_out.empty())
                        check(std::fabs(static_cast<double>(row[j]) - static_cast<double>(scalar_out[i])) <= 2 * tol, [&] {
                            return who + ": out[" + std::to_string(m) + "][" + std::to_string(h) + "][" + std::to_string(j) +
                                   "] = " + std::to_string(row[j]) + ", the scalar path gives " + std::to_string(scalar_out[i]);
                        });
                }
            }
        if (is_scalar) scalar_out = got;
        for (std::size_t a = 0; a < arena_count; ++a) {
            if (!arenas[a]) continue;
            for (std::size_t e = 0; e < pristine[a].size(); ++e) {
                if (static_cast<int>(a) == po.arena && written[e]) continue;
                check(std::memcmp(&arenas[a][e], &pristine[a][e], sizeof(T)) == 0, [&] {
                    return who + ": arena " + std::to_string(a) + " element " + std::to_string(e) +
                           " changed, outside the rows of out's head range";
                });
            }
        }
    }
};

}  // namespace

ROTARY_FUZZ_TARGET(linear_attention_call)
