// Scorers: one per placement policy, each in its own file, found through one table (table.cc).
//
// A scorer answers two questions the pipeline asks while it places a pod:
//   - which of a node's cards should a slice take (RankCard, then RerankCards for policies
//     that look at the whole node), and
//   - how good is a node once the pod's grants are on it (Score).
// Score can also say what its number is made of: given a ScoreTerms list it appends named
// terms (for an "explain" answer); the hot path passes null and pays nothing for them.
//
// Adding a policy: a file here with its scorer, one enum value in placement.h and one line in
// table.cc. Nothing else switches over Policy.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "scheduler/core/cluster.h"
#include "scheduler/core/fragmentation.h"
#include "scheduler/core/request.h"

namespace tideslice::core {

enum class Policy;
struct NodeScore;
struct Context;

// One named part of a node's score, in the scorer's own units.
struct ScoreTerm {
  std::string name;
  double value = 0;
};
using ScoreTerms = std::vector<ScoreTerm>;

// What a scorer sees of one node with the pod's grants planned on it. The aggregates are the
// ones several scorers share, computed once per node by the pipeline.
struct ScoreInput {
  const NodeState& node;
  const PodRequest& request;
  std::span<const ContainerGrant> containers;  // the plan's grants, app containers first
  bool exclusive = false;                      // the pod holds its cards alone
  const Context& ctx;
  int64_t gpu_req = 0;      // compute the plan takes (grants that reuse the pod's share excluded)
  int64_t gpu_left = 0;     // sliceable free compute of the node before the plan
  double cpu_left = 0;      // free CPU before the plan (0 when the node does not track CPU)
  double cpu_req = 0;       // the pod's CPU (0 when the node does not track CPU)
};

// A card that could take a slice, with its rank (lower is better).
struct CardCandidate {
  int index = 0;
  CardGrant grant;
  double rank = 0;
};

class Scorer {
 public:
  virtual ~Scorer() = default;
  virtual Policy policy() const = 0;
  // The name flags, configuration and reports use ("fragaware").
  virtual const char* name() const = 0;

  // Node score, higher is better. When `terms` is not null, appends the named terms that make
  // it up (the same arithmetic; the returned score is identical either way).
  virtual NodeScore Score(const ScoreInput& in, ScoreTerms* terms) const = 0;

  // Rank of one candidate card for a slice (lower is better). `free_after` is the room the card
  // keeps after the slice (compute permille plus memory share / 1000). Default: best fit.
  virtual double RankCard(int card_index, double free_after, const SliceSpec& slice, const Context& ctx) const;
  // Second look at all candidates of a single shared slice (not whole, count 1, more than one
  // candidate), with the node's scratch usage. Default: the ranks stand.
  virtual void RerankCards(const NodeState& node, const CardUsage* usage, const Context& ctx,
                           std::span<CardCandidate> candidates) const;
};

// The scorer of a policy (never null: every Policy has exactly one).
const Scorer& ScorerFor(Policy policy);
// Every scorer, in Policy order.
std::span<const Scorer* const> AllScorers();

// Shared arithmetic of several scorers (scoring/terms.cc).
namespace scoring {
// Normalisers of the FGD baselines (their MaxSpecCpu / MaxSpecGpu): 128 cores, 8 cards.
inline constexpr double kMaxSpecCpuMilli = 128000.0;
inline constexpr double kMaxSpecCardPermille = 8000.0;
// What a grant does to a node's fragmentation view, without touching the node.
void ApplyToView(FragView& v, const CardGrant& g, bool exclusive_pod);
// Fragmentation the plan removes from the node (before - after), under the workload model.
double FragmentationDelta(const ScoreInput& in);
// Binpack / spread: the node's accelerator share in use after the plan (memory and compute,
// 0..1) and its CPU share in use after the plan.
void PackingUtilisation(const ScoreInput& in, double* util, double* cpu_util);
// Position of a node in a run's fixed node order, in [0, 1): a hash of its name salted with
// `seed`. The FGD artifact's baselines break ties between equal nodes this way (fgd.cc).
double NodeOrderKey(std::string_view node_name, uint64_t seed);
}  // namespace scoring

}  // namespace tideslice::core
