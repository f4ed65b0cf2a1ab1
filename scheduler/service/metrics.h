// tideslice-scheduler's Prometheus metrics (prometheus-cpp): extender calls, errors and latency
// by verb; scheduler state; cluster fragmentation. Every series exists from the start (zeros),
// so dashboards and alerts see them before the first scheduling decision.
#pragma once

#include <map>
#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "scheduler/service/app.h"
#include "scheduler/service/tidal_controller.h"
#include "scheduler/tidal/pool.h"

namespace tideslice::service {

class SchedulerMetrics {
 public:
  // `pools`: the validated tidal pools (their tide is exported per pool).
  explicit SchedulerMetrics(std::shared_ptr<prometheus::Registry> registry, std::vector<tidal::PoolSpec> pools = {});
  // Wire as SchedulerService's observer.
  void ObserveVerb(const std::string& verb, double seconds, bool error);
  // Every couple of seconds from the main loop.
  void Update(SchedulerApp& app);
  // The pools' tide at `now` and the tidal controller's counts (called by Update; separate so
  // tests can pin the time). Without a controller, or before its first round, the tide is the clock's.
  void UpdatePools(std::chrono::system_clock::time_point now, const TidalController* controller = nullptr);

 private:
  std::map<std::string, prometheus::Counter*> requests_, errors_;
  std::map<std::string, prometheus::Histogram*> latency_;
  std::map<std::string, prometheus::Gauge*> state_;
  prometheus::Gauge* fragmentation_ = nullptr;
  std::vector<tidal::PoolSpec> pools_;
  std::map<std::string, std::pair<prometheus::Gauge*, prometheus::Gauge*>> pool_mode_;  // pool -> (day, night)
  std::map<std::string, prometheus::Gauge*> pool_next_switch_;
  // Tidal controller counts, per pool; counters advance by the controller's deltas.
  struct TidalSeries {
    prometheus::Counter *clock = nullptr, *load = nullptr, *notices = nullptr, *withdrawn = nullptr;
    prometheus::Counter *evicted_deadline = nullptr, *evicted_ack = nullptr, *refused = nullptr, *errors = nullptr;
    prometheus::Gauge *held = nullptr, *blocked = nullptr, *overdue = nullptr, *noticed = nullptr, *needed = nullptr;
    std::map<prometheus::Counter*, uint64_t> seen;
  };
  std::map<std::string, TidalSeries> tidal_;
};

}  // namespace tideslice::service
