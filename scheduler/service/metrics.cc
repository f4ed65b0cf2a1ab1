#include "scheduler/service/metrics.h"

namespace tideslice::service {

SchedulerMetrics::SchedulerMetrics(std::shared_ptr<prometheus::Registry> registry, std::vector<tidal::PoolSpec> pools)
    : pools_(std::move(pools)) {
  auto& requests = prometheus::BuildCounter()
                       .Name("tideslice_extender_requests_total")
                       .Help("Extender calls from kube-scheduler, by verb.")
                       .Register(*registry);
  auto& errors = prometheus::BuildCounter()
                     .Name("tideslice_extender_errors_total")
                     .Help("Extender calls answered with an Error, by verb.")
                     .Register(*registry);
  auto& latency = prometheus::BuildHistogram()
                      .Name("tideslice_extender_request_duration_seconds")
                      .Help("Time to answer an extender call, by verb.")
                      .Register(*registry);
  auto& state = prometheus::BuildGauge()
                    .Name("tideslice_scheduler_state")
                    .Help("Scheduler state: ready (caches synced), leader, nodes, stale_nodes, placed_pods, "
                          "pending_pods, assumed_pods.")
                    .Register(*registry);
  auto& fragmentation =
      prometheus::BuildGauge()
          .Name("tideslice_cluster_fragmentation_ratio")
          .Help("Share of the accelerator capacity that is free but unusable by the typical pods (FGD measure), 0 to 1.")
          .Register(*registry);
  const prometheus::Histogram::BucketBoundaries buckets = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025,
                                                           0.05,   0.1,   0.25,  1,     5,    30};
  for (const char* verb : {"filter", "prioritize", "bind", "preempt"}) {
    requests_[verb] = &requests.Add({{"verb", verb}});
    errors_[verb] = &errors.Add({{"verb", verb}});
    latency_[verb] = &latency.Add({{"verb", verb}}, buckets);
  }
  for (const char* k : {"ready", "leader", "nodes", "stale_nodes", "placed_pods", "pending_pods", "assumed_pods"})
    state_[k] = &state.Add({{"what", k}});
  fragmentation_ = &fragmentation.Add({});
  if (!pools_.empty()) {
    auto& mode = prometheus::BuildGauge()
                     .Name("tideslice_pool_mode")
                     .Help("1 for the tide a tidal pool is in (label tide: day or night), 0 for the other. By the "
                           "pool's clock; load triggers move it early once the tidal controller runs.")
                     .Register(*registry);
    auto& next = prometheus::BuildGauge()
                     .Name("tideslice_pool_next_switch_timestamp_seconds")
                     .Help("When the pool's clock next changes the tide, in Unix seconds.")
                     .Register(*registry);
    for (const auto& p : pools_) {
      pool_mode_[p.name] = {&mode.Add({{"pool", p.name}, {"tide", "day"}}), &mode.Add({{"pool", p.name}, {"tide", "night"}})};
      pool_next_switch_[p.name] = &next.Add({{"pool", p.name}});
    }
    UpdatePools(std::chrono::system_clock::now());
  }
}

void SchedulerMetrics::UpdatePools(std::chrono::system_clock::time_point now) {
  for (const auto& p : pools_) {
    const bool day = tidal::ClockTide(p, now) == tidal::Tide::kDay;
    pool_mode_[p.name].first->Set(day ? 1 : 0);
    pool_mode_[p.name].second->Set(day ? 0 : 1);
    auto next = tidal::NextSwitch(p, now);
    if (next != std::chrono::system_clock::time_point::max())
      pool_next_switch_[p.name]->Set(static_cast<double>(std::chrono::duration_cast<std::chrono::seconds>(next.time_since_epoch()).count()));
  }
}

void SchedulerMetrics::ObserveVerb(const std::string& verb, double seconds, bool error) {
  auto it = requests_.find(verb);
  if (it == requests_.end()) return;
  it->second->Increment();
  latency_[verb]->Observe(seconds);
  if (error) errors_[verb]->Increment();
}

void SchedulerMetrics::Update(SchedulerApp& app) {
  UpdatePools(std::chrono::system_clock::now());
  auto s = app.cache().stats();
  state_["ready"]->Set(app.ready() ? 1 : 0);
  state_["leader"]->Set(app.leading() ? 1 : 0);
  state_["nodes"]->Set(static_cast<double>(s.nodes));
  state_["stale_nodes"]->Set(static_cast<double>(s.stale_nodes));
  state_["placed_pods"]->Set(static_cast<double>(s.placed_pods));
  state_["pending_pods"]->Set(static_cast<double>(s.pending_pods));
  state_["assumed_pods"]->Set(static_cast<double>(s.assumed_pods));
  auto snapshot = app.cache().Snapshot();
  auto ctx = app.cache().PlacementContext();
  if (ctx.workload) fragmentation_->Set(core::ClusterFragmentationPercent(*snapshot, *ctx.workload) / 100.0);
}

}  // namespace tideslice::service
