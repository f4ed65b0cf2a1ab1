// gpupacking (FGD baseline): prefer cards already in use, then nodes with the fewest fully
// free cards, on FGD's integer scale.
#include <algorithm>

#include "scheduler/core/placement.h"
#include "scheduler/core/scoring/scorer.h"

namespace tideslice::core {
namespace {

class GpuPackingScorer final : public Scorer {
 public:
  Policy policy() const override { return Policy::kGpuPacking; }
  const char* name() const override { return "gpupacking"; }
  NodeScore Score(const ScoreInput& in, ScoreTerms* terms) const override {
    NodeScore s;
    if (in.gpu_req <= 0) return s;
    const NodeState& node = in.node;
    int fully_free = 0;
    int cards = static_cast<int>(node.cards.size());
    for (const auto& card : node.cards) fully_free += SliceableFreePermille(card) == kWholeCardPermille ? 1 : 0;
    if (terms) terms->push_back({"fully_free_cards", static_cast<double>(fully_free)});
    if (fully_free == cards) {
      s.primary = static_cast<double>(std::max<int64_t>(100 / 3 - fully_free, fully_free));
      return s;
    }
    int fully_free_used = 0;
    int64_t free_ratio_on_used = 0;
    for (const auto& c : in.containers)
      for (const auto& g : c.cards) {
        if (g.reuses_pod_share) continue;
        int before = SliceableFreePermille(node.cards[g.card_index]);
        if (before == kWholeCardPermille) fully_free_used++;
        free_ratio_on_used += before * 100 / kWholeCardPermille;
      }
    if (terms) {
      terms->push_back({"fully_free_cards_taken", static_cast<double>(fully_free_used)});
      terms->push_back({"free_percent_on_taken_cards", static_cast<double>(free_ratio_on_used)});
    }
    if (fully_free_used > 0) {
      s.primary = static_cast<double>(std::max<int64_t>(100 / 2 - fully_free_used, 100 / 3));
    } else {
      s.primary = static_cast<double>(std::max<int64_t>(100 - free_ratio_on_used / 10, 100 / 2));
    }
    return s;
  }
};

}  // namespace

const Scorer& GpuPackingScorerInstance() {
  static const GpuPackingScorer scorer;
  return scorer;
}

}  // namespace tideslice::core
