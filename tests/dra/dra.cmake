# Tests of the DRA driver (device-plugin/dra/) and its protos. Included from tests/CMakeLists.txt.
tideslice_test(dra_proto_wire_test
  SOURCES dra/proto_wire_test.cc
  LIBS tideslice_proto)

# Pure builders: slices, claim parsing and planning, CDI specs (+ the claim parser's fuzz entry).
add_library(tideslice_dra_fuzz_target STATIC dra/claim_fuzz.cc)
target_include_directories(tideslice_dra_fuzz_target PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(tideslice_dra_fuzz_target PUBLIC tideslice_dra_core)
tideslice_test(dra_core_test
  SOURCES dra/resource_slices_test.cc dra/claim_test.cc dra/cdi_spec_test.cc dra/checkpoint_test.cc
  LIBS tideslice_dra_core tideslice_dra_fuzz_target)
if(TIDESLICE_FUZZ)
  tideslice_libfuzzer(fuzz_dra_claim SOURCES dra/claim_fuzz.cc LIBS tideslice_dra_core DEFINITIONS TIDESLICE_DRA_LIBFUZZER)
endif()

# The test API server's resource.k8s.io/v1 resources.
tideslice_test(dra_test_apiserver_test
  SOURCES dra/test_apiserver_dra_test.cc
  LIBS tideslice_kube tideslice_test_apiserver)

# The driver against a stand-in kubelet (gRPC over Unix sockets) and the test API server.
if(TARGET tideslice_limiter_core)
  tideslice_test(dra_driver_component_test
    SOURCES dra/driver_component_test.cc
    LIBS tideslice_dra_server tideslice_kube tideslice_test_apiserver tideslice_limiter_core)
endif()

# Two claims sharing one card, prepared by the driver, each running a workload under the limiter
# (with the files the driver wrote, followed through the CDI mounts) against the limiter's fake
# driver: the preload tests' harness, libraries and workloads (tests/limiter/preload.cmake).
if(TARGET tideslice_limiter_core AND DEFINED TS_LIMITER_PRELOAD_DEFS)
  tideslice_test(dra_limiter_enforcement_test
    SOURCES dra/limiter_enforcement_test.cc
    LIBS tideslice_dra_server tideslice_kube tideslice_test_apiserver tideslice_limiter_core)
  target_compile_definitions(dra_limiter_enforcement_test PRIVATE ${TS_LIMITER_PRELOAD_DEFS})
  add_dependencies(dra_limiter_enforcement_test tideslice_limiter_fakes tideslice-limiter tideslice-limiter-testpaths)
endif()

add_test(NAME DraDriverBinary.FlagsSocketsSlicesAndShutdown
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/dra/binary_test.sh $<TARGET_FILE:tideslice-dra-driver>
                 $<TARGET_FILE:tideslice-test-apiserver> ${PROJECT_SOURCE_DIR}/deploy/examples/mock-cards.json)
set_tests_properties(DraDriverBinary.FlagsSocketsSlicesAndShutdown PROPERTIES TIMEOUT 60)

# deploy/examples/dra claims, allocated as the scheduler would, prepared into CDI specs.
if(TARGET tideslice_limiter_core)
  tideslice_test(dra_examples_e2e_test
    SOURCES dra/examples_e2e_test.cc
    LIBS tideslice_dra_core tideslice_kube tideslice_test_apiserver tideslice_limiter_core tideslice_yaml)
endif()
