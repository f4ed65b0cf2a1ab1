# The preloaded limiter against fake driver libraries: the fakes (real byte counts kept in a
# shared state file), workload programs that reach them as frameworks do, and the gtest
# harnesses that run the workloads with LD_PRELOAD=libtideslice-limiter.so.
# Included from tests/limiter/CMakeLists.txt.

set(TS_LIMITER_TEST_DIR ${CMAKE_CURRENT_LIST_DIR})
set(TS_LIMITER_FAKES_DIR ${CMAKE_CURRENT_BINARY_DIR}/fakes)
set(TS_LIMITER_PROGRAMS_DIR ${CMAKE_CURRENT_BINARY_DIR}/programs)

# The fakes and workloads run with the (never instrumented) limiter preloaded in front of them,
# so they are built without sanitizers too: a sanitizer runtime must come first in the initial
# library list, which a preloaded library prevents.
function(tideslice_limiter_uninstrumented target)
  target_compile_options(${target} PRIVATE -fno-sanitize=all)
  target_link_options(${target} PRIVATE -fno-sanitize=all)
endfunction()

# ---- fake driver libraries (tests/limiter/fakes)
function(tideslice_limiter_fake target output_name)
  cmake_parse_arguments(F "" "SOVERSION" "SOURCES;LIBS" ${ARGN})
  add_library(${target} SHARED ${F_SOURCES})
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${target} PRIVATE ${F_LIBS} Threads::Threads)
  set_target_properties(${target} PROPERTIES
    OUTPUT_NAME ${output_name}
    LIBRARY_OUTPUT_DIRECTORY ${TS_LIMITER_FAKES_DIR}
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  tideslice_limiter_uninstrumented(${target})
  if(F_SOVERSION)
    set_target_properties(${target} PROPERTIES SOVERSION ${F_SOVERSION})
  endif()
endfunction()

find_package(Threads REQUIRED)
tideslice_limiter_fake(tideslice_fake_cuda cuda SOVERSION 1 SOURCES ${TS_LIMITER_TEST_DIR}/fakes/fake_cuda.cc)
tideslice_limiter_fake(tideslice_fake_nvml nvidia-ml SOVERSION 1 SOURCES ${TS_LIMITER_TEST_DIR}/fakes/fake_nvml.cc)
tideslice_limiter_fake(tideslice_fake_ascend_runtime runtime SOURCES ${TS_LIMITER_TEST_DIR}/fakes/fake_ascend_runtime.cc)
# libascendcl.so calls rt* in libruntime.so through the PLT, as CANN 8.5 does.
tideslice_limiter_fake(tideslice_fake_acl ascendcl SOURCES ${TS_LIMITER_TEST_DIR}/fakes/fake_acl.cc
                       LIBS tideslice_fake_ascend_runtime)

# ---- workload programs (tests/limiter/programs)
# cuda_workload / acl_workload reach the fakes only through dlopen (no DT_NEEDED, so the driver is
# not in the global scope, as with cudart or torch_npu); the *_linked twins have DT_NEEDED on the
# fakes (found through their RUNPATH) and call the exports directly.
function(tideslice_limiter_workload target source)
  cmake_parse_arguments(W "" "" "LIBS" ${ARGN})
  add_executable(${target} ${source})
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${target} PRIVATE ${W_LIBS} ${CMAKE_DL_LIBS} Threads::Threads)
  set_target_properties(${target} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${TS_LIMITER_PROGRAMS_DIR})
  tideslice_limiter_uninstrumented(${target})
  if(W_LIBS)
    target_compile_definitions(${target} PRIVATE WORKLOAD_LINKED=1)
    # DT_NEEDED even if the toolchain defaults to --as-needed.
    target_link_options(${target} PRIVATE -Wl,--no-as-needed)
  endif()
endfunction()

tideslice_limiter_workload(cuda_workload ${TS_LIMITER_TEST_DIR}/programs/cuda_workload.cc)
tideslice_limiter_workload(cuda_workload_linked ${TS_LIMITER_TEST_DIR}/programs/cuda_workload.cc
                           LIBS tideslice_fake_cuda tideslice_fake_nvml)
tideslice_limiter_workload(acl_workload ${TS_LIMITER_TEST_DIR}/programs/acl_workload.cc)
tideslice_limiter_workload(acl_workload_linked ${TS_LIMITER_TEST_DIR}/programs/acl_workload.cc
                           LIBS tideslice_fake_acl tideslice_fake_ascend_runtime)
# Compute shares: kernels on the fakes' execution timeline (CUDA and ACL, through dlopen).
tideslice_limiter_workload(compute_workload ${TS_LIMITER_TEST_DIR}/programs/compute_workload.cc)

add_custom_target(tideslice_limiter_fakes
  DEPENDS tideslice_fake_cuda tideslice_fake_nvml tideslice_fake_ascend_runtime tideslice_fake_acl
          cuda_workload cuda_workload_linked acl_workload acl_workload_linked compute_workload)

# ---- the preload tests (need the limiter library, tideslice-limiter, and its test twin)
if(TARGET tideslice-limiter AND TARGET tideslice-limiter-testpaths)
  if(NOT DEFINED TIDESLICE_LIMITER_TEST_MOUNTED_CONFIG)
    set(TIDESLICE_LIMITER_TEST_MOUNTED_CONFIG ${CMAKE_BINARY_DIR}/tests/limiter/mounted/config.json)
  endif()
  set(TS_LIMITER_PRELOAD_DEFS
    TS_LIMITER_LIB="$<TARGET_FILE:tideslice-limiter>"
    TS_LIMITER_TESTPATHS_LIB="$<TARGET_FILE:tideslice-limiter-testpaths>"
    TS_LIMITER_MOUNTED_CONFIG="${TIDESLICE_LIMITER_TEST_MOUNTED_CONFIG}"
    TS_FAKES_DIR="${TS_LIMITER_FAKES_DIR}"
    TS_CUDA_WORKLOAD="$<TARGET_FILE:cuda_workload>"
    TS_CUDA_WORKLOAD_LINKED="$<TARGET_FILE:cuda_workload_linked>"
    TS_ACL_WORKLOAD="$<TARGET_FILE:acl_workload>"
    TS_ACL_WORKLOAD_LINKED="$<TARGET_FILE:acl_workload_linked>"
    TS_COMPUTE_WORKLOAD="$<TARGET_FILE:compute_workload>")
  # For tests elsewhere that run workloads under the limiter with this harness (tests/dra/dra.cmake).
  set(TS_LIMITER_PRELOAD_DEFS ${TS_LIMITER_PRELOAD_DEFS} PARENT_SCOPE)

  foreach(suite cuda ascend env)
    tideslice_test(limiter_preload_${suite}_test
      SOURCES ${TS_LIMITER_TEST_DIR}/preload_${suite}_test.cc
      LIBS Threads::Threads)
    target_compile_definitions(limiter_preload_${suite}_test PRIVATE ${TS_LIMITER_PRELOAD_DEFS})
    add_dependencies(limiter_preload_${suite}_test tideslice_limiter_fakes tideslice-limiter tideslice-limiter-testpaths)
  endforeach()

  # The fakes' execution timeline on its own (no limiter): the fakes are loaded into the test
  # process (dlopen) and run by the compute workload.
  tideslice_test(limiter_fakes_timeline_test
    SOURCES ${TS_LIMITER_TEST_DIR}/fakes_timeline_test.cc
    LIBS Threads::Threads ${CMAKE_DL_LIBS})
  target_compile_definitions(limiter_fakes_timeline_test PRIVATE ${TS_LIMITER_PRELOAD_DEFS})
  add_dependencies(limiter_fakes_timeline_test tideslice_limiter_fakes)
endif()
