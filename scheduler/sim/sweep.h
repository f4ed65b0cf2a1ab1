// Many replays at once (traces x policies x seeds) on a small thread pool, plus the published
// FGD results for comparison. Produces the tables in docs/simulator-validation.md.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "scheduler/sim/replay.h"

namespace tideslice::sim {

struct SweepOptions {
  std::string trace_dir;                 // holds openb_node_list_gpu_node.csv and the pod lists
  std::vector<std::string> traces;       // e.g. "default", "gpushare40" (file openb_pod_list_<name>.csv)
  std::vector<core::Policy> policies;
  std::vector<uint64_t> seeds;
  double inflate = 1.3;
  int threads = 2;
};

struct SweepCell {
  std::string trace;
  std::string policy;
  std::vector<ReplayResult> runs;        // one per seed
  double MedianUnallocatedAt100() const;
  double MedianAllocatedAt130() const;
};

StatusOr<std::vector<SweepCell>> RunSweep(const SweepOptions& options);

// Published per-seed curves (analysis_allo_discrete.csv): trace -> policy -> per-seed value at
// a column. Policy names are mapped to ours (01-Random -> random, 05-BestFit -> bestfit, ...).
struct PublishedResults {
  // trace -> policy -> values per seed
  std::map<std::string, std::map<std::string, std::vector<double>>> allocated_at_100;
  std::map<std::string, std::map<std::string, std::vector<double>>> allocated_at_130;
};
StatusOr<PublishedResults> LoadPublished(const std::string& path);

double Median(std::vector<double> v);

// Markdown report: our medians next to the published ones.
std::string SweepMarkdown(const std::vector<SweepCell>& cells, const PublishedResults* published);

}  // namespace tideslice::sim
