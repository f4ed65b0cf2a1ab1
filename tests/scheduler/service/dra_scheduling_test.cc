// The extender on the DRA path: allocated ResourceClaims are accounted on DRA nodes (and freed),
// malformed claims are ignored, a DRA pod's slices come from its ResourceClaimTemplate, and over
// the real HTTP extender a DRA node and a device-plugin node are both filtered and scored, while a
// bind to the DRA node is a plain Binding (no assignment, no hand-off).
#include <gtest/gtest.h>

#include <set>

#include "common/codec/annotations.h"
#include "common/kube/objects.h"
#include "common/kube/pod_json.h"
#include "device-plugin/dra/resource_slices.h"
#include "device-plugin/kube/inventory_publisher.h"
#include "scheduler/service/app.h"
#include "scheduler/service/cache.h"
#include "scheduler/service/dra_claims.h"
#include "scheduler/service/state.h"
#include "tests/support/fake_cards.h"
#include "tests/support/inventory_node.h"
#include "tests/support/kube_env.h"
#include "tests/support/test_apiserver.h"
#include "tests/support/test_support.h"

namespace tideslice::service {
namespace {

using kube::json;

// A Node as tideslice-dra-driver (or, without a driver, the device plugin) leaves it.
json InventoryNode(const std::string& name, int cards, std::chrono::system_clock::time_point heartbeat,
                   const std::string& dra_driver) {
  return testsupport::InventoryNode(name, cards, heartbeat, /*healthy=*/true, json::object(), dra_driver);
}

json Result(const std::string& pool, const std::string& device, const std::string& memory = "",
            const std::string& cores = "") {
  json r = {{"request", "gpu"}, {"driver", "tideslice.io"}, {"pool", pool}, {"device", device}};
  if (!memory.empty()) r["consumedCapacity"]["memory"] = memory;
  if (!cores.empty()) r["consumedCapacity"]["cores"] = cores;
  return r;
}

json Claim(const std::string& name, json results) {
  json c = {{"apiVersion", "resource.k8s.io/v1"},
            {"kind", "ResourceClaim"},
            {"metadata", {{"name", name}, {"namespace", "ml"}, {"uid", "uid-" + name}}},
            {"spec", {{"devices", {{"requests", json::array()}}}}}};
  if (!results.is_null()) c["status"]["allocation"]["devices"]["results"] = std::move(results);
  return c;
}

json SharedTemplate(const std::string& name, const std::string& memory, const std::string& cores) {
  return {{"apiVersion", "resource.k8s.io/v1"},
          {"kind", "ResourceClaimTemplate"},
          {"metadata", {{"name", name}, {"namespace", "ml"}}},
          {"spec",
           {{"spec",
             {{"devices",
               {{"requests",
                 {{{"name", "gpu"},
                   {"exactly",
                    {{"deviceClassName", "tideslice.io-shared"},
                     {"capacity", {{"requests", {{"memory", memory}, {"cores", cores}}}}}}}}}}}}}}}}};
}

json WholeTemplate(const std::string& name, int count) {
  return {{"metadata", {{"name", name}, {"namespace", "ml"}}},
          {"spec",
           {{"spec",
             {{"devices",
               {{"requests",
                 {{{"name", "gpus"}, {"exactly", {{"deviceClassName", "tideslice.io"}, {"count", count}}}}}}}}}}}}};
}

json DraPod(const std::string& name, const std::string& template_name) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"namespace", "ml"}}},
          {"spec",
           {{"schedulerName", "tideslice-scheduler"},
            {"resourceClaims", {{{"name", "accel"}, {"resourceClaimTemplateName", template_name}}}},
            {"containers", {{{"name", "c"}, {"image", "vllm"}, {"resources", {{"claims", {{{"name", "accel"}}}}}}}}}}},
          {"status", {{"phase", "Pending"}}}};
}

const core::CardState& Card(const ClusterCache& cache, const std::string& node, int i) {
  return cache.Snapshot()->FindNode(node)->cards.at(i);
}

class DraCache : public ::testing::Test {
 protected:
  DraCache() {
    CacheOptions o;
    o.now = [this] { return now_; };
    cache_ = std::make_unique<ClusterCache>(catalog::Catalog::Builtin(), o);
    cache_->ReplaceNodes({InventoryNode("dra-a", 2, now_, "tideslice.io"), InventoryNode("dp-a", 2, now_, "")});
    cache_->ReplacePods({});
  }
  std::chrono::system_clock::time_point now_ = std::chrono::system_clock::now();
  std::unique_ptr<ClusterCache> cache_;
};

TEST_F(DraCache, AnAllocatedClaimHoldsItsDevicesUntilDeletedOrDeallocated) {
  EXPECT_TRUE(cache_->IsDraNode("dra-a"));
  EXPECT_FALSE(cache_->IsDraNode("dp-a"));
  EXPECT_TRUE(cache_->Snapshot()->FindNode("dra-a")->dra);
  cache_->ReplaceClaims({Claim("soft", json::array({Result("dra-a", "card-0-shared", "8Gi", "30")})),
                         Claim("whole", json::array({Result("dra-a", "card-1")}))});
  EXPECT_EQ(Card(*cache_, "dra-a", 0).usage.used_memory_mib, 8192);
  EXPECT_EQ(Card(*cache_, "dra-a", 0).usage.used_compute_permille, 300);
  EXPECT_TRUE(Card(*cache_, "dra-a", 1).usage.whole_taken);
  EXPECT_EQ(cache_->stats().placed_pods, 0u) << "claims are not pods";

  cache_->OnClaim(kube::WatchEventType::kDeleted, Claim("soft", json()));
  EXPECT_EQ(Card(*cache_, "dra-a", 0).usage.used_memory_mib, 0);
  EXPECT_TRUE(Card(*cache_, "dra-a", 0).usage.Idle());
  // Deallocated (status.allocation gone): it holds nothing.
  cache_->OnClaim(kube::WatchEventType::kModified, Claim("whole", json()));
  EXPECT_TRUE(Card(*cache_, "dra-a", 1).usage.Idle());

  // A claim whose node comes later is accounted when the node's inventory arrives, and survives
  // a rebuild of the node.
  cache_->OnClaim(kube::WatchEventType::kAdded, Claim("later", json::array({Result("dra-b", "card-0")})));
  cache_->OnNode(kube::WatchEventType::kAdded, InventoryNode("dra-b", 1, now_, "tideslice.io"));
  EXPECT_TRUE(Card(*cache_, "dra-b", 0).usage.whole_taken);
  json relabelled = InventoryNode("dra-b", 1, now_, "tideslice.io");
  relabelled["metadata"]["labels"]["zone"] = "z2";
  cache_->OnNode(kube::WatchEventType::kModified, relabelled);
  EXPECT_TRUE(Card(*cache_, "dra-b", 0).usage.whole_taken);
}

TEST_F(DraCache, ClaimsOfOtherDriversAndOnDevicePluginNodesAreNotTideSlices) {
  json other = Result("dra-a", "card-0");
  other["driver"] = "gpu.example.com";
  cache_->ReplaceClaims({Claim("other", json::array({other})), Claim("dp", json::array({Result("dp-a", "card-0")}))});
  EXPECT_TRUE(Card(*cache_, "dra-a", 0).usage.Idle());
  EXPECT_TRUE(Card(*cache_, "dp-a", 0).usage.Idle());
}

TEST_F(DraCache, MalformedClaimsAreIgnoredAndTheRestAccounted) {
  json not_a_list = Claim("bad-list", json::array());
  not_a_list["status"]["allocation"]["devices"]["results"] = "card-0";
  json bad_quantity = Claim("bad-quantity", json::array({Result("dra-a", "card-0-shared", "lots")}));
  json unknown_device = Claim("bad-device", json::array({Result("dra-a", "gpu-7")}));
  json missing_card = Claim("bad-card", json::array({Result("dra-a", "card-9")}));
  json wrong_partition = Claim("bad-mig", json::array({Result("dra-a", "card-0-vnpu-vir01-0")}));
  cache_->ReplaceClaims({not_a_list, bad_quantity, unknown_device, missing_card, wrong_partition, json::array(), json("x"),
                         Claim("good", json::array({Result("dra-a", "card-1-shared", "20Gi")}))});
  EXPECT_TRUE(Card(*cache_, "dra-a", 0).usage.Idle());
  EXPECT_EQ(Card(*cache_, "dra-a", 1).usage.used_memory_mib, 20480);
  EXPECT_EQ(Card(*cache_, "dra-a", 1).usage.used_compute_permille, 0) << "cores not given: best effort";
  // A claim that was fine and turns malformed stops holding.
  json broken = Claim("good", json::array({Result("dra-a", "card-1-shared", "20Gi")}));
  broken["status"]["allocation"]["devices"]["results"][0].erase("pool");
  cache_->OnClaim(kube::WatchEventType::kModified, broken);
  EXPECT_TRUE(Card(*cache_, "dra-a", 1).usage.Idle());
}

TEST_F(DraCache, ADraPodAsksForWhatItsTemplateOrClaimRequests) {
  cache_->ReplaceClaimTemplates({SharedTemplate("soft", "8Gi", "30"), WholeTemplate("two", 2)});
  json named = Claim("mine", json());
  named["spec"]["devices"]["requests"] = {
      {{"name", "pick"},
       {"firstAvailable",
        {{{"name", "big"}, {"deviceClassName", "tideslice.io-mig"}, {"capacity", {{"requests", {{"memory", "40Gi"}}}}}},
         {{"name", "small"}, {"deviceClassName", "tideslice.io-shared"}}}}},
      {{"name", "foreign"}, {"exactly", {{"deviceClassName", "gpu.example.com"}}}}};
  cache_->ReplaceClaims({named});

  json pod = DraPod("p", "soft");
  pod["spec"]["resourceClaims"].push_back({{"name", "pair"}, {"resourceClaimTemplateName", "two"}});
  pod["spec"]["resourceClaims"].push_back({{"name", "own"}, {"resourceClaimName", "mine"}});
  pod["spec"]["resourceClaims"].push_back({{"name", "unseen"}, {"resourceClaimTemplateName", "nowhere"}});
  auto spec = kube::PodSpecFromJson(pod);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ASSERT_EQ(spec->resource_claims.size(), 4u);
  auto slices = cache_->ClaimedSlices(*spec);
  ASSERT_EQ(slices.size(), 3u);
  EXPECT_EQ(slices[0].name, "accel/gpu");
  EXPECT_EQ(slices[0].slice.count, 1);
  EXPECT_FALSE(slices[0].slice.whole);
  EXPECT_EQ(slices[0].slice.memory_mib, 8192);
  EXPECT_EQ(slices[0].slice.compute_permille, 300);
  EXPECT_EQ(slices[1].name, "pair/gpus");
  EXPECT_TRUE(slices[1].slice.whole);
  EXPECT_EQ(slices[1].slice.count, 2);
  EXPECT_EQ(slices[2].name, "own/pick");
  EXPECT_TRUE(slices[2].slice.partition_class) << "firstAvailable: its first subrequest, a MIG device";
  EXPECT_EQ(slices[2].slice.memory_mib, 40960);

  // A malformed template asks for nothing (logged), the others stay.
  json bad = SharedTemplate("soft", "8Gi", "300");
  cache_->OnClaimTemplate(kube::WatchEventType::kModified, bad);
  EXPECT_EQ(cache_->ClaimedSlices(*spec).size(), 2u);
  cache_->OnClaimTemplate(kube::WatchEventType::kDeleted, WholeTemplate("two", 2));
  EXPECT_EQ(cache_->ClaimedSlices(*spec).size(), 1u);
}

// The scheduler reads device names the way tideslice-dra-driver writes them: every MIG and vNPU
// device of every catalog model maps back to its profile, slot and card.
TEST(DraClaims, EveryPublishedPartitionDeviceMapsBackToItsProfile) {
  const auto& catalog = catalog::Catalog::Builtin();
  int checked = 0;
  for (const auto& model : catalog.models()) {
    if (model.profiles.empty()) continue;
    deviceplugin::DeviceInfo card;
    card.uuid = "card-of-" + model.name;
    card.index = 3;
    card.vendor = model.vendor;
    card.model = model.name;
    card.memory_mib = model.memory_mib;
    card.mig_enabled = model.partitioning == catalog::Partitioning::kMig;
    auto published = dra::BuildNodeInventory({card}, catalog, dra::SliceLayout::kPartitionable);
    ASSERT_TRUE(published.ok()) << model.name << ": " << published.status().ToString();
    v1::NodeInventory inv;
    inv.set_node_name("n");
    auto* c = inv.add_cards();
    c->set_uuid(card.uuid);
    c->set_index(card.index);
    c->set_model(model.name);
    c->set_memory_mib(model.memory_mib);
    c->set_health(v1::HEALTH_HEALTHY);
    core::ClusterState state;
    core::NodeState node = NodeFromInventory(inv, {}, catalog, state);
    for (const auto& d : published->devices) {
      if (d.profile.empty()) continue;
      ClaimAllocation claim{"u", "ml/c", {{"r", "tideslice.io", "n", d.name, std::nullopt, std::nullopt}}};
      auto p = PlacementFromClaim(claim, "tideslice.io", node);
      ASSERT_TRUE(p.ok()) << d.name << ": " << p.status().ToString();
      ASSERT_EQ(p->containers.size(), 1u);
      const core::CardGrant& g = p->containers[0].cards.at(0);
      EXPECT_EQ(g.profile, d.profile) << d.name;
      EXPECT_EQ(g.uuid, card.uuid);
      if (d.start_slot >= 0) {
        EXPECT_EQ(g.start_slot, d.start_slot) << d.name;
      }
      EXPECT_GT(g.memory_mib, 0) << d.name;
      ++checked;
    }
  }
  EXPECT_GT(checked, 10);
}

// The scheduler over real sockets against the test API server: a DRA node (inventory as the DRA
// driver publishes it) and a device-plugin node.
class DraExtender : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"dra-a", "dp-a"}) server_->Upsert("nodes", {{"metadata", {{"name", name}}}});
    dra_publisher_ = std::make_unique<deviceplugin::InventoryPublisher>(client_, "dra-a", "mock", catalog::Catalog::Builtin());
    dra_publisher_->set_dra_driver("tideslice.io");
    ASSERT_TRUE(dra_publisher_->Update(testsupport::FakeH100s(2)).ok());
    dp_publisher_ = std::make_unique<deviceplugin::InventoryPublisher>(client_, "dp-a", "mock", catalog::Catalog::Builtin());
    ASSERT_TRUE(dp_publisher_->Update(testsupport::FakeH100s(2)).ok());
    server_->Upsert("resourceclaimtemplates", SharedTemplate("soft", "8Gi", "30"));
    server_->Upsert("resourceclaimtemplates", WholeTemplate("three", 3));

    AppOptions o;
    port_ = testsupport::FreeLoopbackPort();
    o.extender_address = "http://127.0.0.1:" + std::to_string(port_) + "/tideslice";
    o.health_address = "http://127.0.0.1:" + std::to_string(testsupport::FreeLoopbackPort());
    o.refresh_period = std::chrono::milliseconds(100);
    o.leader.identity = "solo";
    auto app = SchedulerApp::Start(client_, catalog::Catalog::Builtin(), o);
    ASSERT_TRUE(app.ok()) << app.status().ToString();
    app_ = std::move(*app);
    ASSERT_TRUE(testsupport::WaitFor([&] { return app_->ready(); }));
    ASSERT_TRUE(testsupport::WaitFor([&] {
      kube::PodSpec probe;
      probe.namespace_name = "ml";
      probe.resource_claims = {{"a", "", "soft"}, {"b", "", "three"}};
      return app_->cache().IsDraNode("dra-a") && app_->cache().ClaimedSlices(probe).size() == 2;
    }));
  }
  void TearDown() override { app_.reset(); }

  json Post(const std::string& verb, const json& body) {
    auto [status, text] = testsupport::HttpRequest(port_, "POST", "/tideslice/" + verb, body.dump());
    EXPECT_EQ(status, 200) << verb << ": " << text;
    return json::parse(text);
  }
  std::map<std::string, int64_t> Scores(const json& pod) {
    std::map<std::string, int64_t> out;
    for (const auto& s : Post("prioritize", {{"Pod", pod}, {"NodeNames", {"dra-a", "dp-a"}}})) out[s["Host"]] = s["Score"];
    return out;
  }

  testsupport::KubeEnv env_;
  testsupport::TestApiServer* server_ = env_.server.get();
  kube::KubeClient* client_ = env_.client.get();
  std::unique_ptr<deviceplugin::InventoryPublisher> dra_publisher_, dp_publisher_;
  std::unique_ptr<SchedulerApp> app_;
  int port_ = 0;
};

TEST_F(DraExtender, FilterAndPrioritizeJudgeBothPathsAndBindIsPlainOnDraNodes) {
  json soft = server_->Upsert("pods", DraPod("soft-pod", "soft"));
  json filter = Post("filter", {{"Pod", soft}, {"NodeNames", {"dra-a", "dp-a"}}});
  EXPECT_EQ(filter["NodeNames"], json({"dra-a", "dp-a"})) << filter.dump();

  // Three whole cards fit on neither two-card node: dropped on both paths.
  json three = server_->Upsert("pods", DraPod("three-pod", "three"));
  filter = Post("filter", {{"Pod", three}, {"NodeNames", {"dra-a", "dp-a"}}});
  EXPECT_TRUE(filter["NodeNames"].empty()) << filter.dump();
  EXPECT_TRUE(filter["FailedAndUnresolvableNodes"].contains("dra-a")) << filter.dump();

  // Both nodes are scored; once an allocated claim holds part of a card on the DRA node, the
  // fragmentation-aware scorer packs the next soft slice there.
  auto before = Scores(soft);
  ASSERT_EQ(before.size(), 2u);
  EXPECT_EQ(before["dra-a"], before["dp-a"]) << "two empty nodes of the same cards";
  json held = Claim("held", json::array({Result("dra-a", "card-0-shared", "40Gi", "50")}));
  server_->Upsert("resourceclaims", held);
  ASSERT_TRUE(testsupport::WaitFor([&] {
    return app_->cache().Snapshot()->FindNode("dra-a")->cards.at(0).usage.used_memory_mib == 40960;
  }));
  auto after = Scores(soft);
  EXPECT_GT(after["dra-a"], after["dp-a"]) << "dra-a " << after["dra-a"] << ", dp-a " << after["dp-a"];

  // The allocation is gone with the claim.
  ASSERT_TRUE(server_->Remove("resourceclaims", "ml", "held"));
  ASSERT_TRUE(testsupport::WaitFor([&] { return app_->cache().Snapshot()->FindNode("dra-a")->cards.at(0).usage.Idle(); }));

  // A pod with extended resources (the tideslice.io-extended class on a DRA node) binds plainly
  // there; on the device-plugin node it gets its assignment as before.
  json extended = {{"apiVersion", "v1"},
                   {"kind", "Pod"},
                   {"metadata", {{"name", "ext"}, {"namespace", "ml"}}},
                   {"spec",
                    {{"schedulerName", "tideslice-scheduler"},
                     {"containers", {{{"name", "c"}, {"image", "vllm"}, {"resources", {{"limits", {{"tideslice.io/vnpu", "1"}}}}}}}}}},
                   {"status", {{"phase", "Pending"}}}};
  for (const char* name : {"ext-dra", "ext-dp"}) {
    extended["metadata"]["name"] = name;
    server_->Upsert("pods", extended);
  }
  ASSERT_TRUE(testsupport::WaitFor([&] { return app_->cache().PendingPod("ml/ext-dp").has_value(); }));
  for (const auto& [pod, node] : std::vector<std::pair<std::string, std::string>>{
           {"soft-pod", "dra-a"}, {"ext-dra", "dra-a"}, {"ext-dp", "dp-a"}}) {
    auto stored = server_->Get("pods", "ml", pod);
    ASSERT_TRUE(stored.has_value());
    json bind = Post("bind", {{"PodName", pod}, {"PodNamespace", "ml"}, {"PodUID", (*stored)["metadata"]["uid"]}, {"Node", node}});
    EXPECT_TRUE(bind["Error"].is_null() || bind["Error"].get<std::string>().empty()) << pod << ": " << bind.dump();
    auto bound = server_->Get("pods", "ml", pod);
    ASSERT_TRUE(bound.has_value());
    EXPECT_EQ(kube::NodeNameOf(*bound), node) << pod;
    auto assignment = kube::AssignmentOf(*bound);
    ASSERT_TRUE(assignment.ok());
    EXPECT_EQ(assignment->has_value(), node == "dp-a") << pod << " on " << node;
  }
}

}  // namespace
}  // namespace tideslice::service
