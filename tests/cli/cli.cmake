# kubectl-tideslice (cli/) and what it reads that the scheduler writes.

# The filter's per-node reasons on pending pods (read by `kubectl tideslice why`).
tideslice_test(filter_recorder_test
  SOURCES scheduler/service/filter_recorder_test.cc
  LIBS tideslice_service tideslice_test_apiserver)

# kubectl-tideslice: golden output per command against the test API server with recorded objects.
tideslice_test(kubectl_tideslice_test
  SOURCES cli/kubectl_tideslice_test.cc
  LIBS tideslice_cli tideslice_test_apiserver)
add_dependencies(kubectl_tideslice_test kubectl-tideslice)
target_compile_definitions(kubectl_tideslice_test PRIVATE KUBECTL_TIDESLICE_BINARY="$<TARGET_FILE:kubectl-tideslice>")

# Fuzz entry points of sizing by model, the filter record and kubectl-tideslice's views, run on
# seeds and mutations on every build; libFuzzer binaries with -DTIDESLICE_FUZZ=ON (clang).
add_library(tideslice_ml_fuzz_targets STATIC fuzz/ml_targets.cc)
target_include_directories(tideslice_ml_fuzz_targets PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(tideslice_ml_fuzz_targets PUBLIC tideslice_cli tideslice_sizing tideslice_filter_record tideslice_catalog)
tideslice_test(ml_fuzz_smoke_test
  SOURCES fuzz/ml_fuzz_smoke_test.cc
  LIBS tideslice_ml_fuzz_targets)
if(TIDESLICE_FUZZ)
  foreach(target model_annotations filter_record cli_views)
    tideslice_libfuzzer(fuzz_${target} SOURCES fuzz/ml_fuzz_main.cc LIBS tideslice_ml_fuzz_targets
                        DEFINITIONS TIDESLICE_FUZZ_TARGET=Fuzz_${target})
  endforeach()
endif()
