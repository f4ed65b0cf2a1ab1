// bestfit (FGD baseline): the node left with the least CPU and accelerator after the pod, each
// normalised by the largest node shape of the FGD evaluation, on FGD's integer scale.
#include "scheduler/core/placement.h"
#include "scheduler/core/scoring/scorer.h"

namespace tideslice::core {
namespace {

class BestFitScorer final : public Scorer {
 public:
  Policy policy() const override { return Policy::kBestFit; }
  const char* name() const override { return "bestfit"; }
  NodeScore Score(const ScoreInput& in, ScoreTerms* terms) const override {
    using scoring::kMaxSpecCardPermille;
    using scoring::kMaxSpecCpuMilli;
    double rest = (in.cpu_left - in.cpu_req) / kMaxSpecCpuMilli * 0.5 +
                  (in.gpu_left - in.gpu_req) / kMaxSpecCardPermille * 0.5;
    NodeScore s;
    s.primary = static_cast<double>(static_cast<int64_t>((1.0 - rest) * 100.0));
    if (terms) {
      terms->push_back({"cpu_left_after", in.cpu_left - in.cpu_req});
      terms->push_back({"gpu_left_after_permille", static_cast<double>(in.gpu_left - in.gpu_req)});
      terms->push_back({"rest", rest});
    }
    return s;
  }
};

}  // namespace

const Scorer& BestFitScorerInstance() {
  static const BestFitScorer scorer;
  return scorer;
}

}  // namespace tideslice::core
