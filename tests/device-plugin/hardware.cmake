# Real-hardware facts through the fake drivers: topology (NUMA, NVLink, HCCS), health events,
# MIG mode, vNPU templates, the machine layouts of deploy/examples, and placement end to end.
tideslice_test(device_plugin_hardware_test
  SOURCES device-plugin/host_topology_test.cc device-plugin/nvml_topology_test.cc device-plugin/nvml_health_test.cc
          device-plugin/mig_mode_test.cc device-plugin/dcmi_topology_test.cc device-plugin/partition_offer_test.cc
  LIBS tideslice_dp_plugin tideslice_service tideslice_core nlohmann_json::nlohmann_json)

# The parsers of hardware text (PCI addresses, CPU lists, XID lists, machine layouts).
add_library(tideslice_fuzz_hardware STATIC fuzz/hardware_targets.cc)
target_include_directories(tideslice_fuzz_hardware PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(tideslice_fuzz_hardware PUBLIC tideslice_dp_backends)
tideslice_test(fuzz_hardware_smoke_test
  SOURCES fuzz/hardware_fuzz_smoke_test.cc
  LIBS tideslice_fuzz_hardware)
if(TIDESLICE_FUZZ)
  tideslice_libfuzzer(fuzz_hardware_text SOURCES fuzz/hardware_fuzz_main.cc LIBS tideslice_fuzz_hardware)
endif()
