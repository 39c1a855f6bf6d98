// The linear attention runners of one arch as plain function pointers, so that a translation unit
// compiled with that arch's flags (linear_attention_runners.cpp.in, one per arch) can hand them to
// the tests, which are compiled for the x86-64 baseline. Only the runners (templated on Arch) are
// instantiated there; the validation and the scratch stay in the baseline code.
#pragma once

#include <rotary/linear_attention.hpp>

namespace rotary_test {

struct linear_attention_runners {
    template <class T>
    using runner = void (*)(const rotary::detail::linear_job<T>&, const void* phi, T* scratch, std::size_t head_begin,
                            std::size_t head_end);

    const char* arch_name;
    runner<float> elu_f32, relu_f32;
    runner<double> elu_f64, relu_f64;

    template <class T, class Phi>
    runner<T> get() const noexcept {
        constexpr bool elu = std::is_same<Phi, rotary::feature_maps::elu_plus_one>::value;
        static_assert(elu || std::is_same<Phi, rotary::feature_maps::relu>::value, "the built-in feature maps only");
        if constexpr (std::is_same<T, double>::value)
            return elu ? elu_f64 : relu_f64;
        else
            return elu ? elu_f32 : relu_f32;
    }
};

template <class Arch, class T, class Phi>
void run_linear_attention(const rotary::detail::linear_job<T>& job, const void* phi, T* scratch, std::size_t head_begin,
                          std::size_t head_end) {
    rotary::detail::run_linear<Arch>(job, *static_cast<const Phi*>(phi), scratch, head_begin, head_end);
}

template <class Arch>
constexpr linear_attention_runners make_linear_attention_runners() noexcept {
    using rotary::feature_maps::elu_plus_one;
    using rotary::feature_maps::relu;
    return {Arch::name(), &run_linear_attention<Arch, float, elu_plus_one>, &run_linear_attention<Arch, float, relu>,
            &run_linear_attention<Arch, double, elu_plus_one>, &run_linear_attention<Arch, double, relu>};
}

}  // namespace rotary_test

#define ROTARY_TEST_DEFINE_LINEAR_ATTENTION_RUNNERS(id, ...)                                                   \
    const ::rotary_test::linear_attention_runners& rotary_linear_attention_runners_##id() noexcept {           \
        static constexpr ::rotary_test::linear_attention_runners set =                                        \
            ::rotary_test::make_linear_attention_runners<__VA_ARGS__>();                                      \
        return set;                                                                                           \
    }
#define ROTARY_TEST_DECLARE_LINEAR_ATTENTION_RUNNERS(id) \
    const ::rotary_test::linear_attention_runners& rotary_linear_attention_runners_##id() noexcept
