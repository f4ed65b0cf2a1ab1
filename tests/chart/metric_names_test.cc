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
#include "device-plugin/exporter/limiter_metrics.h"
#include "scheduler/service/metrics.h"

namespace tideslice {
namespace {

// A pool "p" whose day is 08:00-20:00 UTC.
tidal::PoolSpec DayPool() {
  v1::Pool pool;
  pool.set_name("p");
  (*pool.mutable_node_selector())["pool"] = "p";
  pool.set_timezone("UTC");
  pool.add_day_windows()->set_start("08:00");
  pool.mutable_day_windows(0)->set_end("20:00");
  auto spec = tidal::ValidatePool(pool, "pools[0]");
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  return *spec;
}

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
  deviceplugin::LimiterMetrics limiter(registry, "n");
  deviceplugin::LimiterContainerReading reading;
  reading.pod_uid = "uid";
  reading.pod_namespace = "ml";
  reading.pod = "p";
  reading.container = "c";
  reading.vendor = "nvidia";
  reading.cards.push_back({"GPU-0", 0, 1u << 30, true, 1, 1, true, 0, 300});
  limiter.Update({reading}, {card});
  deviceplugin::CardCoordinationReading roster;
  roster.card_uuid = "GPU-0";
  deviceplugin::CardSlotReading slot;
  slot.pod_uid = "uid";
  slot.share_permille = 300;
  slot.measured = true;
  roster.slots.push_back(slot);
  const auto t0 = std::chrono::steady_clock::now();
  limiter.UpdateCompute({reading}, {roster}, {card}, t0);
  roster.slots[0].busy_ns = 1'000'000'000;
  limiter.UpdateCompute({reading}, {roster}, {card}, t0 + std::chrono::seconds(5));
  service::SchedulerMetrics scheduler(registry, {DayPool()});
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

TEST(MetricNames, PoolModeFollowsThePoolsClock) {
  auto registry = std::make_shared<prometheus::Registry>();
  service::SchedulerMetrics metrics(registry, {DayPool()});
  const auto ten_am = std::chrono::system_clock::time_point(std::chrono::seconds(1795399200) + std::chrono::hours(8));
  metrics.UpdatePools(ten_am);  // 2026-11-23 10:00 UTC
  std::map<std::string, double> mode;
  double next = 0;
  for (const auto& f : registry->Collect())
    for (const auto& m : f.metric) {
      std::map<std::string, std::string> labels;
      for (const auto& l : m.label) labels[l.name] = l.value;
      if (f.name == "tideslice_pool_mode") mode[labels["tide"]] = m.gauge.value;
      if (f.name == "tideslice_pool_next_switch_timestamp_seconds") next = m.gauge.value;
    }
  EXPECT_EQ(mode["day"], 1);
  EXPECT_EQ(mode["night"], 0);
  EXPECT_EQ(next, 1795399200 + 18 * 3600);  // 20:00 UTC the same day
}

}  // namespace
}  // namespace tideslice
