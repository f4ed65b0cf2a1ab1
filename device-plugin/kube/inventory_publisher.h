// Publishes this node's NodeInventory into the node annotation tideslice.io/inventory and
// labels the node with its card vendors and models, so that the scheduler (and nodeSelector /
// nodeAffinity in pod specs) can see what the node has. Re-published when the cards change and
// at least every heartbeat interval: the scheduler takes nodes with a stale heartbeat out of
// placement, so the heartbeat is what says "this agent is alive".
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/catalog/catalog.h"
#include "common/kube/client.h"
#include "device-plugin/backends/device_backend.h"

namespace tideslice::deviceplugin {

// Label keys: tideslice.io/vendor.<vendor>=<count>, tideslice.io/model.<model>=<count>
// (label keys cannot hold lists, so one label per vendor and per model).
std::map<std::string, std::string> CardLabels(const std::vector<DeviceInfo>& cards);

class InventoryPublisher {
 public:
  InventoryPublisher(kube::KubeClient* client, std::string node_name, std::string backend,
                     const catalog::Catalog& catalog, std::chrono::seconds heartbeat = std::chrono::seconds(30))
      : client_(client), node_(std::move(node_name)), backend_(std::move(backend)), catalog_(catalog),
        heartbeat_(heartbeat) {}

  // Marks the inventory as served through DRA by `driver` (tideslice-dra-driver), so that the
  // scheduler accounts the node's ResourceClaims and binds pods there without the device plugin's
  // hand-off. Set once, before the first Update.
  void set_dra_driver(std::string driver) { dra_driver_ = std::move(driver); }

  // Publishes if the cards changed or the heartbeat is due (force: always). Errors leave the
  // state so that the next call tries again.
  Status Update(const std::vector<DeviceInfo>& cards, bool force = false);
  int publishes() const { return publishes_; }

 private:
  kube::KubeClient* client_;
  std::string node_;
  std::string backend_;
  std::string dra_driver_;
  const catalog::Catalog& catalog_;
  std::chrono::seconds heartbeat_;
  std::mutex mu_;
  std::vector<DeviceInfo> last_cards_;
  std::map<std::string, std::string> last_labels_;
  std::chrono::steady_clock::time_point last_publish_{};
  bool published_ = false;
  int publishes_ = 0;
};

}  // namespace tideslice::deviceplugin
