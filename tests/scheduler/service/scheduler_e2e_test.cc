// End to end on loopback: the scheduler (SchedulerApp, as tideslice-scheduler runs it) and two
// node agents (mock cards, real gRPC servers on unix sockets) against the test API server. A
// small stand-in for kube-scheduler calls the extender over HTTP (filter, prioritize, bind) and
// "kubelets" call Allocate for whatever is bound to their node. Pods go from pending to
// ALLOCATED with the right slices, under concurrency, across a scheduler restart and a leader
// failover, and the scheduler's accounting always equals what the API server holds.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "common/codec/annotations.h"
#include "common/kube/objects.h"
#include "device-plugin/kube/inventory_publisher.h"
#include "device-plugin/kube/kube_assignment_store.h"
#include "scheduler/service/app.h"
#include "common/log/log.h"
#include "scheduler/tidal/pool.h"
#include "tests/support/admission.h"
#include "tests/support/fake_cards.h"
#include "tests/support/kube_env.h"
#include "tests/support/test_apiserver.h"
#include "tests/support/test_support.h"
#include "tests/support/tls.h"

namespace tideslice::service {
namespace {

using testsupport::WaitFor;

using kube::json;
using testsupport::TestApiServer;

// One node: mock cards, the agent's gRPC server, its Kubernetes store and inventory, and a
// kubelet that admits what is bound here.
class Node {
 public:
  Node(kube::KubeClient* client, TestApiServer* server, const std::string& name)
      : name_(name), server_(server), store_(client, name), handler_(&store_) {
    server->Upsert("nodes", {{"metadata", {{"name", name}, {"labels", {{"pool", name == "gpu-a" ? "day-pool" : "none"}}}}}});
    devices_.Set(testsupport::FakeH100s(4));
    deviceplugin::PluginOptions o;
    o.socket_dir = dir_.path();
    o.replicas_per_card = 16;
    plugin_ = std::make_unique<deviceplugin::PluginServer>(o, &devices_, &handler_);
    EXPECT_TRUE(plugin_->Start().ok());
    publisher_ = std::make_unique<deviceplugin::InventoryPublisher>(client, name, "mock", catalog::Catalog::Builtin());
    EXPECT_TRUE(publisher_->Update(testsupport::FakeH100s(4)).ok());
    kubelet_ = std::thread([this] { Kubelet(); });
  }
  ~Node() {
    stop_ = true;
    kubelet_.join();
    plugin_->Stop();
    devices_.Shutdown();
  }
  void Heartbeat() { (void)publisher_->Update(testsupport::FakeH100s(4), /*force=*/true); }
  std::map<std::pair<std::string, std::string>, std::string> got() {
    std::lock_guard<std::mutex> lock(mu_);
    return got_;
  }
  int failures() const { return failures_.load(); }

 private:
  void Kubelet() {
    auto stub = v1beta1::DevicePlugin::NewStub(
        grpc::CreateChannel("unix://" + plugin_->socket_path(), grpc::InsecureChannelCredentials()));
    while (!stop_) {
      std::optional<json> pod;
      for (const auto& p : server_->List("pods"))
        if (kube::NodeNameOf(p) == name_ && !admitted_.count(kube::PodKey(p))) {
          pod = p;
          break;
        }
      if (!pod) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        continue;
      }
      admitted_.insert(kube::PodKey(*pod));
      auto a = kube::AssignmentOf(*pod);
      if (!a.ok() || !a->has_value()) continue;  // not a TideSlice pod
      for (bool init : {true, false})
        for (const auto& c : (*a)->containers()) {
          if (c.init_container() != init || c.slices_size() == 0) continue;
          grpc::ClientContext ctx;
          v1beta1::AllocateRequest req;
          auto* cr = req.add_container_requests();
          for (const auto& s : c.slices()) cr->add_devices_ids(s.card_uuid() + "::" + std::to_string(admitted_.size() % 16));
          v1beta1::AllocateResponse resp;
          grpc::Status st = stub->Allocate(&ctx, req, &resp);
          std::lock_guard<std::mutex> lock(mu_);
          if (!st.ok()) {
            failures_++;
            ADD_FAILURE() << name_ << " " << kube::PodKey(*pod) << "/" << c.name() << ": " << st.error_message();
            continue;
          }
          got_[{kube::PodKey(*pod), c.name()}] = resp.container_responses(0).envs().at("NVIDIA_VISIBLE_DEVICES");
        }
    }
  }
  std::string name_;
  TestApiServer* server_;
  testsupport::TempDir dir_{"tse2e"};
  deviceplugin::DeviceState devices_;
  deviceplugin::KubeAssignmentStore store_;
  deviceplugin::HandoffHandler handler_;
  std::unique_ptr<deviceplugin::PluginServer> plugin_;
  std::unique_ptr<deviceplugin::InventoryPublisher> publisher_;
  std::set<std::string> admitted_;
  std::mutex mu_;
  std::map<std::pair<std::string, std::string>, std::string> got_;
  std::atomic<int> failures_{0};
  std::atomic<bool> stop_{false};
  std::thread kubelet_;
};

// What kube-scheduler does with an extender that is filter + prioritize + bind.
struct KubeSchedulerStandIn {
  int port;
  std::vector<std::string> nodes;
  std::string Post(const std::string& verb, const json& body) {
    auto [status, text] = testsupport::HttpRequest(port, "POST", "/tideslice/" + verb, body.dump());
    EXPECT_EQ(status, 200) << verb << ": " << text;
    return text;
  }
  // Returns the node bound to, or "" with `why` set.
  std::string Schedule(const json& pod, std::string* why) {
    json filter = json::parse(Post("filter", {{"Pod", pod}, {"NodeNames", nodes}}));
    if (!filter["Error"].is_null() && !filter["Error"].get<std::string>().empty()) {
      *why = filter["Error"];
      return "";
    }
    std::vector<std::string> passed = filter["NodeNames"];
    if (passed.empty()) {
      *why = filter.dump();
      return "";
    }
    json scores = json::parse(Post("prioritize", {{"Pod", pod}, {"NodeNames", passed}}));
    std::string best = passed.front();
    int64_t best_score = -1;
    for (const auto& s : scores)
      if (s["Score"].get<int64_t>() > best_score && std::count(passed.begin(), passed.end(), s["Host"])) {
        best_score = s["Score"];
        best = s["Host"];
      }
    json bind = json::parse(Post("bind", {{"PodName", pod["metadata"]["name"]},
                                          {"PodNamespace", pod["metadata"]["namespace"]},
                                          {"PodUID", pod["metadata"]["uid"]},
                                          {"Node", best}}));
    if (!bind["Error"].is_null() && !bind["Error"].get<std::string>().empty()) {
      *why = bind["Error"];
      return "";
    }
    return best;
  }
};

json Pod(const std::string& name, int slices, const std::string& memory, int cores, int containers = 1) {
  json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", name}, {"namespace", "ml"}}},
              {"spec", {{"schedulerName", "tideslice-scheduler"}, {"containers", json::array()}}},
              {"status", {{"phase", "Pending"}}}};
  for (int c = 0; c < containers; ++c)
    pod["spec"]["containers"].push_back(
        {{"name", "c" + std::to_string(c)},
         {"image", "vllm"},
         {"resources",
          {{"limits", {{"tideslice.io/vnpu", std::to_string(slices)},
                       {"tideslice.io/vnpu-memory", memory},
                       {"tideslice.io/vnpu-cores", std::to_string(cores)}}}}}});
  return pod;
}

class SchedulerE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    nodes_.push_back(std::make_unique<Node>(client_, server_, "gpu-a"));
    nodes_.push_back(std::make_unique<Node>(client_, server_, "gpu-b"));
  }
  void TearDown() override {
    apps_.clear();
    nodes_.clear();
  }
  AppOptions Options(const std::string& identity) {
    AppOptions o;
    int port = testsupport::FreeLoopbackPort();
    ports_[identity] = port;
    o.extender_address = "http://127.0.0.1:" + std::to_string(port) + "/tideslice";
    health_ports_[identity] = testsupport::FreeLoopbackPort();
    o.health_address = "http://127.0.0.1:" + std::to_string(health_ports_[identity]);
    o.leader.identity = identity;
    o.leader.lease_namespace = "tideslice-system";
    o.leader.lease_duration = std::chrono::milliseconds(2000);
    o.leader.renew_deadline = std::chrono::milliseconds(1500);
    o.leader.retry_period = std::chrono::milliseconds(200);
    o.refresh_period = std::chrono::milliseconds(100);
    o.binder.max_wait = std::chrono::seconds(30);
    return o;
  }
  SchedulerApp* StartApp(const std::string& identity, bool leader_elect = false) {
    AppOptions o = Options(identity);
    o.leader_elect = leader_elect;
    auto app = SchedulerApp::Start(client_, catalog::Catalog::Builtin(), o);
    EXPECT_TRUE(app.ok()) << app.status().ToString();
    apps_[identity] = std::move(*app);
    SchedulerApp* a = apps_[identity].get();
    EXPECT_TRUE(WaitFor([&] { return a->ready(); }));
    return a;
  }
  KubeSchedulerStandIn StandIn(const std::string& identity) { return {ports_[identity], {"gpu-a", "gpu-b"}}; }
  json Create(const json& pod) { return server_->Upsert("pods", pod); }

  // Memory per (node, card) as the API server's assignments say, and as the cache accounts it.
  std::map<std::string, int64_t> ApiAccounting() {
    std::map<std::string, int64_t> out;
    for (const auto& p : server_->List("pods")) {
      auto a = kube::AssignmentOf(p);
      if (!a.ok() || !a->has_value()) continue;
      if ((*a)->phase() != v1::ASSIGNMENT_PHASE_ALLOCATING && (*a)->phase() != v1::ASSIGNMENT_PHASE_ALLOCATED) continue;
      for (const auto& c : (*a)->containers())
        for (const auto& s : c.slices()) out[kube::NodeNameOf(p) + "/" + s.card_uuid()] += s.memory_mib();
    }
    return out;
  }
  static std::map<std::string, int64_t> CacheAccounting(SchedulerApp* app) {
    std::map<std::string, int64_t> out;
    auto snap = app->cache().Snapshot();
    for (const auto& n : snap->nodes())
      for (const auto& c : n.cards)
        if (c.usage.used_memory_mib > 0) out[n.name + "/" + c.uuid] = c.usage.used_memory_mib;
    return out;
  }

  testsupport::KubeEnv env_;
  TestApiServer* server_ = env_.server.get();
  kube::KubeClient* client_ = env_.client.get();
  std::vector<std::unique_ptr<Node>> nodes_;
  std::map<std::string, std::unique_ptr<SchedulerApp>> apps_;
  std::map<std::string, int> ports_, health_ports_;
};

TEST_F(SchedulerE2E, PendingPodsEndAllocatedWithTheirSlicesUnderConcurrency) {
  SchedulerApp* app = StartApp("solo");
  EXPECT_EQ(testsupport::HttpRequest(health_ports_["solo"], "GET", "/readyz").first, 200);
  EXPECT_EQ(testsupport::HttpRequest(health_ports_["solo"], "GET", "/healthz").first, 200);
  ASSERT_TRUE(WaitFor([&] { return app->cache().stats().nodes == 2; }));
  // 8 cards x 80 GiB. 14 pods: one-slice 20 GiB pods, two-slice pods, a two-container pod.
  std::vector<json> pods;
  for (int i = 0; i < 10; ++i) pods.push_back(Create(Pod("one-" + std::to_string(i), 1, "20Gi", 25)));
  for (int i = 0; i < 3; ++i) pods.push_back(Create(Pod("two-" + std::to_string(i), 2, "30Gi", 40)));
  pods.push_back(Create(Pod("multi", 1, "10Gi", 10, 2)));
  ASSERT_TRUE(WaitFor([&] { return app->cache().stats().pending_pods == pods.size(); }));
  KubeSchedulerStandIn kube_scheduler = StandIn("solo");
  std::atomic<size_t> next{0};
  std::atomic<int> unscheduled{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w)
    workers.emplace_back([&] {
      for (size_t i; (i = next++) < pods.size();) {
        // Like kube-scheduler, a pod whose bind lost a race with another (the node filled up
        // between filter and bind) goes back to the queue and is tried again.
        std::string why;
        bool bound = false;
        for (int attempt = 0; attempt < 5 && !bound; ++attempt) {
          if (attempt) std::this_thread::sleep_for(std::chrono::milliseconds(50));
          bound = !kube_scheduler.Schedule(pods[i], &why).empty();
        }
        if (!bound) {
          unscheduled++;
          ADD_FAILURE() << pods[i]["metadata"]["name"] << ": " << why;
        }
      }
    });
  for (auto& t : workers) t.join();
  EXPECT_EQ(unscheduled.load(), 0);
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& p : server_->List("pods")) {
      auto a = kube::AssignmentOf(p);
      if (!a.ok() || !a->has_value() || (*a)->phase() != v1::ASSIGNMENT_PHASE_ALLOCATED) return false;
    }
    return true;
  })) << "not every pod reached ALLOCATED";
  // Every container got exactly the cards of its assignment. (A kubelet records the answer after
  // Allocate returns, which is after the agent acknowledged: wait for the last one.)
  std::map<std::pair<std::string, std::string>, std::string> got;
  ASSERT_TRUE(WaitFor([&] {
    got.clear();
    for (auto& n : nodes_)
      for (auto& [k, v] : n->got()) got[k] = v;
    return got.size() == 15;
  })) << got.size() << " of 15 containers recorded";
  int containers = 0;
  for (const auto& p : server_->List("pods")) {
    auto a = kube::AssignmentOf(p);
    for (const auto& c : (*a)->containers()) {
      std::vector<std::pair<int, std::string>> cards;
      for (const auto& s : c.slices()) cards.push_back({s.card_index(), s.card_uuid()});
      std::sort(cards.begin(), cards.end());
      std::string want;
      for (const auto& [i, u] : cards) want += (want.empty() ? "" : ",") + u;
      EXPECT_EQ(got[std::make_pair(kube::PodKey(p), c.name())], want) << kube::PodKey(p) << "/" << c.name();
      ++containers;
    }
  }
  EXPECT_EQ(containers, 15);
  // No card is over-committed, and the scheduler's books equal the API server's.
  for (const auto& [card, mib] : ApiAccounting()) EXPECT_LE(mib, 81920) << card;
  EXPECT_TRUE(WaitFor([&] { return CacheAccounting(app) == ApiAccounting(); }));
}

// "No log line during a two-minute API outage; /readyz ignores API reachability": an outage that
// outlasts api_unreachable_after turns /readyz to 503 with the API's error, logged once per
// reflector when it starts, not once per retry.
TEST_F(SchedulerE2E, ReadinessFollowsTheApiServerAndTheOutageIsLoggedOnce) {
  struct Lines {
    std::mutex mu;
    std::vector<std::string> v;
  } lines;
  log::SetSink([](const std::string& line, void* user) {
    auto* l = static_cast<Lines*>(user);
    std::lock_guard<std::mutex> lock(l->mu);
    l->v.push_back(line);
  }, &lines);
  AppOptions o = Options("solo");
  o.leader_elect = false;
  o.api_unreachable_after = std::chrono::milliseconds(300);
  auto app = SchedulerApp::Start(client_, catalog::Catalog::Builtin(), o);
  ASSERT_TRUE(app.ok()) << app.status().ToString();
  ASSERT_TRUE(WaitFor([&] { return (*app)->ready(); }));
  const int port = health_ports_["solo"];
  EXPECT_EQ(testsupport::HttpRequest(port, "GET", "/readyz").first, 200);
  EXPECT_EQ(testsupport::HttpRequest(port, "GET", "/livez").first, 200);
  // The API answers every list and watch with 503 for a while; open watches are cut.
  server_->FailNext("GET", "/api/v1/pods", 503, 1000000, "ServiceUnavailable");
  server_->FailNext("GET", "/api/v1/nodes", 503, 1000000, "ServiceUnavailable");
  server_->CloseWatches();
  EXPECT_TRUE(WaitFor([&] { return testsupport::HttpRequest(port, "GET", "/readyz").first == 503; }, 10000));
  auto reply = testsupport::HttpRequest(port, "GET", "/readyz");
  EXPECT_NE(reply.second.find("Kubernetes API has failed"), std::string::npos) << reply.second;
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // many retries, one line each
  (*app)->Stop();
  log::SetSink(nullptr, nullptr);
  int unreachable = 0;
  {
    std::lock_guard<std::mutex> lock(lines.mu);
    for (const auto& l : lines.v) unreachable += l.find("\"api.unreachable\"") != std::string::npos;
  }
  EXPECT_GE(unreachable, 1);
  EXPECT_LE(unreachable, 2) << "one line per reflector when the outage starts, not one per retry";
}

TEST_F(SchedulerE2E, UnfitAndInvalidPodsAreExplained) {
  StartApp("solo");
  KubeSchedulerStandIn ks = StandIn("solo");
  json too_big = Create(Pod("huge", 1, "200Gi", 10));
  json bad = Create(Pod("bad", 1, "10Gi", 150));
  json r = json::parse(ks.Post("filter", {{"Pod", too_big}, {"NodeNames", ks.nodes}}));
  EXPECT_TRUE(r["NodeNames"].empty());
  EXPECT_EQ(r["FailedAndUnresolvableNodes"].size() + r["FailedNodes"].size(), 2u) << r.dump();
  r = json::parse(ks.Post("filter", {{"Pod", bad}, {"NodeNames", ks.nodes}}));
  std::string why = r["FailedAndUnresolvableNodes"]["gpu-a"];
  EXPECT_NE(why.find("tideslice.io/vnpu-cores"), std::string::npos) << why;
  json bind = json::parse(ks.Post("bind", {{"PodName", "huge"}, {"PodNamespace", "ml"}, {"PodUID", too_big["metadata"]["uid"]}, {"Node", "gpu-a"}}));
  EXPECT_NE(bind["Error"].get<std::string>().find("largest allowed card has 81920 MiB"), std::string::npos) << bind.dump();
  EXPECT_FALSE(server_->Get("pods", "ml", "huge")->at("spec").contains("nodeName"));
  // A bind to a node that filled up after filter: refused with the reason, nothing written.
  for (int i = 0; i < 4; ++i) {
    json p = Create(Pod("fill-" + std::to_string(i), 1, "70Gi", 50));
    json b = json::parse(ks.Post("bind", {{"PodName", p["metadata"]["name"]}, {"PodNamespace", "ml"},
                                          {"PodUID", p["metadata"]["uid"]}, {"Node", "gpu-a"}}));
    ASSERT_TRUE(b["Error"].get<std::string>().empty()) << b.dump();
  }
  json late = Create(Pod("late", 1, "70Gi", 50));
  bind = json::parse(ks.Post("bind", {{"PodName", "late"}, {"PodNamespace", "ml"}, {"PodUID", late["metadata"]["uid"]}, {"Node", "gpu-a"}}));
  EXPECT_NE(bind["Error"].get<std::string>().find("no longer fits on gpu-a"), std::string::npos) << bind.dump();
  EXPECT_FALSE(server_->Get("pods", "ml", "late")->at("spec").contains("nodeName"));
}

TEST_F(SchedulerE2E, StaleNodeLeavesPlacementWithAReason) {
  AppOptions o = Options("solo");
  o.leader_elect = false;
  o.cache.stale_after = std::chrono::seconds(1);
  auto app = SchedulerApp::Start(client_, catalog::Catalog::Builtin(), o);
  ASSERT_TRUE(app.ok());
  ASSERT_TRUE(WaitFor([&] { return (*app)->ready(); }));
  KubeSchedulerStandIn ks{ports_["solo"], {"gpu-a", "gpu-b"}};
  json pod = Create(Pod("p", 1, "10Gi", 10));
  ASSERT_TRUE(WaitFor([&] {
    json r = json::parse(ks.Post("filter", {{"Pod", pod}, {"NodeNames", ks.nodes}}));
    return r["NodeNames"].empty() && r.dump().find("inventory is stale") != std::string::npos;
  }, 5000)) << "nodes whose heartbeat stopped must leave placement";
  nodes_[0]->Heartbeat();
  ASSERT_TRUE(WaitFor([&] {
    json r = json::parse(ks.Post("filter", {{"Pod", pod}, {"NodeNames", ks.nodes}}));
    return r["NodeNames"] == json::array({"gpu-a"});
  }, 5000));
  (*app)->Stop();
}

TEST_F(SchedulerE2E, RestartInTheMiddleLosesAndDoubleCountsNothing) {
  std::vector<json> pods;
  for (int i = 0; i < 12; ++i) pods.push_back(Create(Pod("p" + std::to_string(i), 1, "30Gi", 30)));
  SchedulerApp* first = StartApp("first");
  ASSERT_TRUE(WaitFor([&] { return first->cache().stats().pending_pods == 12; }));
  KubeSchedulerStandIn ks = StandIn("first");
  std::string why;
  for (int i = 0; i < 6; ++i) ASSERT_FALSE(ks.Schedule(pods[i], &why).empty()) << why;
  apps_.erase("first");  // the scheduler goes away with binds just done (some still ALLOCATING)

  SchedulerApp* second = StartApp("second");
  EXPECT_TRUE(WaitFor([&] { return CacheAccounting(second) == ApiAccounting(); }))
      << "a restarted scheduler must rebuild exactly the slices the API server records";
  ks = StandIn("second");
  int placed = 6;
  for (int i = 6; i < 12; ++i)
    if (!ks.Schedule(pods[i], &why).empty()) ++placed;
  // 8 cards x 80 GiB hold two 30 GiB slices each: 16 fit, so all 12 must be placed.
  EXPECT_EQ(placed, 12) << why;
  for (const auto& [card, mib] : ApiAccounting()) EXPECT_LE(mib, 81920) << card;
  EXPECT_TRUE(WaitFor([&] { return CacheAccounting(second) == ApiAccounting(); }));
  for (auto& n : nodes_) EXPECT_EQ(n->failures(), 0);
}

TEST_F(SchedulerE2E, OnlyTheLeaderBindsAndAStandbyTakesOver) {
  SchedulerApp* a = StartApp("replica-a", true);
  ASSERT_TRUE(WaitFor([&] { return a->leading(); }, 5000));
  SchedulerApp* b = StartApp("replica-b", true);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_FALSE(b->leading());
  json p1 = Create(Pod("p1", 1, "10Gi", 10));
  json p2 = Create(Pod("p2", 1, "10Gi", 10));
  std::string why;
  ASSERT_TRUE(WaitFor([&] { return b->cache().stats().pending_pods == 2; }));  // the standby's cache is warm
  EXPECT_TRUE(StandIn("replica-b").Schedule(p1, &why).empty());
  EXPECT_NE(why.find("not the leader"), std::string::npos) << why;
  EXPECT_FALSE(StandIn("replica-a").Schedule(p1, &why).empty()) << why;

  apps_.erase("replica-a");  // the leader stops (and releases the lease)
  ASSERT_TRUE(WaitFor([&] { return b->leading(); }, 5000)) << "the standby must take over";
  EXPECT_FALSE(StandIn("replica-b").Schedule(p2, &why).empty()) << why;
  json lease = *server_->Get("leases", "tideslice-system", "tideslice-scheduler");
  EXPECT_EQ(lease["spec"]["holderIdentity"], "replica-b");
  EXPECT_EQ(lease["spec"]["leaseTransitions"], 1);
  EXPECT_TRUE(WaitFor([&] { return CacheAccounting(b) == ApiAccounting(); }));
  ASSERT_TRUE(WaitFor([&] {
    auto x = kube::AssignmentOf(*server_->Get("pods", "ml", "p2"));
    return x.ok() && x->has_value() && (*x)->phase() == v1::ASSIGNMENT_PHASE_ALLOCATED;
  }));
}

TEST_F(SchedulerE2E, TidalPoolKeepsTrainingOffItsNodesByDay) {
  v1::Pool pool;
  pool.set_name("day-pool");
  (*pool.mutable_node_selector())["pool"] = "day-pool";
  pool.set_timezone("Asia/Shanghai");
  auto* w = pool.add_day_windows();
  for (const char* d : {"Mon", "Tue", "Wed", "Thu", "Fri"}) w->add_weekdays(d);
  w->set_start("08:00");
  w->set_end("20:00");
  auto spec = tidal::ValidatePool(pool, "pools[0]");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  AppOptions o = Options("solo");
  o.leader_elect = false;
  o.pools = {*spec};
  // Monday 2026-11-23, 10:00 in Shanghai.
  o.now = [] { return std::chrono::system_clock::time_point(std::chrono::seconds(1795399200)); };
  auto app = SchedulerApp::Start(client_, catalog::Catalog::Builtin(), o);
  ASSERT_TRUE(app.ok()) << app.status().ToString();
  ASSERT_TRUE(WaitFor([&] { return (*app)->ready() && (*app)->cache().stats().nodes == 2; }));
  KubeSchedulerStandIn ks{ports_["solo"], {"gpu-a", "gpu-b"}};
  json training = Pod("train", 1, "10Gi", 10);
  training["metadata"]["labels"] = {{"tideslice.io/workload", "training"}};
  training = Create(training);
  json r = json::parse(ks.Post("filter", {{"Pod", training}, {"NodeNames", ks.nodes}}));
  EXPECT_EQ(r["NodeNames"], json::array({"gpu-b"})) << r.dump();
  std::string why = r["FailedNodes"]["gpu-a"];
  EXPECT_NE(why.find("pool day-pool serves inference first in its day tide until Mon 20:00 Asia/Shanghai"), std::string::npos)
      << why;
  json bind = json::parse(ks.Post("bind", {{"PodName", "train"}, {"PodNamespace", "ml"}, {"PodUID", training["metadata"]["uid"]}, {"Node", "gpu-a"}}));
  EXPECT_NE(bind["Error"].get<std::string>().find("serves inference first"), std::string::npos) << bind.dump();
  json inference = Pod("serve", 1, "10Gi", 10);
  inference["metadata"]["labels"] = {{"tideslice.io/workload", "inference"}};
  inference = Create(inference);
  r = json::parse(ks.Post("filter", {{"Pod", inference}, {"NodeNames", ks.nodes}}));
  EXPECT_EQ(r["NodeNames"].size(), 2u) << r.dump();
  (*app)->Stop();
}

TEST_F(SchedulerE2E, DaySwitchNoticesAndEvictsTrainingThenWaitingInferenceGetsItsCards) {
  v1::Pool pool;
  pool.set_name("day-pool");
  (*pool.mutable_node_selector())["pool"] = "day-pool";
  pool.set_timezone("Asia/Shanghai");
  auto* w = pool.add_day_windows();
  w->set_start("08:00");
  w->set_end("20:00");
  pool.set_notice_seconds(120);
  pool.set_grace_seconds(30);
  auto spec = tidal::ValidatePool(pool, "pools[0]");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  AppOptions o = Options("solo");
  o.leader_elect = false;
  o.pools = {*spec};
  o.tidal.period = std::chrono::milliseconds(50);
  // Monday 2026-11-23 07:00 in Shanghai: night, training first.
  static std::atomic<int64_t> clock_s{1795388400};
  clock_s = 1795388400;
  o.now = [] { return std::chrono::system_clock::time_point(std::chrono::seconds(clock_s.load())); };
  auto started = SchedulerApp::Start(client_, catalog::Catalog::Builtin(), o);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  SchedulerApp* app = started->get();
  ASSERT_TRUE(WaitFor([&] { return app->ready() && app->cache().stats().nodes == 2; }));
  KubeSchedulerStandIn pool_node{ports_["solo"], {"gpu-a"}};
  auto whole_card = [&](const std::string& name, const std::string& cls, int priority) {
    json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata", {{"name", name}, {"namespace", "ml"}, {"labels", {{"tideslice.io/workload", cls}}}}},
                {"spec",
                 {{"schedulerName", "tideslice-scheduler"},
                  {"priority", priority},
                  {"containers", {{{"name", "c0"}, {"image", "x"}, {"resources", {{"limits", {{"tideslice.io/vnpu", "1"}}}}}}}}}},
                {"status", {{"phase", "Pending"}}}};
    return Create(pod);
  };
  // By night training fills the pool's four cards.
  for (int i = 0; i < 4; ++i) {
    json t = whole_card("train-" + std::to_string(i), "training", i);
    ASSERT_TRUE(WaitFor([&] { return app->cache().PendingPod("ml/train-" + std::to_string(i)).has_value(); }));
    std::string why;
    ASSERT_EQ(pool_node.Schedule(t, &why), "gpu-a") << why;
  }
  auto phase = [&](const std::string& name) {
    auto p = server_->Get("pods", "ml", name);
    if (!p) return std::string("gone");
    auto a = kube::AssignmentOf(*p);
    return a.ok() && a->has_value() ? v1::AssignmentPhase_Name((*a)->phase()) : std::string("none");
  };
  ASSERT_TRUE(WaitFor([&] {
    for (int i = 0; i < 4; ++i)
      if (phase("train-" + std::to_string(i)) != "ASSIGNMENT_PHASE_ALLOCATED") return false;
    return true;
  }));
  ASSERT_TRUE(WaitFor([&] {
    auto n = server_->Get("nodes", "", "gpu-a");
    return n && n->at("metadata")["labels"].value("tideslice.io/tide", std::string()) == "night";
  }));

  // 08:00: the day begins. Every training pod gets a notice; inference waits for the cards.
  clock_s = 1795392000;
  auto noticed = [&](const std::string& name) {
    auto p = server_->Get("pods", "ml", name);
    return p && p->at("metadata").value("annotations", json::object()).contains("tideslice.io/checkpoint-deadline");
  };
  ASSERT_TRUE(WaitFor([&] {
    for (int i = 0; i < 4; ++i)
      if (!noticed("train-" + std::to_string(i))) return false;
    return true;
  }));
  EXPECT_EQ(server_->Get("pods", "ml", "train-0")->at("metadata")["annotations"]["tideslice.io/checkpoint-deadline"],
            "2026-11-23T00:02:00Z");
  json serve_a = whole_card("serve-a", "inference", 0), serve_b = whole_card("serve-b", "inference", 0);
  ASSERT_TRUE(WaitFor([&] { return app->cache().PendingPod("ml/serve-b").has_value(); }));
  std::string why;
  EXPECT_EQ(pool_node.Schedule(serve_a, &why), "");  // no free card yet
  // train-3 checkpoints early and says so: it goes before the deadline.
  json t3 = *server_->Get("pods", "ml", "train-3");
  t3["metadata"]["annotations"]["tideslice.io/checkpointed-at"] = "2026-11-23T00:00:30Z";
  server_->Upsert("pods", t3);
  clock_s = 1795392000 + 40;
  ASSERT_TRUE(WaitFor([&] { return phase("train-3") == "gone"; }));
  EXPECT_NE(phase("train-0"), "gone");

  // The deadline: the rest are evicted through the Eviction API, and the inference pods bind.
  clock_s = 1795392000 + 121;
  ASSERT_TRUE(WaitFor([&] {
    for (int i = 0; i < 3; ++i)
      if (phase("train-" + std::to_string(i)) != "gone") return false;
    return true;
  }));
  for (json* pod : {&serve_a, &serve_b}) {
    std::string node;
    ASSERT_TRUE(WaitFor([&] { return (node = pool_node.Schedule(*pod, &why)) == "gpu-a"; })) << why;
  }
  ASSERT_TRUE(WaitFor([&] { return phase("serve-a") == "ASSIGNMENT_PHASE_ALLOCATED" && phase("serve-b") == "ASSIGNMENT_PHASE_ALLOCATED"; }));
  EXPECT_EQ(server_->requests("POST pods/eviction"), 4);
  auto* tidal = app->tidal_controller();
  ASSERT_NE(tidal, nullptr);
  EXPECT_EQ(tidal->counters("day-pool").notices, 4u);
  EXPECT_EQ(tidal->counters("day-pool").evictions_acknowledged, 1u);
  EXPECT_EQ(tidal->counters("day-pool").evictions_deadline, 3u);
  EXPECT_EQ(tidal->counters("day-pool").transitions_clock, 1u);
  auto n = server_->Get("nodes", "", "gpu-a");
  EXPECT_EQ(n->at("metadata")["labels"]["tideslice.io/tide"], "day");
  int notices = 0;
  for (const auto& e : server_->List("events")) notices += e.value("reason", std::string()) == "CheckpointNotice";
  EXPECT_EQ(notices, 4);
  // Training asking now is told when the pool opens again.
  json late = whole_card("train-late", "training", 0);
  json r = json::parse(pool_node.Post("filter", {{"Pod", late}, {"NodeNames", pool_node.nodes}}));
  EXPECT_NE(r["FailedNodes"]["gpu-a"].get<std::string>().find("until Mon 20:00 Asia/Shanghai"), std::string::npos) << r.dump();
  app->Stop();
}

TEST_F(SchedulerE2E, AdmissionWebhookOverHttpsMutatesAndValidates) {
  testsupport::TempDir certs("tscert");
  auto tls = testsupport::MakeSelfSignedCert(certs.path());
  AppOptions o = Options("solo");
  o.leader_elect = false;
  int port = testsupport::FreeLoopbackPort();
  o.webhook_address = "https://127.0.0.1:" + std::to_string(port);
  o.tls_cert_file = tls.cert_file;
  o.tls_key_file = tls.key_file;
  auto app = SchedulerApp::Start(client_, catalog::Catalog::Builtin(), o);
  ASSERT_TRUE(app.ok()) << app.status().ToString();
  kube::KubeAccess access;
  access.server = "https://127.0.0.1:" + std::to_string(port);
  access.ca_pem = tls.cert_pem;  // the client verifies the webhook's certificate
  auto https = kube::NewCppRestTransport(access);
  ASSERT_TRUE(https.ok());
  json pod = Pod("w", 1, "10Gi", 10);
  pod["spec"].erase("schedulerName");
  pod["metadata"]["ownerReferences"] = json::array({{{"kind", "Job"}, {"name", "train"}, {"apiVersion", "batch/v1"}, {"uid", "u"}}});
  json review = {{"apiVersion", "admission.k8s.io/v1"},
                 {"kind", "AdmissionReview"},
                 {"request", {{"uid", "req-1"}, {"namespace", "ml"}, {"operation", "CREATE"}, {"object", pod}}}};
  auto reply = (*https)->Send({"POST", "/mutate", review.dump(), "application/json"});
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  ASSERT_EQ(reply->status, 200) << reply->body;
  json answer = json::parse(reply->body);
  EXPECT_EQ(answer["response"]["uid"], "req-1");
  EXPECT_TRUE(answer["response"]["allowed"].get<bool>());
  // Decode the JSON patch and apply it: the pod now names our scheduler and is training.
  json patched = testsupport::ApplyAdmissionPatch(pod, answer);
  EXPECT_EQ(patched["spec"]["schedulerName"], "tideslice-scheduler");
  EXPECT_EQ(patched["metadata"]["labels"]["tideslice.io/workload"], "training");
  // A training pod sees its checkpoint notice as files.
  ASSERT_EQ(patched["spec"]["volumes"].size(), 1u) << patched.dump();
  EXPECT_EQ(patched["spec"]["volumes"][0]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
            "metadata.annotations['tideslice.io/checkpoint-deadline']");
  EXPECT_EQ(patched["spec"]["containers"][0]["volumeMounts"][0]["mountPath"], "/etc/tideslice/notice");
  EXPECT_TRUE(patched["spec"]["containers"][0]["volumeMounts"][0]["readOnly"].get<bool>());

  json bad = Pod("bad", 1, "10Gi", 150);
  review["request"]["object"] = bad;
  reply = (*https)->Send({"POST", "/validate", review.dump(), "application/json"});
  ASSERT_TRUE(reply.ok());
  answer = json::parse(reply->body);
  EXPECT_FALSE(answer["response"]["allowed"].get<bool>());
  EXPECT_NE(answer["response"]["status"]["message"].get<std::string>().find("tideslice.io/vnpu-cores"), std::string::npos);
  review["request"]["namespace"] = "kube-system";  // excluded namespaces pass untouched
  answer = json::parse((*https)->Send({"POST", "/validate", review.dump(), "application/json"})->body);
  EXPECT_TRUE(answer["response"]["allowed"].get<bool>());
  EXPECT_EQ((*https)->Send({"POST", "/mutate", "{}", "application/json"})->status, 400);
  (*app)->Stop();
}

}  // namespace
}  // namespace tideslice::service
