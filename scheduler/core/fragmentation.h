// Fragmentation of a node with respect to the workload it is expected to serve.
//
// The measure is the one of Weng et al., "Beware of Fragmentation" (FGD, USENIX ATC'23): for
// each typical pod shape t (with frequency w_t), the idle compute of the node that t could not
// use counts as fragment: all of it when t cannot be hosted at all (too little CPU, wrong card
// model, not enough cards with room, or t needs no card), otherwise the cards whose free share
// is below t's per-card request. The node's fragmentation is the weighted sum, in permille of
// one card. Placing a pod where the sum grows least keeps the cluster able to host the pods
// that will come next.
//
// This is pure arithmetic over small arrays; the evaluation groups the typical pods by their
// card shape and answers the CPU threshold with a binary search, so one evaluation costs
// O(groups x cards) instead of O(typical pods x cards).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "scheduler/core/cluster.h"

namespace tideslice::core {

inline constexpr int kMaxCardsPerNode = 32;

struct TypicalPod {
  int64_t cpu_milli = 0;
  int per_card_permille = 0;   // compute share per card; 0 with num_cards 0 = the pod needs no card
  int num_cards = 0;
  std::vector<std::string> allowed_models;  // empty = any model
  double weight = 1;           // relative frequency
  int64_t memory_mib = 0;      // card memory per card, 0 = none
};

// The slice of a node that fragmentation looks at.
// A card's idle share is the smaller of its free compute and free memory (in permille of the
// card): a card with compute left but no memory is as full as one with no compute.
struct FragView {
  int64_t cpu_left = 0;
  bool cpu_tracked = false;
  int model_id = -1;
  int cards = 0;
  std::array<int, kMaxCardsPerNode> free_permille{};     // free compute, 0 for cards no slice can use
  std::array<int64_t, kMaxCardsPerNode> free_memory_mib{};
  std::array<int64_t, kMaxCardsPerNode> memory_mib{};    // 0 = memory not modelled for the card

  int IdleShare(int i) const {
    if (memory_mib[i] <= 0) return free_permille[i];
    return static_cast<int>(std::min<int64_t>(free_permille[i], free_memory_mib[i] * 1000 / memory_mib[i]));
  }
};

// The view of `node`, with each card's usage taken from `usage` (one entry per card, e.g. a
// scratch copy during Filter) or, when null, from the node itself; `extra_cpu` is CPU a plan
// would take on top of what the node already uses.
FragView MakeFragView(const NodeState& node, const CardUsage* usage = nullptr, int64_t extra_cpu = 0);
// Free share of one card for fragmentation purposes: what a new soft slice could still get.
int SliceableFreePermille(const CardState& card);

class WorkloadModel {
 public:
  // Aggregates identical shapes and normalises weights to sum 1. Shapes with no accelerator
  // are kept: they make every idle card of a node a fragment, as in FGD.
  // popularity: keep only the most frequent shapes that together cover this share of the
  // weight (FGD's experiments used 0.95); 1.0 keeps every shape.
  static WorkloadModel FromTypicalPods(const std::vector<TypicalPod>& pods, double popularity = 1.0);

  // Resolves model names against the cluster's model ids. Call after nodes are added.
  void Bind(const ClusterState& cluster);

  double Fragmentation(const FragView& view) const;

  // How hard the expected workload presses on a card model, relative to the cluster average
  // (1.0): each shape's demand (weight x cards x share) spread evenly over the cards of the
  // models it may use, summed per model. A model only constrained shapes can use scores above
  // 1; a model no constrained shape needs, below. 1.0 for every model when no shape is
  // constrained (and for unknown ids). Computed by Bind.
  double ModelPressure(int model_id) const {
    return model_id >= 0 && model_id < static_cast<int>(pressure_.size()) ? pressure_[model_id] : 1.0;
  }
  bool empty() const { return groups_.empty(); }
  size_t shape_count() const { return shapes_; }

 private:
  struct Group {
    int per_card_permille = 0;
    int64_t memory_mib = 0;
    int num_cards = 0;
    std::vector<std::string> allowed_models;
    uint64_t model_mask = ~0ull;  // bit per cluster model id; all ones = any
    bool any_model = true;
    std::vector<int64_t> cpu_sorted;      // ascending CPU requests of the pods in the group
    std::vector<double> weight_prefix;    // weight_prefix[i] = sum of weights of cpu_sorted[0..i)
    double total_weight = 0;
  };
  std::vector<Group> groups_;
  size_t shapes_ = 0;
  std::vector<double> pressure_;  // by cluster model id
};

}  // namespace tideslice::core
