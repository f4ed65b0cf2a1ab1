// The NVML backend's topology on the machine layouts of deploy/examples, through the real backend
// code (fake NVML + a sysfs tree in a temporary directory), and multi-card placement end to end:
// NVML -> DeviceInfo -> the node's inventory -> the scheduler's NodeState -> the placement core.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "common/kube/pod_spec.h"
#include "device-plugin/backends/mock_backend.h"
#include "device-plugin/plugin/inventory.h"
#include "scheduler/core/placement.h"
#include "scheduler/core/request.h"
#include "scheduler/service/state.h"
#include "tests/device-plugin/fake_nvml_machine.h"

namespace tideslice::deviceplugin {
namespace {

namespace fake = testsupport::fakenvml;
using ::testing::ElementsAre;

const catalog::Catalog& Cat() { return catalog::Catalog::Builtin(); }

// The layout's own cards (what the mock backend reads), for comparison.
std::vector<DeviceInfo> LayoutCards(const std::string& file) {
  auto mock = MockBackend::FromFile(std::string(TIDESLICE_SOURCE_DIR) + "/deploy/examples/" + file, Cat());
  EXPECT_TRUE(mock.ok()) << mock.status().ToString();
  return *(*mock)->Discover();
}

class NvmlLayoutTest : public ::testing::TestWithParam<std::string> {};

// Every NVIDIA layout: what the NVML backend derives from the driver and sysfs equals what the
// layout says (UUIDs, model, memory, bus ID, NUMA node, CPUs, link domain).
TEST_P(NvmlLayoutTest, BackendReadsTheMachineAsTheLayoutDescribesIt) {
  testsupport::TempDir sysfs("tssysfs");
  fake::LoadLayout(GetParam(), sysfs.path());
  NvmlOptions options;
  options.sysfs_root = sysfs.path();
  auto backend = NvmlBackend::Create(fake::Api(), Cat(), options);
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  auto cards = (*backend)->Discover();
  ASSERT_TRUE(cards.ok()) << cards.status().ToString();
  auto want = LayoutCards(GetParam());
  ASSERT_EQ(cards->size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const DeviceInfo& got = (*cards)[i];
    SCOPED_TRACE(got.uuid);
    EXPECT_EQ(got.uuid, want[i].uuid);
    EXPECT_EQ(got.model, want[i].model);
    EXPECT_EQ(got.memory_mib, want[i].memory_mib);
    EXPECT_EQ(got.pci_bus_id, want[i].pci_bus_id);
    EXPECT_EQ(got.numa_node, want[i].numa_node);
    EXPECT_EQ(got.cpu_affinity, want[i].cpu_affinity);
    EXPECT_EQ(got.link_domain, want[i].link_domain);
    EXPECT_EQ(got.compute_units, want[i].compute_units);
    EXPECT_EQ(got.driver_version, "550.54.15");
    EXPECT_TRUE(got.healthy);
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, NvmlLayoutTest,
                         ::testing::Values("h100-sxm-nvswitch.json", "a100-pcie-nvlink-pairs.json",
                                           "mixed-t4-inference.json"));

TEST(NvmlTopologyTest, LinkCountsAreWhatTopoMatrixShows) {
  testsupport::TempDir sysfs("tssysfs");
  fake::LoadLayout("a100-pcie-nvlink-pairs.json", sysfs.path());
  NvmlOptions options;
  options.sysfs_root = sysfs.path();
  auto b = NvmlBackend::Create(fake::Api(), Cat(), options);
  ASSERT_TRUE((*b)->Discover().ok());
  auto links = (*b)->LastNvLinks();
  const auto& g0 = links.at(fake::M().gpus[0].uuid);
  EXPECT_EQ(g0.active, 12);
  EXPECT_EQ(g0.to_switch, 0);
  EXPECT_EQ(g0.to_peer, (std::map<std::string, int>{{fake::M().gpus[1].uuid, 12}}));  // NV12 to its bridge partner

  fake::LoadLayout("h100-sxm-nvswitch.json", sysfs.path());
  auto h = NvmlBackend::Create(fake::Api(), Cat(), options);
  ASSERT_TRUE((*h)->Discover().ok());
  const auto h_links = (*h)->LastNvLinks();
  const auto& h0 = h_links.at(fake::M().gpus[0].uuid);
  EXPECT_EQ(h0.active, 18);
  EXPECT_EQ(h0.to_switch, 18);
  EXPECT_TRUE(h0.to_peer.empty());
}

TEST(NvmlTopologyTest, UnknownOrMalformedSysfsIsUnknownNotAGuess) {
  testsupport::TempDir sysfs("tssysfs");
  fake::LoadLayout("mixed-t4-inference.json", sysfs.path());
  const std::string dev0 = sysfs.path() + "/bus/pci/devices/0000:3b:00.0";
  std::ofstream(dev0 + "/numa_node") << "-1\n";  // what VMs show
  std::filesystem::remove(dev0 + "/local_cpulist");
  const std::string dev1 = sysfs.path() + "/bus/pci/devices/0000:5e:00.0";
  std::ofstream(dev1 + "/numa_node") << "zero\n";
  std::ofstream(dev1 + "/local_cpulist") << "3-1\n";
  NvmlOptions options;
  options.sysfs_root = sysfs.path();
  auto b = NvmlBackend::Create(fake::Api(), Cat(), options);
  auto cards = (*b)->Discover();
  ASSERT_TRUE(cards.ok());
  EXPECT_EQ((*cards)[0].numa_node, -1);
  EXPECT_EQ((*cards)[0].cpu_affinity, "");
  EXPECT_EQ((*cards)[1].numa_node, -1);
  EXPECT_EQ((*cards)[1].cpu_affinity, "");
  EXPECT_EQ((*cards)[2].numa_node, 1);
  // Without NVLink every card is a domain of its own, named after itself.
  EXPECT_EQ((*cards)[0].link_domain, "gpu-0");
  EXPECT_EQ((*cards)[5].link_domain, "gpu-5");
  // A driver without the NVLink and PCI functions: nothing is made up.
  NvmlApi old = fake::Api();
  old.device_get_nvlink_state = nullptr;
  old.device_get_pci_info = nullptr;
  auto o = NvmlBackend::Create(old, Cat(), options);
  auto plain = (*o)->Discover();
  EXPECT_EQ((*plain)[2].numa_node, -1);
  EXPECT_EQ((*plain)[2].link_domain, "");
  EXPECT_EQ((*plain)[2].pci_bus_id, "");
}

// ---- end to end: NVML -> inventory -> placement core ----

class PlacementOnLayout {
 public:
  explicit PlacementOnLayout(const std::string& layout) {
    fake::LoadLayout(layout, sysfs_.path());
    NvmlOptions options;
    options.sysfs_root = sysfs_.path();
    auto b = NvmlBackend::Create(fake::Api(), Cat(), options);
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    backend_ = std::move(*b);
    auto cards = backend_->Discover();
    EXPECT_TRUE(cards.ok());
    cards_ = *cards;
    v1::NodeInventory inv = BuildInventory("n", "nvml", cards_, Cat(), std::chrono::system_clock::now());
    cluster_.AddNode(service::NodeFromInventory(inv, {}, Cat(), cluster_));
  }
  // Someone else's pod holds these cards whole.
  void Occupy(std::vector<int> indexes) {
    core::PodPlacement p;
    p.pod_key = "default/other-" + std::to_string(others_++);
    p.pod_uid = "uid-" + p.pod_key;
    p.node = "n";
    core::ContainerGrant c;
    c.name = "main";
    const core::NodeState* node = cluster_.FindNode("n");
    for (int i : indexes) {
      core::CardGrant g;
      g.card_index = i;
      g.uuid = node->cards[static_cast<size_t>(i)].uuid;
      g.whole = true;
      g.compute_permille = 1000;
      g.memory_mib = node->cards[static_cast<size_t>(i)].memory_mib;
      c.cards.push_back(g);
    }
    p.containers.push_back(c);
    ASSERT_TRUE(core::Adopt(cluster_, p).ok());
  }
  // The cards (NVML indexes) the core picks for a pod asking for `gpus` whole GPUs.
  std::vector<int> Place(int gpus) {
    kube::PodSpec pod;
    pod.name = "trainer";
    pod.namespace_name = "default";
    pod.uid = "uid-trainer";
    kube::ContainerSpec c;
    c.name = "main";
    c.limits = {{"nvidia.com/gpu", std::to_string(gpus)}};
    pod.containers.push_back(c);
    auto req = core::PreFilter(pod, Cat());
    EXPECT_TRUE(req.ok()) << req.status().ToString();
    core::Context ctx;
    core::NodeVerdict v = core::Filter(*cluster_.FindNode("n"), *req, ctx);
    EXPECT_EQ(v.kind, core::VerdictKind::kFits) << v.reason;
    std::vector<int> out;
    for (const auto& g : v.plan.containers.at(0).cards) out.push_back(cluster_.FindNode("n")->cards[static_cast<size_t>(g.card_index)].index);
    std::sort(out.begin(), out.end());
    return out;
  }
  const DeviceInfo& Card(int index) const { return cards_.at(static_cast<size_t>(index)); }

 private:
  testsupport::TempDir sysfs_{"tssysfs"};
  std::unique_ptr<NvmlBackend> backend_;
  std::vector<DeviceInfo> cards_;
  core::ClusterState cluster_;
  int others_ = 0;
};

// A100 PCIe with bridges in pairs: a 2-GPU pod gets a whole bridged pair, even when lower-numbered
// free cards exist that are not bridged to each other; a 4-GPU pod (no domain that large) gets
// one NUMA node.
TEST(NvmlPlacementEndToEnd, A100PairsKeepTwoGpuPodsOnOneBridge) {
  PlacementOnLayout node("a100-pcie-nvlink-pairs.json");
  EXPECT_THAT(node.Place(2), ElementsAre(0, 1));
  node.Occupy({0, 2});  // half of pair 0+1 and half of pair 2+3 are taken
  std::vector<int> two = node.Place(2);
  EXPECT_THAT(two, ElementsAre(4, 5)) << "1 and 3 are free too, but are not bridged";
  EXPECT_EQ(node.Card(two[0]).link_domain, node.Card(two[1]).link_domain);
  // Four cards: no NVLink domain has four, so one NUMA node: 4-7 (node 1), not 1,3,4,5.
  EXPECT_THAT(node.Place(4), ElementsAre(4, 5, 6, 7));
  node.Occupy({5});
  // Node 1 has 3 free cards left, node 0 has 2: four cards must cross nodes, and still fit.
  EXPECT_EQ(node.Place(4).size(), 4u);
}

// H100 with NVSwitch: all eight GPUs are one NVLink domain, so any set of free GPUs is
// NVLink-connected; an 8-GPU pod fits the domain, and pods of 2 and 4 stay inside it.
TEST(NvmlPlacementEndToEnd, H100NvSwitchIsOneDomainForEveryPodSize) {
  PlacementOnLayout node("h100-sxm-nvswitch.json");
  for (int i = 0; i < 8; ++i) EXPECT_EQ(node.Card(i).link_domain, "nvlink-0");
  EXPECT_THAT(node.Place(8), ElementsAre(0, 1, 2, 3, 4, 5, 6, 7));
  EXPECT_THAT(node.Place(4), ElementsAre(0, 1, 2, 3));  // also one NUMA node, as the lowest indexes are
  node.Occupy({1, 6});
  std::vector<int> four = node.Place(4);
  ASSERT_EQ(four.size(), 4u);
  for (int i : four) EXPECT_EQ(node.Card(i).link_domain, "nvlink-0");
  EXPECT_THAT(node.Place(2), ElementsAre(0, 2));
}

}  // namespace
}  // namespace tideslice::deviceplugin
