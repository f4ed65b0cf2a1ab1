// Every metric the Grafana dashboard and the alert rules query is one the binaries export:
// the exporters are driven with data that makes every series appear (all telemetry, allocations,
// real use, scheduler decisions), their registries are collected, and each tideslice_* name in
// charts/tideslice/files/{dashboard.json,alerts.yaml} must be among the collected names.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "device-plugin/exporter/allocation_metrics.h"
#include "device-plugin/exporter/card_metrics.h"
#include "scheduler/service/metrics.h"

namespace tideslice {
namespace {

std::set<std::string> Exported() {
  auto registry = std::make_shared<prometheus::Registry>();
  deviceplugin::CardMetrics cards(registry, "n");
  deviceplugin::AllocationMetrics allocations(registry, "n");
  deviceplugin::DeviceInfo card;
  card.uuid = "GPU-0";
  card.vendor = "nvidia";
  card.model = "H100-80G";
  card.memory_mib = 81920;
  card.memory_used_mib = 1;
  card.utilization_ratio = 0.5;
  card.temperature_celsius = 50;
  card.power_watts = 300;
  cards.Update({card});
  allocations.Update({card}, {{"ml", "p", "c", "uid", "GPU-0", 1024, 100, false}}, {{{"uid", "GPU-0"}, 1}});
  service::SchedulerMetrics scheduler(registry);
  scheduler.ObserveVerb("filter", 0.001, false);
  std::set<std::string> names;
  for (const auto& family : registry->Collect()) {
    names.insert(family.name);
    if (family.type == prometheus::MetricType::Histogram)
      for (const char* suffix : {"_bucket", "_sum", "_count"}) names.insert(family.name + suffix);
  }
  return names;
}

std::set<std::string> Queried(const std::string& file) {
  std::ifstream in(std::string(TIDESLICE_SOURCE_DIR) + "/charts/tideslice/files/" + file);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  std::set<std::string> out;
  std::regex name(R"(tideslice_[a-z_]+)");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), name); it != std::sregex_iterator(); ++it)
    out.insert(it->str());
  return out;
}

TEST(MetricNames, DashboardAndAlertsQueryOnlyExportedMetrics) {
  const auto exported = Exported();
  for (const char* file : {"dashboard.json", "alerts.yaml"}) {
    auto queried = Queried(file);
    EXPECT_GT(queried.size(), 4u) << file;
    for (const auto& n : queried) EXPECT_TRUE(exported.count(n)) << file << " queries " << n << ", which nothing exports";
  }
}

}  // namespace
}  // namespace tideslice
