// How far is an online placement from what an offline packer could have done?
//
// An online policy sees pods one at a time and never moves them. An offline packer knows the
// whole arrival sequence up to a point and may place those pods in any order. For a prefix of
// the arrivals we report two references beside the online result:
//
//   offline best   the best of several offline heuristics: the production placement core
//                  (bestfit, binpack or fragaware scoring) run over the same pods sorted
//                  largest-first, most-cards-first, most-constrained-first, or by card count
//                  only (arrival order otherwise), and the online result itself. Every one of
//                  them is a real, feasible placement, so this is a LOWER bound on the offline
//                  optimum: an offline packer places at least this much, and the online policy
//                  loses at least (offline best - online) to not knowing the future.
//   upper bound    (traces only) a max-flow relaxation: every pod's GPU request must sit on
//                  cards of a model it allows, on nodes with at least as many cards as it asks
//                  for, within each node group's card capacity; node boundaries, CPU, memory and
//                  the fit of slices on single cards are relaxed. No packer, online or offline,
//                  can allocate more. OPT lies between offline best and this bound.
//
// The built-in scenarios measure allocation as the larger of compute and memory share per card,
// which a flow over cards cannot bound tighter than 100 %, so they get the offline best only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/catalog/catalog.h"
#include "scheduler/sim/replay.h"
#include "scheduler/sim/scenario.h"
#include "scheduler/sim/trace.h"

namespace tideslice::sim {

struct OfflineHeuristic {
  std::string name;        // "bestfit, largest GPU request first"
  double allocated_pct = 0;
};

struct OfflineBound {
  int arrived_pct = 0;             // the prefix of the arrival sequence considered
  double online_pct = 0;           // the online policy's allocated share at that point
  double offline_best_pct = 0;     // best of `heuristics` (a lower bound on the offline optimum)
  std::string offline_best;        // which heuristic gave it
  std::vector<OfflineHeuristic> heuristics;
  double upper_bound_pct = -1;     // flow relaxation (an upper bound on any packer); < 0 = not computed
};

// Orders an offline packer tries (the online arrival order is always included as well).
enum class OfflineOrder { kLargestFirst, kMostCardsFirst, kConstrainedFirst, kMostCardsThenArrival };
const char* OfflineOrderName(OfflineOrder order);

// For each of `arrived_pcts` (points of the replay protocol: the prefix ends with the pod whose
// arrival first brings the arrived GPU request to that percent of capacity), the online result
// of `options.policy` and the offline references. InvalidArgument for a point outside
// 1..round(100 x inflate) or the errors of Replay.
StatusOr<std::vector<OfflineBound>> TraceOfflineBounds(const std::vector<TraceNode>& nodes,
                                                       const std::vector<TracePod>& pods,
                                                       const ReplayOptions& options,
                                                       const std::vector<int>& arrived_pcts);

// The flow relaxation alone, for a list of pods against a cluster (GPU milli of the pods that
// could be allocated, at most). Exposed for tests.
int64_t FlowUpperBoundMilli(const core::ClusterState& cluster, const std::vector<core::PodRequest>& pods);

// The same comparison for a built-in scenario's pod list: the prefix of `pods` whose nominal
// demand first reaches `arrived_pct` % of the cards (all pods for 0), placed online by `policy`
// and by the offline heuristics.
OfflineBound ScenarioOfflineBound(const std::vector<ScenarioPod>& pods, const core::ClusterState& empty_cluster,
                                  const catalog::Catalog& catalog, core::Policy policy, uint64_t seed,
                                  int arrived_pct);

}  // namespace tideslice::sim
