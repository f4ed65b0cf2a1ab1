// The whole production Allocate over a unix socket: the plugin server with HandoffHandler and
// KubeAssignmentStore against the test API server on loopback. Each iteration: a pod with one
// ALLOCATING one-slice assignment exists on the node (written directly into the server, as the
// scheduler's bind would), the "kubelet" calls Allocate, the agent lists the node's pods, matches,
// answers and acknowledges by read-modify-write. 50 other pods sit on the node.
#include <benchmark/benchmark.h>

#include "common/codec/annotations.h"
#include "device-plugin/kube/kube_assignment_store.h"
#include "tests/support/fake_cards.h"
#include "tests/support/test_apiserver.h"
#include "tests/support/test_support.h"

using namespace tideslice;
using namespace tideslice::deviceplugin;
using nlohmann::json;

namespace {

json PodWith(const std::string& name, v1::AssignmentPhase phase) {
  v1::PodAssignment a;
  a.set_phase(phase);
  a.set_node_name("node");
  auto* c = a.add_containers();
  c->set_name("c");
  auto* s = c->add_slices();
  s->set_card_uuid("GPU-3");
  s->set_memory_mib(8192);
  s->set_compute_permille(300);
  if (phase == v1::ASSIGNMENT_PHASE_ALLOCATED) c->add_device_ids("GPU-3::1");
  return {{"metadata", {{"name", name}, {"namespace", "ml"},
                        {"annotations", {{std::string(codec::kAssignmentAnnotation), codec::EncodeAssignment(a)}}}}},
          {"spec", {{"nodeName", "node"}}}};
}

void BM_AllocateThroughApiServer(benchmark::State& state) {
  auto server = testsupport::TestApiServer::Start();
  testsupport::TempDir dir("tsbench");
  auto access = kube::LoadKubeconfig(server->WriteKubeconfig(dir.path()));
  kube::KubeClient client(*kube::NewCppRestTransport(*access));
  for (int i = 0; i < 50; ++i) server->Upsert("pods", PodWith("done-" + std::to_string(i), v1::ASSIGNMENT_PHASE_ALLOCATED));
  DeviceState devices;
  devices.Set(testsupport::FakeH100s(8));
  KubeAssignmentStore store(&client, "node");
  HandoffHandler handler(&store);
  PluginOptions o;
  o.socket_dir = dir.path();
  o.replicas_per_card = 64;
  PluginServer plugin(o, &devices, &handler);
  if (!plugin.Start().ok()) {
    state.SkipWithError("cannot start the plugin server");
    return;
  }
  auto stub = v1beta1::DevicePlugin::NewStub(
      grpc::CreateChannel("unix://" + plugin.socket_path(), grpc::InsecureChannelCredentials()));
  int serial = 0;
  for (auto _ : state) {
    state.PauseTiming();
    server->Upsert("pods", PodWith("p-" + std::to_string(serial++), v1::ASSIGNMENT_PHASE_ALLOCATING));
    state.ResumeTiming();
    grpc::ClientContext ctx;
    v1beta1::AllocateRequest req;
    req.add_container_requests()->add_devices_ids("GPU-3::" + std::to_string(serial % 64));
    v1beta1::AllocateResponse resp;
    grpc::Status st = stub->Allocate(&ctx, req, &resp);
    if (!st.ok()) state.SkipWithError(st.error_message().c_str());
    state.PauseTiming();
    server->Remove("pods", "ml", "p-" + std::to_string(serial - 1));  // keep the node's pod count steady
    state.ResumeTiming();
  }
  plugin.Stop();
  devices.Shutdown();
}
BENCHMARK(BM_AllocateThroughApiServer)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
