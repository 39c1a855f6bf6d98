// rotary: the vocabulary types of the public API (layer 3 of DESIGN.md: views).
// SPDX-License-Identifier: MIT
#ifndef ROTARY_TYPES_HPP
#define ROTARY_TYPES_HPP

#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "config.hpp"

namespace rotary {

// Which coordinates form a rotated pair. Always an explicit choice: a checkpoint trained with one
// layout gives fluent garbage with the other, never an error.
//
//   interleaved  pairs (x_2i, x_2i+1)     the paper's Eq. 34; RoFormer, GPT-J, ggml "normal" mode
//                [x0 x1 | x2 x3 | x4 x5 | ...]      ([c0 c0 c1 c1 ...], [s0 s0 s1 s1 ...])
//   half_split   pairs (x_i, x_i+d/2)     GPT-NeoX, LLaMA, Mistral, Qwen, HF `rotate_half`,
//                [x0 x1 .. x_h-1 | x_h .. x_d-1]    ggml NEOX mode; `is_neox=True` in vLLM,
//                 `-- pair i = (x_i, x_h+i) --'     `interleave=False` in FlashInfer
enum class layout { interleaved, half_split };

// forward rotates by +m*theta_i (R_m, Eq. 15); inverse by -m*theta_i (R_m^T = R_m^-1), which is
// what a backward pass or undoing a rotation needs.
enum class direction { forward, inverse };

// The scalar path: a tag used in place of an xsimd arch, e.g. rotary::apply<rotary::scalar>(...).
// It is the reference the SIMD paths are tested against.
struct scalar {
    static constexpr const char* name() noexcept { return "scalar"; }
};

// The cos/sin element type a buffer of T is computed with: fp64 buffers use an fp64 table, every
// other element type (fp32, and the half types of <rotary/half.hpp>) the fp32 one.
template <class T>
struct compute_type {
    using type = float;
};
template <>
struct compute_type<double> {
    using type = double;
};
template <class T>
using compute_type_t = typename compute_type<std::remove_const_t<T>>::type;

namespace detail {

[[noreturn]] ROTARY_COLD inline void throw_invalid(const std::string& what) {
    throw std::invalid_argument("rotary: " + what);
}
[[noreturn]] ROTARY_COLD inline void throw_range(const std::string& what) {
    throw std::out_of_range("rotary: " + what);
}

// Throw with a message that message() builds: the message code stays in the cold function, out of
// the caller's hot path.
template <class Message>
[[noreturn]] ROTARY_COLD void fail_invalid(const Message& message) {
    throw std::invalid_argument("rotary: " + message());
}
template <class Message>
[[noreturn]] ROTARY_COLD void fail_range(const Message& message) {
    throw std::out_of_range("rotary: " + message());
}

// out = a * b; true when it overflows.
inline bool mul_overflows(std::size_t a, std::size_t b, std::size_t& out) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_mul_overflow(a, b, &out);
#else
    out = a * b;
    return a != 0 && out / a != b;
#endif
}
// out = a + b; true when it overflows. Never wraps silently (the fuzzers run UBSan's
// unsigned-integer-overflow check, which then flags only wraps nobody checked).
inline bool add_overflows(std::size_t a, std::size_t b, std::size_t& out) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_add_overflow(a, b, &out);
#else
    out = a + b;
    return out < a;
#endif
}

// a * b with a check, for sizes that come from a caller.
inline std::size_t checked_mul(std::size_t a, std::size_t b, const char* what) {
    std::size_t out;
    if (mul_overflows(a, b, out))
        fail_invalid([&] { return std::string(what) + " overflows: " + std::to_string(a) + " * " + std::to_string(b); });
    return out;
}

template <class T>
struct identity {
    using type = T;
};
template <class T>
using identity_t = typename identity<T>::type;

}  // namespace detail

// A non-owning view of tokens x heads rows of head_dim contiguous elements, at arbitrary token and
// head strides (in elements). [batch*seq, heads, dim] (BSHD), one batch of [heads, seq, dim] (BHSD)
// and the q or k slice of a packed QKV projection are all just strides; nothing is copied.
template <class T>
struct heads_view {
    T* data = nullptr;
    std::size_t tokens = 0;
    std::size_t heads = 0;
    std::size_t head_dim = 0;
    std::ptrdiff_t token_stride = 0;  // elements from token t to token t+1
    std::ptrdiff_t head_stride = 0;   // elements from head h to head h+1

    constexpr heads_view() noexcept = default;

    // Contiguous [tokens, heads, head_dim].
    heads_view(T* data_, std::size_t tokens_, std::size_t heads_, std::size_t head_dim_)
        : data(data_), tokens(tokens_), heads(heads_), head_dim(head_dim_),
          token_stride(to_stride(detail::checked_mul(heads_, head_dim_, "heads * head_dim"))),
          head_stride(to_stride(head_dim_)) {}

    constexpr heads_view(T* data_, std::size_t tokens_, std::size_t heads_, std::size_t head_dim_,
                         std::ptrdiff_t token_stride_, std::ptrdiff_t head_stride_) noexcept
        : data(data_), tokens(tokens_), heads(heads_), head_dim(head_dim_),
          token_stride(token_stride_), head_stride(head_stride_) {}

    // A view of T converts to a view of const T.
    template <class U, class = std::enable_if_t<std::is_same<const U, T>::value && !std::is_const<U>::value>>
    constexpr heads_view(const heads_view<U>& other) noexcept
        : data(other.data), tokens(other.tokens), heads(other.heads), head_dim(other.head_dim),
          token_stride(other.token_stride), head_stride(other.head_stride) {}

    constexpr T* row(std::size_t token, std::size_t head) const noexcept {
        return data + static_cast<std::ptrdiff_t>(token) * token_stride +
               static_cast<std::ptrdiff_t>(head) * head_stride;
    }

  private:
    static std::ptrdiff_t to_stride(std::size_t n) {
        if (n > static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max()))
            detail::throw_invalid("stride " + std::to_string(n) + " does not fit in ptrdiff_t");
        return static_cast<std::ptrdiff_t>(n);
    }
};

// Where each token sits: token t of a view has position start + t, or position ids[t] (one id per
// token, e.g. a batch of decode steps at different KV-cache offsets).
class positions {
  public:
    enum class kind { offset, ids32, ids64 };

    static constexpr positions starting_at(std::int64_t start) noexcept {
        return positions(kind::offset, start, nullptr, nullptr, 0);
    }
    static constexpr positions from_ids(const std::int32_t* ids, std::size_t count) noexcept {
        return positions(kind::ids32, 0, ids, nullptr, count);
    }
    static constexpr positions from_ids(const std::int64_t* ids, std::size_t count) noexcept {
        return positions(kind::ids64, 0, nullptr, ids, count);
    }

    constexpr kind source() const noexcept { return kind_; }
    constexpr std::int64_t start() const noexcept { return start_; }
    constexpr std::size_t count() const noexcept { return count_; }
    constexpr const std::int32_t* ids32() const noexcept { return ids32_; }
    constexpr const std::int64_t* ids64() const noexcept { return ids64_; }

    // Position of token t. Not checked: the entry points validate every id they will read first.
    constexpr std::int64_t operator[](std::size_t t) const noexcept {
        return kind_ == kind::offset ? start_ + static_cast<std::int64_t>(t)
               : kind_ == kind::ids32 ? static_cast<std::int64_t>(ids32_[t])
                                      : ids64_[t];
    }

  private:
    constexpr positions(kind k, std::int64_t s, const std::int32_t* i32, const std::int64_t* i64,
                        std::size_t n) noexcept
        : kind_(k), start_(s), ids32_(i32), ids64_(i64), count_(n) {}

    kind kind_;
    std::int64_t start_;
    const std::int32_t* ids32_;
    const std::int64_t* ids64_;
    std::size_t count_;
};

// Options shared by every entry point. token_begin/token_end select a sub-range of the view's
// tokens, so a caller's own thread pool can split the work; positions and ids keep indexing the
// whole view (token t still has position start + t, or ids[t]).
struct apply_options {
    static constexpr std::size_t all_tokens = std::numeric_limits<std::size_t>::max();

    direction dir = direction::forward;
    std::size_t token_begin = 0;
    std::size_t token_end = all_tokens;  // all_tokens: up to the view's token count
};

}  // namespace rotary

#endif  // ROTARY_TYPES_HPP
