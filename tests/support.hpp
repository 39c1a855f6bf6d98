// Shared by the tests: independent oracles (the dense rotation matrix of Eq. 15 in double, the
// complex form of Eq. 12 in long double), random data, and the per-arch kernel sets.
#pragma once

#include <rotary/kernel_set.hpp>
#include <rotary/rotary.hpp>

#include <Eigen/Dense>
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

ROTARY_DECLARE_KERNEL_SET(sse2);
ROTARY_DECLARE_KERNEL_SET(avx2);
ROTARY_DECLARE_KERNEL_SET(avx512bw);
ROTARY_DECLARE_KERNEL_SET(avx512bf16);

namespace rotary_test {

// theta_i written out again from Sec. 3.2.2, independently of rotary::default_frequencies.
inline double theta(std::size_t i, std::size_t rotary_dim, double base = 10000.0) {
    return std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(rotary_dim));
}

// Index of the storage element that holds coordinate k of the interleaved order (x_0, x_1, ...) of
// the paper, for a head stored in `layout`. Interleaved: identity. Half-split: pair i is
// (x_i, x_{i+d/2}), so interleaved coordinate 2i lives at i and 2i+1 at i + d/2.
inline std::size_t storage_index(rotary::layout layout, std::size_t k, std::size_t rotary_dim) {
    if (layout == rotary::layout::interleaved || k >= rotary_dim) return k;
    return k % 2 == 0 ? k / 2 : k / 2 + rotary_dim / 2;
}

// R_{Theta,m} of Eq. 15 on the first rotary_dim coordinates (identity past them), in double, then
// moved to the storage order of `layout` by a permutation: P^T R P.
inline Eigen::MatrixXd rotation_matrix(rotary::layout layout, std::size_t head_dim, std::size_t rotary_dim,
                                       double m, const std::vector<double>& thetas) {
    Eigen::MatrixXd r = Eigen::MatrixXd::Identity(head_dim, head_dim);
    for (std::size_t i = 0; i < rotary_dim / 2; ++i) {
        const double c = std::cos(m * thetas[i]), s = std::sin(m * thetas[i]);
        r(2 * i, 2 * i) = c;
        r(2 * i, 2 * i + 1) = -s;
        r(2 * i + 1, 2 * i) = s;
        r(2 * i + 1, 2 * i + 1) = c;
    }
    Eigen::MatrixXd p = Eigen::MatrixXd::Zero(head_dim, head_dim);  // p * storage = interleaved order
    for (std::size_t k = 0; k < head_dim; ++k) p(k, storage_index(layout, k, rotary_dim)) = 1;
    return p.transpose() * r * p;
}

inline std::vector<double> default_thetas(std::size_t rotary_dim, double base = 10000.0) {
    std::vector<double> t(rotary_dim / 2);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = theta(i, rotary_dim, base);
    return t;
}

// One head rotated through the dense matrix (Eq. 15); inverse uses R^T.
template <class T>
std::vector<double> dense_rotate(rotary::layout layout, const T* head, std::size_t head_dim, std::size_t rotary_dim,
                                 double m, const std::vector<double>& thetas, bool inverse = false) {
    Eigen::VectorXd x(head_dim);
    for (std::size_t k = 0; k < head_dim; ++k) x(k) = static_cast<double>(head[k]);
    const Eigen::MatrixXd r = rotation_matrix(layout, head_dim, rotary_dim, m, thetas);
    const Eigen::VectorXd y = inverse ? Eigen::VectorXd(r.transpose() * x) : Eigen::VectorXd(r * x);
    return std::vector<double>(y.data(), y.data() + head_dim);
}

// One head rotated through the complex form of Eq. 12: pair i as x_a + i x_b times e^{i m theta_i}.
template <class T>
std::vector<long double> complex_rotate(rotary::layout layout, const T* head, std::size_t head_dim,
                                        std::size_t rotary_dim, long double m, long double base = 10000.0L) {
    std::vector<long double> y(head_dim);
    for (std::size_t k = 0; k < head_dim; ++k) y[k] = static_cast<long double>(head[k]);
    for (std::size_t i = 0; i < rotary_dim / 2; ++i) {
        const std::size_t a = storage_index(layout, 2 * i, rotary_dim), b = storage_index(layout, 2 * i + 1, rotary_dim);
        const long double th = std::pow(base, -2.0L * static_cast<long double>(i) / static_cast<long double>(rotary_dim));
        const std::complex<long double> z =
            std::complex<long double>(y[a], y[b]) * std::polar(1.0L, m * th);
        y[a] = z.real();
        y[b] = z.imag();
    }
    return y;
}

template <class T>
std::vector<T> random_vector(std::size_t n, std::uint32_t seed, double lo = -1.0, double hi = 1.0) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> dist(lo, hi);
    std::vector<T> v(n);
    for (auto& x : v) x = static_cast<T>(dist(rng));
    return v;
}

// Against the dense oracle: fp32 cos/sin are rounded to 6e-8; the oracle's own double angle
// m*theta is off by up to ~m * 1e-16 (4e-13 at m = 4096).
template <class T>
constexpr double tolerance() {
    return std::is_same<T, double>::value ? 2e-12 : 2e-6;
}

// A SIMD arch's kernel set, by name, with whether this CPU runs it. The set is fetched only once
// the CPU is known to run it: nothing compiled for a missing arch runs, not even its accessor.
struct arch_entry {
    std::string name;
    bool (*supported)() noexcept;
    const rotary::kernel_set& (*kernels)() noexcept;
};

inline const rotary::kernel_set& scalar_kernel_set() {
    static constexpr rotary::kernel_set set = rotary::make_kernel_set<rotary::scalar>();
    return set;
}

inline std::vector<arch_entry> simd_archs() {
    return {
        {"sse2", &rotary::cpu_supports<xsimd::sse2>, &rotary_kernel_set_sse2},
        {"avx2", &rotary::cpu_supports<xsimd::fma3<xsimd::avx2>>, &rotary_kernel_set_avx2},
        {"avx512bw", &rotary::cpu_supports<xsimd::avx512bw>, &rotary_kernel_set_avx512bw},
        {"avx512bf16", &rotary::cpu_supports<rotary::avx512bf16>, &rotary_kernel_set_avx512bf16},
    };
}

}  // namespace rotary_test

namespace rotary_test {

// The paths a test can run: "scalar", each SIMD arch this CPU runs, and "default" (the public
// entry points with xsimd::default_arch of this translation unit).
struct backend {
    std::string name;
    const rotary::kernel_set* kernels;  // null for "default"
};

inline std::vector<backend> backends() {
    std::vector<backend> all = {{"default", nullptr}, {"scalar", &scalar_kernel_set()}};
    for (const arch_entry& a : simd_archs())
        if (a.supported()) all.push_back({a.name, &a.kernels()});
    return all;
}

// A job of a rope_table runs the table kernel, one of a rope_angles (no table) the table-free one.
template <class T, class C>
void run_job(const backend& b, const rotary::detail::rope_job<T, C>& job) {
    const auto kernel = job.table != nullptr ? b.kernels->template rotate<T>() : b.kernels->template rotate_table_free<T>();
    kernel(job, job.range.begin, job.range.end);
}

// Source: a rope_table or a rope_angles (the table-free path).
template <class T, class Source>
void apply_in_place(const backend& b, const Source& table, rotary::layout layout,
                    rotary::heads_view<T> x, const rotary::positions& pos, const rotary::apply_options& o = {}) {
    if (!b.kernels) return rotary::apply(table, layout, x, pos, o);
    run_job(b, rotary::detail::job_in_place(table, layout, x, pos, o));
}

template <class T, class Source>
void apply_out_of_place(const backend& b, const Source& table, rotary::layout layout,
                        rotary::heads_view<const rotary::detail::identity_t<T>> in, rotary::heads_view<T> out, const rotary::positions& pos,
                        const rotary::apply_options& o = {}) {
    if (!b.kernels) return rotary::apply(table, layout, in, out, pos, o);
    run_job(b, rotary::detail::job_out_of_place(table, layout, in, out, pos, o));
}

template <class T, class Source>
void apply_qk_in_place(const backend& b, const Source& table, rotary::layout layout,
                       rotary::heads_view<T> q, rotary::heads_view<T> k, const rotary::positions& pos,
                       const rotary::apply_options& o = {}) {
    if (!b.kernels) return rotary::apply_qk(table, layout, q, k, pos, o);
    run_job(b, rotary::detail::job_qk_in_place(table, layout, q, k, pos, o));
}

template <class T, class Source>
void apply_qk_out_of_place(const backend& b, const Source& table, rotary::layout layout,
                           rotary::heads_view<const rotary::detail::identity_t<T>> q_in, rotary::heads_view<T> q_out,
                           rotary::heads_view<const rotary::detail::identity_t<T>> k_in, rotary::heads_view<T> k_out,
                           const rotary::positions& pos, const rotary::apply_options& o = {}) {
    if (!b.kernels) return rotary::apply_qk(table, layout, q_in, q_out, k_in, k_out, pos, o);
    run_job(b, rotary::detail::job_qk_out_of_place(table, layout, q_in, q_out, k_in, k_out, pos, o));
}

inline std::string layout_name(rotary::layout l) {
    return l == rotary::layout::interleaved ? "interleaved" : "half_split";
}

}  // namespace rotary_test
