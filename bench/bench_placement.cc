// Placement core benchmarks (Google Benchmark). Figures are recorded in docs/performance.md;
// no test asserts on time.
//
//   BM_ScheduleOnePod/<nodes>/<policy>: PreFilter'd request -> Filter + Score over every node ->
//     Reserve -> Unreserve, on a cluster of <nodes> nodes x 8 cards filled to ~60 % with a mix of
//     soft slices, whole cards and MIG/vNPU profiles.
//   BM_ReplayDefaultTrace: the simulator's full FGD protocol on the openb default trace.
#include <random>

#include <benchmark/benchmark.h>

#include "common/catalog/catalog.h"
#include "scheduler/core/placement.h"
#include "scheduler/sim/replay.h"

using namespace tideslice;

namespace {

core::PodRequest Slice(const std::string& name, int permille, int64_t memory_mib, int count = 1, bool whole = false,
                       const std::string& profile = "") {
  core::PodRequest r;
  r.pod_key = "bench/" + name;
  core::ContainerRequest c;
  c.name = "main";
  c.slice.count = count;
  c.slice.whole = whole;
  c.slice.compute_permille = permille;
  c.slice.memory_mib = memory_mib;
  c.slice.profile = profile;
  r.containers.push_back(c);
  r.cpu_milli = 4000;
  r.memory_mib = 16384;
  return r;
}

struct LoadedCluster {
  core::ClusterState cluster;
  core::WorkloadModel workload;
};

LoadedCluster MakeCluster(int nodes) {
  const auto& cat = catalog::Catalog::Builtin();
  const char* models[] = {"H100-80G", "A100-80G", "Ascend910B3", "T4"};
  LoadedCluster lc;
  for (int n = 0; n < nodes; ++n) {
    core::NodeState node;
    node.name = "node-" + std::to_string(n);
    node.cpu_milli_capacity = 128000;
    node.memory_mib_capacity = 1 << 20;
    const auto* m = cat.Find(models[n % 4]);
    for (int i = 0; i < 8; ++i) {
      core::CardState c;
      c.uuid = node.name + "-" + std::to_string(i);
      c.index = i;
      c.model = m;
      c.memory_mib = m->memory_mib;
      c.numa_node = i / 4;
      c.link_domain = node.name + "/" + std::to_string(i / 4);
      node.cards.push_back(c);
    }
    lc.cluster.AddNode(std::move(node));
  }
  std::vector<core::TypicalPod> typical = {{4000, 300, 1, {}, 3}, {4000, 500, 1, {}, 2}, {8000, 1000, 1, {}, 2},
                                           {16000, 1000, 4, {}, 1}, {2000, 0, 0, {}, 1}};
  lc.workload = core::WorkloadModel::FromTypicalPods(typical);
  lc.workload.Bind(lc.cluster);
  // Fill to about 60 % of the cards with a realistic mix, placed by the default policy.
  std::mt19937_64 rng(1);
  core::Context ctx{core::Policy::kFragAware, &lc.workload, nullptr};
  double target = nodes * 8 * 0.6, placed = 0;
  for (int i = 0; placed < target; ++i) {
    int roll = static_cast<int>(rng() % 10);
    core::PodRequest r = roll < 5   ? Slice("f" + std::to_string(i), 200 + 100 * (roll % 4), 8192)
                         : roll < 8 ? Slice("w" + std::to_string(i), 0, 0, 1, true)
                                    : Slice("m" + std::to_string(i), 0, 0, 2, true);
    core::Decision d = core::Schedule(lc.cluster, r, ctx);
    if (!d.scheduled || !core::Reserve(lc.cluster, d.placement).ok()) break;
    placed += roll < 5 ? (200 + 100 * (roll % 4)) / 1000.0 : roll < 8 ? 1 : 2;
  }
  return lc;
}

void BM_ScheduleOnePod(benchmark::State& state) {
  static std::map<int, LoadedCluster> clusters;
  const int nodes = static_cast<int>(state.range(0));
  const auto policy = static_cast<core::Policy>(state.range(1));
  if (!clusters.count(nodes)) clusters.emplace(nodes, MakeCluster(nodes));
  LoadedCluster& lc = clusters.at(nodes);
  core::Context ctx{policy, &lc.workload, nullptr};
  core::PodRequest req = Slice("probe", 300, 8192);
  for (auto _ : state) {
    core::Decision d = core::Schedule(lc.cluster, req, ctx);
    if (d.scheduled) {
      benchmark::DoNotOptimize(core::Reserve(lc.cluster, d.placement));
      core::Unreserve(lc.cluster, req.pod_key);
    }
  }
  state.SetLabel(core::PolicyName(policy));
  state.counters["nodes"] = nodes;
  state.counters["cards"] = nodes * 8;
}
BENCHMARK(BM_ScheduleOnePod)
    ->ArgsProduct({{1000, 5000}, {static_cast<int>(core::Policy::kFragAware), static_cast<int>(core::Policy::kBinpack)}})
    ->Unit(benchmark::kMicrosecond);

void BM_ReplayDefaultTrace(benchmark::State& state) {
  const std::string dir = std::string(TIDESLICE_SHARED_DIR) + "/traces/alibaba-gpu-v2023";
  auto nodes = sim::LoadNodeCsv(dir + "/openb_node_list_gpu_node.csv");
  auto pods = sim::LoadPodCsv(dir + "/openb_pod_list_default.csv");
  if (!nodes.ok() || !pods.ok()) {
    state.SkipWithError("shared/traces not found beside the repository");
    return;
  }
  int64_t arrived = 0;
  for (auto _ : state) {
    sim::ReplayOptions o;
    o.policy = core::Policy::kFragAware;
    o.seed = 42;
    auto r = sim::Replay(*nodes, *pods, "default", o);
    arrived = r.ok() ? r->pods_arrived : 0;
  }
  state.counters["pods"] = static_cast<double>(arrived);
}
BENCHMARK(BM_ReplayDefaultTrace)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
