// fgd (FGD, ATC'23): the node whose fragmentation grows least under the expected workload, on
// FGD's sigmoid scale; a single shared slice takes the first card with the lowest
// fragmentation. Without a workload model it packs like binpack.
#include <cmath>

#include "scheduler/core/placement.h"
#include "scheduler/core/scoring/scorer.h"

namespace tideslice::core {

const Scorer& BinpackScorerInstance();

namespace {

class FgdScorer final : public Scorer {
 public:
  Policy policy() const override { return Policy::kFgd; }
  const char* name() const override { return "fgd"; }
  NodeScore Score(const ScoreInput& in, ScoreTerms* terms) const override {
    if (!in.ctx.workload) return BinpackScorerInstance().Score(in, terms);
    const double delta = scoring::FragmentationDelta(in);
    NodeScore s;
    s.primary = static_cast<double>(static_cast<int64_t>(100.0 / (1.0 + std::exp(-delta / 1000.0))));
    if (terms) terms->push_back({"fragmentation_removed_permille", delta});
    return s;
  }
  void RerankCards(const NodeState& node, const CardUsage* usage, const Context& ctx,
                   std::span<CardCandidate> candidates) const override {
    if (!ctx.workload) return;
    const FragView base = MakeFragView(node, usage);
    for (auto& cand : candidates) {
      FragView trial = base;
      scoring::ApplyToView(trial, cand.grant, /*exclusive_pod=*/false);
      cand.rank = ctx.workload->Fragmentation(trial);
    }
  }
};

}  // namespace

const Scorer& FgdScorerInstance() {
  static const FgdScorer scorer;
  return scorer;
}

}  // namespace tideslice::core
