// The running scheduler's decision path over loopback HTTP: SchedulerService (watch cache,
// verdict memo) behind the cpprestsdk endpoint, N nodes x 8 cards about 60 % used, every node
// named in the request. One decision = filter + prioritize for one pod, then the pod is
// reserved on the best node (as bind would), so the next decision sees one changed node.
//   warm: every pod has the same shape (replicas of one Deployment)
//   cold: every pod a new shape (nothing memoised)
// Reports p50/p99 latency per decision and decisions per second; BM_CacheMemory reports the
// resident memory of the cache holding 5,000 nodes and 50,000 placed pods.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <malloc.h>
#include <thread>

#include "bench/keepalive_client.h"
#include "common/catalog/catalog.h"
#include "common/codec/annotations.h"
#include "common/kube/pod_json.h"
#include "scheduler/core/request.h"
#include "common/http/server.h"
#include "scheduler/service/scheduler_service.h"
#include "tests/support/test_support.h"

using namespace tideslice;
using nlohmann::json;
using tideslice::bench::KeepAliveClient;

namespace {

const char* kModels[] = {"H100-80G", "A100-80G", "Ascend910B3", "T4"};

json NodeObject(int n, std::chrono::system_clock::time_point now) {
  v1::NodeInventory inv;
  inv.set_node_name("node-" + std::to_string(n));
  inv.mutable_heartbeat()->set_seconds(std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
  const auto* m = catalog::Catalog::Builtin().Find(kModels[n % 4]);
  for (int i = 0; i < 8; ++i) {
    auto* c = inv.add_cards();
    c->set_uuid(inv.node_name() + "-" + std::to_string(i));
    c->set_index(i);
    c->set_vendor(m->vendor);
    c->set_model(m->name);
    c->set_memory_mib(m->memory_mib);
    c->set_health(v1::HEALTH_HEALTHY);
  }
  return {{"metadata", {{"name", inv.node_name()}, {"annotations", {{std::string(codec::kInventoryAnnotation), codec::EncodeInventory(inv)}}}}}};
}

json PlacedPod(int serial, int node, int card, int64_t mib, int permille, bool whole) {
  v1::PodAssignment a;
  a.set_node_name("node-" + std::to_string(node));
  a.set_phase(v1::ASSIGNMENT_PHASE_ALLOCATED);
  auto* c = a.add_containers();
  c->set_name("c");
  auto* s = c->add_slices();
  s->set_card_uuid("node-" + std::to_string(node) + "-" + std::to_string(card));
  s->set_card_index(card);
  s->set_memory_mib(mib);
  s->set_compute_permille(permille);
  s->set_whole_card(whole);
  return {{"metadata", {{"name", "load-" + std::to_string(serial)}, {"namespace", "load"},
                        {"annotations", {{std::string(codec::kAssignmentAnnotation), codec::EncodeAssignment(a)}}}}},
          {"spec", {{"nodeName", a.node_name()}}},
          {"status", {{"phase", "Running"}}}};
}

// N nodes; per node 3 whole cards and 4 slices of 8 GiB / 30 % on two more cards (~60 % used).
void Load(service::ClusterCache& cache, int nodes, int pods_per_node = 7) {
  auto now = std::chrono::system_clock::now();
  std::vector<json> node_objects, pods;
  for (int n = 0; n < nodes; ++n) node_objects.push_back(NodeObject(n, now));
  cache.ReplaceNodes(node_objects);
  int serial = 0;
  for (int n = 0; n < nodes; ++n)
    for (int p = 0; p < pods_per_node; ++p) {
      if (p < 3) pods.push_back(PlacedPod(serial++, n, p, 0, 1000, true));
      else pods.push_back(PlacedPod(serial++, n, 3 + (p - 3) % 5, 8192, 300, false));
    }
  cache.ReplacePods(pods);
  cache.Refresh();
}

std::string PodJson(int64_t memory_mib, int serial) {
  return R"({"metadata":{"name":"p)" + std::to_string(serial) + R"(","namespace":"default","uid":"u-)" +
         std::to_string(serial) + R"("},"spec":{"containers":[{"name":"c","resources":{"limits":{"tideslice.io/vnpu":"1",)"
         R"("tideslice.io/vnpu-memory":")" + std::to_string(memory_mib) + R"(","tideslice.io/vnpu-cores":"30"}}}]},"status":{"phase":"Pending"}})";
}

void BM_Decision(benchmark::State& state) {
  static const bool pool = http::ConfigureHttpThreads(2);  // as tideslice-scheduler configures it
  (void)pool;
  const int nodes = static_cast<int>(state.range(0));
  const bool warm = state.range(1) == 1;
  service::CacheOptions co;
  co.policy = core::Policy::kFragAware;
  co.stale_after = std::chrono::hours(24);  // a slow run (valgrind) must not see stale heartbeats
  service::ClusterCache cache(catalog::Catalog::Builtin(), co);
  Load(cache, nodes);
  service::SchedulerService svc(catalog::Catalog::Builtin(), &cache, nullptr, nullptr, [] { return false; });
  int port = testsupport::FreeLoopbackPort();
  auto server = http::HttpServer::Start("http://127.0.0.1:" + std::to_string(port) + "/sched",
                                            [&](const std::string& v, const std::string& b) { return svc.Serve(v, b); });
  if (!server.ok()) {
    state.SkipWithError(server.status().ToString().c_str());
    return;
  }
  std::string names;
  for (int n = 0; n < nodes; ++n) names += (n ? ",\"node-" : "\"node-") + std::to_string(n) + "\"";
  KeepAliveClient client(port);
  std::vector<double> micros;
  int serial = 0;
  std::string reply;
  for (auto _ : state) {
    ++serial;
    int64_t mib = warm ? 8192 : 4096 + serial;  // cold: a new shape every time
    std::string pod = PodJson(mib, serial);
    std::string args = R"({"Pod":)" + pod + R"(,"Nodes":null,"NodeNames":[)" + names + "]}";
    // Only the two round trips are timed; the stand-in's own JSON work is not the extender's.
    auto t0 = std::chrono::steady_clock::now();
    if (client.Post("/sched/filter", args, &reply) != 200) state.SkipWithError("filter failed");
    auto t1 = std::chrono::steady_clock::now();
    state.PauseTiming();
    json passed = json::parse(reply)["NodeNames"];
    std::string prio_args = R"({"Pod":)" + pod + R"(,"Nodes":null,"NodeNames":)" + passed.dump() + "}";
    state.ResumeTiming();
    auto t2 = std::chrono::steady_clock::now();
    if (client.Post("/sched/prioritize", prio_args, &reply) != 200) state.SkipWithError("prioritize failed");
    auto t3 = std::chrono::steady_clock::now();
    micros.push_back(std::chrono::duration<double, std::micro>((t1 - t0) + (t3 - t2)).count());
    state.PauseTiming();
    // As bind would: reserve on the best node, so that node changes for the next decision.
    json scores = json::parse(reply);
    std::string best;
    int64_t top = -1;
    for (const auto& s : scores)
      if (s["Score"].get<int64_t>() > top) top = s["Score"], best = s["Host"];
    auto spec = kube::PodSpecFromJson(std::string_view(pod));
    auto req = core::PreFilter(*spec, catalog::Catalog::Builtin());
    if (!best.empty()) (void)cache.PlanAndAssume(*req, "default/p" + std::to_string(serial), "u", best, {});
    state.ResumeTiming();
  }
  std::sort(micros.begin(), micros.end());
  if (!micros.empty()) {
    state.counters["p50_us"] = micros[micros.size() / 2];
    state.counters["p99_us"] = micros[std::min(micros.size() - 1, micros.size() * 99 / 100)];
  }
  double total_s = 0;
  for (double m : micros) total_s += m / 1e6;
  if (total_s > 0) state.counters["decisions_per_s"] = static_cast<double>(micros.size()) / total_s;
  state.SetLabel(warm ? "warm (same shape)" : "cold (new shape)");
  (*server)->Stop();
}
BENCHMARK(BM_Decision)->ArgsProduct({{1000, 5000}, {1, 0}})->Unit(benchmark::kMicrosecond)->UseRealTime();

// The same decision without HTTP: where the time goes (JSON, verbs, memo) without the socket.
void BM_DecisionInProcess(benchmark::State& state) {
  const int nodes = static_cast<int>(state.range(0));
  service::CacheOptions co;
  co.stale_after = std::chrono::hours(24);  // a slow run (valgrind) must not see stale heartbeats
  service::ClusterCache cache(catalog::Catalog::Builtin(), co);
  Load(cache, nodes);
  service::SchedulerService svc(catalog::Catalog::Builtin(), &cache, nullptr, nullptr, [] { return false; });
  std::string names;
  for (int n = 0; n < nodes; ++n) names += (n ? ",\"node-" : "\"node-") + std::to_string(n) + "\"";
  std::string args = R"({"Pod":)" + PodJson(8192, 1) + R"(,"Nodes":null,"NodeNames":[)" + names + "]}";
  for (auto _ : state) {
    auto f = svc.Serve(state.range(1) ? "prioritize" : "filter", args);
    benchmark::DoNotOptimize(f);
  }
  state.SetLabel(state.range(1) ? "prioritize, memo warm" : "filter, memo warm");
}
BENCHMARK(BM_DecisionInProcess)->ArgsProduct({{1000, 5000}, {0, 1}})->Unit(benchmark::kMicrosecond);

long RssKiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

void BM_CacheMemory(benchmark::State& state) {
  for (auto _ : state) {
    malloc_trim(0);
    long before = RssKiB();
    auto cache = std::make_unique<service::ClusterCache>(catalog::Catalog::Builtin());
    Load(*cache, 5000, 10);  // 50,000 placed pods (the watch's JSON is freed once applied)
    malloc_trim(0);
    long after = RssKiB();
    state.counters["nodes"] = static_cast<double>(cache->stats().nodes);
    state.counters["placed_pods"] = static_cast<double>(cache->stats().placed_pods);
    state.counters["cache_MiB"] = static_cast<double>(after - before) / 1024.0;
  }
}
BENCHMARK(BM_CacheMemory)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
