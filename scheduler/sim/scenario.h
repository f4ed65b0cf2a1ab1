// The simulator's two built-in heterogeneous scenarios, written as real pod specs and run
// through PreFilter -> Schedule -> Reserve for each placement policy:
//
//   builtin      (`tideslice-sim` with no arguments) DefaultCluster + DefaultWorkload: a small
//                mixed Ascend/NVIDIA cluster and a synthetic mix of every request kind TideSlice
//                accepts (fractional, vNPU and MIG profiles, vendor-native whole cards, 2/4/8-card
//                training, TFLOPS-based and exclusive pods). The mix is ours: it exercises every
//                kind, its proportions are not measured from a production cluster.
//   openb-mixed  (`tideslice-sim --scenario openb-mixed --nodes F --pods F`) OpenbMixedCluster +
//                OpenbMixedWorkload: the shapes of an Alibaba openb pod list (measured: CPU,
//                memory, GPU count, GPU share, allowed models) on every 10th node of the openb
//                node list with each trace model mapped onto an NVIDIA or Ascend card model
//                (OpenbFleetModel), so a policy is not tuned to one synthetic mix.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/catalog/catalog.h"
#include "common/kube/pod_spec.h"
#include "scheduler/core/placement.h"
#include "scheduler/sim/trace.h"

namespace tideslice::sim {

struct ScenarioPod {
  kube::PodSpec spec;
  std::string kind;        // "fractional", "profile", "whole", "multi-card", "tflops", "exclusive"
  double card_equivalents; // nominal demand in whole cards, for the arrived axis
};

// `scale` copies of the 18-node mixed cluster (1 = 18 nodes, 128 cards). A 150-pod run moves
// a policy's allocated share by a card or two (0.8-1.6 points) from seed to seed; at scale 10
// the same mix shows differences of a few tenths that hold across seeds.
core::ClusterState DefaultCluster(const catalog::Catalog& catalog, int scale = 1);
// Pods until their nominal demand reaches `demand_ratio` x the cluster's cards.
std::vector<ScenarioPod> DefaultWorkload(const core::ClusterState& cluster, uint64_t seed, double demand_ratio);

// The card model of the mixed fleet that stands in for a trace model code, by role: the
// trace's commonest 8-card servers (G2) become Ascend 910B3 servers, its large 8-card servers
// (G3) H100-80G, V100 cards A100 (80 GB for V100M32, 40 GB for V100M16), P100 Ascend 310P3,
// T4 and A10 stay. Empty for an unknown code.
std::string OpenbFleetModel(const std::string& trace_model);

// Every `every`-th node of the trace node list (sorted by name; GPU nodes only), its cards of
// the mapped model, its CPU and memory as in the trace. Ascend 910B3 servers have two HCCS
// rings of 4; the other models one link domain per node. InvalidArgument naming --nodes for an
// unknown model or an empty result.
StatusOr<core::ClusterState> OpenbMixedCluster(const std::vector<TraceNode>& nodes, const catalog::Catalog& catalog,
                                               int every = 10);

// Pods drawn with replacement (seeded) from the trace pod list until their GPU request reaches
// `demand_ratio` x the cluster's cards. A partial GPU becomes tideslice.io/vnpu 1 with
// tideslice.io/vnpu-cores of that share (memory in proportion); whole GPUs tideslice.io/vnpu N
// (whole cards); gpu_spec the tideslice.io/card-type of the mapped models; CPU and memory
// requests as in the trace. Kinds: fractional, whole, multi-card, cpu-only.
std::vector<ScenarioPod> OpenbMixedWorkload(const core::ClusterState& cluster, const std::vector<TracePod>& pods,
                                            uint64_t seed, double demand_ratio);

struct ScenarioResult {
  std::string policy;
  int pods = 0;
  int placed = 0;
  int rejected_at_prefilter = 0;
  std::map<std::string, std::pair<int, int>> by_kind;   // kind -> (placed, arrived)
  std::map<std::string, double> allocated_by_model;     // model -> allocated % of its cards
  double allocated_pct = 0;        // card-equivalents allocated / cards
  double fragmentation_pct = 0;
  int idle_cards = 0;
  int stranded_cards = 0;          // partly used cards with under 10 % of compute or memory left
  std::vector<std::pair<double, double>> curve;  // (arrived %, allocated %)
  std::vector<std::string> first_failures;       // reasons, for the report
};

ScenarioResult RunScenario(const std::vector<ScenarioPod>& pods, const core::ClusterState& empty_cluster,
                           const catalog::Catalog& catalog, core::Policy policy, uint64_t seed);

// Why a pod of a scenario went where it went: the run of `policy` up to that pod, then every
// node's score for it with the named terms of the policy's scorer, best first.
struct NodeExplanation {
  std::string node;
  std::string model;
  core::NodeScore score;
  core::ScoreTerms terms;
  std::vector<std::string> cards;  // the cards the node's plan would take
};
struct PodExplanation {
  std::string pod, kind, policy;
  int feasible_nodes = 0;
  std::vector<NodeExplanation> feasible;          // the top ones, best first
  std::string chosen;                             // where Schedule puts it ("" = nowhere)
  std::string summary;                            // Schedule's "N/M nodes fit; ..." line
  std::map<std::string, std::string> other_choices;  // bestfit / binpack -> their node now
};
// InvalidArgument naming --explain for a pod not in the list or one PreFilter refuses.
StatusOr<PodExplanation> ExplainScenarioPod(const std::vector<ScenarioPod>& pods, const core::ClusterState& empty_cluster,
                                            const catalog::Catalog& catalog, core::Policy policy, uint64_t seed,
                                            const std::string& pod_name, int top = 5);

// Allocated share of one card: the larger of its compute and memory use (a card whose memory
// is gone is as full as one whose compute is gone).
double CardAllocatedFraction(const core::CardState& card);

}  // namespace tideslice::sim
