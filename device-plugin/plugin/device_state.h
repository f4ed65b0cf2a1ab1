// The node's current cards, shared between whatever refreshes them (backend polling, health
// events) and the kubelet-facing streams. A version counter plus a condition variable lets every
// ListAndWatch stream wake on a change and resend the full list, as the kubelet expects.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "device-plugin/backends/device_backend.h"

namespace tideslice::deviceplugin {

class DeviceState {
 public:
  // Replaces the device list; bumps the version and wakes waiters only if something changed.
  void Set(std::vector<DeviceInfo> devices);
  std::pair<uint64_t, std::vector<DeviceInfo>> Snapshot() const;
  // Blocks until the version differs from `seen`, Shutdown() is called, or the timeout passes.
  // Returns the current version.
  uint64_t WaitForChange(uint64_t seen, std::chrono::milliseconds timeout) const;
  void Shutdown();
  bool shut_down() const;

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<DeviceInfo> devices_;
  uint64_t version_ = 0;
  bool shutdown_ = false;
};

}  // namespace tideslice::deviceplugin
