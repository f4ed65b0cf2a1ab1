#include "device-plugin/limiter/config.h"

#include <string>

#include <gtest/gtest.h>

namespace tideslice::limiter {
namespace {

// What protobuf's JSON printer writes for a LimiterConfig (uint64 as strings, camelCase).
const char* kPrinted = R"({
  "version": 1,
  "podNamespace": "ml",
  "podName": "trainer-0",
  "podUid": "0b5e1c52-7a4e-4d0e-9b8c-2f1d9a0e6c11",
  "container": "main",
  "vendor": "nvidia",
  "regionPath": "/var/run/tideslice/limiter/region",
  "cards": [
    {"uuid": "GPU-5a1ce000-0000-4000-8000-000000000000", "memoryLimitBytes": "8589934592",
     "computePermille": 300},
    {"uuid": "GPU-5a1ce000-0000-4000-8000-000000000001", "visibleIndex": 1, "regionCard": 1}
  ],
  "contextReserveBytes": "268435456"
})";

Config Parse(const std::string& text, std::string* error = nullptr) {
  Config c;
  char err[256];
  bool ok = ParseConfig(text.data(), text.size(), &c, err, sizeof err);
  if (error) *error = ok ? "" : err;
  return c;
}

bool Valid(const std::string& text, std::string* error = nullptr) {
  Config c;
  char err[256];
  bool ok = ParseConfig(text.data(), text.size(), &c, err, sizeof err);
  if (error) *error = ok ? "" : err;
  return ok;
}

TEST(LimiterConfig, ReadsWhatProtobufPrints) {
  std::string error;
  ASSERT_TRUE(Valid(kPrinted, &error)) << error;
  Config c = Parse(kPrinted);
  EXPECT_EQ(c.version, 1u);
  EXPECT_STREQ(c.pod_namespace, "ml");
  EXPECT_STREQ(c.pod_name, "trainer-0");
  EXPECT_STREQ(c.container, "main");
  EXPECT_EQ(c.vendor, Vendor::kNvidia);
  EXPECT_STREQ(c.region_path, "/var/run/tideslice/limiter/region");
  EXPECT_EQ(c.context_reserve_bytes, 268435456u);
  ASSERT_EQ(c.card_count, 2u);
  EXPECT_STREQ(c.cards[0].uuid, "GPU-5a1ce000-0000-4000-8000-000000000000");
  EXPECT_EQ(c.cards[0].memory_limit_bytes, 8589934592u);
  EXPECT_EQ(c.cards[0].compute_permille, 300u);
  EXPECT_EQ(c.cards[0].visible_index, 0u);  // proto3 JSON omits zero values
  EXPECT_EQ(c.cards[1].visible_index, 1u);
  EXPECT_EQ(c.cards[1].region_card, 1u);
  EXPECT_EQ(c.cards[1].memory_limit_bytes, 0u);
}

TEST(LimiterConfig, AcceptsProtoFieldNamesNumbersAndUnknownFields) {
  std::string error;
  ASSERT_TRUE(Valid(R"({"version":1,"vendor":"huawei","region_path":"/r","future":{"a":[1,2,{"b":null}]},
      "cards":[{"uuid":"3","visible_index":0,"memory_limit_bytes":1024,"also_future":true}]})",
                    &error))
      << error;
  Config c = Parse(R"({"version":1,"vendor":"huawei","region_path":"/r","cards":[{"uuid":"3","memory_limit_bytes":1024}]})");
  EXPECT_EQ(c.vendor, Vendor::kHuawei);
  EXPECT_EQ(c.cards[0].memory_limit_bytes, 1024u);
}

TEST(LimiterConfig, RefusalsNameTheField) {
  struct Case {
    const char* text;
    const char* mentions;
  } cases[] = {
      {R"({"vendor":"nvidia","regionPath":"/r","cards":[{"uuid":"a"}]})", "version"},
      {R"({"version":2,"vendor":"nvidia","regionPath":"/r","cards":[{"uuid":"a"}]})", "version: 2"},
      {R"({"version":1,"vendor":"amd","regionPath":"/r","cards":[{"uuid":"a"}]})", "vendor"},
      {R"({"version":1,"vendor":"nvidia","regionPath":"relative","cards":[{"uuid":"a"}]})", "regionPath"},
      {R"({"version":1,"vendor":"nvidia","regionPath":"/r","cards":[]})", "cards"},
      {R"({"version":1,"vendor":"nvidia","regionPath":"/r","cards":[{"visibleIndex":0}]})", "uuid"},
      {R"({"version":1,"vendor":"nvidia","regionPath":"/r","cards":[{"uuid":"a","memoryLimitBytes":"-1"}]})",
       "memoryLimitBytes"},
      {R"({"version":1,"vendor":"nvidia","regionPath":"/r","cards":[{"uuid":"a","memoryLimitBytes":"18446744073709551616"}]})",
       "too large"},
      {R"({"version":1,"vendor":"nvidia","regionPath":"/r","cards":[{"uuid":"a","regionCard":16}]})", "regionCard"},
      {R"({"version":1,"vendor":"nvidia","regionPath":"/r","cards":[{"uuid":"a"},{"uuid":"b","regionCard":1}]})", "visible index"},
      {R"({"version":1,"vendor":"nvidia","regionPath":"/r","cards":[{"uuid":"a","computePermille":1001}]})",
       "computePermille"},
      {R"({"version":1,"vendor":"nvidia","regionPath":"/r","cards":[{"uuid":"a"}]} trailing)", "trailing"},
      {R"({"version":1.5})", "integer"},
      {R"({"version":01})", "leading zero"},
      {R"({"podName":"\u00e9"})", "ASCII"},
      {R"({"podName":"unterminated)", "unterminated"},
      {R"([1,2])", "object"},
      {"", "object"},
  };
  for (const auto& c : cases) {
    std::string error;
    EXPECT_FALSE(Valid(c.text, &error)) << c.text;
    EXPECT_NE(error.find(c.mentions), std::string::npos) << c.text << " -> " << error;
  }
}

TEST(LimiterConfig, ReadsTheComputeShareFields) {
  std::string error;
  const std::string text = R"({"version":1,"vendor":"nvidia","regionPath":"/r","workloadClass":"inference",
      "workConserving":true,"cards":[{"uuid":"GPU-1","computePermille":300,
      "coordinationDir":"/var/run/tideslice/cards/0","coordinationSlot":7}]})";
  ASSERT_TRUE(Valid(text, &error)) << error;
  Config c = Parse(text);
  EXPECT_EQ(c.workload_class, 1u);
  EXPECT_TRUE(c.work_conserving);
  EXPECT_EQ(c.cards[0].compute_permille, 300u);
  EXPECT_STREQ(c.cards[0].coordination_dir, "/var/run/tideslice/cards/0");
  EXPECT_EQ(c.cards[0].coordination_slot, 7u);
  for (const char* bad : {R"("workloadClass":"batch")", R"("workConserving":"yes")", R"("workConserving":1)"}) {
    std::string t = std::string(R"({"version":1,"vendor":"nvidia","regionPath":"/r",)") + bad +
                    R"(,"cards":[{"uuid":"a"}]})";
    EXPECT_FALSE(Valid(t, &error)) << t;
  }
  EXPECT_FALSE(Valid(R"({"version":1,"vendor":"nvidia","regionPath":"/r","cards":[{"uuid":"a","coordinationDir":"rel"}]})",
                     &error));
  EXPECT_NE(error.find("coordinationDir"), std::string::npos) << error;
  EXPECT_FALSE(Valid(R"({"version":1,"vendor":"nvidia","regionPath":"/r","cards":[{"uuid":"a","coordinationSlot":64}]})",
                     &error));
}

TEST(LimiterConfig, DeepNestingAndHugeInputAreRefusedWithoutRecursingFar) {
  std::string deep = R"({"version":1,"x":)" + std::string(10000, '[') + std::string(10000, ']') + "}";
  std::string error;
  EXPECT_FALSE(Valid(deep, &error));
  EXPECT_NE(error.find("deep"), std::string::npos) << error;
  std::string huge(kConfigMaxBytes + 1, ' ');
  EXPECT_FALSE(Valid(huge, &error));
  EXPECT_NE(error.find("64 KiB"), std::string::npos);
}

TEST(LimiterConfig, LongStringsAreRefusedNotTruncated) {
  std::string name(300, 'x');
  std::string error;
  EXPECT_FALSE(Valid(R"({"version":1,"podName":")" + name + R"("})", &error));
  EXPECT_NE(error.find("too long"), std::string::npos) << error;
}

TEST(LimiterConfig, SeventeenCardsAreRefused) {
  std::string cards;
  for (int i = 0; i < 17; ++i)
    cards += std::string(i ? "," : "") + R"({"uuid":"c)" + std::to_string(i) + R"(","visibleIndex":)" +
             std::to_string(i) + "}";
  std::string error;
  EXPECT_FALSE(Valid(R"({"version":1,"vendor":"nvidia","regionPath":"/r","cards":[)" + cards + "]}", &error));
  EXPECT_NE(error.find("16"), std::string::npos) << error;
}

}  // namespace
}  // namespace tideslice::limiter
