// sysfs reading (NUMA node, CPU lists, PCI addresses), the link-domain union-find, and the
// machine layouts of deploy/examples as the mock backend reads them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "device-plugin/backends/host_topology.h"
#include "device-plugin/backends/link_domains.h"
#include "device-plugin/backends/mock_backend.h"
#include "tests/support/test_support.h"

namespace tideslice::deviceplugin {
namespace {

using ::testing::HasSubstr;

TEST(HostTopologyTest, PciAddressesInEveryFormTheDriversUse) {
  EXPECT_EQ(CanonicalPciAddress("00000000:17:00.0"), "0000:17:00.0");  // NVML busId
  EXPECT_EQ(CanonicalPciAddress("0000:C1:00.0"), "0000:c1:00.0");      // npu-smi
  EXPECT_EQ(CanonicalPciAddress("17:00.0"), "0000:17:00.0");
  EXPECT_EQ(CanonicalPciAddress("00000001:3b:1f.7"), "0001:3b:1f.7");
  for (const char* bad : {"", "17:00", "0000:17:00.0/../x", "0000:1g:00.0", "100000000:17:00.0", "0001FFFF:17:00.0",
                          "0000:17:20.0", "0000:17:00.8", "a:b:c:d.0"})
    EXPECT_EQ(CanonicalPciAddress(bad), "") << bad;
  EXPECT_EQ(PciAddress(0, 0xc1, 0, 0), "0000:c1:00.0");
  EXPECT_EQ(PciAddress(0x10000, 1, 0, 0), "");
}

TEST(HostTopologyTest, CpuListsAreCheckedAndNormalised) {
  std::string out;
  std::vector<int> cpus;
  ASSERT_TRUE(ParseCpuList("0-3,8,10-11\n", &out, &cpus));
  EXPECT_EQ(out, "0-3,8,10-11");
  EXPECT_EQ(cpus, (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
  ASSERT_TRUE(ParseCpuList("", &out));
  EXPECT_EQ(out, "");
  for (const char* bad : {"3-1", "1,1", "4,2", "1-", ",1", "1,", "a", "1-2-3", "70000", "0-99999"})
    EXPECT_FALSE(ParseCpuList(bad, &out)) << bad;
}

TEST(HostTopologyTest, NumaNodeAndCpusFromSysfs) {
  testsupport::TempDir root("tssys");
  const std::string dev = root.path() + "/bus/pci/devices/0000:17:00.0";
  std::filesystem::create_directories(dev);
  std::filesystem::create_directories(root.path() + "/devices/system/node/node1");
  std::ofstream(dev + "/numa_node") << "1\n";
  std::ofstream(root.path() + "/devices/system/node/node1/cpulist") << "24-47,72-95\n";
  HostTopology host(root.path());
  EXPECT_EQ(host.NumaNode("0000:17:00.0"), 1);
  EXPECT_EQ(host.CpuAffinity("0000:17:00.0"), "24-47,72-95");  // the node's CPUs when local_cpulist is missing
  std::ofstream(dev + "/local_cpulist") << "24-35\n";
  EXPECT_EQ(host.CpuAffinity("0000:17:00.0"), "24-35");
  for (const char* text : {"-1\n", "", "x\n", "99999\n", "1 2\n", "-\n"}) {
    std::ofstream(dev + "/numa_node") << text;
    EXPECT_EQ(host.NumaNode("0000:17:00.0"), -1) << text;
  }
  std::ofstream(dev + "/numa_node") << std::string(10000, '1');
  EXPECT_EQ(host.NumaNode("0000:17:00.0"), -1);
  EXPECT_EQ(host.NumaNode("0000:99:00.0"), -1);
  EXPECT_EQ(host.NumaNode("../../etc"), -1);
  EXPECT_EQ(host.CpuAffinity(""), "");
}

TEST(LinkDomainsTest, UnionFindJoinsChainsAndHubs) {
  LinkDomains d(6);
  d.Link(0, 1);
  d.Link(1, 2);  // chain: 0-1-2
  int hub = d.AddHub();
  d.Link(4, hub);
  d.Link(5, hub);  // 4 and 5 through a switch
  d.Link(3, 99);   // out of range: ignored
  EXPECT_EQ(d.Names("nvlink-", {10, 11, 12, 13, 14, 15}, "gpu-"),
            (std::vector<std::string>{"nvlink-10", "nvlink-10", "nvlink-10", "gpu-13", "nvlink-14", "nvlink-14"}));
  LinkDomains none(2);
  EXPECT_EQ(none.Names("x-", {0, 1}, "solo-"), (std::vector<std::string>{"solo-0", "solo-1"}));
}

// Every layout in deploy/examples loads, with the topology facts the tests rely on.
TEST(MachineLayoutsTest, EveryLayoutLoadsWithItsTopology) {
  struct Want {
    const char* file;
    size_t cards;
    size_t domains;
    size_t numa_nodes;
  };
  for (const Want& w : {Want{"h100-sxm-nvswitch.json", 8, 1, 2}, Want{"a100-pcie-nvlink-pairs.json", 8, 4, 2},
                        Want{"atlas-800t-a2.json", 8, 1, 4}, Want{"atlas-300i-duo.json", 8, 4, 2},
                        Want{"mixed-t4-inference.json", 6, 6, 2}}) {
    SCOPED_TRACE(w.file);
    auto b = MockBackend::FromFile(std::string(TIDESLICE_SOURCE_DIR) + "/deploy/examples/" + w.file,
                                   catalog::Catalog::Builtin());
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    auto cards = (*b)->Discover();
    ASSERT_EQ(cards->size(), w.cards);
    std::set<std::string> domains;
    std::set<int> numa;
    for (const auto& c : *cards) {
      domains.insert(c.link_domain);
      numa.insert(c.numa_node);
      EXPECT_FALSE(c.pci_bus_id.empty());
      EXPECT_FALSE(c.cpu_affinity.empty());
      EXPECT_GT(c.compute_units, 0);
    }
    EXPECT_EQ(domains.size(), w.domains);
    EXPECT_EQ(numa.size(), w.numa_nodes);
  }
  auto bad = MockBackend::FromJson(R"({"machine": {"interconnect": "infiniband"}, "cards": [{"uuid": "g", "model": "T4"}]})",
                                   catalog::Catalog::Builtin());
  EXPECT_THAT(bad.status().message(), HasSubstr("nvswitch, nvlink-bridge, pcie or hccs"));
  bad = MockBackend::FromJson(R"({"cards": [{"uuid": "g", "model": "T4", "pciBusId": "17:00"}]})", catalog::Catalog::Builtin());
  EXPECT_THAT(bad.status().message(), HasSubstr("is not a PCI address"));
  bad = MockBackend::FromJson(R"({"cards": [{"uuid": "g", "model": "T4", "cpuAffinity": "3-1"}]})", catalog::Catalog::Builtin());
  EXPECT_THAT(bad.status().message(), HasSubstr("is not a CPU list"));
}

}  // namespace
}  // namespace tideslice::deviceplugin
