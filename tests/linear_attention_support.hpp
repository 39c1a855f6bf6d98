// Shared by the linear attention tests: the paths a test can run (the public entry points, the
// scalar runners, each SIMD arch this CPU runs) and the independent oracles, in double:
//   - Eq. 19 evaluated directly, every (m, n) pair, with the dense rotation matrix of Eq. 15;
//   - the recurrent form, one token at a time, for long sequences.
#pragma once

#include "linear_attention_runners.hpp"
#include "support.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

ROTARY_TEST_DECLARE_LINEAR_ATTENTION_RUNNERS(sse2);
ROTARY_TEST_DECLARE_LINEAR_ATTENTION_RUNNERS(avx2);
ROTARY_TEST_DECLARE_LINEAR_ATTENTION_RUNNERS(avx512bw);

namespace rotary_test {

enum class attention_kind { bidirectional, causal };

// "default": the public entry points (xsimd::default_arch of this translation unit); otherwise a
// runner set, fed a job validated here.
struct la_backend {
    std::string name;
    const linear_attention_runners* runners;  // null for "default"
};

inline const linear_attention_runners& scalar_linear_attention_runners() {
    static constexpr linear_attention_runners set = make_linear_attention_runners<rotary::scalar>();
    return set;
}

inline std::vector<la_backend> la_backends() {
    std::vector<la_backend> all = {{"default", nullptr}, {"scalar", &scalar_linear_attention_runners()}};
    if (rotary::cpu_supports<xsimd::sse2>()) all.push_back({"sse2", &rotary_linear_attention_runners_sse2()});
    if (rotary::cpu_supports<xsimd::fma3<xsimd::avx2>>()) all.push_back({"avx2", &rotary_linear_attention_runners_avx2()});
    if (rotary::cpu_supports<xsimd::avx512bw>())
        all.push_back({"avx512bw", &rotary_linear_attention_runners_avx512bw()});
    return all;
}

inline std::vector<std::string> la_backend_names() { return {"default", "scalar", "sse2", "avx2", "avx512bw"}; }

inline const la_backend* find_la_backend(const std::string& name) {
    static const std::vector<la_backend> all = la_backends();
    for (const la_backend& b : all)
        if (b.name == name) return &b;
    return nullptr;
}

template <class Phi>
constexpr bool built_in_feature_map = std::is_same<Phi, rotary::feature_maps::elu_plus_one>::value ||
                                      std::is_same<Phi, rotary::feature_maps::relu>::value;

template <class T, class Phi>
void run_runner(const la_backend& b, const rotary::detail::linear_job<T>& job, const Phi& phi) {
    if constexpr (built_in_feature_map<Phi>) {
        std::vector<T, xsimd::aligned_allocator<T, 64>> scratch(job.scratch.elements, T(0));
        b.runners->get<T, Phi>()(job, &phi, scratch.data(), job.head_begin, job.head_end);
    } else {
        ADD_FAILURE() << "the runner sets hold the built-in feature maps only; a user's runs on \"default\"";
    }
}

// One call of kind `kind` (with `state`: the causal call that continues it) on backend b.
template <class T, class Phi = rotary::feature_maps::elu_plus_one>
void run_attention(const la_backend& b, attention_kind kind, const rotary::rope_table<T>& table, rotary::layout l,
                   rotary::heads_view<const T> q, rotary::heads_view<const T> k, rotary::heads_view<const T> v,
                   rotary::heads_view<T> out, const rotary::positions& pos,
                   const rotary::linear_attention_options& o = {},
                   rotary::linear_attention_state<rotary::detail::identity_t<T>>* state = nullptr, const Phi& phi = {}) {
    if (b.runners == nullptr) {
        if (kind == attention_kind::bidirectional)
            rotary::linear_attention(table, l, q, k, v, out, pos, o, phi);
        else if (state != nullptr)
            rotary::causal_linear_attention(table, l, q, k, v, out, pos, *state, o, phi);
        else
            rotary::causal_linear_attention(table, l, q, k, v, out, pos, o, phi);
        return;
    }
    const auto k_ind = kind == attention_kind::causal ? rotary::detail::linear_kind::causal
                                                      : rotary::detail::linear_kind::bidirectional;
    run_runner(b, rotary::detail::make_linear_job(k_ind, table, l, q, k, v, out, pos, o, state), phi);
}

// One token through linear_attention_step on backend b.
template <class T, class Phi = rotary::feature_maps::elu_plus_one>
void run_step(const la_backend& b, const rotary::rope_table<T>& table, rotary::layout l, rotary::heads_view<const T> q,
              rotary::heads_view<const T> k, rotary::heads_view<const T> v, rotary::heads_view<T> out,
              std::int64_t position, rotary::linear_attention_state<T>& state,
              const rotary::linear_attention_options& o = {}, const Phi& phi = {}) {
    if (b.runners == nullptr) return rotary::linear_attention_step(table, l, q, k, v, out, position, state, o, phi);
    run_runner(b,
               rotary::detail::make_linear_job(rotary::detail::linear_kind::step, table, l, q, k, v, out,
                                               rotary::positions::starting_at(position), o, &state),
               phi);
}

// ---- Oracles, in double ------------------------------------------------------------------------

// The feature maps again, written out in double.
inline double elu_plus_one(double x) { return x > 0 ? x + 1 : std::exp(x); }
inline double relu(double x) { return x > 0 ? x : 0; }

struct oracle_setup {
    rotary::layout pair_layout = rotary::layout::interleaved;
    std::size_t rotary_dim = 0;  // 0: head_dim
    double base = 10000.0;
    bool use_rope = true;
    double epsilon = 1e-6;
    double (*phi)(double) = &elu_plus_one;
};

// The features of one head of one token, phi(x), and R_m phi(x) (dense Eq. 15 matrix).
template <class T>
std::vector<double> features(const T* x, std::size_t d, double (*phi)(double)) {
    std::vector<double> f(d);
    for (std::size_t i = 0; i < d; ++i) f[i] = phi(static_cast<double>(x[i]));
    return f;
}
inline std::vector<double> rotated(const std::vector<double>& f, const oracle_setup& s, std::int64_t position) {
    if (!s.use_rope) return f;
    const std::size_t d = f.size(), rd = s.rotary_dim == 0 ? d : s.rotary_dim;
    const Eigen::MatrixXd r = rotation_matrix(s.pair_layout, d, rd, static_cast<double>(position), default_thetas(rd, s.base));
    const Eigen::VectorXd y = r * Eigen::Map<const Eigen::VectorXd>(f.data(), static_cast<Eigen::Index>(d));
    return std::vector<double>(y.data(), y.data() + d);
}
inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0;
    for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
}

// Eq. 19 (Eq. 18 when !use_rope) evaluated directly: for every m, the sums over every n (n <= m
// when causal) of (R_m phi(q_m))^T (R_n phi(k_n)) v_n and of phi(q_m)^T phi(k_n). Returns
// [tokens, q heads, value_dim].
template <class T>
std::vector<double> eq19_direct(rotary::heads_view<const T> q, rotary::heads_view<const T> k,
                                rotary::heads_view<const T> v, const std::vector<std::int64_t>& pos, bool causal,
                                const oracle_setup& s) {
    const std::size_t N = q.tokens, H = q.heads, G = k.heads, d = q.head_dim, dv = v.head_dim;
    std::vector<double> out(N * H * dv);
    std::vector<std::vector<double>> fk(N * G), rk(N * G);
    for (std::size_t n = 0; n < N; ++n)
        for (std::size_t g = 0; g < G; ++g) {
            fk[n * G + g] = features(k.row(n, g), d, s.phi);
            rk[n * G + g] = rotated(fk[n * G + g], s, pos[n]);
        }
    for (std::size_t m = 0; m < N; ++m)
        for (std::size_t h = 0; h < H; ++h) {
            const std::size_t g = h / (H / G);
            const auto fq = features(q.row(m, h), d, s.phi);
            const auto rq = rotated(fq, s, pos[m]);
            std::vector<double> num(dv, 0.0);
            double den = 0;
            for (std::size_t n = 0; n < (causal ? m + 1 : N); ++n) {
                const double w = dot(rq, rk[n * G + g]);
                den += dot(fq, fk[n * G + g]);
                for (std::size_t j = 0; j < dv; ++j) num[j] += w * static_cast<double>(v.row(n, g)[j]);
            }
            for (std::size_t j = 0; j < dv; ++j) out[(m * H + h) * dv + j] = num[j] / std::max(den, s.epsilon);
        }
    return out;
}

// Causal linear attention in its recurrent form, in double: per kv head S += (R_n phi(k_n)) v_n^T,
// z += phi(k_n), then each query reads them. O(N d d_v): the oracle for long sequences.
template <class T>
std::vector<double> causal_recurrent(rotary::heads_view<const T> q, rotary::heads_view<const T> k,
                                     rotary::heads_view<const T> v, const std::vector<std::int64_t>& pos,
                                     const oracle_setup& s) {
    const std::size_t N = q.tokens, H = q.heads, G = k.heads, d = q.head_dim, dv = v.head_dim;
    std::vector<double> out(N * H * dv);
    std::vector<double> S(G * d * dv, 0.0), z(G * d, 0.0);
    for (std::size_t t = 0; t < N; ++t) {
        for (std::size_t g = 0; g < G; ++g) {
            const auto fk = features(k.row(t, g), d, s.phi);
            const auto rk = rotated(fk, s, pos[t]);
            for (std::size_t i = 0; i < d; ++i) {
                z[g * d + i] += fk[i];
                for (std::size_t j = 0; j < dv; ++j) S[(g * d + i) * dv + j] += rk[i] * static_cast<double>(v.row(t, g)[j]);
            }
        }
        for (std::size_t h = 0; h < H; ++h) {
            const std::size_t g = h / (H / G);
            const auto fq = features(q.row(t, h), d, s.phi);
            const auto rq = rotated(fq, s, pos[t]);
            double den = 0;
            for (std::size_t i = 0; i < d; ++i) den += fq[i] * z[g * d + i];
            for (std::size_t j = 0; j < dv; ++j) {
                double num = 0;
                for (std::size_t i = 0; i < d; ++i) num += rq[i] * S[(g * d + i) * dv + j];
                out[(t * H + h) * dv + j] = num / std::max(den, s.epsilon);
            }
        }
    }
    return out;
}

// fp32 results carry the rounding of sums over tokens and features; fp64 ones almost none.
template <class T>
constexpr double attention_tolerance() {
    return std::is_same<T, double>::value ? 1e-11 : 2e-5;
}

}  // namespace rotary_test
