// rotary: the kernels of one arch as a set of plain function pointers, so that a translation unit
// compiled with that arch's flags can hand them to code compiled for the x86-64 baseline (the
// tests and benchmarks that cover every arch in one binary, and runtime dispatch).
// SPDX-License-Identifier: MIT
#ifndef ROTARY_KERNEL_SET_HPP
#define ROTARY_KERNEL_SET_HPP

#include <cstddef>

#include "apply.hpp"
#include "multi_axis.hpp"
#include "table_free.hpp"

namespace rotary {

template <class T>
using rotate_kernel = void (*)(const detail::rope_job<T, compute_type_t<T>>&, std::size_t, std::size_t) noexcept;

struct kernel_set {
    const char* arch_name;
    rotate_kernel<float> rotate_f32;  // jobs of a rope_table
    rotate_kernel<double> rotate_f64;
    rotate_kernel<Eigen::half> rotate_f16;
    rotate_kernel<Eigen::bfloat16> rotate_bf16;
    rotate_kernel<float> rotate_table_free_f32;  // jobs of a rope_angles (table_free.hpp)
    rotate_kernel<double> rotate_table_free_f64;
    rotate_kernel<Eigen::half> rotate_table_free_f16;
    rotate_kernel<Eigen::bfloat16> rotate_table_free_bf16;
    rotate_kernel<float> rotate_multi_axis_f32;  // jobs of axis_positions (multi_axis.hpp)
    rotate_kernel<double> rotate_multi_axis_f64;
    rotate_kernel<Eigen::half> rotate_multi_axis_f16;
    rotate_kernel<Eigen::bfloat16> rotate_multi_axis_bf16;

    template <class T>
    rotate_kernel<T> rotate() const noexcept {
        if constexpr (std::is_same<T, double>::value)
            return rotate_f64;
        else if constexpr (std::is_same<T, Eigen::half>::value)
            return rotate_f16;
        else if constexpr (std::is_same<T, Eigen::bfloat16>::value)
            return rotate_bf16;
        else
            return rotate_f32;
    }
    template <class T>
    rotate_kernel<T> rotate_table_free() const noexcept {
        if constexpr (std::is_same<T, double>::value)
            return rotate_table_free_f64;
        else if constexpr (std::is_same<T, Eigen::half>::value)
            return rotate_table_free_f16;
        else if constexpr (std::is_same<T, Eigen::bfloat16>::value)
            return rotate_table_free_bf16;
        else
            return rotate_table_free_f32;
    }
    template <class T>
    rotate_kernel<T> rotate_multi_axis() const noexcept {
        if constexpr (std::is_same<T, double>::value)
            return rotate_multi_axis_f64;
        else if constexpr (std::is_same<T, Eigen::half>::value)
            return rotate_multi_axis_f16;
        else if constexpr (std::is_same<T, Eigen::bfloat16>::value)
            return rotate_multi_axis_bf16;
        else
            return rotate_multi_axis_f32;
    }
};

// Instantiates every kernel for Arch. Call it only in a translation unit compiled for Arch.
template <class Arch>
constexpr kernel_set make_kernel_set() noexcept {
    return {Arch::name(), &detail::run_tokens<Arch, float, float>, &detail::run_tokens<Arch, double, double>,
            &detail::run_tokens<Arch, Eigen::half, float>, &detail::run_tokens<Arch, Eigen::bfloat16, float>,
            &detail::run_tokens_table_free<Arch, float, float>, &detail::run_tokens_table_free<Arch, double, double>,
            &detail::run_tokens_table_free<Arch, Eigen::half, float>,
            &detail::run_tokens_table_free<Arch, Eigen::bfloat16, float>,
            &detail::run_tokens_multi_axis<Arch, float, float>, &detail::run_tokens_multi_axis<Arch, double, double>,
            &detail::run_tokens_multi_axis<Arch, Eigen::half, float>,
            &detail::run_tokens_multi_axis<Arch, Eigen::bfloat16, float>};
}

}  // namespace rotary

// In a translation unit compiled with Arch's flags: defines rotary_kernel_set_<id>(). The set is
// constant-initialized, so nothing compiled for Arch runs before a caller has checked the CPU.
#define ROTARY_DEFINE_KERNEL_SET(id, ...)                                          \
    const ::rotary::kernel_set& rotary_kernel_set_##id() noexcept {                \
        static constexpr ::rotary::kernel_set set = ::rotary::make_kernel_set<__VA_ARGS__>(); \
        return set;                                                                \
    }
// Anywhere: declares it.
#define ROTARY_DECLARE_KERNEL_SET(id) const ::rotary::kernel_set& rotary_kernel_set_##id() noexcept

#endif  // ROTARY_KERNEL_SET_HPP
