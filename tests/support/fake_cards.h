// Fake cards for node-agent tests and benchmarks: `n` H100s named GPU-0..GPU-<n-1>.
#pragma once

#include <string>
#include <vector>

#include "device-plugin/backends/device_backend.h"

namespace tideslice::testsupport {

inline std::vector<deviceplugin::DeviceInfo> FakeH100s(int n) {
  std::vector<deviceplugin::DeviceInfo> out;
  for (int i = 0; i < n; ++i) {
    deviceplugin::DeviceInfo d;
    d.uuid = "GPU-" + std::to_string(i);
    d.index = i;
    d.vendor = "nvidia";
    d.model = "H100-80G";
    d.memory_mib = 81920;
    out.push_back(d);
  }
  return out;
}

}  // namespace tideslice::testsupport
