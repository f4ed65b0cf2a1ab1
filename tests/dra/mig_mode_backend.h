// The mock backend with MIG mode switched on for chosen cards (the mock itself has no MIG mode),
// for the DRA driver's tests.
#pragma once

#include <set>
#include <string>

#include "device-plugin/backends/mock_backend.h"

namespace tideslice::testsupport {

// The mock backend with MIG mode on for chosen cards (the mock itself has no MIG mode).
class MigModeBackend : public deviceplugin::DeviceBackend {
 public:
  MigModeBackend(deviceplugin::MockBackend& inner, std::set<std::string> mig) : inner_(inner), mig_(std::move(mig)) {}
  std::string Name() const override { return "mock"; }
  StatusOr<std::vector<deviceplugin::DeviceInfo>> Discover() override {
    auto cards = inner_.Discover();
    if (cards.ok())
      for (auto& c : *cards) c.mig_enabled = mig_.count(c.uuid) > 0;
    return cards;
  }
  StatusOr<std::string> CreatePartition(const deviceplugin::DeviceInfo& c, const std::string& p, int s) override {
    return inner_.CreatePartition(c, p, s);
  }
  Status DestroyPartition(const deviceplugin::DeviceInfo& c, const std::string& id) override {
    return inner_.DestroyPartition(c, id);
  }
  StatusOr<std::vector<deviceplugin::LivePartition>> ListPartitions(const deviceplugin::DeviceInfo& c) override {
    return inner_.ListPartitions(c);
  }

 private:
  deviceplugin::MockBackend& inner_;
  std::set<std::string> mig_;
};

}  // namespace tideslice::testsupport
