// Misuse that must not compile, next to the well-formed call it is a typo away from. Each case is
// built twice by ctest (CMakeLists.txt here): once as is, where every case must compile (so a
// broken harness cannot make the other tests pass), and once per case with ROTARY_MISUSE and
// ROTARY_CASE_<name> defined, which must fail with the diagnostic the test expects.
#include <rotary/rotary.hpp>

#include <cstdint>

// ROTARY_PICK(on, well-formed, misuse): the misuse only where the case under test switches it on.
#define ROTARY_PICK_0(good, bad) good
#define ROTARY_PICK_1(good, bad) bad
#define ROTARY_CAT(a, b) a##b
#define ROTARY_PICK(on, good, bad) ROTARY_CAT(ROTARY_PICK_, on)(good, bad)

#if defined(ROTARY_MISUSE) && defined(ROTARY_CASE_const_in_place)
#define CONST_IN_PLACE 1
#else
#define CONST_IN_PLACE 0
#endif
#if defined(ROTARY_MISUSE) && defined(ROTARY_CASE_const_in_place_qk)
#define CONST_IN_PLACE_QK 1
#else
#define CONST_IN_PLACE_QK 0
#endif
#if defined(ROTARY_MISUSE) && defined(ROTARY_CASE_const_output)
#define CONST_OUTPUT 1
#else
#define CONST_OUTPUT 0
#endif
#if defined(ROTARY_MISUSE) && defined(ROTARY_CASE_double_table_float_buffer)
#define DOUBLE_TABLE_FLOAT_BUFFER 1
#else
#define DOUBLE_TABLE_FLOAT_BUFFER 0
#endif
#if defined(ROTARY_MISUSE) && defined(ROTARY_CASE_float_table_double_buffer)
#define FLOAT_TABLE_DOUBLE_BUFFER 1
#else
#define FLOAT_TABLE_DOUBLE_BUFFER 0
#endif
#if defined(ROTARY_MISUSE) && defined(ROTARY_CASE_double_table_float_qk)
#define DOUBLE_TABLE_FLOAT_QK 1
#else
#define DOUBLE_TABLE_FLOAT_QK 0
#endif
#if defined(ROTARY_MISUSE) && defined(ROTARY_CASE_mixed_qk_types)
#define MIXED_QK_TYPES 1
#else
#define MIXED_QK_TYPES 0
#endif
#if defined(ROTARY_MISUSE) && defined(ROTARY_CASE_mixed_in_out_types)
#define MIXED_IN_OUT_TYPES 1
#else
#define MIXED_IN_OUT_TYPES 0
#endif
#if defined(ROTARY_MISUSE) && defined(ROTARY_CASE_integer_table)
#define INTEGER_TABLE 1
#else
#define INTEGER_TABLE 0
#endif

namespace {

constexpr auto L = rotary::layout::half_split;
constexpr auto P = rotary::positions::starting_at(0);

// Rotating a read-only buffer in place: apply(table, layout, heads_view<const float>, ...).
void const_in_place(float* x) {
    rotary::rope_table<float> table(4, 8);
    rotary::apply(table, L, rotary::heads_view<ROTARY_PICK(CONST_IN_PLACE, float, const float)>(x, 1, 2, 4), P);
}

void const_in_place_qk(float* q, float* k) {
    rotary::rope_table<float> table(4, 8);
    using V = rotary::heads_view<ROTARY_PICK(CONST_IN_PLACE_QK, float, const float)>;
    rotary::apply_qk(table, L, V(q, 1, 2, 4), V(k, 1, 1, 4), P);
}

// An output that is a view of const.
void const_output(const float* in, float* out) {
    rotary::rope_table<float> table(4, 8);
    rotary::apply(table, L, rotary::heads_view<const float>(in, 1, 2, 4),
                  rotary::heads_view<ROTARY_PICK(CONST_OUTPUT, float, const float)>(out, 1, 2, 4), P);
}

// A table of the other element type: rope_table<double> is for fp64 buffers, rope_table<float>
// for fp32 ones (and the half types).
void double_table_float_buffer(float* x) {
    rotary::rope_table<ROTARY_PICK(DOUBLE_TABLE_FLOAT_BUFFER, float, double)> table(4, 8);
    rotary::apply(table, L, rotary::heads_view<float>(x, 1, 2, 4), P);
}

void float_table_double_buffer(double* x) {
    rotary::rope_table<ROTARY_PICK(FLOAT_TABLE_DOUBLE_BUFFER, double, float)> table(4, 8);
    rotary::apply(table, L, rotary::heads_view<double>(x, 1, 2, 4), P);
}

void double_table_float_qk(const float* q, float* q_out, const float* k, float* k_out) {
    rotary::rope_table<ROTARY_PICK(DOUBLE_TABLE_FLOAT_QK, float, double)> table(4, 8);
    rotary::apply_qk(table, L, rotary::heads_view<const float>(q, 1, 2, 4), rotary::heads_view<float>(q_out, 1, 2, 4),
                     rotary::heads_view<const float>(k, 1, 1, 4), rotary::heads_view<float>(k_out, 1, 1, 4), P);
}

// q and k of different element types in one fused call.
void mixed_qk_types(float* q, float* k_float, double* k_double) {
    rotary::rope_table<float> table(4, 8);
    (void)k_float;
    (void)k_double;
    rotary::apply_qk(table, L, rotary::heads_view<float>(q, 1, 2, 4),
                     rotary::heads_view<ROTARY_PICK(MIXED_QK_TYPES, float, double)>(
                         ROTARY_PICK(MIXED_QK_TYPES, k_float, k_double), 1, 1, 4),
                     P);
}

// in and out of different element types.
void mixed_in_out_types(const float* in_float, const double* in_double, float* out) {
    rotary::rope_table<float> table(4, 8);
    (void)in_float;
    (void)in_double;
    rotary::apply(table, L,
                  rotary::heads_view<const ROTARY_PICK(MIXED_IN_OUT_TYPES, float, double)>(
                      ROTARY_PICK(MIXED_IN_OUT_TYPES, in_float, in_double), 1, 2, 4),
                  rotary::heads_view<float>(out, 1, 2, 4), P);
}

// A table of an element type that is not fp32 or fp64.
void integer_table() {
    rotary::rope_table<ROTARY_PICK(INTEGER_TABLE, float, std::int32_t)> table(4, 8);
    (void)table;
}

}  // namespace

// Called by nothing: the test only compiles this file.
void rotary_misuse_cases(float* f, double* d) {
    const_in_place(f);
    const_in_place_qk(f, f + 8);
    const_output(f, f + 8);
    double_table_float_buffer(f);
    float_table_double_buffer(d);
    double_table_float_qk(f, f + 8, f + 16, f + 20);
    mixed_qk_types(f, f + 8, d);
    mixed_in_out_types(f, d, f + 8);
    integer_table();
}
