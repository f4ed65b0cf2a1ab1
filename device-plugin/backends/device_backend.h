// The one small interface between the node agent and a vendor's driver library. Vendor code sees
// our DeviceInfo, never Kubernetes objects; the kubelet side sees only this interface.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace tideslice::deviceplugin {

struct DeviceInfo {
  std::string uuid;
  int index = 0;
  std::string vendor;       // "nvidia", "huawei", ...
  std::string model;        // catalog model name
  int64_t memory_mib = 0;
  bool healthy = true;
  int numa_node = -1;
  std::string link_domain;
  // Live telemetry, where the backend can read it (negative = unknown).
  int64_t memory_used_mib = -1;
  double utilization_ratio = -1;   // 0..1
  double temperature_celsius = -1;
  double power_watts = -1;

  bool operator==(const DeviceInfo&) const = default;
};

class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;
  virtual std::string Name() const = 0;
  // The cards on this node now, health included. Errors mean "could not ask", not "no cards".
  virtual StatusOr<std::vector<DeviceInfo>> Discover() = 0;
};

}  // namespace tideslice::deviceplugin
