#include "device-plugin/dra/claim.h"

#include <random>

#include <gtest/gtest.h>

#include "tests/dra/claim_fuzz.h"

namespace tideslice::dra {
namespace {

using nlohmann::json;

json Claim(const json& results, const json& config = json::array()) {
  return {{"apiVersion", "resource.k8s.io/v1"},
          {"kind", "ResourceClaim"},
          {"metadata", {{"name", "c1"}, {"namespace", "team"}, {"uid", "0f1c-uid"}}},
          {"spec", {{"devices", {{"requests", json::array()}}}}},
          {"status", {{"allocation", {{"devices", {{"results", results}, {"config", config}}}}}}}};
}

const ClaimRef kRef{"team", "c1", "0f1c-uid"};

TEST(DraClaim, ParsesOwnResultsOnly) {
  json c = Claim(json::array({
      {{"request", "gpu/h100"}, {"driver", "tideslice.io"}, {"pool", "node-a"}, {"device", "card-0"}},
      {{"request", "nic"}, {"driver", "other.example.com"}, {"pool", "node-a"}, {"device", "eth0"}},
      {{"request", "slice"}, {"driver", "tideslice.io"}, {"pool", "node-a"}, {"device", "card-1-shared"},
       {"shareID", "7f3c9b1e-0000-4000-8000-000000000001"},
       {"consumedCapacity", {{"memory", "8Gi"}, {"cores", "30"}}}},
  }));
  auto parsed = ParseAllocatedClaim(c.dump(), "tideslice.io", kRef);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->devices.size(), 2u);
  EXPECT_EQ(parsed->devices[0].request, "gpu/h100");
  EXPECT_EQ(parsed->devices[0].base_request, "gpu");
  EXPECT_EQ(parsed->devices[1].share_id, "7f3c9b1e-0000-4000-8000-000000000001");
  EXPECT_EQ(parsed->devices[1].memory_mib, 8192);
  EXPECT_EQ(parsed->devices[1].cores_percent, 30);
}

TEST(DraClaim, ConsumedMemoryRoundsUpToMiB) {
  json c = Claim(json::array({{{"request", "s"}, {"driver", "tideslice.io"}, {"pool", "p"}, {"device", "card-0-shared"},
                               {"shareID", "x"}, {"consumedCapacity", {{"memory", "1536Mi"}, {"cores", "0"}}}},
                              {{"request", "t"}, {"driver", "tideslice.io"}, {"pool", "p"}, {"device", "card-1-shared"},
                               {"shareID", "y"}, {"consumedCapacity", {{"memory", "1000001"}}}}}));
  auto parsed = ParseAllocatedClaim(c.dump(), "tideslice.io", kRef);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->devices[0].memory_mib, 1536);
  EXPECT_EQ(parsed->devices[1].memory_mib, 1);  // 1000001 bytes -> 1 MiB (rounded up)
  EXPECT_FALSE(parsed->devices[1].cores_percent.has_value());
}

TEST(DraClaim, RefusesReplacedUnallocatedAndMalformedClaims) {
  json ok = Claim(json::array({{{"request", "g"}, {"driver", "tideslice.io"}, {"pool", "p"}, {"device", "card-0"}}}));
  ASSERT_TRUE(ParseAllocatedClaim(ok.dump(), "tideslice.io", kRef).ok());
  auto replaced = ParseAllocatedClaim(ok.dump(), "tideslice.io", {"team", "c1", "other-uid"});
  ASSERT_FALSE(replaced.ok());
  EXPECT_NE(replaced.status().ToString().find("replaced"), std::string::npos);
  json unalloc = ok;
  unalloc["status"].erase("allocation");
  auto u = ParseAllocatedClaim(unalloc.dump(), "tideslice.io", kRef);
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.status().ToString().find("not allocated"), std::string::npos);
  EXPECT_FALSE(ParseAllocatedClaim("{", "tideslice.io", kRef).ok());
  EXPECT_FALSE(ParseAllocatedClaim("[]", "tideslice.io", kRef).ok());
  auto broken = [&](auto mutate) {
    json c = ok;
    mutate(c);
    return ParseAllocatedClaim(c.dump(), "tideslice.io", kRef).ok();
  };
  auto r0 = [](json& c) -> json& { return c["status"]["allocation"]["devices"]["results"][0]; };
  EXPECT_FALSE(broken([&](json& c) { r0(c).erase("device"); }));
  EXPECT_FALSE(broken([&](json& c) { r0(c)["pool"] = 3; }));
  EXPECT_FALSE(broken([&](json& c) { r0(c)["request"] = "/sub"; }));
  EXPECT_FALSE(broken([&](json& c) { r0(c)["consumedCapacity"] = {{"memory", "lots"}}; }));
  EXPECT_FALSE(broken([&](json& c) { r0(c)["consumedCapacity"] = {{"memory", "-1Gi"}}; }));
  EXPECT_FALSE(broken([&](json& c) { r0(c)["consumedCapacity"] = {{"cores", "101"}}; }));
  EXPECT_FALSE(broken([&](json& c) { r0(c)["device"] = std::string(300, 'a'); }));
  EXPECT_FALSE(broken([&](json& c) {
    for (int i = 0; i < 40; ++i) c["status"]["allocation"]["devices"]["results"].push_back(r0(c));
  }));
  EXPECT_FALSE(broken([&](json& c) { c["kind"] = "Pod"; }));
}

TEST(DraClaim, OpaqueConfigOfThisDriverOnlyClaimLast) {
  json config = json::array({
      {{"source", "FromClass"}, {"opaque", {{"driver", "tideslice.io"}, {"parameters", {{"workloadClass", "training"}}}}}},
      {{"source", "FromClaim"},
       {"opaque", {{"driver", "tideslice.io"}, {"parameters", {{"workloadClass", "inference"}, {"computeMode", "work-conserving"}}}}}},
      {{"source", "FromClaim"}, {"opaque", {{"driver", "other.example.com"}, {"parameters", {{"anything", 1}}}}}},
  });
  json c = Claim(json::array(), config);
  auto parsed = ParseAllocatedClaim(c.dump(), "tideslice.io", kRef);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->workload_class, "inference");
  EXPECT_TRUE(parsed->work_conserving);
  c["status"]["allocation"]["devices"]["config"][1]["opaque"]["parameters"]["memoryLimit"] = "1Gi";
  auto bad = ParseAllocatedClaim(c.dump(), "tideslice.io", kRef);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().ToString().find("memoryLimit"), std::string::npos);
}

NodeInventory Inventory(bool second_healthy = true) {
  deviceplugin::DeviceInfo a;
    a.uuid = "GPU-a";
    a.index = 0;
    a.vendor = "nvidia";
    a.model = "A100-40G";
    a.memory_mib = 40960;
  a.mig_enabled = true;
  deviceplugin::DeviceInfo b;
    b.uuid = "GPU-b";
    b.index = 1;
    b.vendor = "nvidia";
    b.model = "H100-80G";
    b.memory_mib = 81920;
  b.healthy = second_healthy;
  auto inv = BuildNodeInventory({a, b}, catalog::Catalog::Builtin(), SliceLayout::kPartitionable);
  EXPECT_TRUE(inv.ok());
  return *inv;
}

TEST(DraClaim, PlanMapsResultsToSlicesPerRequest) {
  NodeInventory inv = Inventory();
  json c = Claim(json::array({
      {{"request", "mig"}, {"driver", "tideslice.io"}, {"pool", "node-a"}, {"device", "card-0-mig-1g5gb-3"}},
      {{"request", "soft/first"}, {"driver", "tideslice.io"}, {"pool", "node-a"}, {"device", "card-1-shared"},
       {"shareID", "s1"}, {"consumedCapacity", {{"memory", "8Gi"}, {"cores", "30"}}}},
  }));
  auto parsed = ParseAllocatedClaim(c.dump(), "tideslice.io", kRef);
  ASSERT_TRUE(parsed.ok());
  auto plan = PlanClaim(*parsed, inv, "node-a");
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ASSERT_EQ(plan->size(), 2u);
  EXPECT_EQ((*plan)[0].base_request, "mig");
  EXPECT_EQ((*plan)[0].slices[0].profile, "1g.5gb");
  EXPECT_EQ((*plan)[0].slices[0].start_slot, 3);
  EXPECT_EQ((*plan)[1].base_request, "soft");
  EXPECT_EQ((*plan)[1].slices[0].memory_mib, 8192);
  EXPECT_EQ((*plan)[1].slices[0].compute_permille, 300);
  EXPECT_FALSE((*plan)[1].slices[0].whole);
  EXPECT_TRUE((*plan)[1].slices[0].profile.empty());
}

TEST(DraClaim, PlanRefusesForeignPoolsUnknownDevicesAndUnhealthyCards) {
  auto plan_of = [](const NodeInventory& inv, const json& result) {
    auto parsed = ParseAllocatedClaim(Claim(json::array({result})).dump(), "tideslice.io", kRef);
    EXPECT_TRUE(parsed.ok());
    return PlanClaim(*parsed, inv, "node-a");
  };
  json r = {{"request", "g"}, {"driver", "tideslice.io"}, {"pool", "node-a"}, {"device", "card-1"}};
  EXPECT_TRUE(plan_of(Inventory(), r).ok());
  json other_pool = r;
  other_pool["pool"] = "node-b";
  EXPECT_FALSE(plan_of(Inventory(), other_pool).ok());
  json unknown = r;
  unknown["device"] = "card-9";
  EXPECT_EQ(plan_of(Inventory(), unknown).status().code(), StatusCode::kNotFound);
  auto sick = plan_of(Inventory(false), r);
  ASSERT_FALSE(sick.ok());
  EXPECT_NE(sick.status().ToString().find("unhealthy"), std::string::npos);
  json shared_without_capacity = {{"request", "s"}, {"driver", "tideslice.io"}, {"pool", "node-a"}, {"device", "card-1-shared"},
                                  {"shareID", "x"}};
  EXPECT_FALSE(plan_of(Inventory(), shared_without_capacity).ok());
}

TEST(DraClaim, FuzzEntryPointSurvivesMutations) {
  const std::string seed = Claim(json::array({{{"request", "s/x"}, {"driver", "tideslice.io"}, {"pool", "node-a"},
                                               {"device", "card-1-shared"}, {"shareID", "s1"},
                                               {"consumedCapacity", {{"memory", "8Gi"}, {"cores", "30"}}}}}),
                                 json::array({{{"opaque", {{"driver", "tideslice.io"}, {"parameters", {{"workloadClass", "inference"}}}}}}}))
                               .dump();
  std::mt19937 rng(7);
  const std::string alphabet = "{}[]\":,0123456789.-eEGiMm /\\u\nnulltrue";
  for (int round = 0; round < 3000; ++round) {
    std::string s = seed;
    for (int e = 0; e < 1 + static_cast<int>(rng() % 4); ++e) {
      size_t pos = rng() % (s.size() + 1);
      switch (rng() % 4) {
        case 0: s.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
        case 1: if (pos < s.size()) s.erase(pos, 1 + rng() % 8); break;
        case 2: if (pos < s.size()) s[pos] = static_cast<char>(rng() % 256); break;
        case 3: s = s.substr(0, pos); break;
      }
    }
    fuzz::Fuzz_dra_claim(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  fuzz::Fuzz_dra_claim(reinterpret_cast<const uint8_t*>(seed.data()), seed.size());
}

}  // namespace
}  // namespace tideslice::dra
