#include "scheduler/service/metrics.h"

namespace tideslice::service {

SchedulerMetrics::SchedulerMetrics(std::shared_ptr<prometheus::Registry> registry) {
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
}

void SchedulerMetrics::ObserveVerb(const std::string& verb, double seconds, bool error) {
  auto it = requests_.find(verb);
  if (it == requests_.end()) return;
  it->second->Increment();
  latency_[verb]->Observe(seconds);
  if (error) errors_[verb]->Increment();
}

void SchedulerMetrics::Update(SchedulerApp& app) {
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
