// The DRA driver's component-test fixture: the driver against a stand-in kubelet (a gRPC client
// from our own protos) over real Unix sockets in a temp dir, claims held by the test API server,
// the mock backend (MIG mode switched on where a test needs it), the real partition ledger,
// limiter files and CDI directory. Shared by driver_component_test.cc and
// limiter_enforcement_test.cc.
#pragma once

#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "device-plugin/backends/mock_backend.h"
#include "device-plugin/dra/cdi_spec.h"
#include "device-plugin/dra/dra_server.h"
#include "dra/v1/api.grpc.pb.h"
#include "pluginregistration/v1/api.grpc.pb.h"
#include "tests/dra/mig_mode_backend.h"
#include "tests/support/kube_env.h"

namespace tideslice::dra::fixture {

using nlohmann::json;
using testsupport::KubeEnv;
using testsupport::TempDir;
namespace drav1 = k8s::io::kubelet::pkg::apis::dra::v1;

inline constexpr const char* kCards = R"({"cards": [
  {"uuid": "GPU-a100", "index": 0, "model": "A100-40G", "health": "Healthy"},
  {"uuid": "GPU-h100", "index": 1, "model": "H100-80G", "health": "Healthy"},
  {"uuid": "NPU-910b3", "index": 2, "model": "Ascend910B3", "health": "Healthy"}]})";

// A claim as the scheduler leaves it: spec, allocation results on node-a, reserved for a pod.
inline json AllocatedClaim(const std::string& name, const json& results) {
  return {{"apiVersion", "resource.k8s.io/v1"},
          {"kind", "ResourceClaim"},
          {"metadata", {{"name", name}, {"namespace", "team"}}},
          {"spec", {{"devices", {{"requests", json::array()}}}}},
          {"status",
           {{"allocation", {{"devices", {{"results", results}}}}},
            {"reservedFor", json::array({{{"resource", "pods"}, {"name", "pod-" + name}, {"uid", "pod-uid-" + name}}})}}}};
}

inline json Result(const std::string& request, const std::string& device) {
  return {{"request", request}, {"driver", "tideslice.io"}, {"pool", "node-a"}, {"device", device}};
}
// A share of a card's shared device (consumable capacity); card-1's unless `device` says otherwise.
inline json SharedResult(const std::string& request, const std::string& share, const std::string& mem,
                         const std::string& cores, const std::string& device = "card-1-shared") {
  json r = Result(request, device);
  r["shareID"] = share;
  r["consumedCapacity"] = {{"memory", mem}, {"cores", cores}};
  return r;
}

// One node: its directories in a temp dir, the test API server, the mock backend (`cards`, a
// mock-cards JSON; MIG mode on for the UUIDs in `mig`) and the driver over them.
struct Node {
  explicit Node(const char* cards = kCards, std::set<std::string> mig = {"GPU-a100"}) {
    for (const char* d : {"plugins/tideslice.io", "plugins_registry", "cdi", "limiter"})
      std::filesystem::create_directories(dir.path() + "/" + d);
    auto made = deviceplugin::MockBackend::FromJson(cards, catalog::Catalog::Builtin());
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    mock = std::move(made).value();
    backend = std::make_unique<testsupport::MigModeBackend>(*mock, std::move(mig));
    env.server->Upsert("nodes", {{"metadata", {{"name", "node-a"}}}});
  }
  std::string plugin_dir() const { return dir.path() + "/plugins/tideslice.io"; }
  std::string cdi_dir() const { return dir.path() + "/cdi"; }
  std::string limiter_dir() const { return dir.path() + "/limiter"; }

  // Starts (or restarts) the driver process: fresh objects over the same directories.
  void StartDriver() {
    StopDriver();
    auto opened = deviceplugin::PartitionLedger::Open(plugin_dir() + "/partitions.json");
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    ledger = std::move(*opened);
    limiter = std::make_unique<deviceplugin::LimiterFiles>(limiter_dir());
    DriverOptions o;
    o.node_name = "node-a";
    o.cdi_dir = cdi_dir();
    o.checkpoint_path = plugin_dir() + "/checkpoint.json";
    auto* client = env.client.get();
    driver = std::make_unique<DraDriver>(
        o, *backend, catalog::Catalog::Builtin(),
        [client](const ClaimRef& r) -> StatusOr<std::string> {
          auto got = client->Get("/apis/resource.k8s.io/v1/namespaces/" + kube::PathSegment(r.ns) + "/resourceclaims/" +
                                 kube::PathSegment(r.name));
          if (!got.ok()) return got.status();
          return got->dump();
        },
        ledger.get(), limiter.get());
    Status started = driver->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
    server = std::make_unique<DraServer>(*driver, ServerOptions{plugin_dir(), dir.path() + "/plugins_registry", 1});
    Status serving = server->Start();
    ASSERT_TRUE(serving.ok()) << serving.ToString();
  }
  void StopDriver() {
    server.reset();
    driver.reset();
  }

  // The kubelet's side of registration; returns the DRA endpoint it was told.
  std::string Register() {
    auto ch = grpc::CreateChannel("unix://" + dir.path() + "/plugins_registry/tideslice.io-reg.sock",
                                  grpc::InsecureChannelCredentials());
    auto stub = pluginregistration::Registration::NewStub(ch);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    pluginregistration::PluginInfo info;
    grpc::Status s = stub->GetInfo(&ctx, {}, &info);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(info.type(), "DRAPlugin");
    EXPECT_EQ(info.name(), "tideslice.io");
    EXPECT_EQ(info.supported_versions(0), "v1.DRAPlugin");
    EXPECT_EQ(info.supported_versions(1), "v1beta1.DRAPlugin");
    grpc::ClientContext ctx2;
    pluginregistration::RegistrationStatus st;
    st.set_plugin_registered(true);
    pluginregistration::RegistrationStatusResponse r;
    EXPECT_TRUE(stub->NotifyRegistrationStatus(&ctx2, st, &r).ok());
    return info.endpoint();
  }

  std::string CreateClaim(const std::string& name, const json& results) {
    auto created = env.client->Create("/apis/resource.k8s.io/v1/namespaces/team/resourceclaims", AllocatedClaim(name, results));
    EXPECT_TRUE(created.ok());
    // Allocation is status: written through /status as the scheduler does.
    json with_status = *created;
    with_status["status"] = AllocatedClaim(name, results)["status"];
    auto st = env.client->Replace("/apis/resource.k8s.io/v1/namespaces/team/resourceclaims/" + name + "/status", with_status);
    EXPECT_TRUE(st.ok());
    return (*st)["metadata"]["uid"];
  }

  // The kubelet's client (gRPC calls its client object a stub) and request: claims of "team" by
  // (name, uid).
  std::unique_ptr<drav1::DRAPlugin::Stub> KubeletClient() {
    return drav1::DRAPlugin::NewStub(grpc::CreateChannel("unix://" + server->dra_socket(), grpc::InsecureChannelCredentials()));
  }
  template <typename Request>
  static Request ClaimsRequest(const std::vector<std::pair<std::string, std::string>>& claims) {
    Request req;
    for (const auto& [name, uid] : claims) {
      auto* c = req.add_claims();
      c->set_namespace_("team");
      c->set_name(name);
      c->set_uid(uid);
    }
    return req;
  }

  drav1::NodePrepareResourcesResponse Prepare(const std::vector<std::pair<std::string, std::string>>& claims) {
    drav1::NodePrepareResourcesResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(45));
    grpc::Status s =
        KubeletClient()->NodePrepareResources(&ctx, ClaimsRequest<drav1::NodePrepareResourcesRequest>(claims), &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }
  drav1::NodeUnprepareResourcesResponse Unprepare(const std::vector<std::pair<std::string, std::string>>& claims) {
    drav1::NodeUnprepareResourcesResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s =
        KubeletClient()->NodeUnprepareResources(&ctx, ClaimsRequest<drav1::NodeUnprepareResourcesRequest>(claims), &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  json CdiSpec(const std::string& uid) const {
    std::ifstream in(cdi_dir() + "/" + CdiSpecFileName("tideslice.io", uid));
    if (!in) return json();
    return json::parse(in, nullptr, false);
  }
  size_t CdiFiles() const {
    size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(cdi_dir())) n += e.path().extension() == ".json";
    return n;
  }

  TempDir dir{"tsdra"};
  KubeEnv env;
  std::unique_ptr<deviceplugin::MockBackend> mock;
  std::unique_ptr<testsupport::MigModeBackend> backend;
  std::unique_ptr<deviceplugin::PartitionLedger> ledger;
  std::unique_ptr<deviceplugin::LimiterFiles> limiter;
  std::unique_ptr<DraDriver> driver;
  std::unique_ptr<DraServer> server;
};

// The environment a CDI device of `spec` gives its containers.
inline std::vector<std::string> Env(const json& spec, size_t device = 0) {
  std::vector<std::string> out;
  for (const auto& e : spec["devices"][device]["containerEdits"]["env"]) out.push_back(e);
  return out;
}

}  // namespace tideslice::dra::fixture
