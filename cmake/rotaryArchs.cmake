# rotary_arch_flags(<var> <arch>): the compile flags of one xsimd arch, for a translation unit
# that instantiates rotary's kernels for it (tests, benchmarks, runtime dispatch).
#   sse2       x86-64 baseline
#   avx2       AVX2 with FMA and F16C (xsimd::fma3<xsimd::avx2>; every AVX2 CPU has F16C)
#   avx512bw   AVX-512 F/CD/DQ/BW (xsimd::avx512bw)
#   avx512bf16 avx512bw with VL and AVX512_BF16 (rotary::avx512bf16: Zen 4, Cooper Lake, Sapphire
#              Rapids; bf16 stores round with vcvtne2ps2bf16)
function(rotary_arch_flags var arch)
  if(arch STREQUAL "sse2")
    set(flags -msse2)
  elseif(arch STREQUAL "avx2")
    set(flags -mavx2 -mfma -mf16c)
  elseif(arch STREQUAL "avx512bw")
    set(flags -mavx512f -mavx512cd -mavx512dq -mavx512bw -mavx2 -mfma -mf16c)
  elseif(arch STREQUAL "avx512bf16")
    set(flags -mavx512f -mavx512cd -mavx512dq -mavx512bw -mavx512vl -mavx512bf16 -mavx2 -mfma -mf16c)
  else()
    message(FATAL_ERROR "rotary_arch_flags: unknown arch '${arch}' (sse2, avx2, avx512bw, avx512bf16)")
  endif()
  set(${var} ${flags} PARENT_SCOPE)
endfunction()

# The xsimd arch type of each name above.
function(rotary_arch_type var arch)
  if(arch STREQUAL "sse2")
    set(${var} "xsimd::sse2" PARENT_SCOPE)
  elseif(arch STREQUAL "avx2")
    set(${var} "xsimd::fma3<xsimd::avx2>" PARENT_SCOPE)
  elseif(arch STREQUAL "avx512bw")
    set(${var} "xsimd::avx512bw" PARENT_SCOPE)
  elseif(arch STREQUAL "avx512bf16")
    set(${var} "rotary::avx512bf16" PARENT_SCOPE)
  else()
    message(FATAL_ERROR "rotary_arch_type: unknown arch '${arch}' (sse2, avx2, avx512bw, avx512bf16)")
  endif()
endfunction()

# rotary_add_kernel_sets(<target> ARCHS <arch>... [SOURCES_VAR <var>])
# Adds to <target> one translation unit per arch, compiled with that arch's flags, that defines
# `const rotary::kernel_set& rotary_kernel_set_<arch>()` (see <rotary/kernel_set.hpp>): every
# kernel instantiated for that arch, callable from code built for the x86-64 baseline once the
# caller has checked the CPU (rotary::cpu_supports). The generated sources go to <var> if given.
set(_rotary_kernel_set_template "${CMAKE_CURRENT_LIST_DIR}/rotary_kernel_set.cpp.in")
function(rotary_add_kernel_sets target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "SOURCES_VAR" "ARCHS")
  set(sources)
  foreach(arch IN LISTS arg_ARCHS)
    rotary_arch_flags(flags ${arch})
    rotary_arch_type(ROTARY_ARCH_TYPE ${arch})
    set(ROTARY_ARCH_ID ${arch})
    set(source "${CMAKE_CURRENT_BINARY_DIR}/${target}_kernel_set_${arch}.cpp")
    configure_file("${_rotary_kernel_set_template}" "${source}" @ONLY)
    set_source_files_properties("${source}" PROPERTIES COMPILE_OPTIONS "${flags}")
    target_sources(${target} PRIVATE "${source}")
    list(APPEND sources "${source}")
  endforeach()
  if(arg_SOURCES_VAR)
    set(${arg_SOURCES_VAR} ${sources} PARENT_SCOPE)
  endif()
endfunction()

# rotary_add_dispatch(<target> ARCHS <arch>...)
# Runtime ISA dispatch for <target> (see <rotary/dispatch.hpp>): adds the kernel sets of the given
# archs (rotary_add_kernel_sets) and a registry translation unit, compiled with <target>'s own
# flags, that lists them in the given order (best first) followed by the scalar path. Then
# rotary::dispatch::apply(...) runs the first arch this CPU supports, or the one forced with
# rotary::dispatch::force_arch() or the environment variable ROTARY_FORCE_ARCH. Use it once per
# binary (the kernel sets are global symbols).
set(_rotary_dispatch_template "${CMAKE_CURRENT_LIST_DIR}/rotary_dispatch_registry.cpp.in")
function(rotary_add_dispatch target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "ARCHS")
  if(NOT arg_ARCHS)
    message(FATAL_ERROR "rotary_add_dispatch(${target}): give ARCHS, e.g. ARCHS avx512bw avx2 sse2")
  endif()
  rotary_add_kernel_sets(${target} ARCHS ${arg_ARCHS})
  set(ROTARY_DISPATCH_DECLARATIONS "")
  set(ROTARY_DISPATCH_ENTRIES "")
  foreach(arch IN LISTS arg_ARCHS)
    rotary_arch_type(type ${arch})
    string(APPEND ROTARY_DISPATCH_DECLARATIONS "ROTARY_DECLARE_KERNEL_SET(${arch});\n")
    string(APPEND ROTARY_DISPATCH_ENTRIES
      "        {\"${arch}\", &rotary::cpu_supports<${type}>, &rotary_kernel_set_${arch}},\n")
  endforeach()
  set(source "${CMAKE_CURRENT_BINARY_DIR}/${target}_dispatch_registry.cpp")
  configure_file("${_rotary_dispatch_template}" "${source}" @ONLY)
  target_sources(${target} PRIVATE "${source}")
endfunction()
