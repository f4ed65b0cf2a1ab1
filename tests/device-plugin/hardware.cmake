# Real-hardware facts through the fake drivers: topology (NUMA, NVLink, HCCS), health events,
# MIG mode, vNPU templates, the machine layouts of deploy/examples, and placement end to end.
tideslice_test(device_plugin_hardware_test
  SOURCES device-plugin/host_topology_test.cc device-plugin/nvml_topology_test.cc device-plugin/nvml_health_test.cc
          device-plugin/mig_mode_test.cc device-plugin/dcmi_topology_test.cc
  LIBS tideslice_dp_plugin tideslice_service tideslice_core nlohmann_json::nlohmann_json)
