// Allocate latency over a real unix socket: the kubelet's view of the node agent. The handler
// is a trivial one that builds an NVIDIA container response, so this measures the agent's own
// path (gRPC, validation, response building), not a Kubernetes round trip.
#include <filesystem>

#include <benchmark/benchmark.h>
#include <unistd.h>

#include "device-plugin/plugin/container_response.h"
#include "device-plugin/plugin/plugin_server.h"
#include "tests/support/fake_cards.h"
#include "tests/support/test_support.h"

using namespace tideslice;
using namespace tideslice::deviceplugin;

namespace {

class CardsHandler : public AllocationHandler {
 public:
  StatusOr<v1beta1::ContainerAllocateResponse> AllocateContainer(const std::vector<std::string>& ids,
                                                                const std::vector<DeviceInfo>& cards) override {
    std::vector<AssignedSlice> slices;
    for (const auto& id : ids) {
      std::string uuid;
      int replica;
      ParseDeviceId(id, &uuid, &replica);
      for (const auto& c : cards)
        if (c.uuid == uuid) slices.push_back({c, 8192, 300, false, "", ""});
    }
    return BuildContainerResponse(slices);
  }
};

void BM_AllocateOverUnixSocket(benchmark::State& state) {
  testsupport::TempDir tmp("tsbench");
  const std::string& dir = tmp.path();
  DeviceState devices;
  std::vector<DeviceInfo> cards = testsupport::FakeH100s(8);
  devices.Set(cards);
  CardsHandler handler;
  PluginOptions o;
  o.socket_dir = dir;
  PluginServer server(o, &devices, &handler);
  if (!server.Start().ok()) {
    state.SkipWithError("cannot start the plugin server");
    return;
  }
  auto stub = v1beta1::DevicePlugin::NewStub(
      grpc::CreateChannel("unix://" + server.socket_path(), grpc::InsecureChannelCredentials()));
  v1beta1::AllocateRequest req;
  auto* c = req.add_container_requests();
  for (int i = 0; i < state.range(0); ++i) c->add_devices_ids("GPU-" + std::to_string(i) + "::0");
  for (auto _ : state) {
    grpc::ClientContext ctx;
    v1beta1::AllocateResponse resp;
    grpc::Status st = stub->Allocate(&ctx, req, &resp);
    if (!st.ok()) state.SkipWithError(st.error_message().c_str());
    benchmark::DoNotOptimize(resp);
  }
  server.Stop();
  devices.Shutdown();
}
BENCHMARK(BM_AllocateOverUnixSocket)->Arg(1)->Arg(8)->Unit(benchmark::kMicrosecond);

}  // namespace
