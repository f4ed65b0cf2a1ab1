// fragaware (TideSlice's default): the node where the pod grows fragmentation least under the
// expected workload, less a charge for taking cards of a model the workload presses on harder
// than the cluster average and for card capacity an exclusive pod holds but does not use, at a
// resolution of 5 % of the pod's own compute (at least 2 % of a card), with packing as the
// tie-break; a single shared slice takes the card that grows fragmentation least, then the
// tightest fit. Without a workload model it packs like binpack.
//
// Three things set it apart from FGD's measure (docs/simulator-validation.md, "Design of
// fragaware", has the numbers):
//   - Scarcity. FGD counts all idle capacity of a card model a shape cannot use as fragment, so
//     filling the nodes the fewest shapes can use always looks good: on clusters where most
//     shapes are type-restricted that steers flexible pods onto the cards the restricted ones
//     need. Each placement is charged (pressure - 1) x the compute it takes, where pressure is
//     the model's demand per card relative to the cluster (WorkloadModel::ModelPressure):
//     flexible pods go to the cards nobody else needs, and when no shape is restricted every
//     pressure is 1 and nothing changes.
//   - Exclusive pods. An exclusive pod holds its whole card but uses only its slice; FGD's
//     measure sees the card leave the pool of idle capacity and calls that progress, whatever
//     the card. The part of the card the pod does not use is charged as lost, so a 16 GiB
//     exclusive pod takes a 16 GB card rather than an 80 GB one, and scarcity is charged on
//     the whole card.
//   - Hard partitions. A card with MIG instances or vNPU templates keeps its free compute and
//     memory in the view (FGD's view zeroes it, as if the first 1g.10gb had filled the card),
//     so a profile pod joins a card that already has partitions instead of opening fresh ones.
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "scheduler/core/placement.h"
#include "scheduler/core/scoring/scorer.h"

namespace tideslice::core {

const Scorer& BinpackScorerInstance();

namespace {

// Resolution of the score: 5 % of the compute the pod takes, and never finer than 2 % of one
// card. A fixed resolution is too coarse for a tenth of a card and too fine for eight cards:
// the fragmentation a pod can remove grows with its size, and so does the noise in it.
constexpr double kMinQuantumPermille = 20.0;
constexpr double kQuantumShareOfPod = 0.05;
// Weight of the node's CPU left against its accelerator share left in the packing tie-break:
// accelerators are what the cluster is for; CPU matters only as far as it strands them.
constexpr double kTiebreakCpuWeight = 0.5;

// FGD's view of the node, except that cards holding hard partitions keep their free compute
// and memory (they can still take partitions; FGD's view calls them full).
FragView PartitionAwareView(const NodeState& node, const CardUsage* usage) {
  FragView v = MakeFragView(node, usage);
  for (int i = 0; i < v.cards; ++i) {
    const CardState& c = node.cards[i];
    const CardUsage& u = usage ? usage[i] : c.usage;
    if (!c.healthy || u.whole_taken || u.exclusive || u.hard_instances == 0) continue;
    v.free_permille[i] = std::max(0, kWholeCardPermille - u.used_compute_permille);
    v.free_memory_mib[i] = std::max<int64_t>(0, c.memory_mib - u.used_memory_mib);
  }
  return v;
}

// A grant's effect on that view: whole cards and exclusive pods take the card; partitions and
// soft slices take their compute and memory.
void ApplyToPartitionAwareView(FragView& v, const CardGrant& g, bool exclusive_pod) {
  if (g.reuses_pod_share || g.card_index < 0 || g.card_index >= v.cards) return;
  const int i = g.card_index;
  if (g.whole || exclusive_pod) {
    v.free_permille[i] = 0;
    v.free_memory_mib[i] = 0;
    return;
  }
  v.free_permille[i] = std::max(0, v.free_permille[i] - g.compute_permille);
  v.free_memory_mib[i] = std::max<int64_t>(0, v.free_memory_mib[i] - g.memory_mib);
}

class FragAwareScorer final : public Scorer {
 public:
  Policy policy() const override { return Policy::kFragAware; }
  const char* name() const override { return "fragaware"; }
  NodeScore Score(const ScoreInput& in, ScoreTerms* terms) const override {
    if (!in.ctx.workload) return BinpackScorerInstance().Score(in, terms);
    using scoring::kMaxSpecCardPermille;
    using scoring::kMaxSpecCpuMilli;
    const WorkloadModel& workload = *in.ctx.workload;
    const FragView before = PartitionAwareView(in.node, nullptr);
    FragView after = before;
    double scarcity = 0;  // permille-weighted (pressure - 1) of the cards the plan takes
    double unused = 0;    // permille of cards an exclusive pod holds and does not use
    // An exclusive pod holds each card it touches whole, however many of its containers share
    // it: what it uses of a card is summed over its grants there, then charged once per card.
    std::vector<std::pair<double, double>> exclusive_use;  // by card index: compute, memory share
    if (in.exclusive) exclusive_use.assign(in.node.cards.size(), {-1.0, 0.0});
    for (const auto& c : in.containers)
      for (const auto& g : c.cards) {
        ApplyToPartitionAwareView(after, g, in.exclusive);
        if (g.reuses_pod_share || g.card_index < 0 || g.card_index >= static_cast<int>(in.node.cards.size())) continue;
        const CardState& card = in.node.cards[g.card_index];
        if (!in.exclusive) {
          scarcity += (workload.ModelPressure(card.model_id) - 1.0) * g.compute_permille;
          continue;
        }
        auto& [compute, memory] = exclusive_use[g.card_index];
        compute = std::max(compute, 0.0) + (g.whole ? kWholeCardPermille : g.compute_permille);
        memory += g.whole || card.memory_mib <= 0 ? 0 : static_cast<double>(g.memory_mib) * kWholeCardPermille / card.memory_mib;
      }
    for (size_t i = 0; i < exclusive_use.size(); ++i) {
      const auto [compute, memory] = exclusive_use[i];
      if (compute < 0) continue;  // not a card of this plan
      // What the pod uses of the card: the larger of its compute and memory share.
      unused += kWholeCardPermille - std::min<double>(kWholeCardPermille, std::max(compute, memory));
      scarcity += (workload.ModelPressure(in.node.cards[i].model_id) - 1.0) * kWholeCardPermille;
    }
    if (after.cpu_tracked) after.cpu_left -= in.request.cpu_milli;
    const double delta = workload.Fragmentation(before) - workload.Fragmentation(after);
    // Fragmentation deltas closer than one quantum are within the noise of what arrives next;
    // among them the packing tie-break decides (the node left with the least idle capacity).
    // Without it, near-ties fall to chance: on the gpushare100 trace that alone costs about
    // 6 points of unallocated GPUs (docs/simulator-validation.md, "Design of fragaware").
    NodeScore s;
    const double quantum = std::max(kMinQuantumPermille, kQuantumShareOfPod * static_cast<double>(in.gpu_req));
    s.primary = std::round((delta - scarcity - unused) / quantum);
    s.tiebreak = -((in.gpu_left - in.gpu_req) / kMaxSpecCardPermille +
                   kTiebreakCpuWeight * (in.cpu_left - in.cpu_req) / kMaxSpecCpuMilli);
    if (terms) {
      terms->push_back({"fragmentation_removed_permille", delta});
      terms->push_back({"scarcity_charge_permille", scarcity});
      terms->push_back({"exclusive_unused_permille", unused});
      terms->push_back({"quantum_permille", quantum});
      terms->push_back({"score_quanta", s.primary});
      terms->push_back({"packing_tiebreak", s.tiebreak});
    }
    return s;
  }
  void RerankCards(const NodeState& node, const CardUsage* usage, const Context& ctx,
                   std::span<CardCandidate> candidates) const override {
    if (!ctx.workload) return;
    const FragView base = PartitionAwareView(node, usage);
    for (auto& cand : candidates) {
      FragView trial = base;
      ApplyToPartitionAwareView(trial, cand.grant, /*exclusive_pod=*/false);
      cand.rank = ctx.workload->Fragmentation(trial) + cand.rank * 1e-6;  // then the tightest fit
    }
  }
};

}  // namespace

const Scorer& FragAwareScorerInstance() {
  static const FragAwareScorer scorer;
  return scorer;
}

}  // namespace tideslice::core
