// The allocation metrics as the agent feeds them from its pod reflector: after a restart the
// reflector's first list carries every pod already allocated on the node, and the metrics must
// show each of them with its full memory.
#include "device-plugin/exporter/allocation_metrics.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "common/codec/annotations.h"
#include "common/kube/objects.h"
#include "device-plugin/kube/kube_assignment_store.h"

namespace tideslice::deviceplugin {
namespace {

using nlohmann::json;

json AllocatedPod(const std::string& name, const std::string& card, int64_t memory_mib) {
  v1::PodAssignment a;
  a.set_phase(v1::ASSIGNMENT_PHASE_ALLOCATED);
  a.set_node_name("gpu-node-1");
  a.set_pod_uid("uid-" + name);
  auto* c = a.add_containers();
  c->set_name("main");
  c->add_device_ids(card + "::0");
  auto* s = c->add_slices();
  s->set_card_uuid(card);
  s->set_memory_mib(memory_mib);
  s->set_compute_permille(250);
  json pod = {{"metadata", {{"namespace", "ml"}, {"name", name}, {"uid", "uid-" + name}}},
              {"spec", {{"nodeName", "gpu-node-1"}}},
              {"status", {{"phase", "Running"}}}};
  pod["metadata"]["annotations"][std::string(codec::kAssignmentAnnotation)] = codec::EncodeAssignment(a);
  return pod;
}

// Sum of one family's samples, and the pods it names.
double Sum(prometheus::Registry& registry, const std::string& family, std::set<std::string>* pods = nullptr) {
  double total = 0;
  for (const auto& f : registry.Collect()) {
    if (f.name != family) continue;
    for (const auto& m : f.metric) {
      total += m.gauge.value;
      if (pods)
        for (const auto& l : m.label)
          if (l.name == "pod") pods->insert(l.value);
    }
  }
  return total;
}

TEST(AllocationMetricsFeed, RestartListShowsEveryAllocatedPodWithItsFullMemory) {
  DeviceInfo card;
  card.uuid = "GPU-a";
  card.vendor = "nvidia";
  card.model = "H100-80G";
  card.memory_mib = 81920;
  // The agent starts on a node where three pods already hold 2 GiB each: the reflector's first
  // list (Replace) is all it hears about them until one of them changes.
  std::vector<json> listed = {AllocatedPod("a", "GPU-a", 2048), AllocatedPod("b", "GPU-a", 2048),
                              AllocatedPod("c", "GPU-a", 2048)};
  std::map<std::string, json> on_node;
  ReplacePodsByKey(on_node, std::move(listed));
  ASSERT_EQ(on_node.size(), 3u);
  EXPECT_EQ(on_node.count("ml/a") + on_node.count("ml/b") + on_node.count("ml/c"), 3u);

  std::vector<json> pods;
  for (const auto& [key, pod] : on_node) pods.push_back(pod);
  auto registry = std::make_shared<prometheus::Registry>();
  AllocationMetrics metrics(registry, "gpu-node-1");
  metrics.Update({card}, AllocationsFromPods(pods));

  std::set<std::string> named;
  EXPECT_EQ(Sum(*registry, "tideslice_container_memory_allocated_bytes", &named), 6.0 * (1ll << 30));
  EXPECT_EQ(named, (std::set<std::string>{"a", "b", "c"}));
  EXPECT_EQ(Sum(*registry, "tideslice_card_memory_allocated_bytes"), 6.0 * (1ll << 30));
  EXPECT_EQ(Sum(*registry, "tideslice_card_slices_assigned"), 3);

  // A later watch event for one of them lands on the same entry, not beside it.
  on_node[kube::PodKey(AllocatedPod("b", "GPU-a", 2048))] = AllocatedPod("b", "GPU-a", 4096);
  EXPECT_EQ(on_node.size(), 3u);

  // A relist replaces: a pod gone meanwhile is forgotten.
  ReplacePodsByKey(on_node, {AllocatedPod("a", "GPU-a", 2048)});
  EXPECT_EQ(on_node.size(), 1u);
  EXPECT_EQ(on_node.count("ml/a"), 1u);
}

}  // namespace
}  // namespace tideslice::deviceplugin
