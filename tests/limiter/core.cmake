# The limiter's core, unit-tested like any other code (and under the sanitizers in the asan
# preset), plus checks on the built library itself: which glibc versions it needs, what it
# exports, that it needs no C++ runtime.
tideslice_test(limiter_core_test
  SOURCES config_test.cc ledger_test.cc allocation_table_test.cc share_governor_test.cc
  LIBS tideslice_limiter_core)

tideslice_test(limiter_library_test
  SOURCES library_test.cc
  LIBS tideslice_limiter_core)
add_dependencies(limiter_library_test tideslice-limiter)
target_compile_definitions(limiter_library_test PRIVATE
  TIDESLICE_LIMITER_SO="$<TARGET_FILE:tideslice-limiter>"
  TIDESLICE_LIMITER_EXPORTS_MAP="${PROJECT_SOURCE_DIR}/device-plugin/limiter/exports.map")
