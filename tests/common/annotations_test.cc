#include "common/codec/annotations.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tideslice::codec {
namespace {

using ::testing::HasSubstr;

v1::NodeInventory SampleInventory() {
  v1::NodeInventory inv;
  inv.set_node_name("gpu-node-1");
  inv.set_backend("mock");
  for (int i = 0; i < 2; ++i) {
    auto* c = inv.add_cards();
    c->set_uuid("GPU-" + std::to_string(i));
    c->set_index(i);
    c->set_vendor("nvidia");
    c->set_model("H100-80G");
    c->set_memory_mib(81920);
    c->set_compute_units(132);
    c->set_health(v1::HEALTH_HEALTHY);
    c->set_numa_node(0);
    c->set_link_domain("nvl0");
    c->add_profiles("1g.10gb");
  }
  inv.mutable_heartbeat()->set_seconds(1700000000);
  return inv;
}

TEST(Annotations, InventoryRoundTrip) {
  std::string json = EncodeInventory(SampleInventory());
  EXPECT_THAT(json, HasSubstr("\"memoryMib\":\"81920\""));  // int64 is a string in protobuf JSON
  EXPECT_THAT(json, HasSubstr("\"heartbeat\":\"2023-11-14T22:13:20Z\""));
  auto back = DecodeInventory(json);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->cards_size(), 2);
  EXPECT_EQ(back->cards(1).link_domain(), "nvl0");
}

TEST(Annotations, AssignmentRoundTrip) {
  v1::PodAssignment a;
  a.set_pod_uid("u-1");
  a.set_node_name("n1");
  a.set_phase(v1::ASSIGNMENT_PHASE_ALLOCATING);
  auto* c = a.add_containers();
  c->set_name("main");
  auto* s = c->add_slices();
  s->set_card_uuid("GPU-0");
  s->set_memory_mib(8192);
  s->set_compute_permille(300);
  auto back = DecodeAssignment(EncodeAssignment(a));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->containers(0).slices(0).compute_permille(), 300);
  EXPECT_EQ(back->phase(), v1::ASSIGNMENT_PHASE_ALLOCATING);
}

TEST(Annotations, MalformedIsAClearErrorNeverACrash) {
  for (const char* bad : {"", "{", "[]", "null", R"({"cards":"x"})", R"({"nodeName":1})", R"({"cards":[{"memoryMib":"lots"}]})",
                          "\xff\xfe"}) {
    auto r = DecodeInventory(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().field(), "tideslice.io/inventory") << bad;
  }
}

TEST(Annotations, UnknownFieldsAreRejected) {
  auto r = DecodeAssignment(R"({"nodeName":"n","contianers":[]})");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("contianers"));
}

TEST(Annotations, StructuralValidation) {
  auto inv = SampleInventory();
  inv.mutable_cards(1)->set_uuid("GPU-0");
  EXPECT_THAT(DecodeInventory(EncodeInventory(inv)).status().message(), HasSubstr("duplicates GPU-0"));
  inv = SampleInventory();
  inv.mutable_cards(0)->set_memory_mib(0);
  EXPECT_THAT(DecodeInventory(EncodeInventory(inv)).status().field(), HasSubstr("memoryMib"));

  EXPECT_THAT(DecodeAssignment(R"({"containers":[]})").status().field(), HasSubstr("nodeName"));
  EXPECT_THAT(DecodeAssignment(R"({"nodeName":"n","containers":[{"name":"a","slices":[{"cardUuid":"g","computePermille":1200}]}]})")
                  .status()
                  .field(),
              HasSubstr("computePermille"));
  EXPECT_THAT(DecodeAssignment(R"({"nodeName":"n","containers":[{"name":"a","slices":[{"cardUuid":"g"},{"cardUuid":"g"}]}]})")
                  .status()
                  .message(),
              HasSubstr("one slice per card"));
}

TEST(Annotations, OversizedIsRejected) {
  std::string big(kMaxAnnotationBytes + 1, ' ');
  EXPECT_THAT(DecodeInventory(big).status().message(), HasSubstr("larger than"));
}

TEST(Annotations, SchedulerConfigParses) {
  auto c = DecodeSchedulerConfig(R"({"defaultPolicy":"fragaware","pools":[{"name":"p","timezone":"Asia/Shanghai",
      "dayWindows":[{"weekdays":["Mon"],"start":"08:00","end":"20:00"}],"noticeSeconds":300}]})");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->pools(0).day_windows(0).start(), "08:00");
}

}  // namespace
}  // namespace tideslice::codec
