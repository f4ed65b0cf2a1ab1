// The built-in default scenario: a mixed Ascend/NVIDIA cluster and a mixed fractional and
// whole-card workload, written as real pod specs and run through PreFilter -> Schedule ->
// Reserve for each placement policy. This is what `tideslice-sim` runs with no arguments.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/catalog/catalog.h"
#include "common/kube/pod_spec.h"
#include "scheduler/core/placement.h"

namespace tideslice::sim {

struct ScenarioPod {
  kube::PodSpec spec;
  std::string kind;        // "fractional", "profile", "whole", "multi-card", "tflops", "exclusive"
  double card_equivalents; // nominal demand in whole cards, for the arrived axis
};

core::ClusterState DefaultCluster(const catalog::Catalog& catalog);
// Pods until their nominal demand reaches `demand_ratio` x the cluster's cards.
std::vector<ScenarioPod> DefaultWorkload(const core::ClusterState& cluster, uint64_t seed, double demand_ratio);

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

// Allocated share of one card: the larger of its compute and memory use (a card whose memory
// is gone is as full as one whose compute is gone).
double CardAllocatedFraction(const core::CardState& card);

}  // namespace tideslice::sim
