# rotary_add_linear_attention_runners(<target>): adds to <target> one translation unit per SIMD arch
# (sse2, avx2, avx512bw), compiled with that arch's flags, that defines
# rotary_linear_attention_runners_<arch>() (linear_attention_runners.hpp): the linear attention
# runners of that arch as plain function pointers, for the tests and the fuzz target.
set(_rotary_linear_attention_runners_dir "${CMAKE_CURRENT_LIST_DIR}")
function(rotary_add_linear_attention_runners target)
  foreach(arch sse2 avx2 avx512bw)
    rotary_arch_flags(arch_flags ${arch})
    rotary_arch_type(ROTARY_ARCH_TYPE ${arch})
    set(ROTARY_ARCH_ID ${arch})
    set(source "${CMAKE_CURRENT_BINARY_DIR}/${target}_${arch}.cpp")
    configure_file("${_rotary_linear_attention_runners_dir}/linear_attention_runners.cpp.in" "${source}" @ONLY)
    set_source_files_properties("${source}" PROPERTIES COMPILE_OPTIONS "${arch_flags}")
    target_sources(${target} PRIVATE "${source}")
  endforeach()
  target_include_directories(${target} PRIVATE "${_rotary_linear_attention_runners_dir}")
endfunction()
