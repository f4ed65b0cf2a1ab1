// dotprod (FGD baseline): the node whose free resources point least in the pod's direction
// (dot product of normalised free CPU/accelerator with the request), on FGD's integer scale.
#include "scheduler/core/placement.h"
#include "scheduler/core/scoring/scorer.h"

namespace tideslice::core {
namespace {

class DotProdScorer final : public Scorer {
 public:
  Policy policy() const override { return Policy::kDotProd; }
  const char* name() const override { return "dotprod"; }
  NodeScore Score(const ScoreInput& in, ScoreTerms* terms) const override {
    using scoring::kMaxSpecCardPermille;
    using scoring::kMaxSpecCpuMilli;
    double dot = (in.cpu_left / kMaxSpecCpuMilli) * (in.cpu_req / kMaxSpecCpuMilli) +
                 (in.gpu_left / kMaxSpecCardPermille) * (in.gpu_req / kMaxSpecCardPermille);
    NodeScore s;
    s.primary = static_cast<double>(static_cast<int64_t>(100.0 * (1.0 - dot / 2.0)));
    if (terms) terms->push_back({"dot", dot});
    return s;
  }
};

}  // namespace

const Scorer& DotProdScorerInstance() {
  static const DotProdScorer scorer;
  return scorer;
}

}  // namespace tideslice::core
