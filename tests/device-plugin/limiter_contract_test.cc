// The agent and the in-container limiter agree on their contract (limiter_setup.h on one side,
// device-plugin/limiter/{config,ledger}.h on the other): the config the agent writes at Allocate
// is one the limiter parses to the same values, and a region the agent created is one the
// limiter's ledger opens and accounts in, with the agent's exporter reading back what a live
// process reserved and dropping it once the process lets go.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "device-plugin/exporter/limiter_metrics.h"
#include "device-plugin/limiter/config.h"
#include "device-plugin/limiter/ledger.h"
#include "device-plugin/plugin/limiter_setup.h"
#include "tests/support/test_support.h"

namespace tideslice::deviceplugin {
namespace {

DeviceInfo Card(const std::string& vendor, int index, const std::string& uuid) {
  DeviceInfo d;
  d.vendor = vendor;
  d.index = index;
  d.uuid = uuid;
  d.memory_mib = 81920;
  return d;
}

TEST(AgentLimiterContract, TheLimiterParsesTheConfigTheAgentWrites) {
  for (const auto& slices : std::vector<std::vector<AssignedSlice>>{
           {{Card("nvidia", 2, "GPU-2"), 0, 1000, true, "", ""},
            {Card("nvidia", 0, "GPU-0"), 8192, 300, false, "", ""},
            {Card("nvidia", 1, "GPU-1"), 10240, 142, false, "1g.10gb", "MIG-1"}},
           {{Card("huawei", 5, "NPU-5"), 16384, 250, false, "", ""}}}) {
    auto config = BuildLimiterConfig({"ml", "infer-0", "0b7c1d9e-4a5f-4c1e-9d7a-3b2f1e0c9a8d", "main"}, slices,
                                     512u << 20);
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    const std::string json = LimiterConfigJson(*config);
    limiter::Config parsed{};
    char error[256] = {};
    ASSERT_TRUE(limiter::ParseConfig(json.data(), json.size(), &parsed, error, sizeof error)) << error << "\n" << json;
    EXPECT_EQ(parsed.version, 1u);
    EXPECT_STREQ(parsed.pod_namespace, "ml");
    EXPECT_STREQ(parsed.pod_name, "infer-0");
    EXPECT_STREQ(parsed.pod_uid, config->pod_uid().c_str());
    EXPECT_STREQ(parsed.container, "main");
    EXPECT_EQ(parsed.vendor, config->vendor() == "huawei" ? limiter::Vendor::kHuawei : limiter::Vendor::kNvidia);
    EXPECT_STREQ(parsed.region_path, "/var/run/tideslice/limiter/region");
    EXPECT_EQ(parsed.context_reserve_bytes, 512u << 20);
    ASSERT_EQ(parsed.card_count, static_cast<uint32_t>(config->cards_size()));
    for (uint32_t i = 0; i < parsed.card_count; ++i) {
      SCOPED_TRACE(i);
      EXPECT_STREQ(parsed.cards[i].uuid, config->cards(i).uuid().c_str());
      EXPECT_EQ(parsed.cards[i].visible_index, config->cards(i).visible_index());
      EXPECT_EQ(parsed.cards[i].memory_limit_bytes, config->cards(i).memory_limit_bytes());
      EXPECT_EQ(parsed.cards[i].compute_permille, config->cards(i).compute_permille());
      EXPECT_EQ(parsed.cards[i].region_card, config->cards(i).region_card());
    }
  }
}

// Compute shares: the class, the mode and each card's coordination directory and slot, as the
// agent sets them up at Allocate, are what the limiter reads.
TEST(AgentLimiterContract, TheLimiterReadsTheClassModeAndCoordinationTheAgentSetsUp) {
  testsupport::TempDir dir;
  LimiterFiles files(dir.path());
  const std::vector<AssignedSlice> slices = {{Card("nvidia", 1, "GPU-1"), 0, 400, false, "", ""},
                                             {Card("nvidia", 0, "GPU-0"), 8192, 0, false, "", ""},
                                             {Card("nvidia", 2, "GPU-2"), 4096, 250, false, "", ""}};
  for (auto [cls, code, wc] : {std::tuple{"inference", limiter::kClassInference, false},
                               std::tuple{"training", limiter::kClassTraining, true},
                               std::tuple{"", limiter::kClassUnspecified, false}}) {
    SCOPED_TRACE(cls);
    LimiterPod pod{"ml", "p", std::string("uid-") + (*cls ? cls : "none"), "main"};
    pod.workload_class = cls;
    pod.work_conserving = wc;
    auto config = BuildLimiterConfig(pod, slices, 0);
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    auto seats = ComputeSeats(slices);
    ASSERT_TRUE(files.SetUpContainer(*config, seats).ok());
    const std::string json = LimiterConfigJson(*config);
    limiter::Config parsed{};
    char error[256] = {};
    ASSERT_TRUE(limiter::ParseConfig(json.data(), json.size(), &parsed, error, sizeof error)) << error << "\n" << json;
    EXPECT_EQ(parsed.workload_class, code);
    EXPECT_EQ(parsed.work_conserving, wc);
    ASSERT_EQ(parsed.card_count, 3u);
    EXPECT_STREQ(parsed.cards[0].coordination_dir, "");  // GPU-0: memory only
    EXPECT_STREQ(parsed.cards[1].coordination_dir, "/var/run/tideslice/cards/1");
    EXPECT_EQ(parsed.cards[1].coordination_slot, seats[0].slot);
    EXPECT_EQ(parsed.cards[1].memory_limit_bytes, 0u);
    EXPECT_EQ(parsed.cards[1].compute_permille, 400u);
    EXPECT_STREQ(parsed.cards[2].coordination_dir, "/var/run/tideslice/cards/2");
    EXPECT_EQ(parsed.cards[2].coordination_slot, seats[1].slot);
  }
}

TEST(AgentLimiterContract, AProcessAccountsInTheRegionTheAgentCreatedAndTheAgentReadsIt) {
  testsupport::TempDir dir;
  LimiterFiles files(dir.path());
  const DeviceInfo gpu = Card("nvidia", 0, "GPU-0");
  auto config = BuildLimiterConfig({"ml", "p", "uid-1", "main"}, {{gpu, 8192, 0, false, "", ""}}, 0);
  ASSERT_TRUE(files.WriteContainer(*config).ok());
  limiter::Ledger ledger;
  char error[256] = {};
  ASSERT_TRUE(ledger.Open(files.layout().RegionPath("uid-1", "main").c_str(), error, sizeof error)) << error;
  ASSERT_TRUE(ledger.EnsureSlot());
  EXPECT_EQ(ledger.Reserve(0, 3ull << 30, 8ull << 30), limiter::Ledger::Admit::kOk);
  EXPECT_EQ(ledger.Reserve(0, 6ull << 30, 8ull << 30), limiter::Ledger::Admit::kOverLimit);
  auto readings = ReadLimiterContainers(dir.path());
  ASSERT_EQ(readings.size(), 1u);
  ASSERT_TRUE(readings[0].problem.empty()) << readings[0].problem;
  EXPECT_TRUE(readings[0].liveness_tested);
  ASSERT_EQ(readings[0].cards.size(), 1u);
  EXPECT_EQ(readings[0].cards[0].used_bytes, 3ull << 30);
  EXPECT_EQ(readings[0].cards[0].limit_bytes, 8ull << 30);
  EXPECT_GE(readings[0].cards[0].refused, 1u);
  ledger.Close();  // the process lets go of its slot
  readings = ReadLimiterContainers(dir.path());
  ASSERT_EQ(readings.size(), 1u);
  EXPECT_EQ(readings[0].cards[0].used_bytes, 0u);
}

}  // namespace
}  // namespace tideslice::deviceplugin
