// The extender verbs on top of the placement core: decode -> core stages -> encode, with no I/O.
// The HTTP adapter calls these; the cluster state comes from the watch cache.
#pragma once

#include <map>
#include <mutex>
#include <unordered_map>
#include <string>
#include <vector>

#include "common/catalog/catalog.h"
#include "scheduler/core/pipeline.h"
#include "scheduler/core/placement.h"
#include "scheduler/extender/wire.h"

namespace tideslice::extender {

// Reply text is bounded: reasons quote the request (an annotation value, a list of card types)
// and filter answers one per node, so a 250 KB annotation on 1,000 nodes must not become a
// 250 MB reply. The Error field and any one message: kMaxReasonBytes. Per-node reasons share a
// budget: whole messages (up to kMaxReasonBytes) on small clusters, a prefix of at least
// kMinNodeReasonBytes on large ones (NodeReasonCap).
inline constexpr size_t kMaxReasonBytes = 1024;
inline constexpr size_t kMinNodeReasonBytes = 96;
inline constexpr size_t kNodeReasonBudgetBytes = 128 << 10;
size_t NodeReasonCap(size_t nodes);

// The verdict memo and the request shape moved into the core's pipeline (pipeline.h).
using core::RequestShape;
using core::VerdictMemo;

// Filter, prioritize and preempt over one cluster snapshot, through the core's pipeline: the
// request stages once per verb, then the node stages over the nodes kube-scheduler named.
class Verbs {
 public:
  // `memo` (optional) must only be shared by calls that use the same policy and workload model
  // (or a different `memo_scope` for each).
  Verbs(const catalog::Catalog& catalog, core::Context ctx, VerdictMemo* memo = nullptr, std::string memo_scope = "")
      : pipeline_(ctx, catalog), scoring_(ctx, catalog) {
    pipeline_.UseMemo(memo, memo_scope);
    scoring_.UseMemo(memo, std::move(memo_scope));
  }
  // A filter stage after resource fit (the tidal gate); filter runs it, prioritize scores the
  // nodes filter passed and does not.
  Verbs& AddGate(const core::NodeGate* gate) {
    pipeline_.AddGate(gate);
    return *this;
  }
  Verbs& CountInto(core::StageCounts* counts) {
    pipeline_.CountInto(counts);
    scoring_.CountInto(counts);
    return *this;
  }
  // Slices the pod asks for through DRA ResourceClaims (the caller derives them from the claims'
  // device requests; scheduler/service/dra_claims.h): every verb judges them with the pod's own.
  Verbs& AddClaimedSlices(std::vector<core::ContainerRequest> claimed) {
    claimed_ = std::move(claimed);
    return *this;
  }
  const core::Pipeline& pipeline() const { return pipeline_; }

  // Nodes that fit pass; busy nodes are FailedNodes (preemption may help); nodes that can never
  // host the pod, or that TideSlice knows nothing about, are FailedAndUnresolvableNodes. A pod
  // that asks for no TideSlice resource passes everywhere; an invalid one fails everywhere with
  // the reason, so `kubectl describe pod` shows what to change.
  // On DRA nodes (NodeState::dra) kube-scheduler's DRA allocator has the last word, and the core
  // does not read CEL selectors: a node is dropped there only when it clearly cannot fit by card
  // count and memory (DraDropsNode); otherwise it passes, and prioritize ranks it.
  // `judged_nodes` (optional): set when the node stages ran (a valid request for accelerators).
  FilterResult Filter(const ExtenderArgs& args, const core::ClusterState& cluster, bool* judged_nodes = nullptr) const;
  // Scores 0..10 (kube-scheduler multiplies by weight x 10 and does not clamp).
  std::vector<HostPriority> Prioritize(const ExtenderArgs& args, const core::ClusterState& cluster) const;
  // For each candidate node, the fewest of kube-scheduler's proposed victims whose slices make
  // room on real cards; nodes where none would suffice are dropped. DRA nodes keep
  // kube-scheduler's proposal (its DRA allocator decides what preemption frees there).
  StatusOr<std::map<std::string, MetaVictims>> Preempt(const PreemptionArgs& args,
                                                      const core::ClusterState& cluster) const;

 private:
  StatusOr<core::PodRequest> Request(const core::Pipeline& pipeline, const kube::PodSpec& pod,
                                      const core::ClusterState& cluster) const {
    return pipeline.PreFilter(pod, cluster, claimed_);
  }

  core::Pipeline pipeline_;  // every stage
  core::Pipeline scoring_;   // the same without the gates, for prioritize
  std::vector<core::ContainerRequest> claimed_;
};

// Whether filter drops a DRA node the core found no room on: only when the request clearly
// cannot fit by card count and memory (too few eligible cards: healthy, of an allowed model, with
// enough memory; or, for whole cards and soft slices, too few cards with room). A request for MIG
// or vNPU devices without a profile (a DRA claim, whose selectors TideSlice does not evaluate)
// is never dropped for room: the core cannot tell which partitions would fit.
bool DraDropsNode(const core::NodeOutcome& outcome, const core::PodRequest& request);

}  // namespace tideslice::extender
