// The extender verbs on top of the placement core: decode -> core stages -> encode, with no I/O.
// The HTTP adapter calls these; the cluster state comes from the watch cache.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/catalog/catalog.h"
#include "scheduler/core/placement.h"
#include "scheduler/extender/wire.h"

namespace tideslice::extender {

class Verbs {
 public:
  Verbs(const catalog::Catalog& catalog, core::Context ctx) : catalog_(catalog), ctx_(ctx) {}

  // Nodes that fit pass; busy nodes are FailedNodes (preemption may help); nodes that can never
  // host the pod, or that TideSlice knows nothing about, are FailedAndUnresolvableNodes. A pod
  // that asks for no TideSlice resource passes everywhere; an invalid one fails everywhere with
  // the reason, so `kubectl describe pod` shows what to change.
  FilterResult Filter(const ExtenderArgs& args, const core::ClusterState& cluster) const;
  // Scores 0..10 (kube-scheduler multiplies by weight x 10 and does not clamp).
  std::vector<HostPriority> Prioritize(const ExtenderArgs& args, const core::ClusterState& cluster) const;
  // For each candidate node, the fewest of kube-scheduler's proposed victims whose slices make
  // room on real cards; nodes where none would suffice are dropped.
  StatusOr<std::map<std::string, MetaVictims>> Preempt(const PreemptionArgs& args,
                                                      const core::ClusterState& cluster) const;

 private:
  const catalog::Catalog& catalog_;
  core::Context ctx_;
};

}  // namespace tideslice::extender
