// The binder against the test API server: bind + assignment in one call, the one-allocating-pod
// gate (timeouts, waits, failures), rebuilding the gate after a restart, the caps on binds that
// wait for a busy node (through the extender's HTTP server and its worker pool), and fencing:
// lease term + signature on every assignment, Reseal and Refuse after a change of leader.
#include "scheduler/service/binder.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "common/codec/annotations.h"
#include "common/kube/objects.h"
#include "common/trust/assignment_seal.h"
#include "common/http/server.h"
#include "common/log/log.h"
#include "scheduler/extender/wire.h"
#include "tests/support/kube_env.h"
#include "tests/support/test_support.h"

namespace tideslice::service {
namespace {

using kube::json;

// Fields set by name: BinderOptions grows (caps, fence, signer), and positional aggregates left
// the new fields to -Wmissing-field-initializers.
BinderOptions Opts(std::chrono::milliseconds acknowledge_timeout, std::chrono::milliseconds max_wait) {
  BinderOptions o;
  o.acknowledge_timeout = acknowledge_timeout;
  o.max_wait = max_wait;
  return o;
}

class BinderTest : public ::testing::Test {
 protected:
  testsupport::KubeEnv env_;
  std::unique_ptr<testsupport::TestApiServer>& server_ = env_.server;
  std::unique_ptr<kube::KubeClient>& client_ = env_.client;
  std::string AddPod(const std::string& name) {
    json p = server_->Upsert("pods", {{"metadata", {{"name", name}, {"namespace", "ml"}}}, {"spec", json::object()}});
    return p["metadata"]["uid"];
  }
  static v1::PodAssignment OneSlice() {
    v1::PodAssignment a;
    auto* c = a.add_containers();
    c->set_name("main");
    c->add_slices()->set_card_uuid("GPU-0");
    return a;
  }
  v1::PodAssignment AssignmentIn(const std::string& name) {
    auto a = kube::AssignmentOf(*server_->Get("pods", "ml", name));
    EXPECT_TRUE(a.ok() && a->has_value());
    return a.ok() && a->has_value() ? **a : v1::PodAssignment();
  }
  // What the agent does on acknowledgement.
  void Acknowledge(Binder& b, const std::string& name) {
    json pod = *server_->Get("pods", "ml", name);
    v1::PodAssignment a = AssignmentIn(name);
    a.set_phase(v1::ASSIGNMENT_PHASE_ALLOCATED);
    pod["metadata"]["annotations"][std::string(codec::kAssignmentAnnotation)] = codec::EncodeAssignment(a);
    b.Observe(kube::WatchEventType::kModified, server_->Upsert("pods", pod));
  }
};

TEST_F(BinderTest, BindWritesTheAssignmentAndHoldsTheNodeUntilAcknowledged) {
  Binder b(client_.get(), Opts(std::chrono::seconds(30), std::chrono::seconds(30)));
  std::string uid = AddPod("a");
  AddPod("b");
  ASSERT_TRUE(b.Bind("ml", "a", uid, "n1", OneSlice()).ok());
  json pod = *server_->Get("pods", "ml", "a");
  EXPECT_EQ(pod["spec"]["nodeName"], "n1");
  v1::PodAssignment a = AssignmentIn("a");
  EXPECT_EQ(a.phase(), v1::ASSIGNMENT_PHASE_ALLOCATING);
  EXPECT_EQ(a.node_name(), "n1");
  EXPECT_EQ(a.pod_uid(), uid);
  EXPECT_EQ(b.Holder("n1"), "ml/a");

  std::atomic<bool> b_bound{false};
  std::thread second([&] { b_bound = b.Bind("ml", "b", "", "n1", OneSlice()).ok(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(b_bound.load()) << "the second pod must wait for the first one's acknowledgement";
  EXPECT_FALSE(server_->Get("pods", "ml", "b")->at("spec").contains("nodeName"));
  Acknowledge(b, "a");
  second.join();
  EXPECT_TRUE(b_bound.load());
  EXPECT_EQ(b.Holder("n1"), "ml/b");
  // Other nodes are not held up by n1.
  std::string c_uid = AddPod("c");
  EXPECT_TRUE(b.Bind("ml", "c", c_uid, "n2", OneSlice()).ok());
}

TEST_F(BinderTest, UnacknowledgedPodIsMarkedFailedAfterTheTimeout) {
  Binder b(client_.get(), Opts(std::chrono::milliseconds(200), std::chrono::seconds(10)));
  AddPod("a");
  AddPod("b");
  ASSERT_TRUE(b.Bind("ml", "a", "", "n1", OneSlice()).ok());
  ASSERT_TRUE(b.Bind("ml", "b", "", "n1", OneSlice()).ok());  // waits ~200 ms, then expires a
  v1::PodAssignment a = AssignmentIn("a");
  EXPECT_EQ(a.phase(), v1::ASSIGNMENT_PHASE_FAILED);
  EXPECT_NE(a.message().find("did not acknowledge"), std::string::npos);
  EXPECT_EQ(AssignmentIn("b").phase(), v1::ASSIGNMENT_PHASE_ALLOCATING);
  EXPECT_EQ(b.Holder("n1"), "ml/b");
}

TEST_F(BinderTest, WaitBudgetRunsOutWithAnErrorNamingTheHolder) {
  Binder b(client_.get(), Opts(std::chrono::seconds(60), std::chrono::milliseconds(100)));
  AddPod("a");
  AddPod("b");
  ASSERT_TRUE(b.Bind("ml", "a", "", "n1", OneSlice()).ok());
  Status s = b.Bind("ml", "b", "", "n1", OneSlice());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("ml/a"), std::string::npos) << s.message();
  EXPECT_FALSE(server_->Get("pods", "ml", "b")->at("spec").contains("nodeName"));
}

TEST_F(BinderTest, FailedBindReleasesTheNodeAndDeletionFreesIt) {
  Binder b(client_.get(), Opts(std::chrono::seconds(60), std::chrono::milliseconds(200)));
  std::string uid = AddPod("a");
  Status wrong = b.Bind("ml", "a", "not-" + uid, "n1", OneSlice());
  EXPECT_EQ(wrong.code(), StatusCode::kAborted);
  EXPECT_EQ(b.Holder("n1"), "");
  ASSERT_TRUE(b.Bind("ml", "a", uid, "n1", OneSlice()).ok());
  json gone = *server_->Get("pods", "ml", "a");
  server_->Remove("pods", "ml", "a");
  b.Observe(kube::WatchEventType::kDeleted, gone);
  EXPECT_EQ(b.Holder("n1"), "");
}

TEST_F(BinderTest, RestartedBinderAdoptsTheAllocatingPodFromTheList) {
  // With the UID: only an assignment that names its own pod (UID, node) holds a node's gate.
  std::string uid = AddPod("a");
  AddPod("b");
  {
    Binder first(client_.get(), Opts(std::chrono::seconds(60), std::chrono::seconds(1)));
    ASSERT_TRUE(first.Bind("ml", "a", uid, "n1", OneSlice()).ok());
  }  // the scheduler restarts (or another replica becomes leader)
  Binder second(client_.get(), Opts(std::chrono::seconds(60), std::chrono::milliseconds(100)));
  second.Replace(server_->List("pods"));
  EXPECT_EQ(second.Holder("n1"), "ml/a");
  EXPECT_EQ(second.Bind("ml", "b", "", "n1", OneSlice()).code(), StatusCode::kUnavailable);
  Acknowledge(second, "a");
  EXPECT_TRUE(second.Bind("ml", "b", "", "n1", OneSlice()).ok());
}


// The tester's "binds block each other": every bind runs on the extender's HTTP worker pool (16)
// and could wait max_wait (20 s) for its node, so 40 binds queued behind one busy node held every
// worker and a bind to an idle node waited 39.5 s for one. Past the cap (2 per node) a bind now
// fails at once saying the node is busy, and the idle node's bind finds a worker.
TEST_F(BinderTest, BindsWaitingForABusyNodeAreCappedSoAnIdleNodeBindsAtOnce) {
  // Production wait budget; the holder of n1 is never acknowledged while the test measures.
  Binder b(client_.get(), Opts(std::chrono::minutes(10), std::chrono::seconds(20)));
  ASSERT_TRUE(b.Bind("ml", "holder", AddPod("holder"), "n1", OneSlice()).ok());
  ASSERT_EQ(b.Holder("n1"), "ml/holder");

  std::atomic<int> entered{0};
  const int port = testsupport::FreeLoopbackPort();
  auto http = http::HttpServer::Start(
      "http://127.0.0.1:" + std::to_string(port) + "/sched",
      [&](const std::string& verb, const std::string& body) -> http::HttpReply {
        if (verb != "bind") return {404, ""};
        entered++;
        auto args = extender::ParseBindingArgs(body);
        if (!args.ok()) return {200, extender::EncodeBindingResult(args.status().ToString())};
        Status s = b.Bind(args->pod_namespace, args->pod_name, args->pod_uid, args->node, OneSlice());
        return {200, extender::EncodeBindingResult(s.ok() ? "" : s.ToString())};
      });
  ASSERT_TRUE(http.ok()) << http.status().ToString();
  auto bind_over_http = [&](const std::string& name, const std::string& uid, const std::string& node) {
    json args = {{"PodName", name}, {"PodNamespace", "ml"}, {"PodUID", uid}, {"Node", node}};
    auto [status, body] = testsupport::HttpRequest(port, "POST", "/sched/bind", args.dump());
    json reply = json::parse(body, nullptr, false);
    std::string error = reply.is_object() ? reply.value("Error", std::string("<no Error field>")) : "<not JSON: " + body + ">";
    return std::make_pair(status, error);
  };

  constexpr int kWaiting = 40;
  std::vector<std::string> uids;
  for (int i = 0; i < kWaiting; ++i) uids.push_back(AddPod("w" + std::to_string(i)));
  const std::string idle_uid = AddPod("idle");
  std::vector<std::string> errors(kWaiting);
  std::vector<int> statuses(kWaiting, 0);
  std::atomic<int> finished{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < kWaiting; ++i)
    threads.emplace_back([&, i] {
      auto [status, error] = bind_over_http("w" + std::to_string(i), uids[static_cast<size_t>(i)], "n1");
      statuses[static_cast<size_t>(i)] = status;
      errors[static_cast<size_t>(i)] = error;
      finished++;
    });
  // Every worker of the pool has taken a bind (with the old behaviour all 16 then wait for n1);
  // give the rest a moment to queue behind them.
  ASSERT_TRUE(testsupport::WaitFor([&] { return entered.load() >= 16; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));

  const auto idle_start = std::chrono::steady_clock::now();
  auto [idle_status, idle_error] = bind_over_http("idle", idle_uid, "n2");
  const auto idle_took = std::chrono::steady_clock::now() - idle_start;
  EXPECT_EQ(idle_status, 200);
  EXPECT_EQ(idle_error, "");
  // Milliseconds of work; the old behaviour answered after 20 s at the very least (a worker frees
  // only when a waiting bind gives up), 40 s with 40 waiting binds.
  EXPECT_LT(idle_took, std::chrono::seconds(5))
      << "the idle node's bind took " << std::chrono::duration_cast<std::chrono::milliseconds>(idle_took).count()
      << " ms: it queued behind binds waiting for the busy node";
  EXPECT_EQ(server_->Get("pods", "ml", "idle")->at("spec").value("nodeName", ""), "n2");

  // All but the capped two fail at once, saying the node is busy (kube-scheduler retries them).
  EXPECT_TRUE(testsupport::WaitFor([&] { return finished.load() >= kWaiting - 2; }, 5000))
      << finished.load() << " of " << kWaiting << " binds answered within 5 s of the start";
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(15));
  int busy = 0;
  for (int i = 0; i < kWaiting; ++i) {
    if (errors[static_cast<size_t>(i)].empty()) continue;
    EXPECT_EQ(statuses[static_cast<size_t>(i)], 200);
    EXPECT_NE(errors[static_cast<size_t>(i)].find("node n1 is still handing devices to pod ml/holder"), std::string::npos)
        << errors[static_cast<size_t>(i)];
    EXPECT_NE(errors[static_cast<size_t>(i)].find("other binds already wait"), std::string::npos)
        << errors[static_cast<size_t>(i)];
    EXPECT_FALSE(server_->Get("pods", "ml", "w" + std::to_string(i))->at("spec").contains("nodeName"));
    ++busy;
  }
  EXPECT_EQ(busy, kWaiting - 2) << "past the per-node cap of 2, a bind must not wait";

  // Let the two waiting binds through: acknowledge whoever holds n1 (as the agent would), until
  // every bind has answered.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (finished.load() < kWaiting && std::chrono::steady_clock::now() < give_up) {
    std::string holder = b.Holder("n1");
    if (holder.rfind("ml/", 0) == 0) {
      if (auto pod = server_->Get("pods", "ml", holder.substr(3))) {
        auto a = kube::AssignmentOf(*pod);  // written by the bind just after it took the gate
        if (a.ok() && a->has_value() && (*a)->phase() == v1::ASSIGNMENT_PHASE_ALLOCATING) Acknowledge(b, holder.substr(3));
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& t : threads) t.join();
  (*http)->Stop();
  int bound = 0;
  for (int i = 0; i < kWaiting; ++i) bound += errors[static_cast<size_t>(i)].empty() ? 1 : 0;
  EXPECT_EQ(bound, 2) << "the two binds within the cap wait for the node and then bind";
}

// Fencing: a bind is made in a lease term. Not leading (fence answers nullopt) = refused before
// anything is written, and the node's gate is not taken.
TEST_F(BinderTest, BindOutsideALeaseTermIsRefusedAndWritesNothing) {
  BinderOptions o = Opts(std::chrono::seconds(60), std::chrono::seconds(1));
  std::atomic<int> asked{0};
  o.fence = [&]() -> std::optional<LeaseTerm> {
    asked++;
    return std::nullopt;
  };
  Binder b(client_.get(), o);
  std::string uid = AddPod("a");
  Status s = b.Bind("ml", "a", uid, "n1", OneSlice());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("cannot prove it still leads"), std::string::npos) << s.message();
  EXPECT_EQ(asked.load(), 1);
  json pod = *server_->Get("pods", "ml", "a");
  EXPECT_FALSE(pod["spec"].contains("nodeName"));
  EXPECT_FALSE(pod["metadata"].contains("annotations") &&
               pod["metadata"]["annotations"].contains(std::string(codec::kAssignmentAnnotation)));
  EXPECT_EQ(server_->requests("POST pods/binding"), 0);
  EXPECT_EQ(b.Holder("n1"), "");
}

void CaptureLine(const std::string& line, void* user) { static_cast<std::vector<std::string>*>(user)->push_back(line); }

size_t LinesWithEvent(const std::vector<std::string>& lines, const std::string& event) {
  size_t n = 0;
  for (const auto& l : lines) n += l.find("\"event\":\"" + event + "\"") != std::string::npos;
  return n;
}

// An API outage fails every bind while it lasts: one line when it starts and one when it ends,
// however many binds failed meanwhile; so does lost leadership.
TEST_F(BinderTest, OutagesAreLoggedOnceWhenTheyStartAndOnceWhenTheyEnd) {
  std::vector<std::string> lines;
  log::SetSink(&CaptureLine, &lines);
  bool leading = true;
  BinderOptions o = Opts(std::chrono::seconds(60), std::chrono::seconds(1));
  o.fence = [&]() -> std::optional<LeaseTerm> {
    if (!leading) return std::nullopt;
    return LeaseTerm{"me", 1, std::chrono::milliseconds(10000)};
  };
  Binder b(client_.get(), o);
  server_->FailNext("POST", "/binding", 503, 5);
  for (int i = 0; i < 5; ++i) {
    std::string name = "down-" + std::to_string(i);
    std::string uid = AddPod(name);
    EXPECT_EQ(b.Bind("ml", name, uid, "n" + std::to_string(i), OneSlice()).code(), StatusCode::kUnavailable);
  }
  std::string uid = AddPod("up");
  EXPECT_TRUE(b.Bind("ml", "up", uid, "n9", OneSlice()).ok());
  leading = false;
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(b.BindPlain("ml", "up", uid, "n9").ok());
  leading = true;
  log::SetSink(nullptr, nullptr);
  EXPECT_EQ(LinesWithEvent(lines, "binder.api_failing"), 1u);
  EXPECT_EQ(LinesWithEvent(lines, "binder.api_recovered"), 1u);
  EXPECT_EQ(LinesWithEvent(lines, "binder.not_leading"), 1u);
}

// A bind in a term writes that term and holder into the assignment and signs it: the signature
// verifies with the scheduler's public key and covers the term (moving it to another term, or a
// signature by another key, does not verify).
TEST_F(BinderTest, AssignmentCarriesTheLeaseTermAndAVerifiableSignature) {
  auto signer = trust::AssignmentSigner::Generate();
  ASSERT_TRUE(signer.ok()) << signer.status().ToString();
  BinderOptions o = Opts(std::chrono::seconds(60), std::chrono::seconds(1));
  o.fence = [] { return std::optional<LeaseTerm>(LeaseTerm{"replica-a", 7, std::chrono::seconds(10)}); };
  o.signer = signer->get();
  Binder b(client_.get(), o);
  std::string uid = AddPod("a");
  ASSERT_TRUE(b.Bind("ml", "a", uid, "n1", OneSlice()).ok());
  v1::PodAssignment a = AssignmentIn("a");
  EXPECT_EQ(a.lease_holder(), "replica-a");
  EXPECT_EQ(a.lease_term(), 7);
  EXPECT_EQ(a.key_id(), (*signer)->key_id());
  EXPECT_FALSE(a.signature().empty());
  auto verifier = trust::AssignmentVerifier::FromPem((*signer)->PublicKeyPem());
  ASSERT_TRUE(verifier.ok()) << verifier.status().ToString();
  EXPECT_TRUE((*verifier)->Verify(a).ok()) << (*verifier)->Verify(a).ToString();
  EXPECT_TRUE(trust::CheckAssignmentOwner(verifier->get(), *server_->Get("pods", "ml", "a"), a).ok());

  v1::PodAssignment moved = a;
  moved.set_lease_term(8);
  EXPECT_FALSE((*verifier)->Verify(moved).ok()) << "the term must be sealed";
  auto other = trust::AssignmentSigner::Generate();
  ASSERT_TRUE(other.ok());
  v1::PodAssignment forged = a;
  ASSERT_TRUE((*other)->Sign(&forged).ok());
  EXPECT_FALSE((*verifier)->Verify(forged).ok()) << "another key's signature must not verify";
}

class BinderFencingTest : public BinderTest {
 protected:
  void SetUp() override {
    auto s = trust::AssignmentSigner::Generate();
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    signer_ = std::move(*s);
    auto v = trust::AssignmentVerifier::FromPem(signer_->PublicKeyPem());
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    verifier_ = *v;
  }
  // A pod bound to n1 with a signed assignment in `phase`, sealed in `term` by `holder`.
  std::string BoundPod(const std::string& name, v1::AssignmentPhase phase, int64_t term,
                       const std::string& holder = "replica-a") {
    json p = server_->Upsert("pods", {{"metadata", {{"name", name}, {"namespace", "ml"}}}, {"spec", json::object()}});
    std::string uid = p["metadata"]["uid"];
    v1::PodAssignment a = OneSlice();
    a.set_pod_uid(uid);
    a.set_node_name("n1");
    a.set_lease_holder(holder);
    a.set_lease_term(term);
    EXPECT_TRUE(signer_->Sign(&a).ok());
    a.set_phase(phase);
    p["spec"]["nodeName"] = "n1";
    p["metadata"]["annotations"][std::string(codec::kAssignmentAnnotation)] = codec::EncodeAssignment(a);
    server_->Upsert("pods", p);
    return uid;
  }
  BinderOptions SignedOptions() {
    BinderOptions o = Opts(std::chrono::seconds(60), std::chrono::seconds(1));
    o.signer = signer_.get();
    o.verifier = verifier_;
    return o;
  }
  std::unique_ptr<trust::AssignmentSigner> signer_;
  std::shared_ptr<const trust::AssignmentVerifier> verifier_;
};

// After a change of leader the new one re-seals an ALLOCATING pod of the old term with its own
// term (signature renewed, slices unchanged); an acknowledged pod, a pod of another term, a pod
// re-created under the same name (other UID) and a deleted one are left as they are.
TEST_F(BinderFencingTest, ResealMovesOnlyAnAllocatingPodOfTheOldTerm) {
  Binder b(client_.get(), SignedOptions());
  BoundPod("a", v1::ASSIGNMENT_PHASE_ALLOCATING, 3);
  BoundPod("acked", v1::ASSIGNMENT_PHASE_ALLOCATED, 3);
  BoundPod("newer", v1::ASSIGNMENT_PHASE_ALLOCATING, 5);
  BoundPod("recreated", v1::ASSIGNMENT_PHASE_ALLOCATING, 3);
  const std::string tampered = BoundPod("tampered", v1::ASSIGNMENT_PHASE_ALLOCATING, 3);
  const LeaseTerm next{"replica-b", 6, std::chrono::seconds(10)};
  // What the cache checked: the records as they were, each expected in term 3.
  auto checked = [&](const std::string& name) {
    v1::PodAssignment c = AssignmentIn(name);
    c.set_lease_term(3);
    return c;
  };
  v1::PodAssignment recreated = checked("recreated");
  recreated.set_pod_uid("uid-of-the-old-pod");
  v1::PodAssignment gone = checked("a");
  gone.set_pod_uid("uid-gone");
  v1::PodAssignment tampered_check = checked("tampered");
  {  // after the cache checked it, someone (a compromised agent) widened the slice on the pod
    json p = *server_->Get("pods", "ml", "tampered");
    v1::PodAssignment wider = AssignmentIn("tampered");
    wider.mutable_containers(0)->mutable_slices(0)->set_memory_mib(81920);
    p["metadata"]["annotations"][std::string(codec::kAssignmentAnnotation)] = codec::EncodeAssignment(wider);
    server_->Upsert("pods", p);
  }
  EXPECT_TRUE(b.Reseal("ml/a", checked("a"), next).ok());
  EXPECT_TRUE(b.Reseal("ml/acked", checked("acked"), next).ok());
  EXPECT_TRUE(b.Reseal("ml/newer", checked("newer"), next).ok());
  EXPECT_TRUE(b.Reseal("ml/recreated", recreated, next).ok());
  EXPECT_TRUE(b.Reseal("ml/gone", gone, next).ok()) << "a pod that is gone needs no re-seal";
  EXPECT_TRUE(b.Reseal("ml/tampered", tampered_check, next).ok());
  EXPECT_EQ(AssignmentIn("tampered").lease_term(), 3) << "the scheduler must not sign slices it did not choose";

  v1::PodAssignment resealed = AssignmentIn("a");
  EXPECT_EQ(resealed.phase(), v1::ASSIGNMENT_PHASE_ALLOCATING);
  EXPECT_EQ(resealed.lease_term(), 6);
  EXPECT_EQ(resealed.lease_holder(), "replica-b");
  ASSERT_EQ(resealed.containers_size(), 1);
  EXPECT_EQ(resealed.containers(0).slices(0).card_uuid(), "GPU-0");
  EXPECT_TRUE(verifier_->Verify(resealed).ok()) << verifier_->Verify(resealed).ToString();

  v1::PodAssignment left = AssignmentIn("acked");
  EXPECT_EQ(left.phase(), v1::ASSIGNMENT_PHASE_ALLOCATED);
  EXPECT_EQ(left.lease_term(), 3);
  EXPECT_EQ(left.lease_holder(), "replica-a");
  EXPECT_EQ(AssignmentIn("newer").lease_term(), 5);
  EXPECT_EQ(AssignmentIn("newer").lease_holder(), "replica-a");
  EXPECT_EQ(AssignmentIn("recreated").lease_term(), 3);
}

// A pod the new leader cannot keep is marked FAILED with the reason, so that no Allocate can
// match it; an acknowledged pod (its container may be running) and a re-created one are left alone.
TEST_F(BinderFencingTest, RefuseFailsAnAllocatingPodAndLeavesAnAllocatedOneAlone) {
  Binder b(client_.get(), SignedOptions());
  const std::string a = BoundPod("a", v1::ASSIGNMENT_PHASE_ALLOCATING, 3);
  const std::string acked = BoundPod("acked", v1::ASSIGNMENT_PHASE_ALLOCATED, 3);
  BoundPod("recreated", v1::ASSIGNMENT_PHASE_ALLOCATING, 3);
  const std::string why = "bound by a deposed leader in term 3 and conflicts with pod ml/x";
  EXPECT_TRUE(b.Refuse("ml/a", a, why).ok());
  EXPECT_TRUE(b.Refuse("ml/acked", acked, why).ok());
  EXPECT_TRUE(b.Refuse("ml/recreated", "uid-of-the-old-pod", why).ok());
  EXPECT_TRUE(b.Refuse("ml/gone", "uid-gone", why).ok());
  v1::PodAssignment failed = AssignmentIn("a");
  EXPECT_EQ(failed.phase(), v1::ASSIGNMENT_PHASE_FAILED);
  EXPECT_EQ(failed.message(), why);
  v1::PodAssignment left = AssignmentIn("acked");
  EXPECT_EQ(left.phase(), v1::ASSIGNMENT_PHASE_ALLOCATED);
  EXPECT_TRUE(left.message().empty());
  EXPECT_EQ(AssignmentIn("recreated").phase(), v1::ASSIGNMENT_PHASE_ALLOCATING);
}

}  // namespace
}  // namespace tideslice::service
