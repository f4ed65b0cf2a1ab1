// What the scheduler handed out on this node, as metrics: per card the allocated memory, the
// allocated share of compute and the number of slices assigned; per container its allocated
// memory and compute on each card. Every value here is copied from the pods' assignments, none
// is measured: read next to the per-card telemetry (CardMetrics), the driver's per-pod use
// (tideslice_pod_memory_used_bytes) and the limiter's per-container use (LimiterMetrics), this
// is "allocated versus really used". Labels stay bounded: card labels as in CardMetrics, and for
// containers the pods that run on this node.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "device-plugin/backends/device_backend.h"
#include "device-plugin/plugin/container_allocation.h"

namespace tideslice::deviceplugin {

class AllocationMetrics {
 public:
  AllocationMetrics(std::shared_ptr<prometheus::Registry> registry, std::string node_name);
  // Replaces every allocation series with the given state. `used` (optional): real memory use
  // per (pod UID, card UUID) from the driver, exported per pod next to what it was allocated.
  void Update(const std::vector<DeviceInfo>& cards, const std::vector<ContainerAllocation>& allocations,
              const std::map<std::pair<std::string, std::string>, int64_t>& used = {});

 private:
  std::string node_;
  prometheus::Family<prometheus::Gauge>& card_memory_;
  prometheus::Family<prometheus::Gauge>& card_compute_;
  prometheus::Family<prometheus::Gauge>& card_slices_;
  prometheus::Family<prometheus::Gauge>& container_memory_;
  prometheus::Family<prometheus::Gauge>& container_compute_;
  prometheus::Family<prometheus::Gauge>& pod_memory_used_;
  std::vector<std::pair<prometheus::Family<prometheus::Gauge>*, prometheus::Gauge*>> series_;
};

// A relist of this node's pods (the reflector's list at start and after an expired watch)
// replaces `by_key`, keyed by kube::PodKey so that later watch events find the same entries.
// The key is taken before the pod is moved into the map: a moved-from pod has no name, and all
// pods would collapse onto one key (after a restart the metrics showed one pod of three).
void ReplacePodsByKey(std::map<std::string, nlohmann::json>& by_key, std::vector<nlohmann::json> items);

}  // namespace tideslice::deviceplugin
