# ctest helper: runs COMMAND (a ;-list) and passes when it exits non-zero with stderr matching ERROR.
#   cmake -DCOMMAND=<program;args...> -DERROR=<regex> -P expect_failure.cmake
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(result EQUAL 0)
  message(FATAL_ERROR "expected a failure, got exit status 0; stdout: ${out}")
endif()
if(NOT err MATCHES "${ERROR}")
  message(FATAL_ERROR "stderr does not match '${ERROR}': ${err}")
endif()
message(STATUS "failed as expected (${result}): ${err}")
