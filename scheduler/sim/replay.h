// Trace replay with the FGD (ATC'23) evaluation protocol, driving the production placement
// core (scheduler/core) pod by pod:
//   1. the pod list, sorted by name, is shuffled by the seed;
//   2. it is "inflated": pods drawn with replacement from the original list are appended
//      until the next one would push the total GPU request past inflate x cluster capacity;
//   3. pods arrive one at a time, never leave, and are placed or fail;
//   4. at every whole percent of arrived GPU request (0..round(100 x inflate)) we record the
//      allocated share of the cluster's GPUs and the cluster's fragmentation.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/catalog/catalog.h"
#include "scheduler/core/placement.h"
#include "scheduler/sim/trace.h"

namespace tideslice::sim {

struct ReplayOptions {
  core::Policy policy = core::Policy::kFragAware;
  uint64_t seed = 42;
  double inflate = 1.3;
  bool record_fragmentation = true;
  double typical_popularity = 1.0;  // share of pods whose shapes form the workload model (not FGD)
};

struct ReplayPoint {
  int arrived_pct = 0;
  double allocated_pct = 0;
  double fragmentation_pct = 0;
};

struct ReplayResult {
  std::string trace;
  std::string policy;
  uint64_t seed = 0;
  std::vector<ReplayPoint> points;
  double unallocated_at_100 = 0;   // 100 - allocated % when arrived reaches 100 %
  double allocated_at_130 = 0;     // allocated % at the last point (130 % with the default inflate)
  int64_t pods_arrived = 0;
  int64_t pods_failed = 0;
  int64_t cluster_gpus = 0;
  double elapsed_s = 0;

  std::string ToJson() const;
};

// Card models of the trace (T4, V100M16, ...) resolved against the catalog; trace-only codes
// (P100, G2, G3: undisclosed in the trace) become placeholder models.
catalog::Catalog TraceCatalog();

// The cluster of a trace node list: one card of the catalog model per trace GPU (models named
// by trace code, see TraceCatalog). Cards point into `cat`, which must outlive the cluster.
// InvalidArgument naming --nodes for an unknown model.
StatusOr<core::ClusterState> TraceCluster(const std::vector<TraceNode>& nodes, const catalog::Catalog& cat);

// Steps 1-2 of the protocol: the pod list sorted by name, shuffled with `rng`, then inflated
// with pods drawn (with replacement, from the sorted list) by `rng` until the next one would
// push the total GPU request past inflate x capacity. Replay continues with the same `rng`.
std::vector<TracePod> ArrivalSequence(const std::vector<TracePod>& pods, int64_t capacity_milli, double inflate,
                                      std::mt19937_64& rng);

// The request a trace pod makes: its CPU and memory, gpu_spec as card-type includes, partial
// GPUs as one soft slice of that compute share, whole GPUs as whole cards.
core::PodRequest TraceRequest(const TracePod& pod, const catalog::Catalog& cat, const std::string& pod_key);

// The workload model of a pod list: every shape, weighted by how often it occurs (the
// shapes of `popularity` of the pods, most frequent first; 1.0 = all), bound to `cluster`.
core::WorkloadModel TraceWorkloadModel(const std::vector<TracePod>& pods, const catalog::Catalog& cat,
                                       const core::ClusterState& cluster, double popularity);

// Runs one replay. `trace_name` only labels the result.
StatusOr<ReplayResult> Replay(const std::vector<TraceNode>& nodes, const std::vector<TracePod>& pods,
                              const std::string& trace_name, const ReplayOptions& options);

}  // namespace tideslice::sim
