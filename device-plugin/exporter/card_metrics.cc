#include "device-plugin/exporter/card_metrics.h"

#include <set>

namespace tideslice::deviceplugin {

CardMetrics::CardMetrics(std::shared_ptr<prometheus::Registry> registry, std::string node_name)
    : registry_(std::move(registry)),
      node_(std::move(node_name)),
      memory_total_(prometheus::BuildGauge()
                        .Name("tideslice_card_memory_total_bytes")
                        .Help("Memory of the card, in bytes.")
                        .Register(*registry_)),
      healthy_(prometheus::BuildGauge()
                   .Name("tideslice_card_healthy")
                   .Help("1 when the card is healthy, 0 when the backend reports it unhealthy.")
                   .Register(*registry_)),
      memory_used_(prometheus::BuildGauge()
                       .Name("tideslice_card_memory_used_bytes")
                       .Help("Memory in use on the card as the driver reports it, in bytes.")
                       .Register(*registry_)),
      utilization_(prometheus::BuildGauge()
                       .Name("tideslice_card_utilization_ratio")
                       .Help("Compute utilisation of the card over the driver's last sample period, 0 to 1.")
                       .Register(*registry_)),
      temperature_(prometheus::BuildGauge()
                       .Name("tideslice_card_temperature_celsius")
                       .Help("Card temperature in degrees Celsius.")
                       .Register(*registry_)),
      power_(prometheus::BuildGauge()
                 .Name("tideslice_card_power_watts")
                 .Help("Card power draw in watts.")
                 .Register(*registry_)) {}

void CardMetrics::Remove(CardGauges& g) {
  memory_total_.Remove(g.memory_total);
  healthy_.Remove(g.healthy);
  if (g.memory_used) memory_used_.Remove(g.memory_used);
  if (g.utilization) utilization_.Remove(g.utilization);
  if (g.temperature) temperature_.Remove(g.temperature);
  if (g.power) power_.Remove(g.power);
}

void CardMetrics::Update(const std::vector<DeviceInfo>& cards) {
  std::set<std::string> present;
  for (const auto& c : cards) {
    present.insert(c.uuid);
    std::map<std::string, std::string> labels = {
        {"node", node_}, {"card", std::to_string(c.index)}, {"uuid", c.uuid}, {"vendor", c.vendor}, {"model", c.model}};
    auto it = cards_.find(c.uuid);
    if (it != cards_.end() && it->second.labels != labels) {
      Remove(it->second);
      cards_.erase(it);
      it = cards_.end();
    }
    if (it == cards_.end()) {
      CardGauges g;
      g.labels = labels;
      g.memory_total = &memory_total_.Add(labels);
      g.healthy = &healthy_.Add(labels);
      it = cards_.emplace(c.uuid, g).first;
    }
    CardGauges& g = it->second;
    g.memory_total->Set(static_cast<double>(c.memory_mib) * 1024 * 1024);
    g.healthy->Set(c.healthy ? 1 : 0);
    auto optional = [&](prometheus::Family<prometheus::Gauge>& family, prometheus::Gauge*& gauge, bool known,
                        double value) {
      if (known) {
        if (!gauge) gauge = &family.Add(g.labels);
        gauge->Set(value);
      } else if (gauge) {
        family.Remove(gauge);
        gauge = nullptr;
      }
    };
    optional(memory_used_, g.memory_used, c.memory_used_mib >= 0, static_cast<double>(c.memory_used_mib) * 1024 * 1024);
    optional(utilization_, g.utilization, c.utilization_ratio >= 0, c.utilization_ratio);
    optional(temperature_, g.temperature, c.temperature_celsius >= 0, c.temperature_celsius);
    optional(power_, g.power, c.power_watts >= 0, c.power_watts);
  }
  for (auto it = cards_.begin(); it != cards_.end();) {
    if (present.count(it->first)) {
      ++it;
      continue;
    }
    Remove(it->second);
    it = cards_.erase(it);
  }
}

}  // namespace tideslice::deviceplugin
