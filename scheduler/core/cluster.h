// Cluster state as the placement core sees it: nodes, their cards, and what every placed pod
// holds on which card. Plain data plus the two operations that change it (Reserve/Unreserve
// in placement.h); no I/O, no clocks, no threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/catalog/model.h"

namespace tideslice::core {

inline constexpr int kWholeCardPermille = 1000;

// One card's share given to one container.
struct CardGrant {
  int card_index = -1;        // position in NodeState::cards
  std::string uuid;
  int64_t memory_mib = 0;
  int compute_permille = 0;   // share of the card's compute, 1000 = all of it
  bool whole = false;         // the whole card, nobody else may share it
  std::string profile;        // hard partition (MIG profile / Ascend template), empty otherwise
  int start_slot = -1;        // MIG placement start slot
  int mig_compute_slices = 0; // MIG compute slices taken
  int aicore = 0;             // Ascend template AI Cores
  int aicpu = 0;              // Ascend template AI CPUs
  // Init-container grants reuse cards the pod's app containers already hold; they add
  // nothing to the card's accounting.
  bool reuses_pod_share = false;
};

struct ContainerGrant {
  std::string name;
  bool init = false;
  std::vector<CardGrant> cards;
};

// Where and how one pod is placed. This is what becomes the PodAssignment annotation.
struct PodPlacement {
  std::string pod_key;        // namespace/name
  std::string pod_uid;
  std::string node;
  int32_t priority = 0;
  bool exclusive = false;
  int64_t cpu_milli = 0;      // host resources, when the core accounts for them
  int64_t memory_mib = 0;
  std::vector<ContainerGrant> containers;

  int64_t TotalComputePermille() const;
};

// What is in use on one card. Plain old data so that Filter can work on cheap scratch copies.
struct CardUsage {
  int64_t used_memory_mib = 0;
  int used_compute_permille = 0;
  int soft_slices = 0;        // containers sharing it through soft slices
  int pods = 0;               // distinct pods holding anything on the card
  bool whole_taken = false;
  bool exclusive = false;     // held by a pod that asked for tideslice.io/exclusive
  uint32_t mig_slot_mask = 0; // MIG memory slices in use
  int mig_compute_used = 0;
  int hard_instances = 0;     // MIG instances or Ascend vNPUs on the card
  int used_aicore = 0;
  int used_aicpu = 0;

  bool Idle() const { return pods == 0 && used_memory_mib == 0 && used_compute_permille == 0 && !whole_taken; }
};

struct CardState {
  // static facts (from the node inventory)
  std::string uuid;
  int index = 0;
  const catalog::AcceleratorModel* model = nullptr;  // owned by the catalog, outlives the state
  int model_id = 0;           // dense id of the model within ClusterState (for fast checks)
  int64_t memory_mib = 0;
  bool healthy = true;
  int numa_node = -1;
  std::string link_domain;
  // The partition profiles this card's driver accepts, as its node's inventory lists them
  // (profiles_listed); a card described otherwise (simulator, tests) offers its model's.
  bool profiles_listed = false;
  std::vector<std::string> profiles;

  CardUsage usage;

  bool OffersProfile(const std::string& name) const {
    return !profiles_listed || std::find(profiles.begin(), profiles.end(), name) != profiles.end();
  }

  int64_t FreeMemoryMiB() const { return memory_mib - usage.used_memory_mib; }
  int FreeComputePermille() const { return kWholeCardPermille - usage.used_compute_permille; }
};

struct NodeState {
  std::string name;
  std::map<std::string, std::string> labels;
  std::vector<CardState> cards;
  // Host resources; a capacity of 0 means "not tracked here" (kube-scheduler checks them).
  int64_t cpu_milli_capacity = 0;
  int64_t cpu_milli_used = 0;
  int64_t memory_mib_capacity = 0;
  int64_t memory_mib_used = 0;
  bool schedulable = true;     // false when the node's inventory is stale or missing
  // Cards handed out through DRA (kube-scheduler's allocator decides who holds one; the core's
  // accounting there comes from allocated ResourceClaims and only ranks nodes).
  bool dra = false;
  std::string unschedulable_reason;
  uint64_t version = 0;        // bumped on every change; lets callers cache per-node results
  std::map<std::string, PodPlacement> pods;  // pod key -> placement on this node

  int HealthyCards() const;
};

// The whole cluster. Node order is the order nodes were added; lookups go through the index.
class ClusterState {
 public:
  // Adds a node, or replaces the node of that name (its pods must be re-adopted by the caller).
  NodeState& AddNode(NodeState node);
  // Removes a node and forgets which pods it held.
  void RemoveNode(const std::string& name);
  NodeState* FindNode(const std::string& name);
  const NodeState* FindNode(const std::string& name) const;
  // Position of a node in nodes(), or npos. Positions hold until the next AddNode/RemoveNode,
  // which change layout().
  static constexpr size_t npos = ~size_t{0};
  size_t IndexOf(std::string_view name) const;
  uint64_t layout() const { return layout_; }
  std::vector<NodeState>& nodes() { return nodes_; }
  const std::vector<NodeState>& nodes() const { return nodes_; }
  // Dense ids for card models, so hot loops compare ints instead of strings.
  int ModelId(const std::string& model_name);
  int ModelIdIfKnown(const std::string& model_name) const;
  const std::vector<std::string>& model_names() const { return model_names_; }
  // Where a pod is placed, if anywhere.
  const NodeState* NodeOfPod(const std::string& pod_key) const;
  // Bookkeeping of which node holds which pod; kept by Reserve/Unreserve.
  void RecordPod(const std::string& pod_key, const std::string& node) { pod_to_node_[pod_key] = node; }
  void ForgetPod(const std::string& pod_key) { pod_to_node_.erase(pod_key); }

 private:
  std::vector<NodeState> nodes_;
  // Hashed, and looked up by string_view: extender verbs look up every named node.
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, size_t, NameHash, std::equal_to<>> index_;
  uint64_t layout_ = 0;
  std::vector<std::string> model_names_;
  std::map<std::string, int> model_index_;
  std::map<std::string, std::string> pod_to_node_;
};

}  // namespace tideslice::core
