#include "device-plugin/dra/resource_slices.h"

#include <map>
#include <set>

#include <gtest/gtest.h>

namespace tideslice::dra {
namespace {

using deviceplugin::DeviceInfo;
using nlohmann::json;

DeviceInfo Card(int index, const std::string& model, const std::string& vendor, int64_t mib, bool mig = false) {
  DeviceInfo d;
  d.uuid = "GPU-" + std::to_string(index);
  d.index = index;
  d.vendor = vendor;
  d.model = model;
  d.memory_mib = mib;
  d.mig_enabled = mig;
  d.numa_node = index / 4;
  d.link_domain = "nvl0";
  d.driver_version = "550.54.15";
  return d;
}

std::vector<json> Slices(const std::vector<DeviceInfo>& cards, SliceLayout layout, int64_t gen = 1) {
  auto inv = BuildNodeInventory(cards, catalog::Catalog::Builtin(), layout);
  EXPECT_TRUE(inv.ok()) << inv.status().ToString();
  SliceTarget t;
  t.node_name = "node-a";
  t.node_uid = "uid-node-a";
  t.generation = gen;
  auto slices = BuildResourceSlices(*inv, t);
  EXPECT_TRUE(slices.ok()) << slices.status().ToString();
  return slices.ok() ? *slices : std::vector<json>{};
}

std::map<std::string, json> DevicesByName(const std::vector<json>& slices) {
  std::map<std::string, json> out;
  for (const auto& s : slices)
    if (s["spec"].contains("devices"))
      for (const auto& d : s["spec"]["devices"]) out[d["name"]] = d;
  return out;
}

TEST(DraResourceSlices, WholeCardAttributesCapacitiesAndPool) {
  auto slices = Slices({Card(0, "H100-80G", "nvidia", 81920)}, SliceLayout::kBasic, 7);
  ASSERT_EQ(slices.size(), 1u);
  const json& s = slices[0];
  EXPECT_EQ(s["apiVersion"], "resource.k8s.io/v1");
  EXPECT_EQ(s["kind"], "ResourceSlice");
  EXPECT_EQ(s["metadata"]["name"], "node-a-tideslice.io-0");
  EXPECT_EQ(s["metadata"]["ownerReferences"][0]["kind"], "Node");
  EXPECT_EQ(s["metadata"]["ownerReferences"][0]["uid"], "uid-node-a");
  EXPECT_EQ(s["spec"]["driver"], "tideslice.io");
  EXPECT_EQ(s["spec"]["nodeName"], "node-a");
  EXPECT_EQ(s["spec"]["pool"], (json{{"name", "node-a"}, {"generation", 7}, {"resourceSliceCount", 1}}));
  EXPECT_FALSE(s["spec"].contains("sharedCounters"));
  ASSERT_EQ(s["spec"]["devices"].size(), 1u);
  const json& d = s["spec"]["devices"][0];
  EXPECT_EQ(d["name"], "card-0");
  EXPECT_EQ(d["attributes"]["type"]["string"], "card");
  EXPECT_EQ(d["attributes"]["vendor"]["string"], "nvidia");
  EXPECT_EQ(d["attributes"]["model"]["string"], "H100-80G");
  EXPECT_EQ(d["attributes"]["uuid"]["string"], "GPU-0");
  EXPECT_EQ(d["attributes"]["computeUnits"]["int"], 132);
  EXPECT_EQ(d["attributes"]["fp16Tflops"]["int"], 989);
  EXPECT_EQ(d["attributes"]["numaNode"]["int"], 0);
  EXPECT_EQ(d["attributes"]["linkDomain"]["string"], "nvl0");
  EXPECT_EQ(d["attributes"]["driverVersion"]["string"], "550.54.15");
  EXPECT_EQ(d["capacity"]["memory"]["value"], "81920Mi");
  EXPECT_EQ(d["capacity"]["cores"]["value"], "100");
  EXPECT_FALSE(d.contains("consumesCounters"));  // basic layout: no gated fields
  EXPECT_FALSE(d.contains("allowMultipleAllocations"));
}

TEST(DraResourceSlices, SharedCardPoliciesMatchTheLimiter) {
  auto devices = DevicesByName(Slices({Card(1, "A10", "nvidia", 24576)}, SliceLayout::kPartitionable));
  ASSERT_TRUE(devices.count("card-1-shared"));
  const json& d = devices["card-1-shared"];
  EXPECT_EQ(d["allowMultipleAllocations"], true);
  EXPECT_EQ(d["capacity"]["memory"]["value"], "24576Mi");
  // Memory in whole MiB (the limiter's unit), default the whole card; cores in percent, 0 = best effort.
  EXPECT_EQ(d["capacity"]["memory"]["requestPolicy"],
            (json{{"default", "24576Mi"}, {"validRange", {{"min", "1Mi"}, {"step", "1Mi"}}}}));
  EXPECT_EQ(d["capacity"]["cores"]["requestPolicy"],
            (json{{"default", "0"}, {"validRange", {{"min", "0"}, {"max", "100"}, {"step", "1"}}}}));
  // Whole card and shared card exclude each other through the card's counters.
  EXPECT_EQ(d["consumesCounters"], devices["card-1"]["consumesCounters"]);
  EXPECT_EQ(d["consumesCounters"][0]["counterSet"], "card-1");
}

TEST(DraResourceSlices, MigPlacementsConsumeMemorySlicesAndComputeSlices) {
  auto slices = Slices({Card(0, "A100-40G", "nvidia", 40960, /*mig=*/true)}, SliceLayout::kPartitionable);
  ASSERT_EQ(slices.size(), 2u);  // one slice of counter sets, one of devices (1.35+ split layout)
  ASSERT_TRUE(slices[0]["spec"].contains("sharedCounters"));
  EXPECT_FALSE(slices[0]["spec"].contains("devices"));
  const json& set = slices[0]["spec"]["sharedCounters"][0];
  EXPECT_EQ(set["name"], "card-0");
  EXPECT_EQ(set["counters"]["compute-slices"]["value"], "7");
  for (int i = 0; i < 8; ++i) EXPECT_EQ(set["counters"]["memory-slice-" + std::to_string(i)]["value"], "1");
  for (const auto& s : slices) EXPECT_EQ(s["spec"]["pool"]["resourceSliceCount"], 2);
  auto devices = DevicesByName(slices);
  EXPECT_FALSE(devices.count("card-0"));  // a MIG-enabled card is handed out as MIG instances only
  EXPECT_FALSE(devices.count("card-0-shared"));
  // A100-40G: 1g.5gb x7, 1g.10gb x4, 2g.10gb x3, 3g.20gb x2, 4g.20gb x1, 7g.40gb x1.
  EXPECT_EQ(devices.size(), 18u);
  const json& d = devices.at("card-0-mig-3g20gb-4");
  EXPECT_EQ(d["attributes"]["profile"]["string"], "3g.20gb");
  EXPECT_EQ(d["attributes"]["migStartSlot"]["int"], 4);
  json used = d["consumesCounters"][0]["counters"];
  EXPECT_EQ(used["compute-slices"]["value"], "3");
  std::set<std::string> slots;
  for (const auto& [k, v] : used.items())
    if (k.rfind("memory-slice-", 0) == 0) slots.insert(k);
  EXPECT_EQ(slots, (std::set<std::string>{"memory-slice-4", "memory-slice-5", "memory-slice-6", "memory-slice-7"}));
}

TEST(DraResourceSlices, AscendTemplatesAsManyAsFitAnEmptyCard) {
  auto devices = DevicesByName(Slices({Card(0, "Ascend910B3", "huawei", 65536)}, SliceLayout::kPartitionable));
  // 910B3: 20 AI cores, 7 AI CPUs, 64 GiB; vir05_1c_16g fits 4 times, vir10_3c_32g twice.
  int five = 0, ten = 0;
  for (const auto& [name, d] : devices) {
    if (name.rfind("card-0-vnpu-vir05-1c-16g-", 0) == 0) ++five;
    if (name.rfind("card-0-vnpu-vir10-3c-32g-", 0) == 0) ++ten;
  }
  EXPECT_EQ(five, 4);
  EXPECT_EQ(ten, 2);
  const json& v = devices.at("card-0-vnpu-vir10-3c-32g-1");
  EXPECT_EQ(v["attributes"]["type"]["string"], "vnpu");
  EXPECT_EQ(v["attributes"]["profile"]["string"], "vir10_3c_32g");
  EXPECT_EQ(v["consumesCounters"][0]["counters"],
            (json{{"memory", {{"value", "32768Mi"}}}, {"aicore", {{"value", "10"}}}, {"aicpu", {{"value", "3"}}}}));
  EXPECT_TRUE(devices.count("card-0"));
  EXPECT_TRUE(devices.count("card-0-shared"));
}

TEST(DraResourceSlices, UnhealthyCardIsTaintedNotDropped) {
  auto cards = std::vector<DeviceInfo>{Card(0, "H100-80G", "nvidia", 81920), Card(1, "H100-80G", "nvidia", 81920)};
  cards[1].healthy = false;
  auto devices = DevicesByName(Slices(cards, SliceLayout::kPartitionable));
  ASSERT_TRUE(devices.count("card-1"));
  EXPECT_FALSE(devices["card-0"].contains("taints"));
  for (const char* name : {"card-1", "card-1-shared"}) {
    ASSERT_TRUE(devices[name].contains("taints")) << name;
    EXPECT_EQ(devices[name]["taints"][0]["key"], "tideslice.io/unhealthy");
    EXPECT_EQ(devices[name]["taints"][0]["effect"], "NoSchedule");
    EXPECT_EQ(devices[name]["attributes"]["healthy"]["bool"], false);
  }
}

TEST(DraResourceSlices, ManyCardsSplitWithinTheApiLimits) {
  std::vector<DeviceInfo> cards;
  for (int i = 0; i < 16; ++i) cards.push_back(Card(i, "Ascend910A", "huawei", 32768));
  auto slices = Slices(cards, SliceLayout::kPartitionable);
  size_t devices = 0, sets = 0;
  for (const auto& s : slices) {
    EXPECT_TRUE(ValidateResourceSlice(s).ok());
    if (s["spec"].contains("devices")) {
      EXPECT_LE(s["spec"]["devices"].size(), 64u);
      devices += s["spec"]["devices"].size();
    }
    if (s["spec"].contains("sharedCounters")) {
      EXPECT_LE(s["spec"]["sharedCounters"].size(), 8u);
      sets += s["spec"]["sharedCounters"].size();
    }
    EXPECT_EQ(s["spec"]["pool"]["resourceSliceCount"], static_cast<int64_t>(slices.size()));
  }
  EXPECT_EQ(sets, 16u);
  // 910A (30 cores, 32 GiB): vir02 x15, vir04 x7, vir08 x3, vir16 x1, + whole + shared = 28 per card.
  EXPECT_EQ(devices, 16u * 28u);
  std::set<std::string> names;
  for (const auto& s : slices) EXPECT_TRUE(names.insert(s["metadata"]["name"]).second);
}

TEST(DraResourceSlices, ValidationRefusesWhatTheApiRefuses) {
  auto slices = Slices({Card(0, "H100-80G", "nvidia", 81920)}, SliceLayout::kPartitionable);
  json ok = slices.back();
  ASSERT_TRUE(ValidateResourceSlice(ok).ok());
  auto broken = [&](auto mutate) {
    json s = ok;
    mutate(s);
    return ValidateResourceSlice(s);
  };
  EXPECT_FALSE(broken([](json& s) { s["spec"]["devices"][0]["name"] = "Card_0"; }).ok());
  EXPECT_FALSE(broken([](json& s) { s["spec"]["devices"][0]["attributes"]["bad-name"] = {{"int", 1}}; }).ok());
  EXPECT_FALSE(broken([](json& s) { s["spec"]["devices"][0]["attributes"]["x"] = {{"string", std::string(65, 'a')}}; }).ok());
  EXPECT_FALSE(broken([](json& s) {
    for (int i = 0; i < 40; ++i) s["spec"]["devices"][0]["attributes"]["a" + std::to_string(i)] = {{"int", i}};
  }).ok());
  ASSERT_EQ(ok["spec"]["devices"][1]["name"], "card-0-shared");
  EXPECT_FALSE(broken([](json& s) { s["spec"]["devices"][1].erase("allowMultipleAllocations"); }).ok());
  EXPECT_FALSE(broken([](json& s) {
    for (int i = 0; i < 70; ++i) {
      json d = s["spec"]["devices"][0];
      d["name"] = "d" + std::to_string(i);
      s["spec"]["devices"].push_back(d);
    }
  }).ok());
  EXPECT_FALSE(broken([](json& s) { s["spec"]["sharedCounters"] = json::array({{{"name", "x"}, {"counters", {{"c", {{"value", "1"}}}}}}}); }).ok());
  EXPECT_FALSE(broken([](json& s) { s["spec"]["pool"]["resourceSliceCount"] = 0; }).ok());
  EXPECT_FALSE(broken([](json& s) { s["spec"]["driver"] = "Not_A_Driver"; }).ok());
}

// 1.34 with the partitionable gates on: every device finds the counter set it consumes in its
// own slice, and the slices stay within 1.34's limits (32 counters over all sets of a slice).
TEST(DraResourceSlices, CombinedLayoutKeepsEachCardsCountersWithItsDevicesFor134) {
  std::vector<DeviceInfo> cards;
  for (int i = 0; i < 8; ++i) cards.push_back(Card(i, "A100-40G", "nvidia", 40960, /*mig=*/true));
  for (int i = 8; i < 12; ++i) cards.push_back(Card(i, "Ascend910B3", "huawei", 65536));
  auto split = Slices(cards, SliceLayout::kPartitionable);
  auto combined = Slices(cards, SliceLayout::kPartitionableCombined);
  ASSERT_FALSE(combined.empty());
  // The same devices, with the same entries, only grouped differently.
  EXPECT_EQ(DevicesByName(combined), DevicesByName(split));
  std::set<std::string> sets_seen;
  size_t mixed_slices = 0;
  for (const auto& s : combined) {
    SCOPED_TRACE(s["metadata"]["name"].get<std::string>());
    EXPECT_TRUE(ValidateResourceSlice(s, SliceRules::kCombined134).ok())
        << ValidateResourceSlice(s, SliceRules::kCombined134).ToString();
    EXPECT_EQ(s["spec"]["pool"]["resourceSliceCount"], static_cast<int64_t>(combined.size()));
    std::set<std::string> here;
    size_t counters = 0;
    for (const auto& set : s["spec"].value("sharedCounters", json::array())) {
      here.insert(set["name"].get<std::string>());
      EXPECT_TRUE(sets_seen.insert(set["name"].get<std::string>()).second) << "a counter set published twice";
      counters += set["counters"].size();
    }
    EXPECT_LE(counters, 32u);
    for (const auto& d : s["spec"]["devices"])
      for (const auto& c : d["consumesCounters"]) EXPECT_TRUE(here.count(c["counterSet"].get<std::string>())) << d["name"];
    if (!here.empty() && !s["spec"]["devices"].empty()) ++mixed_slices;
  }
  EXPECT_EQ(sets_seen.size(), cards.size());
  EXPECT_EQ(mixed_slices, combined.size());
  // A MIG A100 counter set has 10 counters (memory, compute-slices, 8 memory slices): 3 per slice.
  EXPECT_GE(combined.size(), 3u);
  // 1.35+ refuses these slices, and the 1.34 rules refuse the split ones' cross-slice references.
  EXPECT_FALSE(ValidateResourceSlice(combined[0]).ok());
  bool split_refused_by_134 = false;
  for (const auto& s : split)
    if (!ValidateResourceSlice(s, SliceRules::kCombined134).ok()) split_refused_by_134 = true;
  EXPECT_TRUE(split_refused_by_134);
}

TEST(DraResourceSlices, Validation134RefusesWhat134Refuses) {
  auto slices = Slices({Card(0, "A100-40G", "nvidia", 40960, /*mig=*/true), Card(1, "A100-40G", "nvidia", 40960, true)},
                       SliceLayout::kPartitionableCombined);
  ASSERT_EQ(slices.size(), 1u);
  json ok = slices[0];
  ASSERT_TRUE(ValidateResourceSlice(ok, SliceRules::kCombined134).ok());
  auto broken = [&](auto mutate) {
    json s = ok;
    mutate(s);
    return ValidateResourceSlice(s, SliceRules::kCombined134);
  };
  // A device whose counter set is in another slice.
  EXPECT_FALSE(broken([](json& s) { s["spec"]["sharedCounters"].erase(1); }).ok());
  // More than 32 counters over all sets of the slice (a third 10-counter set is fine, a fourth is not).
  EXPECT_TRUE(broken([](json& s) {
    json extra = s["spec"]["sharedCounters"][0];
    extra["name"] = "card-9";
    s["spec"]["sharedCounters"].push_back(extra);
  }).ok());
  EXPECT_FALSE(broken([](json& s) {
    for (int i = 7; i <= 8; ++i) {
      json extra = s["spec"]["sharedCounters"][0];
      extra["name"] = "card-" + std::to_string(i);
      s["spec"]["sharedCounters"].push_back(extra);
    }
  }).ok());
  // The same set twice, and more than 4 taints on a device.
  EXPECT_FALSE(broken([](json& s) { s["spec"]["sharedCounters"].push_back(s["spec"]["sharedCounters"][0]); }).ok());
  EXPECT_FALSE(broken([](json& s) {
    for (int i = 0; i < 5; ++i)
      s["spec"]["devices"][0]["taints"].push_back({{"key", "k" + std::to_string(i)}, {"effect", "NoSchedule"}});
  }).ok());
}

TEST(DraResourceSlices, RefusesBadInventoryAndTargets) {
  const auto& cat = catalog::Catalog::Builtin();
  EXPECT_FALSE(BuildNodeInventory({Card(0, "A10", "nvidia", 24576), Card(0, "A10", "nvidia", 24576)}, cat,
                                  SliceLayout::kBasic).ok());
  EXPECT_FALSE(BuildNodeInventory({Card(0, "A10", "nvidia", 0)}, cat, SliceLayout::kBasic).ok());
  auto inv = BuildNodeInventory({}, cat, SliceLayout::kPartitionable);
  ASSERT_TRUE(inv.ok());
  SliceTarget t;
  t.node_name = "Node_A";
  EXPECT_FALSE(BuildResourceSlices(*inv, t).ok());
  t.node_name = "node-a";
  auto empty = BuildResourceSlices(*inv, t);
  ASSERT_TRUE(empty.ok());
  ASSERT_EQ(empty->size(), 1u);  // the pool exists even without cards
  EXPECT_TRUE((*empty)[0]["spec"]["devices"].empty());
  EXPECT_FALSE(ParseSliceLayout("fancy").ok());
  EXPECT_EQ(*ParseSliceLayout("basic"), SliceLayout::kBasic);
  EXPECT_EQ(*ParseSliceLayout("partitionable-combined"), SliceLayout::kPartitionableCombined);
}

}  // namespace
}  // namespace tideslice::dra
