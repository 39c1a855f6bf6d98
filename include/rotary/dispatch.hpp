// rotary: runtime ISA dispatch, an opt-in for one binary that runs on every x86-64 machine.
//
// The default entry points (rotary::apply, ...) use the arch the including code is compiled for.
// A binary shipped to unknown machines is compiled for the baseline instead and picks the best
// kernels at run time: the CMake function rotary_add_dispatch(<target> ARCHS avx512bw avx2 sse2)
// adds one translation unit per arch, compiled with that arch's flags, plus a registry of them;
// rotary::dispatch::apply(...) and friends then run the first arch of that list the CPU supports
// (xsimd's dispatch rule: best first), or the one forced by force_arch() or by the environment
// variable ROTARY_FORCE_ARCH (read once, at the first call).
// SPDX-License-Identifier: MIT
#ifndef ROTARY_DISPATCH_HPP
#define ROTARY_DISPATCH_HPP

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "apply.hpp"
#include "kernel_set.hpp"
#include "multi_axis.hpp"
#include "table_free.hpp"

namespace rotary {
namespace dispatch {

// One arch compiled into the binary: its name, whether this CPU runs it, and its kernels.
struct registered_arch {
    const char* name;
    bool (*supported)() noexcept;
    const kernel_set& (*kernels)() noexcept;
};

}  // namespace dispatch
}  // namespace rotary

// Defined by the registry translation unit that rotary_add_dispatch() generates: the archs of its
// ARCHS list in that order, then "scalar".
const rotary::dispatch::registered_arch* rotary_dispatch_registry(std::size_t& count) noexcept;

ROTARY_DIAGNOSTIC_PUSH

namespace rotary {
namespace dispatch {
namespace detail {

constexpr std::size_t unset = static_cast<std::size_t>(-1);

inline std::atomic<std::size_t>& selected_index() {
    static std::atomic<std::size_t> index{unset};
    return index;
}

inline std::size_t find_arch(const char* name) {
    std::size_t count = 0;
    const registered_arch* archs = rotary_dispatch_registry(count);
    for (std::size_t i = 0; i < count; ++i)
        if (std::strcmp(archs[i].name, name) == 0) {
            if (!archs[i].supported())
                rotary::detail::fail_invalid([&] { return "arch " + std::string(name) + " is compiled in but this CPU does not run it"; });
            return i;
        }
    rotary::detail::fail_invalid([&] {
        std::string known;
        for (std::size_t i = 0; i < count; ++i) known += std::string(i ? ", " : "") + archs[i].name;
        return "arch '" + std::string(name) + "' is not compiled in (compiled: " + known + ")";
    });
}

// The arch in use: forced, else ROTARY_FORCE_ARCH, else the first supported one of the registry.
inline const registered_arch& selected() {
    std::size_t count = 0;
    const registered_arch* archs = rotary_dispatch_registry(count);
    std::size_t index = selected_index().load(std::memory_order_acquire);
    if (index == unset) {
        const char* forced = std::getenv("ROTARY_FORCE_ARCH");
        if (forced != nullptr && *forced != '\0') {
            try {
                index = find_arch(forced);
            } catch (const std::invalid_argument& e) {
                throw std::invalid_argument(std::string("rotary: ROTARY_FORCE_ARCH=") + forced + ": " + e.what());
            }
        } else {
            index = 0;
            while (index + 1 < count && !archs[index].supported()) ++index;
        }
        selected_index().store(index, std::memory_order_release);
    }
    return archs[index];
}

}  // namespace detail

// The name of the arch the dispatched entry points run ("avx512bw", "avx2", "sse2", "scalar").
inline const char* active_arch() { return detail::selected().name; }

// Force an arch by name, for every later call (tests, comparisons); nullptr or "" returns to the
// automatic choice. Throws std::invalid_argument if it is not compiled in or the CPU lacks it.
inline void force_arch(const char* name) {
    if (name == nullptr || *name == '\0') {
        std::size_t count = 0;
        const registered_arch* archs = rotary_dispatch_registry(count);
        std::size_t index = 0;
        while (index + 1 < count && !archs[index].supported()) ++index;
        detail::selected_index().store(index, std::memory_order_release);
        return;
    }
    detail::selected_index().store(detail::find_arch(name), std::memory_order_release);
}

// The archs compiled in that this CPU runs, best first.
inline std::vector<std::string> available_archs() {
    std::size_t count = 0;
    const registered_arch* archs = rotary_dispatch_registry(count);
    std::vector<std::string> names;
    for (std::size_t i = 0; i < count; ++i)
        if (archs[i].supported()) names.emplace_back(archs[i].name);
    return names;
}

namespace detail {

// The selected arch's kernel for a job of this cos/sin source and these positions.
template <class T, class Source, class Positions>
rotate_kernel<T> kernel_for() {
    const kernel_set& kernels = selected().kernels();
    if constexpr (std::is_same<Positions, axis_positions>::value)
        return kernels.rotate_multi_axis<T>();
    else if constexpr (std::is_same<Source, rope_angles<compute_type_t<T>>>::value)
        return kernels.rotate_table_free<T>();
    else
        return kernels.rotate<T>();
}

template <class T, class Source, class Positions, class C>
void run(const rotary::detail::rope_job<T, C>& job) {
    kernel_for<T, Source, Positions>()(job, job.range.begin, job.range.end);
}

}  // namespace detail

// rotary::apply and rotary::apply_qk, run by the selected arch: the same arguments (a rope_table
// or a rope_angles; positions or axis_positions), the same checks.
template <class T, class Source, class Positions>
void apply(const Source& source, layout pair_layout, const heads_view<T>& x, const Positions& pos,
           const apply_options& options = {}) {
    detail::run<T, Source, Positions>(rotary::detail::job_in_place(source, pair_layout, x, pos, options));
}
template <class T, class Source, class Positions>
void apply(const Source& source, layout pair_layout, const heads_view<const rotary::detail::identity_t<T>>& in,
           const heads_view<T>& out, const Positions& pos, const apply_options& options = {}) {
    detail::run<T, Source, Positions>(rotary::detail::job_out_of_place(source, pair_layout, in, out, pos, options));
}
template <class T, class Source, class Positions>
void apply_qk(const Source& source, layout pair_layout, const heads_view<T>& q, const heads_view<T>& k,
              const Positions& pos, const apply_options& options = {}) {
    detail::run<T, Source, Positions>(rotary::detail::job_qk_in_place(source, pair_layout, q, k, pos, options));
}
template <class T, class Source, class Positions>
void apply_qk(const Source& source, layout pair_layout, const heads_view<const rotary::detail::identity_t<T>>& q_in,
              const heads_view<T>& q_out, const heads_view<const rotary::detail::identity_t<T>>& k_in,
              const heads_view<T>& k_out, const Positions& pos, const apply_options& options = {}) {
    detail::run<T, Source, Positions>(
        rotary::detail::job_qk_out_of_place(source, pair_layout, q_in, q_out, k_in, k_out, pos, options));
}

}  // namespace dispatch
}  // namespace rotary

ROTARY_DIAGNOSTIC_POP

#endif  // ROTARY_DISPATCH_HPP
