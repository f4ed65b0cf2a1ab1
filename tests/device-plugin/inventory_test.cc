#include "device-plugin/plugin/inventory.h"

#include <gtest/gtest.h>

#include "common/codec/annotations.h"

namespace tideslice::deviceplugin {
namespace {

TEST(Inventory, CardsBecomeAValidAnnotationThatRoundTrips) {
  DeviceInfo a;
  a.uuid = "NPU-0";
  a.index = 0;
  a.vendor = "huawei";
  a.model = "Ascend910B3";
  a.memory_mib = 65536;
  a.numa_node = 1;
  a.link_domain = "hccs0";
  DeviceInfo b = a;
  b.uuid = "NPU-1";
  b.index = 1;
  b.healthy = false;
  auto when = std::chrono::system_clock::time_point(std::chrono::seconds(1764000000) + std::chrono::milliseconds(250));
  auto inv = BuildInventory("node-a", "dcmi", {a, b}, catalog::Catalog::Builtin(), when);
  std::string json = codec::EncodeInventory(inv);
  auto back = codec::DecodeInventory(json);
  ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << json;
  EXPECT_EQ(back->node_name(), "node-a");
  EXPECT_EQ(back->backend(), "dcmi");
  ASSERT_EQ(back->cards_size(), 2);
  EXPECT_EQ(back->cards(0).compute_units(), 20);  // from the catalog
  EXPECT_EQ(back->cards(0).profiles_size(), 2);   // vir05_1c_16g, vir10_3c_32g
  EXPECT_EQ(back->cards(0).link_domain(), "hccs0");
  EXPECT_EQ(back->cards(1).health(), v1::HEALTH_UNHEALTHY);
  EXPECT_EQ(back->heartbeat().seconds(), 1764000000);
  EXPECT_EQ(back->heartbeat().nanos(), 250000000);
  EXPECT_NE(json.find("\"heartbeat\":\"2025-11-24T16:00:00.250Z\""), std::string::npos) << json;
}

}  // namespace
}  // namespace tideslice::deviceplugin
