// Many pods (multi-container ones too) scheduled onto one node at once. The fake scheduler keeps
// the TideSlice invariant: it binds (makes visible to the kubelet) one pod per node at a time, in
// phase ALLOCATING, and the next only after the agent acknowledged every container of the
// previous one. Four "kubelet" workers race to admit whatever pod is visible and call Allocate
// per container over a real unix socket, init containers first. Every container must get exactly
// the cards the scheduler assigned it, and every response must name the pod that asked.
#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <unistd.h>

#include "device-plugin/plugin/handoff.h"
#include "tests/support/fake_cards.h"
#include "tests/support/test_support.h"

namespace tideslice::deviceplugin {
namespace {

// In-memory store plus the scheduler's one-pod-at-a-time rule.
class FakeScheduler : public AssignmentStore {
 public:
  void Bind(PendingPod pod) {
    std::lock_guard<std::mutex> lock(mu_);
    pod.assignment.set_phase(v1::ASSIGNMENT_PHASE_UNSPECIFIED);  // bound, waiting for its turn
    queue_.push_back(pod.pod_key);
    pods_[pod.pod_key] = std::move(pod);
    Promote();
  }
  StatusOr<std::vector<PendingPod>> PendingOnNode() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<PendingPod> out;
    for (const auto& [k, p] : pods_) out.push_back(p);
    return out;
  }
  Status Acknowledge(const std::string& pod_key, const std::string& container,
                     const std::vector<std::string>& ids) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto& a = pods_.at(pod_key).assignment;
    if (a.phase() != v1::ASSIGNMENT_PHASE_ALLOCATING)
      return Status::FailedPrecondition("pod " + pod_key + " is not allocating");
    bool all = true;
    for (auto& c : *a.mutable_containers()) {
      if (c.name() == container)
        for (const auto& id : ids) c.add_device_ids(id);
      if (c.slices_size() > 0 && c.device_ids_size() == 0) all = false;
    }
    if (all) {
      a.set_phase(v1::ASSIGNMENT_PHASE_ALLOCATED);
      Promote();
    }
    return Status::Ok();
  }
  std::string Allocating() {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [k, p] : pods_)
      if (p.assignment.phase() == v1::ASSIGNMENT_PHASE_ALLOCATING) return k;
    return "";
  }

 private:
  void Promote() {  // at most one pod of this node in ALLOCATING
    for (const auto& [k, p] : pods_)
      if (p.assignment.phase() == v1::ASSIGNMENT_PHASE_ALLOCATING) return;
    while (!queue_.empty()) {
      auto& p = pods_.at(queue_.front());
      queue_.erase(queue_.begin());
      if (p.assignment.phase() == v1::ASSIGNMENT_PHASE_UNSPECIFIED) {
        p.assignment.set_phase(v1::ASSIGNMENT_PHASE_ALLOCATING);
        return;
      }
    }
  }
  std::mutex mu_;
  std::map<std::string, PendingPod> pods_;
  std::vector<std::string> queue_;
};

TEST(HandoffConcurrency, EveryContainerGetsExactlyItsAssignedCards) {
  testsupport::TempDir tmp("tshandoff");
  const std::string& dir = tmp.path();
  DeviceState devices;
  std::vector<DeviceInfo> cards = testsupport::FakeH100s(8);
  devices.Set(cards);
  FakeScheduler scheduler;
  HandoffHandler handler(&scheduler);
  PluginOptions o;
  o.socket_dir = dir;
  o.replicas_per_card = 16;
  PluginServer server(o, &devices, &handler);
  ASSERT_TRUE(server.Start().ok());

  // 30 pods; every third has an init container and two app containers.
  std::mt19937 rng(7);
  struct Expect {
    std::string pod, container;
    std::vector<std::string> cards;
  };
  std::vector<Expect> expected;
  std::map<std::string, std::vector<std::pair<std::string, std::vector<std::string>>>> kubelet_order;
  for (int p = 0; p < 30; ++p) {
    PendingPod pod;
    pod.pod_key = "ns/pod-" + std::to_string(p);
    pod.assignment.set_node_name("node");
    int containers = p % 3 == 0 ? 3 : 1;
    for (int c = 0; c < containers; ++c) {
      auto* ca = pod.assignment.add_containers();
      ca->set_name("c" + std::to_string(c));
      ca->set_init_container(containers == 3 && c == 0);
      int n = 1 + static_cast<int>(rng() % 3);
      std::vector<std::string> chosen;
      for (int k = 0; k < n; ++k) {
        std::string uuid = "GPU-" + std::to_string((p + 3 * k + c) % 8);
        if (std::find(chosen.begin(), chosen.end(), uuid) != chosen.end()) continue;
        chosen.push_back(uuid);
        auto* s = ca->add_slices();
        s->set_card_uuid(uuid);
        s->set_memory_mib(4096);
        s->set_compute_permille(100);
      }
      expected.push_back({pod.pod_key, ca->name(), chosen});
    }
    // What a kubelet does: init containers first, then app containers.
    for (bool init : {true, false})
      for (const auto& ca : pod.assignment.containers())
        if (ca.init_container() == init) {
          std::vector<std::string> ids;
          for (int k = 0; k < ca.slices_size(); ++k) ids.push_back("GPU-" + std::to_string(k) + "::" + std::to_string(p % 16));
          kubelet_order[pod.pod_key].push_back({ca.name(), ids});
        }
    scheduler.Bind(pod);
  }

  std::mutex results_mu;
  std::map<std::pair<std::string, std::string>, std::string> got;  // (pod, container) -> visible devices
  std::set<std::string> admitted;
  std::atomic<int> wrong{0}, failed{0};
  auto worker = [&] {
    auto stub = v1beta1::DevicePlugin::NewStub(
        grpc::CreateChannel("unix://" + server.socket_path(), grpc::InsecureChannelCredentials()));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      std::string key = scheduler.Allocating();  // the one pod bound to this node and not yet started
      {
        std::lock_guard<std::mutex> lock(results_mu);
        if (admitted.size() == kubelet_order.size()) return;
        if (key.empty() || admitted.count(key)) {
          key.clear();
        } else {
          admitted.insert(key);  // this worker admits it; the kubelet admits a pod once
        }
      }
      if (key.empty()) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        continue;
      }
      for (const auto& [container, ids] : kubelet_order[key]) {
        grpc::ClientContext ctx;
        v1beta1::AllocateRequest req;
        auto* c = req.add_container_requests();
        for (const auto& id : ids) c->add_devices_ids(id);
        v1beta1::AllocateResponse resp;
        grpc::Status st = stub->Allocate(&ctx, req, &resp);
        std::lock_guard<std::mutex> lock(results_mu);
        if (!st.ok()) {
          failed++;
          ADD_FAILURE() << key << "/" << container << ": " << st.error_message();
          continue;
        }
        const auto& r = resp.container_responses(0);
        if (r.annotations().at("tideslice.io/pod") != key || r.annotations().at("tideslice.io/container") != container)
          wrong++;
        got[{key, container}] = r.envs().at("NVIDIA_VISIBLE_DEVICES");
      }
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back(worker);
  for (auto& t : threads) t.join();

  EXPECT_EQ(admitted.size(), 30u);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(scheduler.Allocating(), "");
  for (const auto& e : expected) {
    std::vector<std::string> sorted = e.cards;
    std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return std::stoi(a.substr(4)) < std::stoi(b.substr(4)); });
    std::string want;
    for (const auto& u : sorted) want += (want.empty() ? "" : ",") + u;
    auto it = got.find({e.pod, e.container});
    ASSERT_NE(it, got.end()) << e.pod << "/" << e.container << " never got its slices";
    EXPECT_EQ(it->second, want) << e.pod << "/" << e.container;
  }
  EXPECT_EQ(got.size(), expected.size());
  server.Stop();
  devices.Shutdown();
}

}  // namespace
}  // namespace tideslice::deviceplugin
