// kubectl-tideslice's output: the views (views.h) as kubectl-like tables (upper-case headers,
// columns aligned with three spaces, "<none>"/"-" for empty cells, ages like "3h12m") or as JSON
// (-o json, stable camelCase keys). Colour (problems in red) only when asked for, which the
// caller does when stdout is a terminal. Pure: strings out, `now` given.
#pragma once

#include <string>
#include <vector>

#include "cli/views.h"

namespace tideslice::cli {

struct RenderOptions {
  bool colour = false;
  bool all_namespaces = false;  // pods: a NAMESPACE column
  Time now{};
};

// "45s", "12m", "3h12m", "2d4h" (kubectl's short ages; negative durations as their magnitude).
std::string ShortDuration(std::chrono::seconds d);
// 16384 -> "16Gi", 12800 -> "12.5Gi", 512 -> "512Mi".
std::string Mebibytes(int64_t mib);
// "2026-12-02T20:00:00Z".
std::string Rfc3339(Time t);

// Rows of cells as an aligned table; cells may carry ANSI colour, which does not count for width.
std::string Table(const std::vector<std::vector<std::string>>& rows);

std::string RenderNodes(const std::vector<NodeRow>& nodes, const RenderOptions& o);
std::string RenderPods(const std::vector<PodRow>& pods, const RenderOptions& o);
std::string RenderWhy(const WhyView& why, const RenderOptions& o);
std::string RenderTide(const std::vector<PoolRow>& pools, const RenderOptions& o);

json NodesJson(const std::vector<NodeRow>& nodes);
json PodsJson(const std::vector<PodRow>& pods);
json WhyJson(const WhyView& why);
json TideJson(const std::vector<PoolRow>& pools, Time now);

}  // namespace tideslice::cli
