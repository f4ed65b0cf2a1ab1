// The DRA driver against a stand-in kubelet: a gRPC client (from our own protos) that registers
// the driver through its registration socket and calls NodePrepareResources /
// NodeUnprepareResources on the DRA socket it advertises, with claims held by the test API
// server. Real Unix sockets in a temp dir, the mock backend (with MIG mode switched on where a
// test needs it), the real partition ledger, limiter files and CDI directory (driver_fixture.h).
#include <filesystem>
#include <fstream>

#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "device-plugin/dra/slice_publisher.h"
#include "device-plugin/limiter/config.h"
#include "dra/v1beta1/api.grpc.pb.h"
#include "drahealth/v1alpha1/api.grpc.pb.h"
#include "tests/dra/driver_fixture.h"

namespace tideslice::dra {
namespace {

using namespace fixture;
namespace drav1beta1 = k8s::io::kubelet::pkg::apis::dra::v1beta1;

TEST(DraDriverComponent, RegistersThenPreparesTwiceAndUnpreparesTwice) {
  Node node;
  node.StartDriver();
  const std::string endpoint = node.Register();
  EXPECT_EQ(endpoint, node.server->dra_socket());
  EXPECT_TRUE(node.server->registered());
  const std::string uid = node.CreateClaim("whole", json::array({Result("gpu", "card-1")}));

  auto first = node.Prepare({{"whole", uid}});
  ASSERT_EQ(first.claims().count(uid), 1u);
  const auto& entry = first.claims().at(uid);
  ASSERT_EQ(entry.error(), "");
  ASSERT_EQ(entry.devices_size(), 1);
  EXPECT_EQ(entry.devices(0).pool_name(), "node-a");
  EXPECT_EQ(entry.devices(0).device_name(), "card-1");
  EXPECT_EQ(entry.devices(0).request_names(0), "gpu");
  EXPECT_EQ(entry.devices(0).cdi_device_ids(0), "k8s.tideslice.io/card=" + uid + "-gpu");
  EXPECT_FALSE(entry.devices(0).has_share_id());
  json spec = node.CdiSpec(uid);
  ASSERT_TRUE(spec.is_object());
  EXPECT_EQ(spec["kind"], "k8s.tideslice.io/card");
  EXPECT_EQ(spec["devices"][0]["name"], uid + "-gpu");
  auto env = Env(spec);
  EXPECT_NE(std::find(env.begin(), env.end(), "NVIDIA_VISIBLE_DEVICES=GPU-h100"), env.end());
  EXPECT_EQ(std::find(env.begin(), env.end(), "TIDESLICE_LIMITER=on"), env.end());  // whole card: no limiter

  auto second = node.Prepare({{"whole", uid}});
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(second, first));  // idempotent, same CDI ids

  // The same claim through the previous API version.
  auto stub = drav1beta1::DRAPlugin::NewStub(grpc::CreateChannel("unix://" + endpoint, grpc::InsecureChannelCredentials()));
  const auto req = Node::ClaimsRequest<drav1beta1::NodePrepareResourcesRequest>({{"whole", uid}});
  drav1beta1::NodePrepareResourcesResponse old;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub->NodePrepareResources(&ctx, req, &old).ok());
  EXPECT_EQ(old.claims().at(uid).devices(0).cdi_device_ids(0), entry.devices(0).cdi_device_ids(0));

  auto un = node.Unprepare({{"whole", uid}});
  EXPECT_EQ(un.claims().at(uid).error(), "");
  EXPECT_EQ(node.CdiFiles(), 0u);
  auto again = node.Unprepare({{"whole", uid}});  // not prepared any more: still success
  ASSERT_EQ(again.claims().count(uid), 1u);
  EXPECT_EQ(again.claims().at(uid).error(), "");
}

TEST(DraDriverComponent, RestartBetweenPrepareAndUnprepareAfterTheClaimIsGone) {
  Node node;
  node.StartDriver();
  node.Register();
  const std::string mig = node.CreateClaim("mig", json::array({Result("mig", "card-0-mig-3g20gb-4")}));
  const std::string vnpu = node.CreateClaim("vnpu", json::array({Result("npu", "card-2-vnpu-vir05-1c-16g-0")}));
  const std::string soft = node.CreateClaim("soft", json::array({SharedResult("slice", "11111111-1111-4111-8111-111111111111", "8Gi", "30")}));
  auto prepared = node.Prepare({{"mig", mig}, {"vnpu", vnpu}, {"soft", soft}});  // one pod, three claims
  for (const auto& uid : {mig, vnpu, soft}) ASSERT_EQ(prepared.claims().at(uid).error(), "") << uid;
  EXPECT_EQ(node.mock->Partitions().size(), 2u);
  json mig_spec = node.CdiSpec(mig);
  auto mig_env = Env(mig_spec);
  ASSERT_EQ(mig_env.size(), 1u);
  EXPECT_EQ(mig_env[0].rfind("NVIDIA_VISIBLE_DEVICES=MIG-GPU-a100-4-", 0), 0u) << mig_env[0];
  auto npu_env = Env(node.CdiSpec(vnpu));
  EXPECT_EQ(npu_env[0].rfind("ASCEND_VISIBLE_DEVICES=", 0), 0u);
  EXPECT_EQ(prepared.claims().at(soft).devices(0).share_id(), "11111111-1111-4111-8111-111111111111");

  // The driver restarts; the kubelet (also restarted) prepares again and must get the same answer.
  node.StartDriver();
  node.Register();
  auto again = node.Prepare({{"mig", mig}, {"vnpu", vnpu}, {"soft", soft}});
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(again, prepared));
  EXPECT_EQ(node.mock->Partitions().size(), 2u);  // nothing created twice

  // The pod is gone and so are its claims; another restart, then unprepare from the checkpoint.
  for (const char* n : {"mig", "vnpu", "soft"})
    ASSERT_TRUE(node.env.client->Delete(std::string("/apis/resource.k8s.io/v1/namespaces/team/resourceclaims/") + n).ok());
  node.StartDriver();
  auto un = node.Unprepare({{"mig", mig}, {"vnpu", vnpu}, {"soft", soft}});
  for (const auto& uid : {mig, vnpu, soft}) EXPECT_EQ(un.claims().at(uid).error(), "") << uid;
  EXPECT_TRUE(node.mock->Partitions().empty());
  EXPECT_EQ(node.CdiFiles(), 0u);
  EXPECT_FALSE(std::filesystem::exists(node.limiter_dir() + "/containers/" + soft));
  EXPECT_TRUE(node.driver->Prepared().empty());
  EXPECT_TRUE(node.ledger->All().empty());
}

TEST(DraDriverComponent, APartitionThatCannotBeCreatedFailsOnlyItsClaim) {
  Node node;
  node.StartDriver();
  node.Register();
  const std::string ok = node.CreateClaim("ok", json::array({Result("gpu", "card-1")}));
  const std::string bad = node.CreateClaim("bad", json::array({Result("mig", "card-0-mig-1g5gb-0")}));
  node.mock->FailNextPartition("no free GPU instance on GPU-a100");
  auto resp = node.Prepare({{"ok", ok}, {"bad", bad}});
  EXPECT_EQ(resp.claims().at(ok).error(), "");
  const std::string err = resp.claims().at(bad).error();
  EXPECT_NE(err.find("creating 1g.5gb on card GPU-a100"), std::string::npos) << err;
  EXPECT_NE(err.find("no free GPU instance"), std::string::npos) << err;
  EXPECT_TRUE(node.mock->Partitions().empty());
  EXPECT_TRUE(node.ledger->Intents().empty());
  EXPECT_FALSE(node.CdiSpec(bad).is_object());
  // The kubelet retries later; now the partition can be made.
  auto retry = node.Prepare({{"bad", bad}});
  EXPECT_EQ(retry.claims().at(bad).error(), "");
  EXPECT_EQ(node.mock->Partitions().size(), 1u);
  // Unknown claims, replaced claims and foreign pools are per-claim errors too.
  auto odd = node.Prepare({{"missing", "00000000-0000-4000-8000-00000000ffff"}, {"ok", "not-the-uid"}});
  EXPECT_NE(odd.claims().at("00000000-0000-4000-8000-00000000ffff").error().find("not found"), std::string::npos);
  EXPECT_NE(odd.claims().at("not-the-uid").error().find("replaced"), std::string::npos);
}

TEST(DraDriverComponent, AnUnhealthyCardIsTaintedAndRefusedAndTheSlicesArePublishedAgain) {
  Node node;
  node.StartDriver();
  SlicePublisher publisher(*node.env.client, "tideslice.io", "node-a");
  ASSERT_TRUE(publisher.Sync(node.driver->Inventory()).ok());
  auto slices = [&] { return node.env.server->List("resourceslices"); };
  ASSERT_FALSE(slices().empty());
  const int64_t gen1 = publisher.generation();
  for (const auto& s : slices()) {
    EXPECT_EQ(s["spec"]["pool"]["generation"], gen1);
    EXPECT_EQ(s["metadata"]["ownerReferences"][0]["name"], "node-a");
  }
  const int writes = publisher.writes();
  ASSERT_TRUE(publisher.Sync(node.driver->Inventory()).ok());
  EXPECT_EQ(publisher.writes(), writes);  // nothing changed, nothing written

  ASSERT_TRUE(node.mock->SetHealth("GPU-h100", false).ok());
  auto changed = node.driver->RefreshCards();
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(*changed);
  ASSERT_TRUE(publisher.Sync(node.driver->Inventory()).ok());
  EXPECT_GT(publisher.generation(), gen1);
  bool tainted = false;
  for (const auto& s : slices()) {
    EXPECT_EQ(s["spec"]["pool"]["generation"], publisher.generation());  // every slice of the pool moved on
    if (!s["spec"].contains("devices")) continue;
    for (const auto& d : s["spec"]["devices"])
      if (d["name"] == "card-1") tainted = d.contains("taints") && d["taints"][0]["key"] == "tideslice.io/unhealthy";
  }
  EXPECT_TRUE(tainted);
  const std::string uid = node.CreateClaim("late", json::array({Result("gpu", "card-1")}));
  auto resp = node.Prepare({{"late", uid}});
  EXPECT_NE(resp.claims().at(uid).error().find("unhealthy"), std::string::npos);

  // The kubelet wipes the node's slices (its restart); the next sync puts them back.
  ASSERT_TRUE(node.env.client->Delete("/apis/resource.k8s.io/v1/resourceslices?fieldSelector=spec.nodeName%3Dnode-a").ok());
  ASSERT_TRUE(slices().empty());
  const int64_t gen2 = publisher.generation();
  ASSERT_TRUE(publisher.Sync(node.driver->Inventory()).ok());
  EXPECT_FALSE(slices().empty());
  EXPECT_GT(publisher.generation(), gen2);

  // The health stream reports the card as unhealthy.
  auto stub = v1alpha1::DRAResourceHealth::NewStub(
      grpc::CreateChannel("unix://" + node.server->dra_socket(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  auto reader = stub->NodeWatchResources(&ctx, {});
  v1alpha1::NodeWatchResourcesResponse health;
  ASSERT_TRUE(reader->Read(&health));
  bool sick = false, well = false;
  for (const auto& d : health.devices()) {
    if (d.device().device_name() == "card-1") sick = d.health() == v1alpha1::UNHEALTHY;
    if (d.device().device_name() == "card-2") well = d.health() == v1alpha1::HEALTHY;
  }
  EXPECT_TRUE(sick);
  EXPECT_TRUE(well);
  ctx.TryCancel();
}

TEST(DraDriverComponent, TwoClaimsShareOneCardEachLimitedByTheLimiter) {
  Node node;
  node.StartDriver();
  node.Register();
  const std::string a = node.CreateClaim("infer", json::array({SharedResult("slice", "aaaaaaaa-0000-4000-8000-000000000001", "8Gi", "30")}));
  const std::string b = node.CreateClaim("train", json::array({SharedResult("slice", "bbbbbbbb-0000-4000-8000-000000000002", "4Gi", "20")}));
  auto resp = node.Prepare({{"infer", a}});
  auto resp2 = node.Prepare({{"train", b}});
  ASSERT_EQ(resp.claims().at(a).error(), "");
  ASSERT_EQ(resp2.claims().at(b).error(), "");
  deviceplugin::LimiterLayout layout{node.limiter_dir()};
  struct Want {
    std::string uid;
    uint64_t bytes;
    uint32_t permille;
  };
  for (const Want& w : {Want{a, 8ull << 30, 300}, Want{b, 4ull << 30, 200}}) {
    // The config each claim's containers get, read with the limiter's own parser.
    std::ifstream in(layout.ConfigPath(w.uid, "slice"));
    ASSERT_TRUE(in) << layout.ConfigPath(w.uid, "slice");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    limiter::Config config{};
    char error[256] = {};
    ASSERT_TRUE(limiter::ParseConfig(text.data(), text.size(), &config, error, sizeof error)) << error;
    ASSERT_EQ(config.card_count, 1u);
    EXPECT_STREQ(config.cards[0].uuid, "GPU-h100");
    EXPECT_EQ(config.cards[0].memory_limit_bytes, w.bytes);
    EXPECT_EQ(config.cards[0].compute_permille, w.permille);
    EXPECT_STREQ(config.pod_uid, w.uid.c_str());
    // And the CDI spec mounts exactly that config and the region into the container.
    json spec = node.CdiSpec(w.uid);
    bool config_mount = false;
    for (const auto& m : spec["devices"][0]["containerEdits"]["mounts"])
      if (m["hostPath"] == layout.ConfigPath(w.uid, "slice")) config_mount = m["containerPath"] == deviceplugin::kLimiterConfigInContainer;
    EXPECT_TRUE(config_mount);
    auto env = Env(spec);
    EXPECT_NE(std::find(env.begin(), env.end(), "TIDESLICE_LIMITER=on"), env.end());
    EXPECT_NE(std::find(env.begin(), env.end(), "NVIDIA_VISIBLE_DEVICES=GPU-h100"), env.end());
  }
  // Both hold a seat in the card's compute roster.
  EXPECT_EQ(node.limiter->SeatsOf(a, "slice").size(), 1u);
  EXPECT_EQ(node.limiter->SeatsOf(b, "slice").size(), 1u);
  EXPECT_NE(node.limiter->SeatsOf(a, "slice")[0].slot, node.limiter->SeatsOf(b, "slice")[0].slot);
  // The same share prepared for another claim is refused (last line of defence).
  const std::string dup = node.CreateClaim("dup", json::array({SharedResult("slice", "aaaaaaaa-0000-4000-8000-000000000001", "1Gi", "0")}));
  auto d = node.Prepare({{"dup", dup}});
  EXPECT_NE(d.claims().at(dup).error().find("already prepared"), std::string::npos);
  node.Unprepare({{"infer", a}, {"train", b}});
  EXPECT_FALSE(std::filesystem::exists(layout.ContainerDir(a, "slice")));
  EXPECT_FALSE(std::filesystem::exists(layout.ContainerDir(b, "slice")));
}

}  // namespace
}  // namespace tideslice::dra
