// The scorer table: one line per policy, in Policy order.
#include <array>

#include "scheduler/core/placement.h"
#include "scheduler/core/scoring/scorer.h"

namespace tideslice::core {

const Scorer& FragAwareScorerInstance();
const Scorer& BinpackScorerInstance();
const Scorer& SpreadScorerInstance();
const Scorer& RandomScorerInstance();
const Scorer& BestFitScorerInstance();
const Scorer& DotProdScorerInstance();
const Scorer& GpuPackingScorerInstance();
const Scorer& FgdScorerInstance();

namespace {

const std::array<const Scorer*, 8>& Table() {
  static const std::array<const Scorer*, 8> table = {
      &FragAwareScorerInstance(), &BinpackScorerInstance(), &SpreadScorerInstance(),    &RandomScorerInstance(),
      &BestFitScorerInstance(),   &DotProdScorerInstance(), &GpuPackingScorerInstance(), &FgdScorerInstance(),
  };
  return table;
}

}  // namespace

std::span<const Scorer* const> AllScorers() { return Table(); }

const Scorer& ScorerFor(Policy policy) {
  const auto i = static_cast<size_t>(policy);
  if (i < Table().size() && Table()[i]->policy() == policy) return *Table()[i];
  for (const Scorer* s : Table())
    if (s->policy() == policy) return *s;
  return *Table().front();  // unreachable: the table test checks every Policy has its scorer
}

}  // namespace tideslice::core
