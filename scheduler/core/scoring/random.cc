// random (FGD baseline): every feasible node ties, so the pipeline picks one at random; a single
// shared slice takes a random card.
#include "scheduler/core/placement.h"
#include "scheduler/core/scoring/scorer.h"

namespace tideslice::core {
namespace {

class RandomScorer final : public Scorer {
 public:
  Policy policy() const override { return Policy::kRandom; }
  const char* name() const override { return "random"; }
  NodeScore Score(const ScoreInput&, ScoreTerms*) const override { return {}; }
  double RankCard(int card_index, double, const SliceSpec& slice, const Context& ctx) const override {
    if (slice.whole || slice.count > 1 || !ctx.rng) return card_index;
    return std::uniform_real_distribution<double>(0, 1)(*ctx.rng);
  }
};

}  // namespace

const Scorer& RandomScorerInstance() {
  static const RandomScorer scorer;
  return scorer;
}

}  // namespace tideslice::core
