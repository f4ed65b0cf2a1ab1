#include "device-plugin/plugin/device_state.h"

namespace tideslice::deviceplugin {

void DeviceState::Set(std::vector<DeviceInfo> devices) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (version_ > 0 && devices == devices_) return;
    devices_ = std::move(devices);
    ++version_;
  }
  cv_.notify_all();
}

std::pair<uint64_t, std::vector<DeviceInfo>> DeviceState::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {version_, devices_};
}

uint64_t DeviceState::WaitForChange(uint64_t seen, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return version_ != seen || shutdown_; });
  return version_;
}

void DeviceState::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
}

bool DeviceState::shut_down() const {
  std::lock_guard<std::mutex> lock(mu_);
  return shutdown_;
}

}  // namespace tideslice::deviceplugin
