// The split brain a tester produced, reproduced: the leader's connection to the API server hangs
// while it binds; a standby takes over and binds another pod to the same card; then the hung
// connection delivers the old leader's bind, late. Before fencing, the old leader went on
// believing it led (its renew deadline was checked only after a blocked call returned), its bind
// landed, and one card was held whole by two pods. Now the old leader stops acting on its own
// monotonic clock, its calls are bounded by the time left in its lease, and the late bind,
// sealed in the old lease term, is neither adopted by the new leader (it does not fit) nor
// honoured by the node agent (stale term): it ends FAILED with an Event, and the card has one
// holder.
#include <gtest/gtest.h>

#include <fstream>
#include <future>

#include "common/codec/annotations.h"
#include "common/kube/objects.h"
#include "common/trust/assignment_seal.h"
#include "device-plugin/kube/kube_assignment_store.h"
#include "scheduler/service/app.h"
#include "tests/support/hang_proxy.h"
#include "tests/support/inventory_node.h"
#include "tests/support/kube_env.h"

namespace tideslice::service {
namespace {

using kube::json;
using testsupport::WaitFor;

json WholeCardPod(const std::string& name) {
  json c = {{"name", "main"}, {"image", "x"}, {"resources", {{"limits", {{"tideslice.io/vnpu", "1"}}}}}};
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"namespace", "ml"}}},
          {"spec", {{"schedulerName", "tideslice-scheduler"}, {"containers", json::array({c})}}}};
}

class SplitBrainTest : public ::testing::Test {
 protected:
  SplitBrainTest() {
    proxy_ = testsupport::HangProxy::Start(env_.server->url());
    auto access = kube::LoadKubeconfig(env_.server->WriteKubeconfig(env_.dir.path()));
    access->server = proxy_->url();
    client_a_ = std::make_unique<kube::KubeClient>(*kube::NewCppRestTransport(*access));
    signer_ = trust::AssignmentSigner::Generate().value();
  }
  ~SplitBrainTest() override {
    apps_.clear();
    proxy_->Release();
  }
  SchedulerApp* Start(const std::string& identity, kube::KubeClient* client) {
    AppOptions o;
    o.extender_address = "http://127.0.0.1:" + std::to_string(testsupport::FreeLoopbackPort()) + "/tideslice";
    o.health_address = "http://127.0.0.1:" + std::to_string(testsupport::FreeLoopbackPort());
    o.leader.identity = identity;
    o.leader.lease_namespace = "tideslice-system";
    o.leader.lease_duration = std::chrono::milliseconds(2000);
    o.leader.renew_deadline = std::chrono::milliseconds(1000);
    o.leader.retry_period = std::chrono::milliseconds(200);
    o.refresh_period = std::chrono::milliseconds(100);
    o.signer = signer_;
    auto app = SchedulerApp::Start(client, catalog::Catalog::Builtin(), o);
    EXPECT_TRUE(app.ok()) << app.status().ToString();
    SchedulerApp* a = app->get();
    apps_.push_back(std::move(*app));
    EXPECT_TRUE(WaitFor([&] { return a->ready(); }));
    return a;
  }
  static extender::BindingArgs Args(const json& pod, const std::string& node) {
    extender::BindingArgs args;
    args.pod_name = pod["metadata"]["name"];
    args.pod_namespace = pod["metadata"]["namespace"];
    args.pod_uid = pod["metadata"]["uid"];
    args.node = node;
    return args;
  }
  std::optional<v1::PodAssignment> AssignmentOn(const std::string& name) {
    auto pod = env_.server->Get("pods", "ml", name);
    if (!pod) return std::nullopt;
    auto a = kube::AssignmentOf(*pod);
    if (!a.ok() || !a->has_value()) return std::nullopt;
    return **a;
  }

  testsupport::KubeEnv env_{testsupport::FastBookmarks()};
  std::unique_ptr<testsupport::HangProxy> proxy_;
  std::unique_ptr<kube::KubeClient> client_a_;
  std::shared_ptr<const trust::AssignmentSigner> signer_;
  std::vector<std::unique_ptr<SchedulerApp>> apps_;
};

TEST_F(SplitBrainTest, ALateBindFromADeposedLeaderNeverSharesACard) {
  env_.server->Upsert("nodes", testsupport::InventoryNode("n1", 1, std::chrono::system_clock::now()));
  json first = env_.server->Upsert("pods", WholeCardPod("first"));
  json second = env_.server->Upsert("pods", WholeCardPod("second"));

  SchedulerApp* a = Start("a", client_a_.get());
  ASSERT_TRUE(WaitFor([&] { return a->leading(); }, 5000));
  SchedulerApp* b = Start("b", env_.client.get());
  ASSERT_TRUE(WaitFor([&] { return a->cache().PendingPod("ml/first").has_value(); }));

  // The leader's API connection hangs; it binds `first` into the hang.
  proxy_->Hang();
  auto started = std::chrono::steady_clock::now();
  auto old_bind = std::async(std::launch::async, [&] { return a->service().Bind(Args(first, "n1")); });
  ASSERT_EQ(old_bind.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "a bind on a hung connection must be answered within the lease, not after the API's 30 s";
  EXPECT_FALSE(old_bind.get().ok());
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
  ASSERT_TRUE(WaitFor([&] { return proxy_->held_bytes() > 0; }, 2000)) << "the bind must be held by the network";

  // The old leader stops acting by its own clock; the standby takes over and binds `second`.
  EXPECT_TRUE(WaitFor([&] { return !a->leading(); }, 3000)) << "a leader that cannot renew must stop leading";
  ASSERT_TRUE(WaitFor([&] { return b->leading(); }, 10000));
  EXPECT_FALSE(a->leading()) << "two leaders at once";
  ASSERT_TRUE(WaitFor([&] { return b->cache().PendingPod("ml/second").has_value(); }));
  Status s = b->service().Bind(Args(second, "n1"));
  ASSERT_TRUE(s.ok()) << s.ToString();

  // The network delivers the old leader's bind, late: it lands on the API server.
  proxy_->Release();
  ASSERT_TRUE(WaitFor([&] {
    auto p = env_.server->Get("pods", "ml", "first");
    return p && kube::NodeNameOf(*p) == "n1";
  }, 10000)) << "the late bind did not land; the scenario was not reproduced";
  auto late = AssignmentOn("first");
  ASSERT_TRUE(late);
  auto kept = AssignmentOn("second");
  ASSERT_TRUE(kept);
  EXPECT_LT(late->lease_term(), kept->lease_term()) << "each bind carries the term it was made in";

  // The new leader refuses the late one: FAILED, with an Event saying why; the card has one holder.
  EXPECT_TRUE(WaitFor([&] {
    auto l = AssignmentOn("first");
    return l && l->phase() == v1::ASSIGNMENT_PHASE_FAILED;
  }, 10000));
  bool event = false;
  for (const auto& e : env_.server->List("events"))
    event = event || (e.value("reason", "") == "AssignmentConflict" && e["involvedObject"].value("name", "") == "first");
  EXPECT_TRUE(event);
  {
    auto snap = b->cache().Snapshot();
    const auto* node = snap->FindNode("n1");
    ASSERT_NE(node, nullptr);
    ASSERT_EQ(node->pods.size(), 1u);
    EXPECT_TRUE(node->pods.count("ml/second"));
  }

  // The node agent hands the card to `second` only: `first` is failed, and even as ALLOCATING its
  // term would be stale.
  auto key_file = env_.dir.path() + "/ed25519.pub";
  { std::ofstream(key_file) << signer_->PublicKeyPem(); }
  trust::VerifierFile verifier(key_file);
  deviceplugin::AssignmentTrust trust{&verifier, "tideslice-system", "tideslice-scheduler"};
  deviceplugin::KubeAssignmentStore store(env_.client.get(), "n1", trust);
  auto pending = store.PendingOnNode();
  ASSERT_TRUE(pending.ok()) << pending.status().ToString();
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ((*pending)[0].pod_key, "ml/second");

  json stale = *env_.server->Get("pods", "ml", "first");
  v1::PodAssignment resurrected = *late;  // what the late bind wrote, before the new leader failed it
  resurrected.set_phase(v1::ASSIGNMENT_PHASE_ALLOCATING);
  stale["metadata"]["annotations"][std::string(codec::kAssignmentAnnotation)] = codec::EncodeAssignment(resurrected);
  env_.server->Upsert("pods", stale);
  pending = store.PendingOnNode();
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ((*pending)[0].pod_key, "ml/second") << "an assignment of a deposed leader's term is not honoured";
}

TEST_F(SplitBrainTest, ANewLeaderResealsAnAllocatingPodOfTheOldTermThatStillFits) {
  env_.server->Upsert("nodes", testsupport::InventoryNode("n1", 2, std::chrono::system_clock::now()));
  json pod = env_.server->Upsert("pods", WholeCardPod("bound-before-failover"));
  SchedulerApp* a = Start("a", client_a_.get());
  ASSERT_TRUE(WaitFor([&] { return a->leading(); }, 5000));
  ASSERT_TRUE(WaitFor([&] { return a->cache().PendingPod("ml/bound-before-failover").has_value(); }));
  Status s = a->service().Bind(Args(pod, "n1"));
  ASSERT_TRUE(s.ok()) << s.ToString();
  auto before = AssignmentOn("bound-before-failover");
  ASSERT_TRUE(before);
  apps_.clear();  // the leader goes away (releasing its lease) before the agent acknowledged

  SchedulerApp* b = Start("b", env_.client.get());
  ASSERT_TRUE(WaitFor([&] { return b->leading(); }, 10000));
  ASSERT_TRUE(WaitFor([&] {
    auto after = AssignmentOn("bound-before-failover");
    return after && after->lease_term() > before->lease_term() && after->lease_holder() == "b";
  }, 10000)) << "the new leader must re-seal the allocating pod into its term";
  auto after = AssignmentOn("bound-before-failover");
  EXPECT_EQ(after->phase(), v1::ASSIGNMENT_PHASE_ALLOCATING);
  EXPECT_EQ(after->containers(0).slices(0).card_uuid(), before->containers(0).slices(0).card_uuid());
  auto verifier = trust::AssignmentVerifier::FromPem(signer_->PublicKeyPem()).value();
  EXPECT_TRUE(verifier->Verify(*after).ok());
}

// "A forged `allocating` pod blocked binds to its node": a pod created on the node with a
// hand-written ALLOCATING assignment no longer holds the node's gate, is not accounted, and is
// failed by the leader with a ForgedAssignment Event.
TEST_F(SplitBrainTest, AForgedAllocatingPodNeitherBlocksNorHoldsItsNode) {
  env_.server->Upsert("nodes", testsupport::InventoryNode("n1", 1, std::chrono::system_clock::now()));
  json forged = WholeCardPod("forged");
  forged["spec"]["nodeName"] = "n1";
  v1::PodAssignment a;
  a.set_node_name("n1");
  a.set_phase(v1::ASSIGNMENT_PHASE_ALLOCATING);
  auto* slice = a.add_containers();
  slice->set_name("main");
  auto* s = slice->add_slices();
  s->set_card_uuid("n1-GPU-0");
  s->set_whole_card(true);
  s->set_compute_permille(1000);
  forged["metadata"]["annotations"][std::string(codec::kAssignmentAnnotation)] = codec::EncodeAssignment(a);
  forged = env_.server->Upsert("pods", forged);
  a.set_pod_uid(forged["metadata"]["uid"].get<std::string>());  // even naming the right UID: unsigned
  forged["metadata"]["annotations"][std::string(codec::kAssignmentAnnotation)] = codec::EncodeAssignment(a);
  env_.server->Upsert("pods", forged);
  json real = env_.server->Upsert("pods", WholeCardPod("real"));

  SchedulerApp* b = Start("b", env_.client.get());
  ASSERT_TRUE(WaitFor([&] { return b->leading(); }, 5000));
  ASSERT_TRUE(WaitFor([&] { return b->cache().PendingPod("ml/real").has_value(); }));
  EXPECT_EQ(b->binder().Holder("n1"), "") << "an unsigned ALLOCATING record must not hold the node's gate";
  auto started = std::chrono::steady_clock::now();
  Status bound = b->service().Bind(Args(real, "n1"));
  ASSERT_TRUE(bound.ok()) << bound.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5)) << "the forged pod held the node's gate";
  EXPECT_EQ(b->binder().Holder("n1"), "ml/real");
  EXPECT_TRUE(WaitFor([&] {
    auto f = AssignmentOn("forged");
    return f && f->phase() == v1::ASSIGNMENT_PHASE_FAILED;
  }, 5000));
  bool event = false;
  for (const auto& e : env_.server->List("events"))
    event = event || (e.value("reason", "") == "ForgedAssignment" && e["involvedObject"].value("name", "") == "forged");
  EXPECT_TRUE(event);
}

}  // namespace
}  // namespace tideslice::service
