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

// Runs one replay. `trace_name` only labels the result.
StatusOr<ReplayResult> Replay(const std::vector<TraceNode>& nodes, const std::vector<TracePod>& pods,
                              const std::string& trace_name, const ReplayOptions& options);

}  // namespace tideslice::sim
