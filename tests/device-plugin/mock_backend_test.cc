#include "device-plugin/backends/mock_backend.h"

#include <fstream>

#include "tests/support/test_support.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tideslice::deviceplugin {
namespace {

using ::testing::HasSubstr;

const catalog::Catalog& Cat() { return catalog::Catalog::Builtin(); }

TEST(MockBackend, LoadsCardsWithCatalogDefaults) {
  auto b = MockBackend::FromJson(R"({"cards":[
      {"uuid":"GPU-a","index":0,"model":"H100","numaNode":0,"linkDomain":"nvl0"},
      {"uuid":"NPU-b","index":1,"model":"910B3","health":"Unhealthy","memoryMib":60000}]})",
                                 Cat());
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  auto cards = (*b)->Discover();
  ASSERT_TRUE(cards.ok());
  ASSERT_EQ(cards->size(), 2u);
  EXPECT_EQ((*cards)[0].model, "H100-80G");
  EXPECT_EQ((*cards)[0].vendor, "nvidia");
  EXPECT_EQ((*cards)[0].memory_mib, 81920);
  EXPECT_EQ((*cards)[1].vendor, "huawei");
  EXPECT_EQ((*cards)[1].memory_mib, 60000);
  EXPECT_FALSE((*cards)[1].healthy);
}

TEST(MockBackend, HealthFlipsBothWays) {
  auto b = MockBackend::FromJson(R"({"cards":[{"uuid":"g","model":"T4"}]})", Cat());
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE((*b)->SetHealth("g", false).ok());
  EXPECT_FALSE((*(*b)->Discover())[0].healthy);
  ASSERT_TRUE((*b)->SetHealth("g", true).ok());
  EXPECT_TRUE((*(*b)->Discover())[0].healthy);
  EXPECT_EQ((*b)->SetHealth("nope", true).code(), StatusCode::kNotFound);
}

TEST(MockBackend, RejectsBadConfigNamingTheField) {
  struct Case {
    const char* json;
    const char* field;
  } cases[] = {
      {"[]", "mock config"},
      {R"({"cards":[]})", "mock config.cards"},
      {R"({"gpus":[]})", "mock config.gpus"},
      {R"({"cards":[{"model":"T4"}]})", "mock config.cards[0].uuid"},
      {R"({"cards":[{"uuid":"g","model":"Z80"}]})", "mock config.cards[0].model"},
      {R"({"cards":[{"uuid":"g","model":"T4","health":"ok"}]})", "mock config.cards[0].health"},
      {R"({"cards":[{"uuid":"g","model":"T4","index":-1}]})", "mock config.cards[0].index"},
      {R"({"cards":[{"uuid":"g","model":"T4"},{"uuid":"g","model":"T4"}]})", "mock config.cards[1].uuid"},
      {R"({"cards":[{"uuid":"g","model":"T4","colour":"red"}]})", "mock config.cards[0].colour"},
  };
  for (const auto& c : cases) {
    auto b = MockBackend::FromJson(c.json, Cat());
    ASSERT_FALSE(b.ok()) << c.json;
    EXPECT_EQ(b.status().field(), c.field) << c.json << ": " << b.status().ToString();
  }
  EXPECT_THAT(MockBackend::FromFile("/nonexistent.json", Cat()).status().message(), HasSubstr("--mock-config"));
}

}  // namespace
}  // namespace tideslice::deviceplugin

namespace tideslice::deviceplugin {
namespace {

TEST(MockBackend, ReadsYamlToo) {
  testsupport::TempDir dir;
  std::ofstream(dir.path() + "/cards.yaml") << "cards:\n  - uuid: NPU-0\n    model: Ascend910B3\n    index: 0\n"
                                              "  - {uuid: GPU-1, model: H100-80G, index: 1, health: Unhealthy}\n";
  auto b = MockBackend::FromFile(dir.path() + "/cards.yaml", catalog::Catalog::Builtin());
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  auto cards = (*b)->Discover();
  ASSERT_EQ(cards->size(), 2u);
  EXPECT_EQ(cards->at(0).vendor, "huawei");
  EXPECT_FALSE(cards->at(1).healthy);
  std::ofstream(dir.path() + "/bad.yaml") << "cards: [ {uuid: x, model: NoSuchCard} ]\n";
  EXPECT_NE(MockBackend::FromFile(dir.path() + "/bad.yaml", catalog::Catalog::Builtin()).status().message().find("NoSuchCard"),
            std::string::npos);
}

TEST(MockBackend, EditingTheFileFlipsHealthAtRunTime) {
  testsupport::TempDir dir;
  const std::string path = dir.path() + "/cards.json";
  auto write = [&](const char* health) {
    std::ofstream(path) << R"({"cards":[{"uuid":"g0","model":"T4"},{"uuid":"g1","model":"T4","health":")" << health
                        << R"("}]})";
  };
  write("Healthy");
  auto b = MockBackend::FromFile(path, catalog::Catalog::Builtin());
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE((*b)->Discover()->at(1).healthy);
  write("Unhealthy");
  EXPECT_FALSE((*b)->Discover()->at(1).healthy);
  std::ofstream(path) << "{ not json";  // a broken edit keeps the last good state
  EXPECT_FALSE((*b)->Discover()->at(1).healthy);
  write("Healthy");
  EXPECT_TRUE((*b)->Discover()->at(1).healthy);
}

}  // namespace
}  // namespace tideslice::deviceplugin
