#include "device-plugin/plugin/handoff.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "device-plugin/limiter/card_coordination.h"
#include "tests/support/fake_cards.h"
#include "tests/support/test_support.h"

namespace tideslice::deviceplugin {
namespace {

using ::testing::HasSubstr;

std::vector<DeviceInfo> Cards() { return testsupport::FakeH100s(4); }

v1::ContainerAssignment Container(const std::string& name, std::vector<std::string> cards, bool init = false) {
  v1::ContainerAssignment c;
  c.set_name(name);
  c.set_init_container(init);
  for (const auto& u : cards) {
    auto* s = c.add_slices();
    s->set_card_uuid(u);
    s->set_memory_mib(8192);
    s->set_compute_permille(300);
  }
  return c;
}

PendingPod Pod(const std::string& key, std::vector<v1::ContainerAssignment> containers,
               v1::AssignmentPhase phase = v1::ASSIGNMENT_PHASE_ALLOCATING) {
  PendingPod p;
  p.pod_key = key;
  p.assignment.set_node_name("n");
  p.assignment.set_phase(phase);
  for (auto& c : containers) *p.assignment.add_containers() = c;
  return p;
}

TEST(Handoff, MatchesContainersInKubeletOrderAndSkipsAcknowledgedOnes) {
  PendingPod pod = Pod("ml/p", {Container("app", {"GPU-1", "GPU-2"}), Container("warm", {"GPU-3"}, true),
                                Container("sidecar", {})});
  auto first = MatchAllocate({pod}, {"GPU-0::0"}, Cards());  // init containers come first
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->container, "warm");
  EXPECT_TRUE(first->init_container);
  EXPECT_EQ(first->slices.at(0).card.uuid, "GPU-3");  // the assigned card, whatever ID kubelet used
  pod.assignment.mutable_containers(1)->add_device_ids("GPU-0::0");  // acknowledged
  auto second = MatchAllocate({pod}, {"GPU-1::4", "GPU-2::0"}, Cards());
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->container, "app");
  ASSERT_EQ(second->slices.size(), 2u);
  EXPECT_EQ(second->slices[1].card.uuid, "GPU-2");
  EXPECT_EQ(second->slices[1].memory_mib, 8192);
  EXPECT_EQ(second->slices[1].compute_permille, 300);
}

// The reviewer's double booking: a bind the scheduler gave up on (its call timed out) lands in the
// same lease term after another pod took the card. The agent checks what it already handed out.
TEST(Handoff, ASliceThatDoesNotFitBesideWhatIsHandedOutIsRefused) {
  auto whole = [](const std::string& key, const std::string& card) {
    v1::ContainerAssignment c;
    c.set_name("c");
    auto* s = c.add_slices();
    s->set_card_uuid(card);
    s->set_whole_card(true);
    s->set_compute_permille(1000);
    return Pod(key, {c}, v1::ASSIGNMENT_PHASE_ALLOCATED);
  };
  const std::vector<DeviceInfo> cards = Cards();
  auto late = MatchAllocate({Pod("ml/late", {Container("c", {"GPU-0"})})}, {"GPU-0::1"}, cards);
  ASSERT_TRUE(late.ok());
  EXPECT_TRUE(CheckAgainstHeld(*late, false, {}).ok());
  EXPECT_THAT(CheckAgainstHeld(*late, false, {whole("ml/kept", "GPU-0")}).message(), HasSubstr("already held by pod ml/kept"));
  EXPECT_TRUE(CheckAgainstHeld(*late, false, {whole("ml/kept", "GPU-1")}).ok()) << "another card";
  EXPECT_TRUE(CheckAgainstHeld(*late, false, {whole("ml/late", "GPU-0")}).ok()) << "the pod's own earlier container";
  // Soft slices: memory and compute add up per card (H100-80G: 81920 MiB).
  auto big = Pod("ml/big", {Container("c", {"GPU-0"})}, v1::ASSIGNMENT_PHASE_ALLOCATED);
  big.assignment.mutable_containers(0)->mutable_slices(0)->set_memory_mib(75000);
  EXPECT_THAT(CheckAgainstHeld(*late, false, {big}).message(), HasSubstr("would exceed"));
  auto busy = Pod("ml/busy", {Container("c", {"GPU-0"})}, v1::ASSIGNMENT_PHASE_ALLOCATED);
  busy.assignment.mutable_containers(0)->mutable_slices(0)->set_compute_permille(800);
  EXPECT_THAT(CheckAgainstHeld(*late, false, {busy}).message(), HasSubstr("compute"));
  auto small = Pod("ml/small", {Container("c", {"GPU-0"})}, v1::ASSIGNMENT_PHASE_ALLOCATED);
  EXPECT_TRUE(CheckAgainstHeld(*late, false, {small, small}).ok()) << "3 x 8 GiB and 3 x 30 % fit";
  EXPECT_FALSE(CheckAgainstHeld(*late, true, {small}).ok()) << "an exclusive pod shares no card";
}

TEST(Handoff, NeverGuesses) {
  EXPECT_THAT(MatchAllocate({}, {"GPU-0::0"}, Cards()).status().message(), HasSubstr("no pod on this node"));
  auto done = Pod("ml/done", {Container("c", {"GPU-0"})}, v1::ASSIGNMENT_PHASE_ALLOCATED);
  EXPECT_THAT(MatchAllocate({done}, {"GPU-0::0"}, Cards()).status().message(), HasSubstr("no pod on this node"));
  auto a = Pod("ml/a", {Container("c", {"GPU-0"})});
  auto b = Pod("ml/b", {Container("c", {"GPU-1"})});
  auto two = MatchAllocate({a, b}, {"GPU-0::0"}, Cards());
  EXPECT_EQ(two.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(two.status().message(), HasSubstr("refusing to guess: 2 pods"));
  auto wrong_size = MatchAllocate({a}, {"GPU-0::0", "GPU-1::0"}, Cards());
  EXPECT_THAT(wrong_size.status().message(), HasSubstr("no unacknowledged container with 2 slice(s) (c: 1)"));
}

TEST(Handoff, AssignedCardsMustExistAndBeHealthy) {
  auto pod = Pod("ml/p", {Container("c", {"GPU-9"})});
  EXPECT_THAT(MatchAllocate({pod}, {"GPU-0::0"}, Cards()).status().message(), HasSubstr("does not have"));
  auto cards = Cards();
  cards[0].healthy = false;
  auto sick = Pod("ml/q", {Container("c", {"GPU-0"})});
  EXPECT_THAT(MatchAllocate({sick}, {"GPU-0::0"}, cards).status().message(), HasSubstr("unhealthy now"));
}

}  // namespace
}  // namespace tideslice::deviceplugin

namespace tideslice::deviceplugin {
namespace {

class OnePodStore : public AssignmentStore {
 public:
  std::vector<PendingPod> pods;
  StatusOr<std::vector<PendingPod>> PendingOnNode() override { return pods; }
  std::string ack_error;
  Status Acknowledge(const std::string&, const std::string& container, const std::vector<std::string>& ids) override {
    if (!ack_error.empty()) return Status::Unavailable(ack_error);
    for (auto& c : *pods[0].assignment.mutable_containers())
      if (c.name() == container)
        for (const auto& id : ids) c.add_device_ids(id);
    return Status::Ok();
  }
};

TEST(Handoff, PreferredCardsAreTheNextContainersAssignedCards) {
  OnePodStore store;
  store.pods.push_back(Pod("ml/p", {Container("app", {"GPU-3", "GPU-1"}), Container("warm", {"GPU-2"}, true)}));
  HandoffHandler handler(&store);
  EXPECT_EQ(handler.PreferredCards(1), std::vector<std::string>{"GPU-2"});  // the init container is next
  EXPECT_TRUE(handler.PreferredCards(3).empty());                          // no container of that size
  auto r = handler.AllocateContainer({"GPU-2::0"}, Cards());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->annotations().at("tideslice.io/container"), "warm");
  EXPECT_EQ(handler.PreferredCards(2), (std::vector<std::string>{"GPU-3", "GPU-1"}));
  store.pods.clear();
  EXPECT_TRUE(handler.PreferredCards(1).empty());
}

// The limiter at Allocate: a soft slice's container gets its files and mounts, whole cards get
// none, a failed acknowledgement takes the files back, and an agent without the limiter (a node
// group that opted out) hands soft slices out as accounting only.
TEST(HandoffLimiter, ASoftSliceGetsItsLimiterFilesAndMounts) {
  testsupport::TempDir dir;
  LimiterFiles files(dir.path());
  OnePodStore store;
  store.pods.push_back(Pod("ml/p", {Container("main", {"GPU-1"})}));
  store.pods[0].assignment.set_pod_uid("uid-p");
  HandoffHandler handler(&store);
  handler.EnableLimiter(&files, 256u << 20);
  auto r = handler.AllocateContainer({"GPU-1::0"}, Cards());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->envs().at("NVIDIA_VISIBLE_DEVICES"), "GPU-1");
  EXPECT_EQ(r->envs().at("TIDESLICE_LIMITER"), "on");
  ASSERT_EQ(r->mounts_size(), 6);  // and the card's directory and entry: the slice has 30 % of the card
  EXPECT_EQ(r->mounts(2).host_path(), files.layout().ConfigPath("uid-p", "main"));
  EXPECT_EQ(r->mounts(3).host_path(), files.layout().RegionDir("uid-p", "main"));
  EXPECT_TRUE(std::filesystem::exists(files.layout().RegionPath("uid-p", "main")));
  std::ifstream in(files.layout().ConfigPath("uid-p", "main"));
  std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_THAT(json, HasSubstr(R"("podNamespace": "ml")"));
  EXPECT_THAT(json, HasSubstr(R"("podName": "p")"));
  EXPECT_THAT(json, HasSubstr(R"("uuid": "GPU-1")"));
  EXPECT_THAT(json, HasSubstr(R"("memoryLimitBytes": "8589934592")"));
  EXPECT_THAT(json, HasSubstr(R"("computePermille": 300)"));
  EXPECT_THAT(json, HasSubstr(R"("contextReserveBytes": "268435456")"));
}

TEST(HandoffLimiter, WholeCardsGetNoLimiter) {
  testsupport::TempDir dir;
  LimiterFiles files(dir.path());
  OnePodStore store;
  auto c = Container("main", {"GPU-0"});
  c.mutable_slices(0)->set_whole_card(true);
  store.pods.push_back(Pod("ml/w", {c}));
  store.pods[0].assignment.set_pod_uid("uid-w");
  HandoffHandler handler(&store);
  handler.EnableLimiter(&files, 0);
  auto r = handler.AllocateContainer({"GPU-0::0"}, Cards());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->mounts_size(), 0);
  EXPECT_EQ(r->envs().count("TIDESLICE_LIMITER"), 0u);
  EXPECT_TRUE(files.PodUids().empty());
}

TEST(HandoffLimiter, AFailedAcknowledgementTakesTheFilesBack) {
  testsupport::TempDir dir;
  LimiterFiles files(dir.path());
  OnePodStore store;
  store.pods.push_back(Pod("ml/p", {Container("main", {"GPU-1"})}));
  store.pods[0].assignment.set_pod_uid("uid-p");
  store.ack_error = "apiserver down";
  HandoffHandler handler(&store);
  handler.EnableLimiter(&files, 0);
  auto r = handler.AllocateContainer({"GPU-1::0"}, Cards());
  EXPECT_THAT(r.status().message(), HasSubstr("apiserver down"));
  EXPECT_TRUE(files.PodUids().empty());
  EXPECT_FALSE(std::filesystem::exists(files.layout().PodDir("uid-p")));
}

TEST(HandoffLimiter, WithTheLimiterOffSoftSlicesAreAccountingOnly) {
  OnePodStore store;
  store.pods.push_back(Pod("ml/p", {Container("main", {"GPU-1"})}));
  store.pods[0].assignment.set_pod_uid("uid-p");
  HandoffHandler handler(&store);
  auto r = handler.AllocateContainer({"GPU-1::0"}, Cards());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->mounts_size(), 0);
  EXPECT_EQ(r->envs().count("TIDESLICE_LIMITER"), 0u);
}

TEST(HandoffLimiter, AnAssignmentWithoutAPodUidIsRefusedNotLimitedSomewhereElse) {
  testsupport::TempDir dir;
  LimiterFiles files(dir.path());
  OnePodStore store;
  store.pods.push_back(Pod("ml/p", {Container("main", {"GPU-1"})}));  // no pod_uid
  HandoffHandler handler(&store);
  handler.EnableLimiter(&files, 0);
  auto r = handler.AllocateContainer({"GPU-1::0"}, Cards());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("memory limiter of ml/p/main"));
  EXPECT_EQ(store.pods[0].assignment.containers(0).device_ids_size(), 0) << "not acknowledged";
}

// Compute shares at Allocate: the pod's class and mode reach the config, the container takes a
// slot in its card's roster and gets the card's directory and its entry mounted; a failed
// acknowledgement frees the slot; a soft slice with a compute share and no memory still gets the
// limiter.
TEST(HandoffLimiter, AComputeShareTakesARosterSlotAndMountsItsCard) {
  testsupport::TempDir dir;
  LimiterFiles files(dir.path());
  OnePodStore store;
  store.pods.push_back(Pod("ml/p", {Container("main", {"GPU-1"})}));
  store.pods[0].assignment.set_pod_uid("uid-p");
  store.pods[0].workload_class = "inference";
  store.pods[0].work_conserving = true;
  HandoffHandler handler(&store);
  handler.EnableLimiter(&files, 0);
  auto r = handler.AllocateContainer({"GPU-1::0"}, Cards());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->mounts_size(), 6);
  EXPECT_EQ(r->mounts(4).host_path(), files.layout().CardDir("GPU-1"));
  EXPECT_EQ(r->mounts(4).container_path(), "/var/run/tideslice/cards/0");
  EXPECT_TRUE(r->mounts(4).read_only());
  EXPECT_EQ(r->mounts(5).host_path(), files.layout().EntryPath("GPU-1", 0));
  EXPECT_EQ(r->mounts(5).container_path(), "/var/run/tideslice/cards/0/entry-0");
  EXPECT_FALSE(r->mounts(5).read_only());
  EXPECT_TRUE(std::filesystem::exists(files.layout().EntryPath("GPU-1", 0)));
  EXPECT_TRUE(std::filesystem::exists(files.layout().RosterPath("GPU-1")));
  std::ifstream in(files.layout().ConfigPath("uid-p", "main"));
  std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_THAT(json, HasSubstr(R"("workloadClass": "inference")"));
  EXPECT_THAT(json, HasSubstr(R"("workConserving": true)"));
  EXPECT_THAT(json, HasSubstr(R"("coordinationDir": "/var/run/tideslice/cards/0")"));
  EXPECT_THAT(json, HasSubstr(R"("coordinationSlot": 0)"));
  ASSERT_EQ(files.SeatsOf("uid-p", "main").size(), 1u);
}

TEST(HandoffLimiter, AFailedAcknowledgementFreesTheRosterSlot) {
  testsupport::TempDir dir;
  LimiterFiles files(dir.path());
  OnePodStore store;
  store.pods.push_back(Pod("ml/p", {Container("main", {"GPU-1"})}));
  store.pods[0].assignment.set_pod_uid("uid-p");
  store.ack_error = "apiserver down";
  HandoffHandler handler(&store);
  handler.EnableLimiter(&files, 0);
  EXPECT_FALSE(handler.AllocateContainer({"GPU-1::0"}, Cards()).ok());
  EXPECT_FALSE(std::filesystem::exists(files.layout().PodDir("uid-p")));
  EXPECT_FALSE(std::filesystem::exists(files.layout().EntryPath("GPU-1", 0)));
  std::ifstream roster(files.layout().RosterPath("GPU-1"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(roster)), std::istreambuf_iterator<char>());
  ASSERT_EQ(bytes.size(), sizeof(limiter::Roster));
  limiter::Roster r;
  std::memcpy(&r, bytes.data(), sizeof r);
  for (const auto& slot : r.slots) EXPECT_EQ(slot.state, 0u) << "the slot is free again";
  // The retry succeeds and takes slot 0 again.
  store.ack_error.clear();
  auto again = handler.AllocateContainer({"GPU-1::0"}, Cards());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->mounts(5).container_path(), "/var/run/tideslice/cards/0/entry-0");
}

TEST(HandoffLimiter, AComputeOnlySoftSliceGetsTheLimiterWithoutAMemoryLimit) {
  testsupport::TempDir dir;
  LimiterFiles files(dir.path());
  OnePodStore store;
  auto c = Container("main", {"GPU-2"});
  c.mutable_slices(0)->set_memory_mib(0);
  store.pods.push_back(Pod("ml/p", {c}));
  store.pods[0].assignment.set_pod_uid("uid-p");
  HandoffHandler handler(&store);
  handler.EnableLimiter(&files, 0);
  auto r = handler.AllocateContainer({"GPU-2::0"}, Cards());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->envs().at("TIDESLICE_LIMITER"), "on");
  EXPECT_EQ(r->mounts_size(), 6);
  std::ifstream in(files.layout().ConfigPath("uid-p", "main"));
  std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_THAT(json, HasSubstr(R"("memoryLimitBytes": "0")"));
  EXPECT_THAT(json, HasSubstr(R"("computePermille": 300)"));
  EXPECT_THAT(json, HasSubstr(R"("workloadClass": "")"));
}

}  // namespace
}  // namespace tideslice::deviceplugin
