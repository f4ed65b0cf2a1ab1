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
                     .Help("1 for the tide a tidal pool is in (label tide: day or night), 0 for the other, as the tidal "
                           "controller applies it (clock, or load moving it early).")
                     .Register(*registry);
    auto& next = prometheus::BuildGauge()
                     .Name("tideslice_pool_next_switch_timestamp_seconds")
                     .Help("When the pool's clock next changes the tide, in Unix seconds.")
                     .Register(*registry);
    auto& transitions = prometheus::BuildCounter()
                            .Name("tideslice_tidal_transitions_total")
                            .Help("Tide changes of a pool, by cause (clock: its day windows; load: inference demand moved it early).")
                            .Register(*registry);
    auto& notices = prometheus::BuildCounter()
                        .Name("tideslice_tidal_notices_total")
                        .Help("Checkpoint notices given to training pods that must leave a pool.")
                        .Register(*registry);
    auto& withdrawn = prometheus::BuildCounter()
                          .Name("tideslice_tidal_notices_withdrawn_total")
                          .Help("Checkpoint notices withdrawn because the tide turned back before their deadline.")
                          .Register(*registry);
    auto& evictions = prometheus::BuildCounter()
                          .Name("tideslice_tidal_evictions_total")
                          .Help("Training pods evicted for a tide, by reason (deadline: the notice ran out; acknowledged: "
                                "the pod reported its checkpoint first).")
                          .Register(*registry);
    auto& refusals = prometheus::BuildCounter()
                         .Name("tideslice_tidal_eviction_refusals_total")
                         .Help("Eviction attempts a PodDisruptionBudget refused (HTTP 429); each is retried.")
                         .Register(*registry);
    auto& errors = prometheus::BuildCounter()
                       .Name("tideslice_tidal_eviction_errors_total")
                       .Help("Eviction attempts that failed for another reason than a PodDisruptionBudget.")
                       .Register(*registry);
    auto& held = prometheus::BuildGauge()
                     .Name("tideslice_pool_held_by_load")
                     .Help("1 while load holds a pool in its inference tide against its clock.")
                     .Register(*registry);
    auto& blocked = prometheus::BuildGauge()
                        .Name("tideslice_tidal_evictions_blocked")
                        .Help("Pods past their checkpoint deadline whose eviction a PodDisruptionBudget refuses now.")
                        .Register(*registry);
    auto& overdue = prometheus::BuildGauge()
                        .Name("tideslice_tidal_overdue_pods")
                        .Help("Pods under notice still on the pool after deadline + grace: the switch is not completing.")
                        .Register(*registry);
    auto& noticed = prometheus::BuildGauge()
                        .Name("tideslice_tidal_pods_under_notice")
                        .Help("Training pods holding a checkpoint notice now.")
                        .Register(*registry);
    auto& needed = prometheus::BuildGauge()
                       .Name("tideslice_tidal_cards_needed")
                       .Help("Cards the class a pool serves first is short of (what the controller is freeing).")
                       .Register(*registry);
    for (const auto& p : pools_) {
      pool_mode_[p.name] = {&mode.Add({{"pool", p.name}, {"tide", "day"}}), &mode.Add({{"pool", p.name}, {"tide", "night"}})};
      pool_next_switch_[p.name] = &next.Add({{"pool", p.name}});
      TidalSeries& t = tidal_[p.name];
      t.clock = &transitions.Add({{"pool", p.name}, {"cause", "clock"}});
      t.load = &transitions.Add({{"pool", p.name}, {"cause", "load"}});
      t.notices = &notices.Add({{"pool", p.name}});
      t.withdrawn = &withdrawn.Add({{"pool", p.name}});
      t.evicted_deadline = &evictions.Add({{"pool", p.name}, {"reason", "deadline"}});
      t.evicted_ack = &evictions.Add({{"pool", p.name}, {"reason", "acknowledged"}});
      t.refused = &refusals.Add({{"pool", p.name}});
      t.errors = &errors.Add({{"pool", p.name}});
      t.held = &held.Add({{"pool", p.name}});
      t.blocked = &blocked.Add({{"pool", p.name}});
      t.overdue = &overdue.Add({{"pool", p.name}});
      t.noticed = &noticed.Add({{"pool", p.name}});
      t.needed = &needed.Add({{"pool", p.name}});
    }
    UpdatePools(std::chrono::system_clock::now());
  }
}

void SchedulerMetrics::UpdatePools(std::chrono::system_clock::time_point now, const TidalController* controller) {
  for (const auto& p : pools_) {
    bool day = tidal::ClockTide(p, now) == tidal::Tide::kDay;
    if (controller) {
      const PoolCounters& c = controller->counters(p.name);
      if (c.tide >= 0) day = c.tide == 0;
      TidalSeries& t = tidal_[p.name];
      auto advance = [&t](prometheus::Counter* counter, uint64_t value) {
        uint64_t& seen = t.seen[counter];
        if (value > seen) counter->Increment(static_cast<double>(value - seen));
        seen = value;
      };
      advance(t.clock, c.transitions_clock);
      advance(t.load, c.transitions_load);
      advance(t.notices, c.notices);
      advance(t.withdrawn, c.notices_withdrawn);
      advance(t.evicted_deadline, c.evictions_deadline);
      advance(t.evicted_ack, c.evictions_acknowledged);
      advance(t.refused, c.evictions_blocked);
      advance(t.errors, c.eviction_errors);
      t.held->Set(c.held_by_load ? 1 : 0);
      t.blocked->Set(c.blocked_now);
      t.overdue->Set(c.overdue_now);
      t.noticed->Set(c.noticed_now);
      t.needed->Set(c.cards_needed);
    }
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
  UpdatePools(std::chrono::system_clock::now(), app.tidal_controller());
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
