// The per-pod pipeline, as kube-scheduler's framework runs it, and the one runner that the
// simulator, the extender and the benchmarks call.
//
//   request stages (once per request)
//     validity      PreFilter: pod -> validated PodRequest (request.h)
//     cluster       ValidateAgainstCluster: what only the whole cluster reveals
//   node stages (per node, in this order; a node leaves at the first that closes it)
//     fit           resource fit on the node's cards, CPU and memory (placement.h), memoised
//                   per request shape and node version; fitting nodes are scored right away
//                   by the policy's scorer (scoring/), without building a plan
//     gates         NodeGates added by the caller, over plain data that is not memoised
//                   (the tidal gate: pool, posted tide, time); only nodes that fit reach them
//   choice          the best score (Schedule), or every score normalised (the extender)
//
// Only the winner gets a plan (Filter on that one node), when it is reserved or bound.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/catalog/catalog.h"
#include "common/kube/pod_spec.h"
#include "common/status.h"
#include "scheduler/core/cluster.h"
#include "scheduler/core/placement.h"
#include "scheduler/core/request.h"

namespace tideslice::core {

// A node filter stage after resource fit, over plain data given to it when it was built.
class NodeGate {
 public:
  virtual ~NodeGate() = default;
  virtual const char* name() const = 0;
  // "" when the node stays open to the request; otherwise why it is closed now (the node is
  // reported as kNoFit: waiting may help).
  virtual std::string Blocks(const NodeState& node, const PodRequest& request) const = 0;
};

// The parts of a request that decide fit and score, as a string key: pods of one Deployment
// share it whatever their names, so their verdicts on nodes that did not change are reused.
std::string RequestShape(const PodRequest& request);

// Fit verdicts and scores of request shapes on nodes, valid while the node's version (and the
// cluster's layout) is unchanged. Thread-safe; bounded (cleared when it holds too many).
class VerdictMemo {
 public:
  struct Entry {
    uint64_t version = ~uint64_t{0};
    FitVerdict verdict;
  };
  // One request's access to one shape's verdicts, by node position, holding the memo's lock
  // (kube-scheduler's scheduling cycle is sequential, so requests rarely wait on each other).
  class Session {
   public:
    const Entry* Get(size_t node_index, uint64_t version) const {
      const Entry& e = (*table_)[node_index];
      return e.version == version ? &e : nullptr;
    }
    void Put(size_t node_index, uint64_t version, const FitVerdict& v) { (*table_)[node_index] = {version, v}; }

   private:
    friend class VerdictMemo;
    Session(std::unique_lock<std::mutex> lock, std::vector<Entry>* table) : lock_(std::move(lock)), table_(table) {}
    std::unique_lock<std::mutex> lock_;
    std::vector<Entry>* table_;
  };
  // The shape's table sized for `cluster` (emptied when the cluster's layout changed).
  Session Open(const std::string& shape, const ClusterState& cluster);
  size_t shapes() const;

  static constexpr size_t kMaxShapes = 512;
  static constexpr size_t kMaxEntries = size_t{1} << 20;  // about 40 MiB of verdicts

 private:
  struct Table {
    uint64_t layout = 0;
    std::vector<Entry> entries;
  };
  mutable std::mutex mu_;
  std::unordered_map<std::string, Table> by_shape_;
  size_t entries_ = 0;
};

// How often each stage ran (requests for request stages, nodes for node stages): for tests
// and metrics.
struct StageCounts {
  std::atomic<uint64_t> validity{0}, cluster{0}, fit_requests{0}, fit_nodes{0}, fit_memo_hits{0}, gate_nodes{0};
};

// What the node stages said about one node.
struct NodeOutcome {
  VerdictKind kind = VerdictKind::kNoFit;
  FitFailure failure;          // when the fit stage closed the node
  const NodeGate* gate = nullptr;  // when a gate closed it, with its words:
  std::string gate_reason;
  NodeScore score;             // when kind == kFits
};

class Pipeline {
 public:
  explicit Pipeline(Context ctx, const catalog::Catalog& catalog = catalog::Catalog::Builtin())
      : ctx_(ctx), catalog_(catalog) {}
  // Fit verdicts are memoised in `memo` under `scope` (which must change whenever the context
  // would score differently: policy, workload model).
  Pipeline& UseMemo(VerdictMemo* memo, std::string scope) {
    memo_ = memo;
    memo_scope_ = std::move(scope);
    return *this;
  }
  Pipeline& AddGate(const NodeGate* gate) {
    gates_.push_back(gate);
    return *this;
  }
  Pipeline& CountInto(StageCounts* counts) {
    counts_ = counts;
    return *this;
  }
  const Context& context() const { return ctx_; }
  // The stages in the order they run: validity, cluster, fit, each gate, score:<policy>.
  std::vector<std::string> StageNames() const;

  // Request stages: validity, then the cluster-wide checks. Once per request. `claimed`: slices
  // the pod asks for through DRA ResourceClaims, derived by the caller from the claims' device
  // requests (the pod spec names only the claims); they join the pod's app containers.
  StatusOr<PodRequest> PreFilter(const kube::PodSpec& pod, const ClusterState& cluster,
                                 std::span<const ContainerRequest> claimed = {}) const;

  // Node stages for `nodes` (null entries: not in the cluster; left as kNeverFits with no
  // failure), fitting ones scored. Large sets of memo misses are split over two threads (the
  // snapshot is read-only while the caller holds it).
  std::vector<NodeOutcome> Run(const PodRequest& request, const ClusterState& cluster,
                               std::span<const NodeState* const> nodes) const;
  // The words for a node the stages closed.
  std::string Reason(const NodeOutcome& outcome, const NodeState& node, const PodRequest& request) const;

  // The whole cycle over every node of the cluster (simulator, benchmarks): the best node and
  // its plan. `cache`/`shape_key`: optional per-shape memo keyed by the caller.
  Decision Schedule(const ClusterState& cluster, const PodRequest& request, FilterScoreCache* cache = nullptr,
                    uint64_t shape_key = 0) const;

 private:
  Context ctx_;
  const catalog::Catalog& catalog_;
  VerdictMemo* memo_ = nullptr;
  std::string memo_scope_;
  std::vector<const NodeGate*> gates_;
  StageCounts* counts_ = nullptr;
};

}  // namespace tideslice::core
