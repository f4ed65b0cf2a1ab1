// spread: the least used node (accelerator share, CPU as tie-break) and, on it, the card with
// the most room left.
#include "scheduler/core/placement.h"
#include "scheduler/core/scoring/scorer.h"

namespace tideslice::core {
namespace {

class SpreadScorer final : public Scorer {
 public:
  Policy policy() const override { return Policy::kSpread; }
  const char* name() const override { return "spread"; }
  NodeScore Score(const ScoreInput& in, ScoreTerms* terms) const override {
    double util = 0, cpu_util = 0;
    scoring::PackingUtilisation(in, &util, &cpu_util);
    if (terms) {
      terms->push_back({"accelerator_free_after", 1.0 - util});
      terms->push_back({"cpu_free_after", 1.0 - cpu_util});
    }
    return {1.0 - util, 1.0 - cpu_util};
  }
  double RankCard(int, double free_after, const SliceSpec&, const Context&) const override { return -free_after; }
};

}  // namespace

const Scorer& SpreadScorerInstance() {
  static const SpreadScorer scorer;
  return scorer;
}

}  // namespace tideslice::core
