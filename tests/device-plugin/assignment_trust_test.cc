// The node agent honours an assignment only if the scheduler wrote it for this pod, on this node,
// in the scheduler Lease's current term (KubeAssignmentStore with AssignmentTrust, against the
// test API server). The tester's forgery: "a pod created with spec.nodeName and a forged
// `allocating` assignment was handed a card as a whole card while that card already held another
// pod's 70 GiB slice" -- reproduced through the HandoffHandler, which must refuse it.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "common/codec/annotations.h"
#include "common/kube/objects.h"
#include "common/trust/assignment_seal.h"
#include "device-plugin/kube/kube_assignment_store.h"
#include "device-plugin/plugin/handoff.h"
#include "tests/support/fake_cards.h"
#include "tests/support/kube_env.h"
#include "tests/support/test_support.h"

namespace tideslice::deviceplugin {
namespace {

using kube::json;

constexpr const char* kNode = "node-a";
constexpr const char* kLeaseNs = "tideslice-system";
constexpr const char* kLeaseName = "tideslice-scheduler";

// How the assignment on a pod is made: by whom (signer; null = unsigned), naming which pod UID
// ("" = the pod's own) and node, in which lease term, for which card.
struct Seal {
  const trust::AssignmentSigner* signer = nullptr;
  std::string uid;
  std::string node = kNode;
  int64_t term = 3;
  std::string holder = "replica-a";
  v1::AssignmentPhase phase = v1::ASSIGNMENT_PHASE_ALLOCATING;
  std::string card = "GPU-0";
  int64_t memory_mib = 0;  // 0: the whole card

  Seal& By(const trust::AssignmentSigner* s) { signer = s; return *this; }
  Seal& ForUid(std::string u) { uid = std::move(u); return *this; }
  Seal& OnNode(std::string n) { node = std::move(n); return *this; }
  Seal& InTerm(int64_t t, std::string h) { term = t; holder = std::move(h); return *this; }
  Seal& InPhase(v1::AssignmentPhase p) { phase = p; return *this; }
  Seal& Slice(std::string c, int64_t mib) { card = std::move(c); memory_mib = mib; return *this; }
};

class AssignmentTrustTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = trust::AssignmentSigner::Generate();
    auto o = trust::AssignmentSigner::Generate();
    ASSERT_TRUE(s.ok() && o.ok());
    scheduler_ = std::move(*s);
    stranger_ = std::move(*o);
    key_path_ = env_.dir.path() + "/assignment-verify.pem";
    std::ofstream(key_path_) << scheduler_->PublicKeyPem();
    verifier_ = std::make_unique<trust::VerifierFile>(key_path_);
    SetLease("replica-a", 3);
  }

  AssignmentTrust Trust() {
    AssignmentTrust t;
    t.verifier = verifier_.get();
    t.lease_namespace = kLeaseNs;
    t.lease_name = kLeaseName;
    return t;
  }
  void SetLease(const std::string& holder, int64_t transitions) {
    env_.server->Upsert("leases", {{"apiVersion", "coordination.k8s.io/v1"},
                                   {"kind", "Lease"},
                                   {"metadata", {{"name", kLeaseName}, {"namespace", kLeaseNs}}},
                                   {"spec",
                                    {{"holderIdentity", holder},
                                     {"leaseDurationSeconds", 15},
                                     {"leaseTransitions", transitions}}}});
  }
  // A pod on kNode (spec.nodeName, as a pod created already bound has) carrying `seal`'s
  // assignment; returns its UID.
  std::string AddPod(const std::string& name, const Seal& seal) {
    json pod = env_.server->Upsert(
        "pods", {{"metadata", {{"name", name}, {"namespace", "ml"}}},
                 {"spec", {{"schedulerName", "tideslice-scheduler"}, {"containers", json::array()}}},
                 {"status", {{"phase", "Pending"}}}});
    const std::string uid = pod["metadata"]["uid"];
    v1::PodAssignment a;
    a.set_pod_uid(seal.uid.empty() ? uid : seal.uid);
    a.set_node_name(seal.node);
    a.set_lease_holder(seal.holder);
    a.set_lease_term(seal.term);
    auto* c = a.add_containers();
    c->set_name("c");
    auto* slice = c->add_slices();
    slice->set_card_uuid(seal.card);
    if (seal.memory_mib == 0) {
      slice->set_whole_card(true);
      slice->set_memory_mib(81920);
      slice->set_compute_permille(1000);
    } else {
      slice->set_memory_mib(seal.memory_mib);
      slice->set_compute_permille(875);
    }
    if (seal.signer) {
      EXPECT_TRUE(seal.signer->Sign(&a).ok());
    }
    a.set_phase(seal.phase);
    if (seal.phase == v1::ASSIGNMENT_PHASE_ALLOCATED) c->add_device_ids(seal.card + "::0");
    pod["spec"]["nodeName"] = kNode;
    pod["metadata"]["annotations"][std::string(codec::kAssignmentAnnotation)] = codec::EncodeAssignment(a);
    env_.server->Upsert("pods", pod);
    return uid;
  }
  static std::set<std::string> Keys(const std::vector<PendingPod>& pods) {
    std::set<std::string> out;
    for (const auto& p : pods) out.insert(p.pod_key);
    return out;
  }
  v1::PodAssignment AssignmentIn(const std::string& name) {
    auto a = kube::AssignmentOf(*env_.server->Get("pods", "ml", name));
    EXPECT_TRUE(a.ok() && a->has_value());
    return a.ok() && a->has_value() ? **a : v1::PodAssignment();
  }

  testsupport::KubeEnv env_;
  std::unique_ptr<trust::AssignmentSigner> scheduler_, stranger_;
  std::string key_path_;
  std::unique_ptr<trust::VerifierFile> verifier_;
};

TEST_F(AssignmentTrustTest, ForgedAllocatingAssignmentsAreNotPending) {
  const std::string genuine_uid = AddPod("genuine", Seal().By(scheduler_.get()));
  AddPod("unsigned", Seal());
  AddPod("other-key", Seal().By(stranger_.get()));
  AddPod("other-uid", Seal().By(scheduler_.get()).ForUid(genuine_uid));  // copied from another pod
  AddPod("other-node", Seal().By(scheduler_.get()).OnNode("node-b"));

  KubeAssignmentStore store(env_.client.get(), kNode, Trust());
  auto pending = store.PendingOnNode();
  ASSERT_TRUE(pending.ok()) << pending.status().ToString();
  EXPECT_EQ(Keys(*pending), (std::set<std::string>{"ml/genuine"}));
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ(pending->front().assignment.pod_uid(), genuine_uid);

  // Without the key the pod's UID and node are still checked, but an unsigned record that names
  // its own pod passes: the signature is what stops the unsigned and the stranger's ones.
  KubeAssignmentStore unchecked(env_.client.get(), kNode);
  auto loose = unchecked.PendingOnNode();
  ASSERT_TRUE(loose.ok()) << loose.status().ToString();
  EXPECT_EQ(Keys(*loose), (std::set<std::string>{"ml/genuine", "ml/unsigned", "ml/other-key"}));
}

TEST_F(AssignmentTrustTest, AssignmentSealedInAnotherLeaseTermIsSkipped) {
  AddPod("a", Seal().By(scheduler_.get()).InTerm(3, "replica-a"));
  KubeAssignmentStore store(env_.client.get(), kNode, Trust());

  SetLease("replica-a", 4);  // another replica led in between, and replica-a leads again
  auto later = store.PendingOnNode();
  ASSERT_TRUE(later.ok()) << later.status().ToString();
  EXPECT_TRUE(later->empty()) << "an assignment sealed in term 3 must not be honoured in term 4";

  SetLease("replica-b", 3);  // same number, another holder
  auto other_holder = store.PendingOnNode();
  ASSERT_TRUE(other_holder.ok()) << other_holder.status().ToString();
  EXPECT_TRUE(other_holder->empty());

  SetLease("replica-a", 3);
  auto current = store.PendingOnNode();
  ASSERT_TRUE(current.ok()) << current.status().ToString();
  EXPECT_EQ(Keys(*current), (std::set<std::string>{"ml/a"}));
}

TEST_F(AssignmentTrustTest, MissingLeaseOrVerifyKeyIsAnErrorNotTrust) {
  AddPod("a", Seal().By(scheduler_.get()));
  ASSERT_TRUE(env_.server->Remove("leases", kLeaseNs, kLeaseName));
  KubeAssignmentStore store(env_.client.get(), kNode, Trust());
  auto no_lease = store.PendingOnNode();
  EXPECT_FALSE(no_lease.ok()) << "without the lease the term cannot be checked";

  SetLease("replica-a", 3);
  trust::VerifierFile missing(env_.dir.path() + "/no-such-key.pem");
  AssignmentTrust t = Trust();
  t.verifier = &missing;
  KubeAssignmentStore keyless(env_.client.get(), kNode, t);
  auto no_key = keyless.PendingOnNode();
  EXPECT_FALSE(no_key.ok()) << "without the key no signature can be checked";

  std::ofstream(env_.dir.path() + "/garbage.pem") << "not a key";
  trust::VerifierFile garbage(env_.dir.path() + "/garbage.pem");
  t.verifier = &garbage;
  KubeAssignmentStore garbled(env_.client.get(), kNode, t);
  EXPECT_FALSE(garbled.PendingOnNode().ok());

  // Sanity: the same pod with key and lease in place is pending.
  auto fine = KubeAssignmentStore(env_.client.get(), kNode, Trust()).PendingOnNode();
  ASSERT_TRUE(fine.ok()) << fine.status().ToString();
  EXPECT_EQ(Keys(*fine), (std::set<std::string>{"ml/a"}));
}

// The tester's forgery through the Allocate hand-off: GPU-0 holds another pod's 70 GiB slice;
// a pod created with spec.nodeName and a forged ALLOCATING whole-card assignment of GPU-0 (its
// own UID and node, so only the signature can tell) must not be handed GPU-0.
TEST_F(AssignmentTrustTest, AllocateForAForgedPodIsRefusedNotAnsweredWithTheCard) {
  AddPod("holder", Seal().By(scheduler_.get()).InPhase(v1::ASSIGNMENT_PHASE_ALLOCATED).Slice("GPU-0", 71680));
  AddPod("thief", Seal());  // unsigned, whole card GPU-0, its own UID and node
  KubeAssignmentStore store(env_.client.get(), kNode, Trust());
  HandoffHandler handler(&store);
  const auto cards = testsupport::FakeH100s(2);

  auto answer = handler.AllocateContainer({"GPU-0::3"}, cards);
  ASSERT_FALSE(answer.ok()) << "the forged pod was handed: " << answer->DebugString();
  EXPECT_EQ(answer.status().code(), StatusCode::kFailedPrecondition) << answer.status().ToString();
  EXPECT_NE(answer.status().message().find("no pod on this node is waiting"), std::string::npos)
      << answer.status().message();

  // Signed, but by a key that is not the scheduler's.
  AddPod("thief-2", Seal().By(stranger_.get()));
  auto again = handler.AllocateContainer({"GPU-0::4"}, cards);
  ASSERT_FALSE(again.ok()) << "the forged pod was handed: " << again->DebugString();
  EXPECT_NE(again.status().message().find("no pod on this node is waiting"), std::string::npos)
      << again.status().message();
  for (const char* name : {"thief", "thief-2"}) {
    v1::PodAssignment a = AssignmentIn(name);
    EXPECT_EQ(a.phase(), v1::ASSIGNMENT_PHASE_ALLOCATING) << name << " must not be acknowledged";
    EXPECT_EQ(a.containers(0).device_ids_size(), 0) << name;
  }

  // The forged pods do not block the node either: the scheduler's next pod is matched alone
  // (not "refusing to guess" between it and the forgeries).
  AddPod("next", Seal().By(scheduler_.get()).Slice("GPU-1", 10240));
  auto next = handler.AllocateContainer({"GPU-1::0"}, cards);
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_EQ(next->annotations().at("tideslice.io/pod"), "ml/next");
  EXPECT_EQ(next->envs().at("NVIDIA_VISIBLE_DEVICES"), "GPU-1");
  EXPECT_EQ(AssignmentIn("next").phase(), v1::ASSIGNMENT_PHASE_ALLOCATED);
  EXPECT_EQ(AssignmentIn("thief").phase(), v1::ASSIGNMENT_PHASE_ALLOCATING);
}

}  // namespace
}  // namespace tideslice::deviceplugin
