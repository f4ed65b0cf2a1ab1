#include "device-plugin/dra/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "tests/dra/claim_fuzz.h"
#include "tests/support/test_support.h"

namespace tideslice::dra {
namespace {

Checkpoint Sample() {
  PreparedClaim c{"team", "c1", "uid-1"};
  c.devices.push_back({{"gpu"}, "node-a", "card-0-mig-3g20gb-4", "", {"k8s.tideslice.io/card=uid-1-gpu"}});
  c.devices.push_back({{"slice"}, "node-a", "card-1-shared", "share-1", {}});
  c.partitions.push_back({"GPU-a", "MIG-1"});
  c.limiter_requests = {"slice"};
  c.cdi_file = "k8s.tideslice.io-card_uid-1.json";
  return {{"uid-1", c}};
}

TEST(DraCheckpoint, RoundTripsAndMissingFileIsEmpty) {
  testsupport::TempDir dir("tsdracp");
  const std::string path = dir.path() + "/checkpoint.json";
  auto empty = LoadCheckpoint(path);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  ASSERT_TRUE(SaveCheckpoint(path, Sample()).ok());
  auto back = LoadCheckpoint(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, Sample());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(DraCheckpoint, RefusesWhatItCannotTrust) {
  testsupport::TempDir dir("tsdracp");
  const std::string path = dir.path() + "/checkpoint.json";
  std::ofstream(path) << "{not json";
  auto bad = LoadCheckpoint(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().ToString().find(path), std::string::npos);  // names the file
  EXPECT_FALSE(ParseCheckpoint(R"({"version": 2, "claims": {}})").ok());
  EXPECT_FALSE(ParseCheckpoint(R"({"version": 1, "claims": {"u": {"cdiFile": "../../etc/passwd"}}})").ok());
  EXPECT_FALSE(ParseCheckpoint(R"({"version": 1, "claims": {"u": {"devices": [{"pool": 3}]}}})").ok());
  EXPECT_TRUE(ParseCheckpoint(R"({"version": 1, "claims": {}})").ok());
}

TEST(DraCheckpoint, FuzzEntryPointSurvivesMutations) {
  testsupport::TempDir dir("tsdracp");
  ASSERT_TRUE(SaveCheckpoint(dir.path() + "/c.json", Sample()).ok());
  std::ifstream in(dir.path() + "/c.json");
  const std::string seed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::mt19937 rng(11);
  for (int round = 0; round < 2000; ++round) {
    std::string s = seed;
    size_t pos = rng() % (s.size() + 1);
    switch (rng() % 3) {
      case 0: s.insert(pos, 1, "{}[]\":,0123456789/.x"[rng() % 20]); break;
      case 1: if (pos < s.size()) s.erase(pos, 1 + rng() % 8); break;
      case 2: s = s.substr(0, pos); break;
    }
    fuzz::Fuzz_dra_checkpoint(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
}

}  // namespace
}  // namespace tideslice::dra
