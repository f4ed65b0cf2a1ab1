// binpack: fill the nodes that are already most used (accelerator share, CPU as tie-break), so
// that whole nodes stay free for large pods.
#include "scheduler/core/placement.h"
#include "scheduler/core/scoring/scorer.h"

namespace tideslice::core {
namespace {

class BinpackScorer final : public Scorer {
 public:
  Policy policy() const override { return Policy::kBinpack; }
  const char* name() const override { return "binpack"; }
  NodeScore Score(const ScoreInput& in, ScoreTerms* terms) const override {
    double util = 0, cpu_util = 0;
    scoring::PackingUtilisation(in, &util, &cpu_util);
    if (terms) {
      terms->push_back({"accelerator_used_after", util});
      terms->push_back({"cpu_used_after", cpu_util});
    }
    return {util, cpu_util};
  }
};

}  // namespace

const Scorer& BinpackScorerInstance() {
  static const BinpackScorer scorer;
  return scorer;
}

}  // namespace tideslice::core
