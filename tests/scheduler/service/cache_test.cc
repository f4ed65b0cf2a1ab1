// The cluster cache fed with Node and Pod objects as the watch delivers them: inventories,
// heartbeats, assignments, deletions, reservations made by bind, and re-lists.
#include "scheduler/service/cache.h"

#include <gtest/gtest.h>

#include "common/codec/annotations.h"
#include "common/kube/objects.h"
#include "common/trust/assignment_seal.h"
#include "scheduler/core/request.h"
#include "tests/support/inventory_node.h"

namespace tideslice::service {
namespace {

using kube::json;

class CacheTest : public ::testing::Test {
 protected:
  CacheTest() {
    CacheOptions o;
    o.now = [this] { return now_; };
    o.stale_after = std::chrono::seconds(90);
    o.assume_ttl = std::chrono::seconds(60);
    cache_ = std::make_unique<ClusterCache>(catalog::Catalog::Builtin(), o);
  }
  json Node(const std::string& name, int cards, std::chrono::system_clock::time_point heartbeat, bool healthy = true) {
    return testsupport::InventoryNode(name, cards, heartbeat, healthy);
  }
  static json Pod(const std::string& name, const std::string& node, const std::string& card, int64_t mib,
                  v1::AssignmentPhase phase) {
    json pod = {{"metadata", {{"name", name}, {"namespace", "ml"}, {"uid", "uid-" + name}}},
                {"spec", {{"schedulerName", "tideslice-scheduler"}}}};
    if (!node.empty()) {
      pod["spec"]["nodeName"] = node;
      v1::PodAssignment a;
      a.set_pod_uid("uid-" + name);
      a.set_node_name(node);
      a.set_phase(phase);
      auto* c = a.add_containers();
      c->set_name("c");
      auto* s = c->add_slices();
      s->set_card_uuid(card);
      s->set_memory_mib(mib);
      s->set_compute_permille(250);
      pod["metadata"]["annotations"][std::string(codec::kAssignmentAnnotation)] = codec::EncodeAssignment(a);
    }
    return pod;
  }
  int64_t Used(const std::string& node, int card) {
    auto snap = cache_->Snapshot();
    const auto* n = snap->FindNode(node);
    return n ? n->cards[static_cast<size_t>(card)].usage.used_memory_mib : -1;
  }
  core::PodRequest Request(int64_t mib) {
    kube::PodSpec spec;
    spec.name = "x";
    spec.namespace_name = "ml";
    kube::ContainerSpec c;
    c.name = "c";
    c.limits[core::names::kVnpu] = "1";
    c.limits[core::names::kVnpuMemory] = std::to_string(mib);
    spec.containers.push_back(c);
    auto r = core::PreFilter(spec, catalog::Catalog::Builtin());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return *r;
  }
  std::chrono::system_clock::time_point now_ = std::chrono::system_clock::time_point(std::chrono::seconds(1800000000));
  std::unique_ptr<ClusterCache> cache_;
};

TEST_F(CacheTest, AssignmentsAreCountedOnceAndReleasedWhenPodsEnd) {
  cache_->ReplaceNodes({Node("n1", 2, now_)});
  cache_->ReplacePods({Pod("a", "n1", "n1-GPU-0", 20480, v1::ASSIGNMENT_PHASE_ALLOCATED),
                       Pod("b", "n1", "n1-GPU-0", 10240, v1::ASSIGNMENT_PHASE_ALLOCATING)});
  EXPECT_EQ(Used("n1", 0), 30720);
  // The same event again (an acknowledgement, a relabel): still counted once.
  cache_->OnPod(kube::WatchEventType::kModified, Pod("b", "n1", "n1-GPU-0", 10240, v1::ASSIGNMENT_PHASE_ALLOCATED));
  EXPECT_EQ(Used("n1", 0), 30720);
  json done = Pod("a", "n1", "n1-GPU-0", 20480, v1::ASSIGNMENT_PHASE_ALLOCATED);
  done["status"]["phase"] = "Succeeded";
  cache_->OnPod(kube::WatchEventType::kModified, done);
  EXPECT_EQ(Used("n1", 0), 10240);
  cache_->OnPod(kube::WatchEventType::kModified, Pod("b", "n1", "n1-GPU-0", 10240, v1::ASSIGNMENT_PHASE_FAILED));
  EXPECT_EQ(Used("n1", 0), 0);
  cache_->OnPod(kube::WatchEventType::kAdded, Pod("c", "n1", "n1-GPU-1", 4096, v1::ASSIGNMENT_PHASE_ALLOCATED));
  cache_->OnPod(kube::WatchEventType::kDeleted, Pod("c", "n1", "n1-GPU-1", 4096, v1::ASSIGNMENT_PHASE_ALLOCATED));
  EXPECT_EQ(Used("n1", 1), 0);
}

TEST_F(CacheTest, PodsSeenBeforeTheirNodeArePlacedWhenItArrives) {
  cache_->ReplacePods({Pod("a", "n1", "n1-GPU-1", 8192, v1::ASSIGNMENT_PHASE_ALLOCATED)});
  EXPECT_EQ(Used("n1", 1), -1);
  cache_->OnNode(kube::WatchEventType::kAdded, Node("n1", 2, now_));
  EXPECT_EQ(Used("n1", 1), 8192);
  // A new inventory (a card turned unhealthy) rebuilds the node and keeps its pods.
  cache_->OnNode(kube::WatchEventType::kModified, Node("n1", 2, now_, /*healthy=*/false));
  EXPECT_EQ(Used("n1", 1), 8192);
  EXPECT_FALSE(cache_->Snapshot()->FindNode("n1")->cards[0].healthy);
  // The node goes away and comes back: the pod is counted again, once.
  cache_->OnNode(kube::WatchEventType::kDeleted, Node("n1", 2, now_));
  EXPECT_EQ(Used("n1", 1), -1);
  cache_->OnNode(kube::WatchEventType::kAdded, Node("n1", 2, now_));
  EXPECT_EQ(Used("n1", 1), 8192);
}

TEST_F(CacheTest, HeartbeatsKeepNodesSchedulableAndStaleOnesLeave) {
  cache_->ReplaceNodes({Node("n1", 1, now_)});
  uint64_t version = cache_->Snapshot()->FindNode("n1")->version;
  now_ += std::chrono::seconds(60);
  cache_->OnNode(kube::WatchEventType::kModified, Node("n1", 1, now_));  // heartbeat only
  EXPECT_EQ(cache_->Snapshot()->FindNode("n1")->version, version) << "a heartbeat must not rebuild the node";
  now_ += std::chrono::seconds(120);
  cache_->Refresh();
  const core::NodeState* n = cache_->Snapshot()->FindNode("n1");
  EXPECT_FALSE(n->schedulable);
  EXPECT_NE(n->unschedulable_reason.find("last heartbeat 120 s ago"), std::string::npos) << n->unschedulable_reason;
  EXPECT_EQ(cache_->stats().stale_nodes, 1u);
  cache_->OnNode(kube::WatchEventType::kModified, Node("n1", 1, now_));
  EXPECT_TRUE(cache_->Snapshot()->FindNode("n1")->schedulable);
}

TEST_F(CacheTest, BindReservationsHoldUntilConfirmedForgottenOrExpired) {
  cache_->ReplaceNodes({Node("n1", 1, now_)});
  json pending = Pod("p", "", "", 0, v1::ASSIGNMENT_PHASE_UNSPECIFIED);
  cache_->ReplacePods({pending});
  EXPECT_TRUE(cache_->PendingPod("ml/p").has_value());
  auto planned = cache_->PlanAndAssume(Request(30000), "ml/p", "uid-p", "n1", {});
  ASSERT_TRUE(planned.ok()) << planned.status().ToString();
  EXPECT_EQ(Used("n1", 0), 30000);
  EXPECT_EQ(planned->assignment.containers(0).slices(0).card_uuid(), "n1-GPU-0");
  // A stale event of the pending pod does not drop the reservation.
  cache_->OnPod(kube::WatchEventType::kModified, pending);
  EXPECT_EQ(Used("n1", 0), 30000);
  // Two more of 30000 do not fit on one 81920 MiB card with the reservation in place.
  ASSERT_TRUE(cache_->PlanAndAssume(Request(30000), "ml/q", "uid-q", "n1", {}).ok());
  auto third = cache_->PlanAndAssume(Request(30000), "ml/r", "uid-r", "n1", {});
  EXPECT_EQ(third.status().code(), StatusCode::kFailedPrecondition);
  // The watch confirms p: same accounting, now from the annotation.
  cache_->OnPod(kube::WatchEventType::kModified, Pod("p", "n1", "n1-GPU-0", 30000, v1::ASSIGNMENT_PHASE_ALLOCATING));
  EXPECT_EQ(Used("n1", 0), 60000);
  cache_->ForgetAssumed("ml/q");  // its bind failed
  EXPECT_EQ(Used("n1", 0), 30000);
  ASSERT_TRUE(cache_->PlanAndAssume(Request(20000), "ml/s", "uid-s", "n1", {}).ok());
  now_ += std::chrono::seconds(61);
  cache_->Refresh();  // never confirmed: expires
  EXPECT_EQ(Used("n1", 0), 30000);
  EXPECT_EQ(cache_->stats().assumed_pods, 0u);
}

TEST_F(CacheTest, RelistDropsWhatIsGoneAndMalformedInventoriesAreNotPlaced) {
  cache_->ReplaceNodes({Node("n1", 1, now_), Node("n2", 1, now_)});
  cache_->ReplacePods({Pod("a", "n1", "n1-GPU-0", 1000, v1::ASSIGNMENT_PHASE_ALLOCATED),
                       Pod("b", "n2", "n2-GPU-0", 2000, v1::ASSIGNMENT_PHASE_ALLOCATED)});
  cache_->ReplacePods({Pod("b", "n2", "n2-GPU-0", 2000, v1::ASSIGNMENT_PHASE_ALLOCATED)});  // a was deleted in a gap
  EXPECT_EQ(Used("n1", 0), 0);
  EXPECT_EQ(Used("n2", 0), 2000);
  json broken = Node("n2", 1, now_);
  broken["metadata"]["annotations"][std::string(codec::kInventoryAnnotation)] = "{not json";
  cache_->ReplaceNodes({Node("n1", 1, now_), broken});
  EXPECT_EQ(cache_->Snapshot()->FindNode("n2"), nullptr);
  EXPECT_EQ(cache_->stats().nodes, 1u);
}

// The forgeries a tester made: a pod created with a hand-written assignment. With the
// scheduler's key configured, only a record it signed for this very pod counts.
class SignedCacheTest : public CacheTest {
 protected:
  SignedCacheTest() {
    signer_ = trust::AssignmentSigner::Generate().value();
    CacheOptions o;
    o.now = [this] { return now_; };
    o.verifier = *trust::AssignmentVerifier::FromPem(signer_->PublicKeyPem());
    cache_ = std::make_unique<ClusterCache>(catalog::Catalog::Builtin(), o);
  }
  json Signed(json pod, const trust::AssignmentSigner& by) {
    auto a = kube::AssignmentOf(pod);
    v1::PodAssignment assignment = **a;
    EXPECT_TRUE(by.Sign(&assignment).ok());
    pod["metadata"]["annotations"][std::string(codec::kAssignmentAnnotation)] = codec::EncodeAssignment(assignment);
    return pod;
  }
  static json WholeCard(const std::string& name, const std::string& node, const std::string& card, v1::AssignmentPhase phase,
                        int64_t assigned_at) {
    json pod = Pod(name, node, card, 0, phase);
    auto a = kube::AssignmentOf(pod);
    v1::PodAssignment assignment = **a;
    auto* slice = assignment.mutable_containers(0)->mutable_slices(0);
    slice->set_whole_card(true);
    slice->set_compute_permille(1000);
    assignment.mutable_assigned_at()->set_seconds(assigned_at);
    pod["metadata"]["annotations"][std::string(codec::kAssignmentAnnotation)] = codec::EncodeAssignment(assignment);
    return pod;
  }
  std::unique_ptr<trust::AssignmentSigner> signer_;
};

TEST_F(SignedCacheTest, OnlyRecordsTheSchedulerSignedForThisPodAndNodeAreAccounted) {
  cache_->ReplaceNodes({Node("n1", 2, now_)});
  auto other_key = trust::AssignmentSigner::Generate().value();
  json unsigned_pod = Pod("forged", "n1", "n1-GPU-0", 70000, v1::ASSIGNMENT_PHASE_ALLOCATED);
  json foreign = Signed(Pod("foreign", "n1", "n1-GPU-0", 70000, v1::ASSIGNMENT_PHASE_ALLOCATED), *other_key);
  // A genuine record copied onto another pod: its UID no longer matches.
  json copied = Signed(Pod("real", "n1", "n1-GPU-1", 1000, v1::ASSIGNMENT_PHASE_ALLOCATED), *signer_);
  copied["metadata"]["name"] = "copy";
  copied["metadata"]["uid"] = "uid-copy";
  // A genuine record on a pod moved to another node by hand.
  json moved = Signed(Pod("moved", "n1", "n1-GPU-1", 1000, v1::ASSIGNMENT_PHASE_ALLOCATED), *signer_);
  moved["spec"]["nodeName"] = "n2";
  // A signed record whose slice was edited afterwards.
  json edited = Signed(Pod("edited", "n1", "n1-GPU-1", 1000, v1::ASSIGNMENT_PHASE_ALLOCATED), *signer_);
  {
    auto a = **kube::AssignmentOf(edited);
    a.mutable_containers(0)->mutable_slices(0)->set_memory_mib(80000);
    edited["metadata"]["annotations"][std::string(codec::kAssignmentAnnotation)] = codec::EncodeAssignment(a);
  }
  cache_->ReplacePods({unsigned_pod, foreign, copied, moved, edited});
  EXPECT_EQ(Used("n1", 0), 0);
  EXPECT_EQ(Used("n1", 1), 0);
  auto refused = cache_->TakeRefused();
  ASSERT_EQ(refused.size(), 5u);
  for (const auto& r : refused) EXPECT_EQ(r.reason, "ForgedAssignment") << r.pod_key;
  EXPECT_TRUE(cache_->TakeRefused().empty()) << "each refusal is reported once";

  json genuine = Signed(Pod("real", "n1", "n1-GPU-0", 20480, v1::ASSIGNMENT_PHASE_ALLOCATED), *signer_);
  cache_->OnPod(kube::WatchEventType::kAdded, genuine);
  EXPECT_EQ(Used("n1", 0), 20480);
  // The agent's acknowledgement (phase, device IDs) is outside the signature and keeps it valid.
  auto a = **kube::AssignmentOf(genuine);
  a.set_phase(v1::ASSIGNMENT_PHASE_ALLOCATED);
  a.mutable_containers(0)->add_device_ids("n1-GPU-0::3");
  genuine["metadata"]["annotations"][std::string(codec::kAssignmentAnnotation)] = codec::EncodeAssignment(a);
  cache_->OnPod(kube::WatchEventType::kModified, genuine);
  EXPECT_EQ(Used("n1", 0), 20480);
  EXPECT_TRUE(cache_->TakeRefused().empty());
}

TEST_F(SignedCacheTest, TwoClaimsOnOneCardNeverBothCountAndTheAcknowledgedOneWins) {
  cache_->ReplaceNodes({Node("n1", 1, now_)});
  // The split brain a tester produced: the new leader's pod holds the card whole and is
  // acknowledged; the deposed leader's bind lands later on the same card.
  json kept = Signed(WholeCard("kept", "n1", "n1-GPU-0", v1::ASSIGNMENT_PHASE_ALLOCATED, 200), *signer_);
  json late = Signed(WholeCard("late", "n1", "n1-GPU-0", v1::ASSIGNMENT_PHASE_ALLOCATING, 100), *signer_);
  // Listed in the unlucky order: the late one first.
  cache_->ReplacePods({late, kept});
  auto snap = cache_->Snapshot();
  const auto* node = snap->FindNode("n1");
  ASSERT_NE(node, nullptr);
  EXPECT_EQ(node->pods.size(), 1u);
  EXPECT_TRUE(node->pods.count("ml/kept"));
  snap.reset();
  auto refused = cache_->TakeRefused();
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].pod_key, "ml/late");
  EXPECT_EQ(refused[0].reason, "AssignmentConflict");
  EXPECT_TRUE(refused[0].allocating) << "an ALLOCATING loser is failed by the leader";
  // Arriving as a watch event after the other is placed: refused the same way.
  cache_->OnPod(kube::WatchEventType::kDeleted, late);
  cache_->OnPod(kube::WatchEventType::kAdded, late);
  EXPECT_EQ(cache_->Snapshot()->FindNode("n1")->pods.size(), 1u);
  EXPECT_EQ(cache_->TakeRefused().size(), 1u) << "a pod deleted and created again is reported again";
  cache_->OnPod(kube::WatchEventType::kModified, late);
  EXPECT_EQ(cache_->TakeRefused().size(), 0u) << "already reported for this UID and reason";
}

TEST_F(CacheTest, WithoutAKeyTheRecordMustStillNameThisPodAndNode) {
  cache_->ReplaceNodes({Node("n1", 1, now_)});
  // The forged `allocated` record on a pod that asked for nothing made every card look busy.
  json forged = Pod("greedy", "n1", "n1-GPU-0", 80000, v1::ASSIGNMENT_PHASE_ALLOCATED);
  auto a = **kube::AssignmentOf(forged);
  a.clear_pod_uid();  // written at CREATE: the author could not know the UID the API server assigns
  forged["metadata"]["annotations"][std::string(codec::kAssignmentAnnotation)] = codec::EncodeAssignment(a);
  cache_->OnPod(kube::WatchEventType::kAdded, forged);
  EXPECT_EQ(Used("n1", 0), 0);
  ASSERT_EQ(cache_->TakeRefused().size(), 1u);
}

}  // namespace
}  // namespace tideslice::service

#include "scheduler/service/scheduler_service.h"

namespace tideslice::service {
namespace {

TEST(SchedulerServiceTest, OnlyANonEmptyErrorCountsAsAnError) {
  EXPECT_FALSE(AnswersWithError(R"({"Nodes":null,"NodeNames":["a"],"FailedNodes":null,"FailedAndUnresolvableNodes":null,"Error":""})"));
  EXPECT_FALSE(AnswersWithError(R"({"Error":""})"));
  EXPECT_TRUE(AnswersWithError(R"({"Error":"bind failed"})"));
  EXPECT_FALSE(AnswersWithError("[]"));
}

}  // namespace
}  // namespace tideslice::service
