// rotary: a KV cache of rotated keys and values for decoding with softmax attention.
// SPDX-License-Identifier: MIT
#ifndef ROTARY_KV_CACHE_HPP
#define ROTARY_KV_CACHE_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "apply.hpp"
#include "attention.hpp"
#include "detail/checks.hpp"
#include "table.hpp"
#include "types.hpp"

ROTARY_DIAGNOSTIC_PUSH

namespace rotary {

// Preallocated K [max_tokens x kv_heads x head_dim] and V [max_tokens x kv_heads x v_dim], fp32,
// 64-byte aligned, for one attention layer. Keys are stored rotated (Eq. 34) at their positions,
// so decoding reads each cached key as is; the position of every cached token is kept, so that
// the cache can be shifted (context shifting) and new queries rotated to match.
//
// The table and layout given at construction rotate every key and query of the cache; the table
// must outlive the cache. Every member that can fail validates first and throws (naming the
// parameter) with the cache unchanged.
class kv_cache {
  public:
    static constexpr std::size_t all = std::numeric_limits<std::size_t>::max();

    kv_cache(const rope_table<float>& table, layout pair_layout, std::size_t max_tokens, std::size_t kv_heads,
             std::size_t head_dim)
        : kv_cache(table, pair_layout, max_tokens, kv_heads, head_dim, head_dim) {}

    kv_cache(const rope_table<float>& table, layout pair_layout, std::size_t max_tokens, std::size_t kv_heads,
             std::size_t head_dim, std::size_t v_dim)
        : table_(&table), layout_(pair_layout), max_tokens_(max_tokens), kv_heads_(kv_heads), head_dim_(head_dim),
          v_dim_(v_dim) {
        if (pair_layout != layout::interleaved && pair_layout != layout::half_split)
            detail::throw_invalid("layout must be layout::interleaved or layout::half_split, got " +
                                  std::to_string(static_cast<int>(pair_layout)));
        if (max_tokens == 0) detail::throw_invalid("max_tokens must be > 0, got 0");
        if (kv_heads == 0) detail::throw_invalid("kv_heads must be > 0, got 0");
        if (head_dim == 0) detail::throw_invalid("head_dim must be > 0, got 0");
        if (v_dim == 0) detail::throw_invalid("v_dim must be > 0, got 0");
        if (table.rotary_dim() > head_dim)
            detail::throw_invalid("rotary_dim " + std::to_string(table.rotary_dim()) + " exceeds head_dim " +
                                  std::to_string(head_dim));
        const std::size_t rows = detail::checked_mul(max_tokens, kv_heads, "max_tokens * kv_heads");
        keys_.resize(detail::checked_mul(rows, head_dim, "cache size"));
        values_.resize(detail::checked_mul(rows, v_dim, "cache size"));
        positions_.resize(max_tokens);
    }

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    std::size_t max_tokens() const noexcept { return max_tokens_; }
    std::size_t kv_heads() const noexcept { return kv_heads_; }
    std::size_t head_dim() const noexcept { return head_dim_; }
    std::size_t v_dim() const noexcept { return v_dim_; }
    const rope_table<float>& table() const noexcept { return *table_; }
    layout pair_layout() const noexcept { return layout_; }

    // The cached tokens: rotated keys, values, and the position of each token.
    heads_view<const float> keys() const { return heads_view<const float>(keys_.data(), size_, kv_heads_, head_dim_); }
    heads_view<const float> values() const { return heads_view<const float>(values_.data(), size_, kv_heads_, v_dim_); }
    const std::int64_t* position_ids() const noexcept { return positions_.data(); }
    positions key_positions() const noexcept { return positions::from_ids(positions_.data(), size_); }
    // The position append() gives the next token: one past the last cached token's, 0 when empty.
    std::int64_t next_position() const noexcept { return size_ == 0 ? 0 : positions_[size_ - 1] + 1; }

    // Appends k.tokens tokens: the keys rotated at positions next_position(), next_position() + 1, ...
    // (straight into the cache, out of place) and the values copied. k [tokens x kv_heads x head_dim],
    // v [tokens x kv_heads x v_dim], any strides. Throws std::out_of_range when the cache would
    // overflow.
    template <class Arch = default_arch>
    void append(const heads_view<const float>& k, const heads_view<const float>& v) {
        append<Arch>(k, v, positions::starting_at(next_position()));
    }

    // The same at the positions given (one per token, e.g. position ids).
    template <class Arch = default_arch>
    void append(const heads_view<const float>& k, const heads_view<const float>& v, const positions& pos) {
        detail::checked_view ck, cv;
        detail::check_view(k, "k", ck);
        detail::check_view(v, "v", cv);
        if (k.heads != kv_heads_ || k.head_dim != head_dim_)
            detail::fail_invalid([&] {
                return "k is " + std::to_string(k.tokens) + " tokens x " + std::to_string(k.heads) + " heads x " +
                       std::to_string(k.head_dim) + ", the cache holds " + std::to_string(kv_heads_) + " heads x " +
                       std::to_string(head_dim_);
            });
        if (v.tokens != k.tokens || v.heads != kv_heads_ || v.head_dim != v_dim_)
            detail::fail_invalid([&] {
                return "v is " + std::to_string(v.tokens) + " tokens x " + std::to_string(v.heads) + " heads x " +
                       std::to_string(v.head_dim) + ", expected k.tokens " + std::to_string(k.tokens) + " x " +
                       std::to_string(kv_heads_) + " x " + std::to_string(v_dim_);
            });
        if (k.tokens > max_tokens_ - size_)
            detail::fail_range([&] {
                return "appending " + std::to_string(k.tokens) + " tokens overflows the cache: size " +
                       std::to_string(size_) + " + " + std::to_string(k.tokens) + " > max_tokens " +
                       std::to_string(max_tokens_);
            });
        const heads_view<float> key_rows(keys_.data() + size_ * kv_heads_ * head_dim_, k.tokens, kv_heads_, head_dim_);
        const heads_view<float> value_rows(values_.data() + size_ * kv_heads_ * v_dim_, k.tokens, kv_heads_, v_dim_);
        detail::checked_view cvr;
        detail::check_view(value_rows, "the cache's values", cvr);
        detail::check_disjoint(cv, cvr);
        detail::check_positions_named<Arch>("positions", pos, k.tokens, table_->max_positions());
        // Validated: nothing below can fail. apply checks again (cheaply) and rotates into the cache.
        apply<Arch>(*table_, layout_, k, key_rows, pos);
        for (std::size_t t = 0; t < k.tokens; ++t) {
            for (std::size_t h = 0; h < kv_heads_; ++h)
                std::memcpy(value_rows.row(t, h), v.row(t, h), v_dim_ * sizeof(float));
            positions_[size_ + t] = pos[t];
        }
        size_ += k.tokens;
    }

    // Attention of new queries against the whole cache (single- and multi-token decode): q
    // [tokens x q_heads x head_dim] holds the queries of the last q.tokens cached tokens (append
    // their keys and values first), rotated inside at those tokens' positions; q_heads a multiple
    // of kv_heads. By default causal: query t sees cached tokens 0 .. size() - q.tokens + t.
    template <class Arch = default_arch>
    void attend(const heads_view<const float>& q, const heads_view<float>& out,
                const attention_options& options = attention_options::causal_mask()) const {
        attend<Arch>(q, newest_positions(q.tokens), out, options);
    }

    // The same with the queries' positions given.
    template <class Arch = default_arch>
    void attend(const heads_view<const float>& q, const positions& q_positions, const heads_view<float>& out,
                const attention_options& options = attention_options::causal_mask()) const {
        detail::run_attention<Arch>(detail::make_attention_job<Arch>(table_, layout_, &q_positions, nullptr, q, keys(),
                                                                     values(), out, options));
    }

#if defined(_OPENMP)
    // attend with the kv heads (and, for few heads, the tokens) split over the OpenMP threads.
    template <class Arch = default_arch>
    void attend_parallel(const heads_view<const float>& q, const heads_view<float>& out,
                         const attention_options& options = attention_options::causal_mask()) const {
        const positions q_positions = newest_positions(q.tokens);
        detail::run_attention_parallel<Arch>(detail::make_attention_job<Arch>(table_, layout_, &q_positions, nullptr, q,
                                                                              keys(), values(), out, options));
    }
#endif

    // Moves cached tokens [first, last) by delta positions: each key is rotated once more, by delta,
    // since R_{m+delta} = R_delta R_m (rotations compose, Eq. 15); delta < 0 rotates by R_|delta|^T.
    // The table only holds non-negative positions, so |delta| < table().max_positions(), and every
    // new position must lie in [0, max_positions). Each shift rounds the keys once more in fp32
    // (about 1e-7 relative per shift, so about 1e-5 after a hundred shifts of the same tokens).
    template <class Arch = default_arch>
    void shift(std::int64_t delta, std::size_t first = 0, std::size_t last = all) {
        if (last == all) last = size_;
        check_token_range("shift", first, last);
        if (delta == 0 || first == last) return;
        // |delta| without wrapping (also for INT64_MIN): -(delta + 1) fits in int64.
        const std::uint64_t magnitude =
            delta < 0 ? static_cast<std::uint64_t>(-(delta + 1)) + 1 : static_cast<std::uint64_t>(delta);
        const std::uint64_t max_positions = table_->max_positions();
        if (magnitude >= max_positions)
            detail::fail_range([&] {
                return "shift delta " + std::to_string(delta) + ": |delta| must be < the table's max_positions " +
                       std::to_string(max_positions);
            });
        for (std::size_t i = first; i < last; ++i) {
            const std::int64_t moved = positions_[i] + delta;  // |positions| and |delta| < 2^32: no overflow
            if (moved < 0 || static_cast<std::uint64_t>(moved) >= max_positions)
                detail::fail_range([&] {
                    return "shift delta " + std::to_string(delta) + " moves token " + std::to_string(i) +
                           " from position " + std::to_string(positions_[i]) + " to " + std::to_string(moved) +
                           ", outside the table's positions [0, " + std::to_string(max_positions) + ")";
                });
        }
        // Every row of the range is rotated by the same angle: view them as the heads of a single
        // token at position |delta|.
        const std::size_t rows = (last - first) * kv_heads_;
        const heads_view<float> range(keys_.data() + first * kv_heads_ * head_dim_, 1, rows, head_dim_,
                                      static_cast<std::ptrdiff_t>(rows * head_dim_), static_cast<std::ptrdiff_t>(head_dim_));
        apply_options options;
        options.dir = delta < 0 ? direction::inverse : direction::forward;
        apply<Arch>(*table_, layout_, range, positions::starting_at(static_cast<std::int64_t>(magnitude)), options);
        for (std::size_t i = first; i < last; ++i) positions_[i] += delta;
    }

    // Removes cached tokens [first, last); the later ones move down, keeping their positions
    // (context shifting: erase(keep, keep + discard), then shift(-discard, keep)).
    void erase(std::size_t first, std::size_t last) {
        check_token_range("erase", first, last);
        const std::size_t tail = size_ - last;
        std::memmove(keys_.data() + first * kv_heads_ * head_dim_, keys_.data() + last * kv_heads_ * head_dim_,
                     tail * kv_heads_ * head_dim_ * sizeof(float));
        std::memmove(values_.data() + first * kv_heads_ * v_dim_, values_.data() + last * kv_heads_ * v_dim_,
                     tail * kv_heads_ * v_dim_ * sizeof(float));
        std::memmove(positions_.data() + first, positions_.data() + last, tail * sizeof(std::int64_t));
        size_ -= last - first;
    }

    void clear() noexcept { size_ = 0; }

  private:
    // The positions of the last `tokens` cached tokens.
    positions newest_positions(std::size_t tokens) const {
        if (tokens > size_)
            detail::fail_range([&] {
                return "q.tokens " + std::to_string(tokens) + " exceeds the cache's size " + std::to_string(size_) +
                       " (the queries are the last tokens appended)";
            });
        return positions::from_ids(positions_.data() + (size_ - tokens), tokens);
    }

    void check_token_range(const char* what, std::size_t first, std::size_t last) const {
        if (first > last || last > size_)
            detail::fail_range([&] {
                return std::string(what) + ": token range [" + std::to_string(first) + ", " + std::to_string(last) +
                       ") is not within the cache's " + std::to_string(size_) + " tokens";
            });
    }

    const rope_table<float>* table_;
    layout layout_;
    std::size_t max_tokens_, kv_heads_, head_dim_, v_dim_;
    std::size_t size_ = 0;
    std::vector<float, xsimd::aligned_allocator<float, 64>> keys_, values_;
    std::vector<std::int64_t> positions_;
};

}  // namespace rotary

ROTARY_DIAGNOSTIC_POP

#endif  // ROTARY_KV_CACHE_HPP
