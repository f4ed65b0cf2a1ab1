// The placement engine: kube-scheduler framework stages over ClusterState.
//
//   PreFilter  request.h   pod -> validated PodRequest (once per pod)
//   Filter     per node    can the pod fit here, and on which cards (a plan)?
//   Score      per node    how good is that plan under the policy?
//   Reserve    on state    record the plan; Unreserve undoes it (idempotent)
//   Preempt    per node    lowest-priority victims whose slices make room on one card
//
// Verdicts are values, not errors: kFits / kNoFit (could fit after preemption or when load
// drops) / kNeverFits (no preemption can help: card type, card count, stale inventory).
#pragma once

#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "scheduler/core/cluster.h"
#include "scheduler/core/fragmentation.h"
#include "scheduler/core/request.h"
#include "scheduler/core/scoring/scorer.h"

namespace tideslice::core {

// Policies are data: parsed once, then one algorithm with a table of scorers (scoring/table.cc;
// one file per policy under scoring/). The enum's order is the table's order.
enum class Policy {
  kFragAware,   // TideSlice default: fragmentation-gradient with packing tie-breaks
  kBinpack,
  kSpread,
  // Baselines reproduced from the FGD (ATC'23) evaluation, for validation and comparison.
  kRandom,
  kBestFit,
  kDotProd,
  kGpuPacking,
  kFgd,
};

StatusOr<Policy> ParsePolicy(std::string_view name);
const char* PolicyName(Policy p);
std::vector<Policy> AllPolicies();

enum class VerdictKind { kFits, kNoFit, kNeverFits };

struct NodeVerdict {
  VerdictKind kind = VerdictKind::kNoFit;
  std::string reason;       // for a person: what is missing on this node
  PodPlacement plan;        // valid when kind == kFits
};

struct Context {
  Policy policy = Policy::kFragAware;
  const WorkloadModel* workload = nullptr;   // typical pods, for kFragAware and kFgd
  std::mt19937_64* rng = nullptr;            // tie-breaks and kRandom; null = deterministic
  uint64_t node_order_seed = 0;              // kFgd: the fixed node order its ties follow (fgd.cc)
};

// Filter: does the pod fit on this node, and with which cards?
NodeVerdict Filter(const NodeState& node, const PodRequest& request, const Context& ctx);

// Why a node does not fit, as data: the words are written only when someone reads them
// (DescribeFailure), and they name the request's container by position, so a verdict stays
// true for every pod of the same shape whatever its names.
struct FitFailure {
  enum class Code : uint8_t {
    kNone,
    kUnschedulable,         // the node's inventory is stale or missing
    kTooFewEligibleCards,   // count = eligible cards; container = the one that needs more
    kInsufficientCpu,
    kInsufficientMemory,
    kInsufficientCards,     // count = cards with room; container = the one that needs more
    kCannotChooseCards,     // container = the one whose cards could not be chosen
  };
  Code code = Code::kNone;
  int container = -1;       // index into PodRequest::containers
  int count = 0;
};
std::string DescribeFailure(const FitFailure& failure, const NodeState& node, const PodRequest& request);

// Score of a feasible plan; higher is better. Raw scale depends on the policy; use
// NormalizeScores to map a set of them onto [0, max].
struct NodeScore {
  double primary = 0;
  double tiebreak = 0;      // compared when primaries are equal
};
// With `terms`, the policy's scorer also appends the named terms its score is made of.
NodeScore Score(const NodeState& node, const PodRequest& request, const PodPlacement& plan, const Context& ctx,
                ScoreTerms* terms = nullptr);

// Filter and Score of one node without building a plan: what every node but the winner needs.
// The same verdict and score as Filter followed by Score.
struct FitVerdict {
  VerdictKind kind = VerdictKind::kNoFit;
  FitFailure failure;       // when kind != kFits
  NodeScore score;          // when kind == kFits
};
FitVerdict FilterAndScore(const NodeState& node, const PodRequest& request, const Context& ctx);

// Min-max onto integers 0..max_score (100 for the framework, 10 for an extender).
std::vector<int64_t> NormalizeScores(const std::vector<NodeScore>& scores, int64_t max_score);

// Reserve: apply the plan to the cluster. Fails (changing nothing) if it no longer fits.
Status Reserve(ClusterState& cluster, const PodPlacement& plan);
// Unreserve: remove a pod's holdings; a no-op for an unknown pod (idempotent).
void Unreserve(ClusterState& cluster, const std::string& pod_key);
// Records a placement that already exists (a bound pod's assignment read back after a restart or
// a watch event): no fit check, since the pod holds its slices whatever the state says now; only
// the card references are validated. A pod already placed is an error (Unreserve it first).
Status Adopt(ClusterState& cluster, const PodPlacement& placement);

// Preempt: the fewest lowest-priority pods on this node whose removal lets the request fit.
// Only pods with priority strictly below the request's are candidates. Empty result with
// ok() = the node cannot be made to fit.
// `allowed_uids`, when given, limits candidates to those pods (the extender may only pick among
// the victims kube-scheduler proposed).
StatusOr<std::vector<std::string>> SelectVictims(const NodeState& node, const PodRequest& request,
                                                 const Context& ctx,
                                                 const std::set<std::string>* allowed_uids = nullptr);

// The whole cycle over a cluster, used by the simulator and the benchmarks (the extender runs
// the same stages one HTTP verb at a time).
struct Decision {
  bool scheduled = false;
  PodPlacement placement;
  int feasible_nodes = 0;
  bool never_fits = false;                        // every node said kNeverFits
  std::map<std::string, int> reasons;             // reason -> how many nodes gave it
  std::string Summary() const;                    // "0/12 nodes fit: 8 insufficient ..."
};

// Optional per-node cache for repeated evaluation of identical request shapes on nodes that
// did not change (keyed by NodeState::version). Owned by the caller; one per policy.
class FilterScoreCache {
 public:
  struct Entry {
    uint64_t version = ~0ull;
    bool fits = false;
    NodeScore score;
  };
  std::vector<Entry>& ForShape(uint64_t shape_key, size_t nodes);

 private:
  std::unordered_map<uint64_t, std::vector<Entry>> by_shape_;
};

Decision Schedule(const ClusterState& cluster, const PodRequest& request, const Context& ctx,
                  FilterScoreCache* cache = nullptr, uint64_t shape_key = 0);

// Input errors only a look at the whole cluster reveals: more slices in one container than any
// node has cards (of an allowed model). InvalidArgument naming tideslice.io/vnpu, or Ok.
Status ValidateAgainstCluster(const PodRequest& request, const ClusterState& cluster);

// Fragmentation of the whole cluster in percent of its total card capacity.
double ClusterFragmentationPercent(const ClusterState& cluster, const WorkloadModel& workload);

}  // namespace tideslice::core
