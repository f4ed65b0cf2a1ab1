// tideslice-sim's commands: the placement core without a cluster.
//
//   tideslice-sim [demo] [--scenario builtin|openb-mixed] [--nodes FILE --pods FILE] [--seed N]
//                 [--scale K] [--demand 1.3] [--offline true] [--explain POD] [--svg OUT] [--json OUT]
//   tideslice-sim offline --nodes FILE --pods FILE [--policy NAME] [--seeds 42-51] [--at 100,130]
//                         [--published FILE]
//   tideslice-sim replay --nodes FILE --pods FILE [--policy NAME] [--seed N] [--inflate 1.3]
//                        [--json OUT] [--svg OUT]
//   tideslice-sim tidal [--days D] [--cards N] [--peak P] [--static-inference N] [--seed N]
//                       [--report OUT.md] [--svg OUT.svg]
//   tideslice-sim sweep --trace-dir DIR [--traces a,b] [--policies a,b] [--seeds 42-51]
//                       [--inflate 1.3] [--threads N] [--published FILE] [--markdown OUT]
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "scheduler/sim/commands.h"

#include "common/flags.h"
#include "scheduler/sim/offline_bound.h"
#include "scheduler/sim/replay.h"
#include "scheduler/sim/scenario.h"
#include "scheduler/sim/svg.h"
#include "scheduler/sim/sweep.h"
#include "scheduler/sim/tidal.h"

using namespace tideslice;

namespace {

constexpr const char* kUsage = R"(tideslice-sim: run TideSlice's placement core on a simulated cluster.

Usage:
  tideslice-sim [demo] [--scenario builtin|openb-mixed] [--nodes FILE --pods FILE] [--seed N]
                [--scale K] [--demand R] [--offline true] [--explain POD] [--svg OUT] [--json OUT]
      builtin (default): a mixed Ascend/NVIDIA cluster (H100, A100, 910B3, 310P3, T4; 18 nodes,
      times K with --scale, 1..100) and a mixed workload of fractional, vNPU/MIG profile,
      whole-card, multi-card, TFLOPS-based and exclusive pods. openb-mixed: the shapes of an
      openb pod list (--pods) on every 10th node of an openb node list (--nodes), trace models
      mapped onto NVIDIA and Ascend cards. Pods arrive until their demand is R x the cluster's
      cards (default 1.3). Compares the placement policies and prints a report; --offline true
      adds what offline packers place of the same pods;
      --explain POD (e.g. pod-12) prints, instead, the top nodes for that pod under the default
      policy with the terms of its scorer, and where bestfit and binpack would put it.

  tideslice-sim offline --nodes FILE --pods FILE [--policy NAME] [--seeds A-B|LIST] [--at 100,130]
                        [--published FILE]
      The online policy's allocated share at the --at points of the replay protocol next to the
      best of several offline packers of the same arrivals (a lower bound on the offline optimum),
      a flow relaxation no packer can beat, and the published FGD and BestFit medians.

  tideslice-sim replay --nodes FILE --pods FILE [--policy NAME] [--seed N] [--inflate R]
                       [--json OUT] [--svg OUT]
      Replays an Alibaba openb trace with the FGD (ATC'23) protocol. Default policy: fragaware.

  tideslice-sim sweep --trace-dir DIR [--traces LIST] [--policies LIST] [--seeds A-B|LIST]
                      [--inflate R] [--threads N] [--published FILE] [--markdown OUT]
      Many replays at once; medians per trace and policy, next to the published FGD results.

  tideslice-sim tidal [--days D] [--cards N] [--peak P] [--static-inference N] [--seed N]
                      [--report OUT.md] [--svg OUT.svg] [--log-transitions true]
      A tidal pool over D days (default 7) of N cards (default 64): a diurnal inference demand
      peaking at P cards (default 56) and a training backlog, served by a static split (inference
      keeps --static-inference cards, default P), by TideSlice's tides with checkpoint notices,
      and by the same tides without notices. Prints a report; --svg draws the pool over time.

Policies: fragaware (default), binpack, spread, random, bestfit, dotprod, gpupacking, fgd.
)";

struct Flags {
  std::string command;
  std::map<std::string, std::string> values;
};

// "tideslice-sim COMMAND --flag value ...": the command picks which flags are allowed; the flags
// themselves go through the binaries' common parser (--flag value or --flag=value).
StatusOr<Flags> ParseCommandLine(int argc, char** argv, const std::map<std::string, std::set<std::string>>& allowed) {
  Flags f;
  int first = 1;
  if (first < argc && argv[first][0] != '-') f.command = argv[first++];
  if (f.command.empty()) f.command = "demo";
  auto it = allowed.find(f.command);
  if (it == allowed.end())
    return Status::InvalidArgument(f.command, "unknown command; use demo, replay, sweep, offline or tidal (see --help)");
  // The common parser skips its argv[0]: hand it the arguments after the command.
  auto parsed = tideslice::ParseFlags(argc - first + 1, argv + first - 1, it->second);
  if (!parsed.ok()) {
    const Status& st = parsed.status();
    if (st.message().rfind("unknown flag", 0) == 0)
      return Status::InvalidArgument(st.field(), "is not a flag of `" + f.command + "`; see tideslice-sim --help");
    return st;
  }
  if (parsed->help) f.command = "help";
  f.values = std::move(parsed->values);
  return f;
}

StatusOr<uint64_t> ParseU64(const std::string& flag, const std::string& text) {
  try {
    size_t used = 0;
    unsigned long long v = std::stoull(text, &used);
    if (used != text.size()) throw std::invalid_argument(text);
    return static_cast<uint64_t>(v);
  } catch (...) {
    return Status::InvalidArgument(flag, "must be a whole number, got \"" + text + "\"");
  }
}

StatusOr<double> ParseRatio(const std::string& flag, const std::string& text) {
  try {
    size_t used = 0;
    double v = std::stod(text, &used);
    if (used != text.size() || !(v > 0) || v > 10) throw std::invalid_argument(text);
    return v;
  } catch (...) {
    return Status::InvalidArgument(flag, "must be a number in (0, 10], got \"" + text + "\"");
  }
}

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string x;
  while (std::getline(ss, x, ','))
    if (!x.empty()) out.push_back(x);
  return out;
}

Status WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  if (!out) return Status::Unavailable("cannot write " + path);
  out << content;
  return out ? Status::Ok() : Status::Unavailable("failed writing " + path);
}

int Fail(const Status& s) {
  std::fprintf(stderr, "tideslice-sim: %s\n", s.ToString().c_str());
  return 2;
}

int RunDemo(const Flags& f) {
  uint64_t seed = 7;
  double demand = 1.3;
  if (f.values.count("--seed")) {
    auto v = ParseU64("--seed", f.values.at("--seed"));
    if (!v.ok()) return Fail(v.status());
    seed = *v;
  }
  if (f.values.count("--demand")) {
    auto v = ParseRatio("--demand", f.values.at("--demand"));
    if (!v.ok()) return Fail(v.status());
    demand = *v;
  }
  int scale = 1;
  if (f.values.count("--scale")) {
    auto v = ParseU64("--scale", f.values.at("--scale"));
    if (!v.ok()) return Fail(v.status());
    if (*v < 1 || *v > 100) return Fail(Status::InvalidArgument("--scale", "must be 1..100 (copies of the 18-node cluster)"));
    scale = static_cast<int>(*v);
  }
  bool offline = false;
  if (f.values.count("--offline")) {
    const std::string& v = f.values.at("--offline");
    if (v != "true" && v != "false") return Fail(Status::InvalidArgument("--offline", "must be true or false"));
    offline = v == "true";
  }
  const std::string scenario = f.values.count("--scenario") ? f.values.at("--scenario") : "builtin";
  const auto& cat = catalog::Catalog::Builtin();
  core::ClusterState cluster;
  std::vector<sim::ScenarioPod> pods;
  if (scenario == "builtin") {
    if (f.values.count("--nodes") || f.values.count("--pods"))
      return Fail(Status::InvalidArgument("--nodes/--pods", "are for --scenario openb-mixed"));
    cluster = sim::DefaultCluster(cat, scale);
    pods = sim::DefaultWorkload(cluster, seed, demand);
  } else if (scenario == "openb-mixed") {
    if (!f.values.count("--nodes") || !f.values.count("--pods"))
      return Fail(Status::InvalidArgument("--nodes/--pods", "are required with --scenario openb-mixed (openb CSVs)"));
    if (scale != 1) return Fail(Status::InvalidArgument("--scale", "is for --scenario builtin"));
    auto nodes = sim::LoadNodeCsv(f.values.at("--nodes"));
    if (!nodes.ok()) return Fail(nodes.status());
    auto trace_pods = sim::LoadPodCsv(f.values.at("--pods"));
    if (!trace_pods.ok()) return Fail(trace_pods.status());
    auto built = sim::OpenbMixedCluster(*nodes, cat);
    if (!built.ok()) return Fail(built.status());
    cluster = std::move(*built);
    pods = sim::OpenbMixedWorkload(cluster, *trace_pods, seed, demand);
  } else {
    return Fail(Status::InvalidArgument("--scenario", "must be builtin or openb-mixed, got \"" + scenario + "\""));
  }
  int cards = 0;
  std::map<std::string, int> models;
  for (const auto& n : cluster.nodes())
    for (const auto& c : n.cards) {
      cards++;
      models[c.model->name]++;
    }
  std::printf("TideSlice simulator: %s scenario (seed %llu)\n\n", scenario == "builtin" ? "built-in" : scenario.c_str(),
              static_cast<unsigned long long>(seed));
  std::printf("Cluster: %zu nodes, %d cards:", cluster.nodes().size(), cards);
  for (const auto& [m, n] : models) std::printf(" %d x %s,", n, m.c_str());
  std::printf("\nWorkload: %zu pods arriving until their demand is %.0f %% of the cards\n\n", pods.size(), demand * 100);

  if (f.values.count("--explain")) {
    auto e = sim::ExplainScenarioPod(pods, cluster, cat, core::Policy::kFragAware, seed, f.values.at("--explain"));
    if (!e.ok()) return Fail(e.status());
    std::printf("Why %s (%s) goes where it goes under %s, with the cluster as the pods before it left it:\n  %s\n\n",
                e->pod.c_str(), e->kind.c_str(), e->policy.c_str(), e->summary.c_str());
    std::printf("Top %zu of %d nodes that fit (score = primary, then tiebreak; higher is better):\n", e->feasible.size(),
                e->feasible_nodes);
    for (const auto& n : e->feasible) {
      std::printf("  %-16s %-12s primary %8.3f  tiebreak %9.4f%s\n", n.node.c_str(), n.model.c_str(), n.score.primary,
                  n.score.tiebreak, n.node == e->chosen ? "  <- chosen" : "");
      for (const auto& t : n.terms) std::printf("      %-32s %12.4f\n", t.name.c_str(), t.value);
      std::string cards;
      for (const auto& c : n.cards) cards += (cards.empty() ? "" : ", ") + c;
      std::printf("      %-32s %s\n", "cards", cards.c_str());
    }
    std::printf("\nThe same pod at the same moment under the packers:");
    for (const auto& [p, node] : e->other_choices) std::printf("  %s -> %s", p.c_str(), node.c_str());
    std::printf("\n");
    return 0;
  }
  std::vector<sim::ScenarioResult> results;
  for (core::Policy p : {core::Policy::kFragAware, core::Policy::kBinpack, core::Policy::kSpread, core::Policy::kBestFit,
                         core::Policy::kRandom})
    results.push_back(sim::RunScenario(pods, cluster, cat, p, seed));

  std::printf("%-11s %8s %9s %12s %11s %9s %9s\n", "policy", "placed", "rejected", "allocated %", "frag %", "idle", "stranded");
  for (const auto& r : results)
    std::printf("%-11s %5d/%-4d %7d %12.1f %11.1f %9d %9d\n", r.policy.c_str(), r.placed, r.pods,
                r.rejected_at_prefilter, r.allocated_pct, r.fragmentation_pct, r.idle_cards, r.stranded_cards);
  std::printf("\nPlaced pods by kind (placed/arrived):\n");
  for (const auto& r : results) {
    std::printf("  %-11s", r.policy.c_str());
    for (const auto& [k, v] : r.by_kind) std::printf("  %s %d/%d", k.c_str(), v.first, v.second);
    std::printf("\n");
  }
  std::printf("\nAllocated share of each card model:\n");
  for (const auto& r : results) {
    std::printf("  %-11s", r.policy.c_str());
    for (const auto& [m, v] : r.allocated_by_model) std::printf("  %s %.0f%%", m.c_str(), v);
    std::printf("\n");
  }
  const auto& best = results.front();
  if (!best.first_failures.empty()) {
    std::printf("\nFirst pods %s could not place, and why:\n", best.policy.c_str());
    for (const auto& s : best.first_failures) std::printf("  %s\n", s.c_str());
  }
  if (offline) {
    std::printf("\nOffline reference for %s (best of offline packers that see all pods first; a lower bound on the\n"
                "offline optimum, so the gap is at least what placing online costs):\n",
                best.policy.c_str());
    std::printf("  %-9s %10s %14s %6s  %s\n", "arrived", "online %", "offline best %", "gap", "best offline packer");
    for (int at : {100, 0}) {
      sim::OfflineBound b = sim::ScenarioOfflineBound(pods, cluster, cat, core::Policy::kFragAware, seed, at);
      std::printf("  %7d %% %10.1f %14.1f %6.1f  %s\n", b.arrived_pct, b.online_pct, b.offline_best_pct,
                  b.offline_best_pct - b.online_pct, b.offline_best.c_str());
    }
  }
  std::printf("\nallocated %% = card-equivalents in use (the larger of compute and memory share per card) / cards\n"
              "frag %%      = idle capacity the expected workload cannot use (FGD measure) / cards\n"
              "stranded    = partly used cards with less than 10 %% of compute or memory left\n");

  if (f.values.count("--svg")) {
    std::vector<sim::Series> series;
    for (const auto& r : results) series.push_back({r.policy, r.curve});
    sim::ChartOptions o;
    o.title = "Built-in scenario: allocated share of the cluster as demand arrives";
    o.x_label = "arrived demand (% of cards)";
    o.y_label = "allocated (% of cards)";
    o.x_max = demand * 100;
    o.x_marks = {{100, "demand = capacity"}};
    Status st = WriteFile(f.values.at("--svg"), sim::LineChartSvg(o, series));
    if (!st.ok()) return Fail(st);
  }
  if (f.values.count("--json")) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& r : results)
      j.push_back({{"policy", r.policy}, {"placed", r.placed}, {"pods", r.pods}, {"allocated_pct", r.allocated_pct},
                   {"fragmentation_pct", r.fragmentation_pct}, {"idle_cards", r.idle_cards},
                   {"stranded_cards", r.stranded_cards}});
    Status st = WriteFile(f.values.at("--json"), j.dump(2));
    if (!st.ok()) return Fail(st);
  }
  return 0;
}

// replay and offline read one trace: --nodes and --pods (both required) and --policy.
Status TraceFlags(const Flags& f, sim::ReplayOptions* o) {
  if (!f.values.count("--nodes")) return Status::InvalidArgument("--nodes", "is required (a node list CSV)");
  if (!f.values.count("--pods")) return Status::InvalidArgument("--pods", "is required (a pod list CSV)");
  if (f.values.count("--policy")) {
    auto p = core::ParsePolicy(f.values.at("--policy"));
    if (!p.ok()) return p.status();
    o->policy = *p;
  }
  return Status::Ok();
}

struct TraceInput {
  std::vector<sim::TraceNode> nodes;
  std::vector<sim::TracePod> pods;
  std::string name;   // the pod list's file name without ".csv", as the published results name traces
};

StatusOr<TraceInput> LoadTrace(const Flags& f) {
  TraceInput in;
  auto nodes = sim::LoadNodeCsv(f.values.at("--nodes"));
  if (!nodes.ok()) return nodes.status();
  auto pods = sim::LoadPodCsv(f.values.at("--pods"));
  if (!pods.ok()) return pods.status();
  in.nodes = std::move(*nodes);
  in.pods = std::move(*pods);
  in.name = f.values.at("--pods");
  in.name = in.name.substr(in.name.find_last_of('/') + 1);
  if (in.name.size() > 4 && in.name.substr(in.name.size() - 4) == ".csv") in.name.resize(in.name.size() - 4);
  return in;
}

int RunReplay(const Flags& f) {
  sim::ReplayOptions o;
  if (Status st = TraceFlags(f, &o); !st.ok()) return Fail(st);
  if (f.values.count("--seed")) {
    auto v = ParseU64("--seed", f.values.at("--seed"));
    if (!v.ok()) return Fail(v.status());
    o.seed = *v;
  }
  if (f.values.count("--inflate")) {
    auto v = ParseRatio("--inflate", f.values.at("--inflate"));
    if (!v.ok()) return Fail(v.status());
    o.inflate = *v;
  }
  auto input = LoadTrace(f);
  if (!input.ok()) return Fail(input.status());
  const auto& nodes = input->nodes;
  const auto& pods = input->pods;
  const std::string& trace = input->name;
  auto r = sim::Replay(nodes, pods, trace, o);
  if (!r.ok()) return Fail(r.status());
  std::printf("trace %s, policy %s, seed %llu: %lld pods arrived, %lld failed, %lld GPUs\n", r->trace.c_str(),
              r->policy.c_str(), static_cast<unsigned long long>(r->seed), static_cast<long long>(r->pods_arrived),
              static_cast<long long>(r->pods_failed), static_cast<long long>(r->cluster_gpus));
  std::printf("%8s %12s %12s\n", "arrived%", "allocated%", "frag%");
  for (const auto& p : r->points)
    if (p.arrived_pct % 10 == 0 || p.arrived_pct == static_cast<int>(r->points.size()) - 1)
      std::printf("%8d %12.2f %12.2f\n", p.arrived_pct, p.allocated_pct, p.fragmentation_pct);
  std::printf("unallocated GPUs at 100%% arrived: %.2f %%; allocated at %d%%: %.2f %%; %.2f s\n", r->unallocated_at_100,
              r->points.back().arrived_pct, r->allocated_at_130, r->elapsed_s);
  if (f.values.count("--json")) {
    Status st = WriteFile(f.values.at("--json"), r->ToJson());
    if (!st.ok()) return Fail(st);
  }
  if (f.values.count("--svg")) {
    sim::Series alloc{"allocated %", {}}, frag{"fragmentation %", {}}, ideal{"arrived (ideal)", {}};
    for (const auto& p : r->points) {
      alloc.points.emplace_back(p.arrived_pct, p.allocated_pct);
      frag.points.emplace_back(p.arrived_pct, p.fragmentation_pct);
      ideal.points.emplace_back(p.arrived_pct, std::min(100, p.arrived_pct));
    }
    sim::ChartOptions o2;
    o2.title = r->trace + " / " + r->policy + " / seed " + std::to_string(r->seed);
    o2.x_label = "arrived GPU request (% of cluster GPUs)";
    o2.y_label = "% of cluster GPUs";
    o2.x_max = r->points.back().arrived_pct;
    o2.x_marks = {{100, "100 %"}};
    Status st = WriteFile(f.values.at("--svg"), sim::LineChartSvg(o2, {ideal, alloc, frag}));
    if (!st.ok()) return Fail(st);
  }
  return 0;
}

int RunSweepCommand(const Flags& f) {
  sim::SweepOptions o;
  if (!f.values.count("--trace-dir"))
    return Fail(Status::InvalidArgument("--trace-dir", "is required (e.g. ../shared/traces/alibaba-gpu-v2023)"));
  o.trace_dir = f.values.at("--trace-dir");
  o.traces = SplitComma(f.values.count("--traces") ? f.values.at("--traces") : "default");
  for (const auto& p : SplitComma(f.values.count("--policies") ? f.values.at("--policies") : "fragaware")) {
    auto pol = core::ParsePolicy(p);
    if (!pol.ok()) return Fail(pol.status());
    o.policies.push_back(*pol);
  }
  std::string seeds = f.values.count("--seeds") ? f.values.at("--seeds") : "42-51";
  if (auto dash = seeds.find('-'); dash != std::string::npos) {
    auto a = ParseU64("--seeds", seeds.substr(0, dash));
    auto b = ParseU64("--seeds", seeds.substr(dash + 1));
    if (!a.ok() || !b.ok() || *b < *a || *b - *a > 1000)
      return Fail(Status::InvalidArgument("--seeds", "must be A-B with A <= B, or a comma list"));
    for (uint64_t s = *a; s <= *b; ++s) o.seeds.push_back(s);
  } else {
    for (const auto& s : SplitComma(seeds)) {
      auto v = ParseU64("--seeds", s);
      if (!v.ok()) return Fail(v.status());
      o.seeds.push_back(*v);
    }
  }
  if (f.values.count("--inflate")) {
    auto v = ParseRatio("--inflate", f.values.at("--inflate"));
    if (!v.ok()) return Fail(v.status());
    o.inflate = *v;
  }
  if (f.values.count("--threads")) {
    auto v = ParseU64("--threads", f.values.at("--threads"));
    if (!v.ok() || *v == 0 || *v > 256) return Fail(Status::InvalidArgument("--threads", "must be 1..256"));
    o.threads = static_cast<int>(*v);
  }
  auto cells = sim::RunSweep(o);
  if (!cells.ok()) return Fail(cells.status());
  std::optional<sim::PublishedResults> published;
  if (f.values.count("--published")) {
    auto p = sim::LoadPublished(f.values.at("--published"));
    if (!p.ok()) return Fail(p.status());
    published = std::move(*p);
  }
  std::string md = sim::SweepMarkdown(*cells, published ? &*published : nullptr);
  std::printf("%s", md.c_str());
  double total = 0;
  for (const auto& c : *cells)
    for (const auto& r : c.runs) total += r.elapsed_s;
  std::printf("\n%zu replays, %.1f s of replay time\n", cells->size() * o.seeds.size(), total);
  if (f.values.count("--markdown")) {
    Status st = WriteFile(f.values.at("--markdown"), md);
    if (!st.ok()) return Fail(st);
  }
  return 0;
}

StatusOr<std::vector<uint64_t>> ParseSeeds(const std::string& seeds) {
  std::vector<uint64_t> out;
  if (auto dash = seeds.find('-'); dash != std::string::npos) {
    auto a = ParseU64("--seeds", seeds.substr(0, dash));
    auto b = ParseU64("--seeds", seeds.substr(dash + 1));
    if (!a.ok() || !b.ok() || *b < *a || *b - *a > 1000)
      return Status::InvalidArgument("--seeds", "must be A-B with A <= B, or a comma list");
    for (uint64_t s = *a; s <= *b; ++s) out.push_back(s);
    return out;
  }
  for (const auto& s : SplitComma(seeds)) {
    auto v = ParseU64("--seeds", s);
    if (!v.ok()) return v.status();
    out.push_back(*v);
  }
  if (out.empty()) return Status::InvalidArgument("--seeds", "names no seed");
  return out;
}

int RunOffline(const Flags& f) {
  sim::ReplayOptions o;
  if (Status st = TraceFlags(f, &o); !st.ok()) return Fail(st);
  auto seeds = ParseSeeds(f.values.count("--seeds") ? f.values.at("--seeds") : "42");
  if (!seeds.ok()) return Fail(seeds.status());
  std::vector<int> at;
  for (const auto& a : SplitComma(f.values.count("--at") ? f.values.at("--at") : "100,130")) {
    auto v = ParseU64("--at", a);
    if (!v.ok() || *v < 1 || *v > 130) return Fail(Status::InvalidArgument("--at", "must list percents in 1..130"));
    at.push_back(static_cast<int>(*v));
  }
  auto input = LoadTrace(f);
  if (!input.ok()) return Fail(input.status());
  const auto& nodes = input->nodes;
  const auto& pods = input->pods;
  const std::string& trace = input->name;
  std::optional<sim::PublishedResults> published;
  if (f.values.count("--published")) {
    auto p = sim::LoadPublished(f.values.at("--published"));
    if (!p.ok()) return Fail(p.status());
    published = std::move(*p);
  }
  std::printf("trace %s, online policy %s: allocated GPUs (%% of the cluster)\n", trace.c_str(), core::PolicyName(o.policy));
  std::printf("%6s %8s %9s %14s %13s %6s  %s\n", "seed", "arrived", "online", "offline best", "upper bound", "gap",
              "best offline packer");
  std::map<int, std::vector<double>> online, best, upper;
  for (uint64_t seed : *seeds) {
    o.seed = seed;
    auto bounds = sim::TraceOfflineBounds(nodes, pods, o, at);
    if (!bounds.ok()) return Fail(bounds.status());
    for (const auto& b : *bounds) {
      std::printf("%6llu %7d%% %9.2f %14.2f %13.2f %6.2f  %s\n", static_cast<unsigned long long>(seed), b.arrived_pct,
                  b.online_pct, b.offline_best_pct, b.upper_bound_pct, b.offline_best_pct - b.online_pct,
                  b.offline_best.c_str());
      online[b.arrived_pct].push_back(b.online_pct);
      best[b.arrived_pct].push_back(b.offline_best_pct);
      upper[b.arrived_pct].push_back(b.upper_bound_pct);
    }
  }
  std::printf("\nmedians over %zu seed%s:\n", seeds->size(), seeds->size() == 1 ? "" : "s");
  std::printf("%8s %9s %14s %13s", "arrived", "online", "offline best", "upper bound");
  if (published) std::printf(" %15s %19s", "published FGD", "published BestFit");
  std::printf("\n");
  // The published table names traces without the file prefix ("default").
  const std::string key = trace.rfind("openb_pod_list_", 0) == 0 ? trace.substr(15) : trace;
  for (int a : at) {
    std::printf("%7d%% %9.2f %14.2f %13.2f", a, sim::Median(online[a]), sim::Median(best[a]), sim::Median(upper[a]));
    if (published) {
      auto value = [&](const char* policy) {
        const auto& table = a == 100 ? published->allocated_at_100 : published->allocated_at_130;
        for (const auto& name : {key, trace}) {
          auto t = table.find(name);
          if (t == table.end()) continue;
          auto p = t->second.find(policy);
          if (p != t->second.end() && !p->second.empty()) return sim::Median(p->second);
        }
        return -1.0;
      };
      double fgd = (a == 100 || a == 130) ? value("fgd") : -1, bestfit = (a == 100 || a == 130) ? value("bestfit") : -1;
      std::printf(" %15s %19s", fgd < 0 ? "-" : std::to_string(fgd).substr(0, 5).c_str(),
                  bestfit < 0 ? "-" : std::to_string(bestfit).substr(0, 5).c_str());
    }
    std::printf("\n");
  }
  return 0;
}

StatusOr<double> ParseNumber(const std::string& flag, const std::string& text, double min, double max) {
  try {
    size_t used = 0;
    double v = std::stod(text, &used);
    if (used != text.size() || !(v >= min) || !(v <= max)) throw std::invalid_argument(text);
    return v;
  } catch (...) {
    char range[96];
    std::snprintf(range, sizeof range, "must be a number in [%g, %g]", min, max);
    return Status::InvalidArgument(flag, std::string(range) + ", got \"" + text + "\"");
  }
}

int RunTidal(const Flags& f) {
  sim::TidalSimOptions o;
  o.pool = sim::DefaultTidalPool();
  auto number = [&](const char* flag, double min, double max, double* out) {
    if (!f.values.count(flag)) return Status::Ok();
    auto v = ParseNumber(flag, f.values.at(flag), min, max);
    if (!v.ok()) return v.status();
    *out = *v;
    return Status::Ok();
  };
  double cards = o.cards, statik = -1, peak = -1;
  for (Status s : {number("--days", 0.01, 366, &o.days), number("--cards", 1, 4096, &cards), number("--peak", 0.01, 4096, &peak),
                   number("--static-inference", 0, 4096, &statik)})
    if (!s.ok()) return Fail(s);
  o.cards = static_cast<int>(cards);
  // Scaled with the pool unless given: the peak at 7/8 of the cards, the static split at the peak.
  o.inference_peak_cards = peak > 0 ? peak : o.cards * 7.0 / 8.0;
  o.static_inference_cards = statik >= 0 ? static_cast<int>(statik) : static_cast<int>(std::ceil(o.inference_peak_cards));
  if (o.cards != 64) {
    // The default pool's floor and headroom are for 64 cards: scale them too.
    auto* night = &o.pool.night_policy;
    night->set_floor_cards_for_other(o.cards / 4);
    o.pool.day_policy.set_headroom_cards(std::max(1, o.cards / 16));
  }
  if (f.values.count("--seed")) {
    auto v = ParseU64("--seed", f.values.at("--seed"));
    if (!v.ok()) return Fail(v.status());
    o.seed = *v;
  }
  if (f.values.count("--log-transitions")) {
    const std::string& v = f.values.at("--log-transitions");
    if (v != "true" && v != "false") return Fail(Status::InvalidArgument("--log-transitions", "must be true or false"));
    o.log_transitions = v == "true";
  }
  auto runs = sim::RunTidalSim(o);
  if (!runs.ok()) return Fail(runs.status());
  const std::string report = sim::TidalReportMarkdown(o, *runs);
  std::printf("%s", report.c_str());
  if (f.values.count("--report")) {
    Status st = WriteFile(f.values.at("--report"), report);
    if (!st.ok()) return Fail(st);
  }
  if (f.values.count("--svg")) {
    Status st = WriteFile(f.values.at("--svg"), sim::TidalSvg(o, *runs));
    if (!st.ok()) return Fail(st);
  }
  return 0;
}

}  // namespace

int tideslice::sim::RunSimCommandLine(int argc, char** argv) {
  const std::map<std::string, std::set<std::string>> allowed = {
      {"demo", {"--seed", "--scale", "--demand", "--svg", "--json", "--scenario", "--nodes", "--pods", "--offline", "--explain"}},
      {"offline", {"--nodes", "--pods", "--policy", "--seeds", "--at", "--published"}},
      {"replay", {"--nodes", "--pods", "--policy", "--seed", "--inflate", "--json", "--svg"}},
      {"sweep", {"--trace-dir", "--traces", "--policies", "--seeds", "--inflate", "--threads", "--published", "--markdown"}},
      {"tidal", {"--days", "--cards", "--peak", "--static-inference", "--seed", "--report", "--svg", "--log-transitions"}},
      {"help", {}},
      {"--help", {}},
      {"-h", {}},
  };
  if (argc > 1 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" || std::string(argv[1]) == "help")) {
    std::printf("%s", kUsage);
    return 0;
  }
  auto flags = ParseCommandLine(argc, argv, allowed);
  if (!flags.ok()) {
    std::fprintf(stderr, "tideslice-sim: %s\n\n%s", flags.status().ToString().c_str(), kUsage);
    return 2;
  }
  if (flags->command == "help") {
    std::printf("%s", kUsage);
    return 0;
  }
  if (flags->command == "replay") return RunReplay(*flags);
  if (flags->command == "sweep") return RunSweepCommand(*flags);
  if (flags->command == "tidal") return RunTidal(*flags);
  if (flags->command == "offline") return RunOffline(*flags);
  return RunDemo(*flags);
}
