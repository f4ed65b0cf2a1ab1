// Loader for the Alibaba GPU cluster trace v2023 ("openb", used by FGD, ATC'23).
// Every line is validated; an error names file, line and column and says what is wrong.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace tideslice::sim {

struct TraceNode {
  std::string name;
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  int gpus = 0;
  std::string model;  // trace model code: T4, P100, V100M16, V100M32, A10, G2, G3
};

struct TracePod {
  std::string name;
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  int num_gpu = 0;
  int gpu_milli = 0;                  // per GPU, 1000 = whole
  std::vector<std::string> gpu_spec;  // allowed models, empty = any

  int64_t TotalGpuMilli() const { return static_cast<int64_t>(num_gpu) * gpu_milli; }
};

// Parse from text (for tests and fuzzing) or from a file.
StatusOr<std::vector<TraceNode>> ParseNodeCsv(std::string_view text, const std::string& source);
StatusOr<std::vector<TracePod>> ParsePodCsv(std::string_view text, const std::string& source);
StatusOr<std::vector<TraceNode>> LoadNodeCsv(const std::string& path);
StatusOr<std::vector<TracePod>> LoadPodCsv(const std::string& path);

}  // namespace tideslice::sim
