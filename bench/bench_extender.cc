// Extender filter and prioritize over loopback HTTP with keep-alive (as kube-scheduler's Go
// client does), on N nodes x 8 cards filled to about 60 %, every node name in the request
// (nodeCacheCapable: true). Includes JSON decoding, the core's Filter/Score per node and the
// response encoding.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>

#include <benchmark/benchmark.h>

#include "common/catalog/catalog.h"
#include "common/http/server.h"
#include "scheduler/extender/service.h"
#include "bench/keepalive_client.h"
#include "tests/support/test_support.h"

using namespace tideslice;
using tideslice::bench::KeepAliveClient;

namespace {

std::shared_ptr<core::ClusterState> LoadedCluster(int nodes) {
  auto cluster = std::make_shared<core::ClusterState>();
  const auto& cat = catalog::Catalog::Builtin();
  const char* models[] = {"H100-80G", "A100-80G", "Ascend910B3", "T4"};
  for (int n = 0; n < nodes; ++n) {
    core::NodeState node;
    node.name = "node-" + std::to_string(n);
    const auto* m = cat.Find(models[n % 4]);
    for (int i = 0; i < 8; ++i) {
      core::CardState c;
      c.uuid = node.name + "-" + std::to_string(i);
      c.index = i;
      c.model = m;
      c.memory_mib = m->memory_mib;
      node.cards.push_back(c);
    }
    cluster->AddNode(std::move(node));
  }
  // Fill each node directly (Filter on that node, then Reserve): O(nodes x cards), so the
  // 5,000-node cluster is ready in seconds.
  std::mt19937 rng(3);
  core::Context ctx{core::Policy::kBinpack, nullptr, nullptr};
  int serial = 0;
  for (auto& node : cluster->nodes()) {
    for (int i = 0; i < 5; ++i) {  // about 60 % of 8 cards: whole cards and 30 % slices
      core::PodRequest r;
      r.pod_key = "load/" + std::to_string(serial++);
      core::ContainerRequest c;
      c.name = "c";
      c.slice.count = 1;
      c.slice.whole = rng() % 2;
      c.slice.compute_permille = c.slice.whole ? 0 : 300;
      c.slice.memory_mib = c.slice.whole ? 0 : 8192;
      r.containers.push_back(c);
      core::NodeVerdict v = core::Filter(node, r, ctx);
      if (v.kind == core::VerdictKind::kFits) (void)core::Reserve(*cluster, v.plan);
    }
  }
  return cluster;
}

void BM_ExtenderVerb(benchmark::State& state) {
  const int nodes = static_cast<int>(state.range(0));
  const bool prioritize = state.range(1) == 1;
  auto cluster = LoadedCluster(nodes);
  std::shared_ptr<const core::ClusterState> snapshot = cluster;
  extender::Verbs verbs(catalog::Catalog::Builtin(), core::Context{core::Policy::kBinpack, nullptr, nullptr});
  int port = testsupport::FreeLoopbackPort();
  auto server = http::HttpServer::Start("http://127.0.0.1:" + std::to_string(port) + "/sched",
                                            [&](const std::string& verb, const std::string& body) {
                                              return extender::ServeVerb(verbs, [&] { return snapshot; }, verb, body);
                                            });
  if (!server.ok()) {
    state.SkipWithError(server.status().ToString().c_str());
    return;
  }
  std::string names;
  for (int n = 0; n < nodes; ++n) names += (n ? ",\"node-" : "\"node-") + std::to_string(n) + "\"";
  std::string body =
      R"({"Pod":{"metadata":{"name":"p","namespace":"default","uid":"u-1"},"spec":{"containers":[{"name":"c",)"
      R"("resources":{"limits":{"tideslice.io/vnpu":"1","tideslice.io/vnpu-memory":"8Gi","tideslice.io/vnpu-cores":"30"}}}]},)"
      R"("status":{"phase":"Pending"}},"Nodes":null,"NodeNames":[)" + names + "]}";
  KeepAliveClient client(port);
  if (!client.ok()) {
    state.SkipWithError("cannot connect");
    return;
  }
  std::string reply;
  const std::string path = prioritize ? "/sched/prioritize" : "/sched/filter";
  for (auto _ : state) {
    if (client.Post(path, body, &reply) != 200) state.SkipWithError("non-200 reply");
  }
  state.SetLabel(prioritize ? "prioritize" : "filter");
  (*server)->Stop();
}
BENCHMARK(BM_ExtenderVerb)->ArgsProduct({{1000, 5000}, {0, 1}})->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
