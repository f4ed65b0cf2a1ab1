// The hand-off end to end over real sockets: the scheduler's Binder writes assignments and binds
// through the test API server, the node agent's gRPC server answers a "kubelet" over a unix
// socket and reads/acknowledges through the same API server. Many pods, some with init and
// several app containers, are bound to one node at once by concurrent binders (as kube-scheduler
// binds asynchronously); kubelet workers admit whatever is bound. Every container must get
// exactly the cards assigned to it, and every assignment must end ALLOCATED with the kubelet's
// device IDs recorded.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "common/codec/annotations.h"
#include "common/kube/objects.h"
#include "common/kube/reflector.h"
#include "device-plugin/kube/inventory_publisher.h"
#include "device-plugin/kube/kube_assignment_store.h"
#include "scheduler/service/binder.h"
#include "tests/support/fake_cards.h"
#include "tests/support/kube_env.h"
#include "tests/support/test_apiserver.h"
#include "tests/support/test_support.h"

namespace tideslice::deviceplugin {
namespace {

using kube::json;
using testsupport::TestApiServer;

json Pod(const std::string& name) {
  return {{"metadata", {{"name", name}, {"namespace", "ml"}}},
          {"spec", {{"schedulerName", "tideslice-scheduler"}, {"containers", json::array()}}},
          {"status", {{"phase", "Pending"}}}};
}

struct KubeFixture : testsupport::KubeEnv {
  KubeFixture() { server->Upsert("nodes", {{"metadata", {{"name", "node-a"}}}}); }
};

// Runs the pod reflector that feeds the binder, as the scheduler's cache does.
class BinderFeed {
 public:
  BinderFeed(kube::KubeClient* client, service::Binder* binder)
      : reflector_(client, "/api/v1/pods",
                   {[binder](std::vector<json> pods) { binder->Replace(pods); },
                    [binder](kube::WatchEventType t, const json& pod) { binder->Observe(t, pod); }}) {
    thread_ = std::thread([this] { reflector_.Run(&cancel_); });
    while (!reflector_.synced()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ~BinderFeed() {
    cancel_.Cancel();
    thread_.join();
  }

 private:
  kube::Reflector reflector_;
  http::CancelFlag cancel_;
  std::thread thread_;
};

TEST(KubeHandoff, ConcurrentBindsToOneNodeGiveEveryContainerExactlyItsSlices) {
  KubeFixture k;
  testsupport::TempDir sockets("tsdp");
  DeviceState devices;
  devices.Set(testsupport::FakeH100s(8));
  KubeAssignmentStore store(k.client.get(), "node-a");
  HandoffHandler handler(&store);
  PluginOptions o;
  o.socket_dir = sockets.path();
  o.replicas_per_card = 16;
  PluginServer plugin(o, &devices, &handler);
  ASSERT_TRUE(plugin.Start().ok());

  service::BinderOptions bo;
  bo.max_wait = std::chrono::seconds(60);
  service::Binder binder(k.client.get(), bo);
  BinderFeed feed(k.client.get(), &binder);

  // 24 pods; every third has an init container and two app containers.
  constexpr int kPods = 24;
  std::mt19937 rng(11);
  std::map<std::string, v1::PodAssignment> assignments;   // pod name -> assignment
  std::map<std::pair<std::string, std::string>, std::string> want;  // (pod key, container) -> visible cards
  for (int p = 0; p < kPods; ++p) {
    std::string name = "pod-" + std::to_string(p);
    json created = k.server->Upsert("pods", Pod(name));
    v1::PodAssignment a;
    int containers = p % 3 == 0 ? 3 : 1;
    for (int c = 0; c < containers; ++c) {
      auto* ca = a.add_containers();
      ca->set_name("c" + std::to_string(c));
      ca->set_init_container(containers == 3 && c == 0);
      int n = 1 + static_cast<int>(rng() % 3);
      std::set<int> chosen;
      for (int j = 0; j < n; ++j) chosen.insert((p + 3 * j + c) % 8);
      std::string visible;
      for (int idx : chosen) {  // ascending index, as the container response orders them
        auto* s = ca->add_slices();
        s->set_card_uuid("GPU-" + std::to_string(idx));
        s->set_card_index(idx);
        // Small shares: up to ~20 slices land on one card over the run, and the agent refuses a
        // slice that would not fit beside what it already handed out.
        s->set_memory_mib(2048);
        s->set_compute_permille(40);
        visible += (visible.empty() ? "" : ",") + std::string("GPU-") + std::to_string(idx);
      }
      want[{"ml/" + name, ca->name()}] = visible;
    }
    assignments[name] = a;
  }

  // Kubelet side: admit each bound pod once, Allocate per container (init first) over gRPC.
  std::mutex mu;
  std::set<std::string> admitted;
  std::map<std::pair<std::string, std::string>, std::string> got;
  std::atomic<int> failures{0}, misattributed{0};
  std::atomic<bool> binds_done{false};
  auto kubelet = [&] {
    auto stub = v1beta1::DevicePlugin::NewStub(
        grpc::CreateChannel("unix://" + plugin.socket_path(), grpc::InsecureChannelCredentials()));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (std::chrono::steady_clock::now() < deadline) {
      std::optional<json> pod;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (static_cast<int>(admitted.size()) == kPods) return;
        for (const auto& p : k.server->List("pods"))
          if (kube::NodeNameOf(p) == "node-a" && !admitted.count(kube::PodKey(p))) {
            admitted.insert(kube::PodKey(p));
            pod = p;
            break;
          }
      }
      if (!pod) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      auto a = kube::AssignmentOf(*pod);
      ASSERT_TRUE(a.ok() && a->has_value());
      const std::string key = kube::PodKey(*pod);
      for (bool init : {true, false})
        for (const auto& c : (*a)->containers()) {
          if (c.init_container() != init) continue;
          grpc::ClientContext ctx;
          v1beta1::AllocateRequest req;
          auto* cr = req.add_container_requests();
          for (int i = 0; i < c.slices_size(); ++i) cr->add_devices_ids("GPU-" + std::to_string(i) + "::" + std::to_string(i));
          v1beta1::AllocateResponse resp;
          grpc::Status st = stub->Allocate(&ctx, req, &resp);
          std::lock_guard<std::mutex> lock(mu);
          if (!st.ok()) {
            failures++;
            ADD_FAILURE() << key << "/" << c.name() << ": " << st.error_message();
            continue;
          }
          const auto& r = resp.container_responses(0);
          if (r.annotations().at("tideslice.io/pod") != key || r.annotations().at("tideslice.io/container") != c.name())
            misattributed++;
          got[{key, c.name()}] = r.envs().at("NVIDIA_VISIBLE_DEVICES");
        }
    }
  };
  std::vector<std::thread> kubelets;
  for (int i = 0; i < 3; ++i) kubelets.emplace_back(kubelet);

  // Scheduler side: 6 concurrent binders, as kube-scheduler binds in goroutines.
  std::atomic<int> next{0}, bind_errors{0};
  std::vector<std::thread> binders;
  for (int i = 0; i < 6; ++i)
    binders.emplace_back([&] {
      for (int p; (p = next++) < kPods;) {
        std::string name = "pod-" + std::to_string(p);
        std::string uid = (*k.server->Get("pods", "ml", name))["metadata"]["uid"];
        Status s = binder.Bind("ml", name, uid, "node-a", assignments[name]);
        // Binds over the per-node waiting cap fail at once; kube-scheduler puts the pod back in
        // its queue and binds it again later, and so does this stand-in.
        for (int retry = 0; retry < 2000 && !s.ok() && s.code() == StatusCode::kUnavailable; ++retry) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          s = binder.Bind("ml", name, uid, "node-a", assignments[name]);
        }
        if (!s.ok()) {
          bind_errors++;
          ADD_FAILURE() << name << ": " << s.ToString();
        }
      }
    });
  for (auto& t : binders) t.join();
  binds_done = true;
  for (auto& t : kubelets) t.join();

  EXPECT_EQ(bind_errors.load(), 0);
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(misattributed.load(), 0);
  EXPECT_EQ(got.size(), want.size());
  for (const auto& [pc, cards] : want) {
    auto it = got.find(pc);
    ASSERT_NE(it, got.end()) << pc.first << "/" << pc.second << " never got its slices";
    EXPECT_EQ(it->second, cards) << pc.first << "/" << pc.second;
  }
  // Every assignment ends ALLOCATED with the kubelet's device IDs recorded per container.
  for (const auto& p : k.server->List("pods")) {
    auto a = kube::AssignmentOf(p);
    ASSERT_TRUE(a.ok() && a->has_value()) << kube::PodKey(p);
    EXPECT_EQ((*a)->phase(), v1::ASSIGNMENT_PHASE_ALLOCATED) << kube::PodKey(p);
    for (const auto& c : (*a)->containers()) EXPECT_EQ(c.device_ids_size(), c.slices_size()) << kube::PodKey(p);
  }
  EXPECT_EQ(binder.Holder("node-a"), "");
  plugin.Stop();
  devices.Shutdown();
}

TEST(KubeHandoff, AmbiguousOrMissingPodsAreRefusedWithReasons) {
  KubeFixture k;
  testsupport::TempDir sockets("tsdp");
  DeviceState devices;
  devices.Set(testsupport::FakeH100s(2));
  KubeAssignmentStore store(k.client.get(), "node-a");
  HandoffHandler handler(&store);
  PluginOptions o;
  o.socket_dir = sockets.path();
  PluginServer plugin(o, &devices, &handler);
  ASSERT_TRUE(plugin.Start().ok());
  auto stub = v1beta1::DevicePlugin::NewStub(
      grpc::CreateChannel("unix://" + plugin.socket_path(), grpc::InsecureChannelCredentials()));
  auto allocate = [&](int n) {
    grpc::ClientContext ctx;
    v1beta1::AllocateRequest req;
    auto* cr = req.add_container_requests();
    for (int i = 0; i < n; ++i) cr->add_devices_ids("GPU-" + std::to_string(i) + "::0");
    v1beta1::AllocateResponse resp;
    return stub->Allocate(&ctx, req, &resp);
  };
  grpc::Status none = allocate(1);
  EXPECT_EQ(none.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(none.error_message().find("no pod on this node is waiting"), std::string::npos) << none.error_message();

  for (const char* name : {"x", "y"}) {
    // Each assignment names its own pod's UID and node (the store skips any other record).
    json pod = k.server->Upsert("pods", Pod(name));
    v1::PodAssignment a;
    a.set_phase(v1::ASSIGNMENT_PHASE_ALLOCATING);
    a.set_node_name("node-a");
    a.set_pod_uid(pod["metadata"]["uid"].get<std::string>());
    auto* s = a.add_containers();
    s->set_name("c");
    s->add_slices()->set_card_uuid("GPU-0");
    pod["spec"]["nodeName"] = "node-a";
    pod["metadata"]["annotations"][std::string(codec::kAssignmentAnnotation)] = codec::EncodeAssignment(a);
    k.server->Upsert("pods", pod);
  }
  grpc::Status two = allocate(1);
  EXPECT_EQ(two.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(two.error_message().find("refusing to guess"), std::string::npos) << two.error_message();
  EXPECT_NE(two.error_message().find("ml/x"), std::string::npos);
  plugin.Stop();
  devices.Shutdown();
}

// The pod's class and compute mode, read from the pod (not the assignment) as the scheduler reads
// the class: the label, else the owner's kind; a label with another value is unspecified; only
// the exact annotation value "work-conserving" counts; metadata of the wrong types reads as absent.
TEST(KubeHandoff, ThePodsClassAndComputeModeAreReadFromThePod) {
  auto traits = [](const json& meta) {
    PendingPod p;
    p.workload_class = "stale";
    p.work_conserving = true;
    ReadComputeTraits({{"metadata", meta}}, &p);
    return std::make_pair(p.workload_class, p.work_conserving);
  };
  using R = std::pair<std::string, bool>;
  EXPECT_EQ(traits({{"labels", {{"tideslice.io/workload", "inference"}}}}), R("inference", false));
  EXPECT_EQ(traits({{"labels", {{"tideslice.io/workload", "training"}}},
                    {"annotations", {{"tideslice.io/compute-mode", "work-conserving"}}}}),
            R("training", true));
  EXPECT_EQ(traits({{"labels", {{"tideslice.io/workload", "batch"}}},
                    {"ownerReferences", {{{"kind", "Deployment"}, {"name", "d"}}}}}),
            R("", false))
      << "a label that says something else is not overridden by the owner";
  EXPECT_EQ(traits({{"ownerReferences", {{{"kind", "ConfigMap"}}, {{"kind", "Job"}, {"name", "j"}}}}}), R("training", false));
  EXPECT_EQ(traits({{"ownerReferences", {{{"kind", "ReplicaSet"}}}}}), R("inference", false));
  EXPECT_EQ(traits({{"annotations", {{"tideslice.io/compute-mode", "capped"}}}}), R("", false));
  EXPECT_EQ(traits({{"annotations", {{"tideslice.io/compute-mode", "Work-Conserving"}}}}), R("", false));
  // Wrong types anywhere: nothing throws, nothing is read.
  EXPECT_EQ(traits({{"labels", {{"tideslice.io/workload", 7}}}, {"annotations", {{"tideslice.io/compute-mode", true}}}}),
            R("", false));
  EXPECT_EQ(traits({{"labels", "x"}, {"annotations", json::array()}, {"ownerReferences", {1, "x", {{"kind", 3}}}}}),
            R("", false));
  PendingPod p;
  ReadComputeTraits(json::array(), &p);
  ReadComputeTraits({{"metadata", nullptr}}, &p);
  EXPECT_EQ(p.workload_class, "");

  // Through the store: the pending pod carries them.
  KubeFixture k;
  json pod = Pod("infer");
  pod["metadata"]["labels"] = {{"tideslice.io/workload", "inference"}};
  pod["metadata"]["annotations"] = {{"tideslice.io/compute-mode", "work-conserving"}};
  pod = k.server->Upsert("pods", pod);
  v1::PodAssignment a;
  a.set_phase(v1::ASSIGNMENT_PHASE_ALLOCATING);
  a.set_node_name("node-a");
  a.set_pod_uid(pod["metadata"]["uid"].get<std::string>());
  auto* c = a.add_containers();
  c->set_name("c");
  c->add_slices()->set_card_uuid("GPU-0");
  pod["spec"]["nodeName"] = "node-a";
  pod["metadata"]["annotations"][std::string(codec::kAssignmentAnnotation)] = codec::EncodeAssignment(a);
  k.server->Upsert("pods", pod);
  KubeAssignmentStore store(k.client.get(), "node-a");
  auto pending = store.PendingOnNode();
  ASSERT_TRUE(pending.ok()) << pending.status().ToString();
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ((*pending)[0].workload_class, "inference");
  EXPECT_TRUE((*pending)[0].work_conserving);
}

TEST(InventoryPublisherTest, AnnotationLabelsHeartbeatAndStaleLabelRemoval) {
  KubeFixture k;
  const auto& catalog = catalog::Catalog::Builtin();
  InventoryPublisher pub(k.client.get(), "node-a", "mock", catalog, std::chrono::seconds(3600));
  auto cards = testsupport::FakeH100s(2);
  ASSERT_TRUE(pub.Update(cards).ok());
  json node = *k.server->Get("nodes", "", "node-a");
  auto inv = kube::InventoryOf(node);
  ASSERT_TRUE(inv.ok() && inv->has_value()) << inv.status().ToString();
  EXPECT_EQ((*inv)->cards_size(), 2);
  EXPECT_EQ((*inv)->node_name(), "node-a");
  EXPECT_GT((*inv)->heartbeat().seconds(), 0);
  EXPECT_EQ(node["metadata"]["labels"]["tideslice.io/model.H100-80G"], "2");
  EXPECT_EQ(node["metadata"]["labels"]["tideslice.io/vendor.nvidia"], "2");

  ASSERT_TRUE(pub.Update(cards).ok());  // nothing changed, heartbeat not due: no write
  EXPECT_EQ(pub.publishes(), 1);
  cards[1].healthy = false;
  ASSERT_TRUE(pub.Update(cards).ok());  // health changed: published at once
  EXPECT_EQ(pub.publishes(), 2);
  inv = kube::InventoryOf(*k.server->Get("nodes", "", "node-a"));
  EXPECT_EQ((*inv)->cards(1).health(), v1::HEALTH_UNHEALTHY);

  std::vector<DeviceInfo> ascend(1);
  ascend[0].uuid = "npu-0";
  ascend[0].vendor = "huawei";
  ascend[0].model = "Ascend910B3";
  ascend[0].memory_mib = 65536;
  ASSERT_TRUE(pub.Update(ascend).ok());
  node = *k.server->Get("nodes", "", "node-a");
  EXPECT_FALSE(node["metadata"]["labels"].contains("tideslice.io/model.H100-80G"));
  EXPECT_EQ(node["metadata"]["labels"]["tideslice.io/model.Ascend910B3"], "1");

  InventoryPublisher fast(k.client.get(), "node-a", "mock", catalog, std::chrono::seconds(0));
  ASSERT_TRUE(fast.Update(ascend).ok());
  ASSERT_TRUE(fast.Update(ascend).ok());  // heartbeat due every call
  EXPECT_EQ(fast.publishes(), 2);

  InventoryPublisher missing(k.client.get(), "no-such-node", "mock", catalog);
  Status s = missing.Update(ascend);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("no-such-node"), std::string::npos);
}

}  // namespace
}  // namespace tideslice::deviceplugin
