// The extender verbs on top of the placement core: decode -> core stages -> encode, with no I/O.
// The HTTP adapter calls these; the cluster state comes from the watch cache.
#pragma once

#include <map>
#include <mutex>
#include <unordered_map>
#include <string>
#include <vector>

#include "common/catalog/catalog.h"
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

// The parts of a request that decide Filter and Score, as a string key: pods of one Deployment
// share it, so their verdicts on nodes that did not change can be reused.
std::string RequestShape(const core::PodRequest& request);

// Verdicts (and scores) of request shapes on nodes, valid while the node's version is unchanged.
// kube-scheduler asks filter then prioritize for one pod, and the same shape again for every
// replica; between two calls usually one node changed. Thread-safe; bounded (cleared when it
// holds too many shapes).
class VerdictMemo {
 public:
  struct Entry {
    uint64_t version = 0;
    core::VerdictKind kind = core::VerdictKind::kNoFit;
    std::string reason;
    core::NodeScore score;
  };
  // One verb's access to one shape's verdicts, holding the memo's lock (kube-scheduler's
  // scheduling cycle is sequential, so verbs rarely wait on each other).
  class Session {
   public:
    const Entry* Get(const std::string& node, uint64_t version) const {
      auto it = table_->find(node);
      return it != table_->end() && it->second.version == version ? &it->second : nullptr;
    }
    void Put(const std::string& node, Entry entry) { (*table_)[node] = std::move(entry); }

   private:
    friend class VerdictMemo;
    Session(std::unique_lock<std::mutex> lock, std::unordered_map<std::string, Entry>* table)
        : lock_(std::move(lock)), table_(table) {}
    std::unique_lock<std::mutex> lock_;
    std::unordered_map<std::string, Entry>* table_;
  };
  Session Open(const std::string& shape);
  size_t shapes() const;

 private:
  static constexpr size_t kMaxShapes = 512;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::unordered_map<std::string, Entry>> by_shape_;
};

class Verbs {
 public:
  // `memo` (optional) must only be shared by calls that use the same policy and workload model.
  Verbs(const catalog::Catalog& catalog, core::Context ctx, VerdictMemo* memo = nullptr, std::string memo_scope = "")
      : catalog_(catalog), ctx_(ctx), memo_(memo), memo_scope_(std::move(memo_scope)) {}

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
  // Fits nodes are scored at once, so that prioritize reads the memo.
  // Verdicts (fits ones scored) for `nodes` (null entries skipped): memo hits first, the misses
  // computed, split over two threads when there are many.
  std::vector<VerdictMemo::Entry> EvaluateAll(const std::vector<const core::NodeState*>& nodes,
                                              const core::PodRequest& request, VerdictMemo::Session* session) const;
  const catalog::Catalog& catalog_;
  core::Context ctx_;
  VerdictMemo* memo_;
  std::string memo_scope_;
};

}  // namespace tideslice::extender
