// Per-card metrics of the node agent (prometheus-cpp). Units in the names, bounded labels:
// node, card (index), uuid, vendor, model. Telemetry a backend cannot read is not exported
// rather than exported as zero.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "device-plugin/backends/device_backend.h"

namespace tideslice::deviceplugin {

class CardMetrics {
 public:
  CardMetrics(std::shared_ptr<prometheus::Registry> registry, std::string node_name);
  // Sets every gauge from the current card list; cards that disappeared are removed.
  void Update(const std::vector<DeviceInfo>& cards);

 private:
  struct CardGauges {
    prometheus::Gauge* memory_total = nullptr;
    prometheus::Gauge* healthy = nullptr;
    prometheus::Gauge* memory_used = nullptr;
    prometheus::Gauge* utilization = nullptr;
    prometheus::Gauge* temperature = nullptr;
    prometheus::Gauge* power = nullptr;
    std::map<std::string, std::string> labels;
  };
  void Remove(CardGauges& g);
  std::shared_ptr<prometheus::Registry> registry_;
  std::string node_;
  prometheus::Family<prometheus::Gauge>& memory_total_;
  prometheus::Family<prometheus::Gauge>& healthy_;
  prometheus::Family<prometheus::Gauge>& memory_used_;
  prometheus::Family<prometheus::Gauge>& utilization_;
  prometheus::Family<prometheus::Gauge>& temperature_;
  prometheus::Family<prometheus::Gauge>& power_;
  std::map<std::string, CardGauges> cards_;  // uuid -> gauges
};

}  // namespace tideslice::deviceplugin
