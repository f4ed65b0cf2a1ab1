// Pins the catalog's facts (docs/catalog.md cites their sources) and the loader's validation.
#include "common/catalog/catalog.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tideslice::catalog {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const AcceleratorModel& Model(const std::string& name) {
  const auto* m = Catalog::Builtin().Find(name);
  EXPECT_NE(m, nullptr) << name;
  return *m;
}

TEST(Catalog, HasEveryRequiredModel) {
  for (const char* name : {"T4", "V100-16G", "V100-32G", "A10", "A100-40G", "A100-80G", "H100-80G", "Ascend910A",
                           "Ascend910B2", "Ascend910B3", "Ascend910B4", "Ascend910B4-1", "Ascend310P3"}) {
    const auto* m = Catalog::Builtin().Find(name);
    ASSERT_NE(m, nullptr) << name;
    EXPECT_FALSE(m->sources.empty()) << name << " must cite its sources";
    EXPECT_GT(m->memory_mib, 0);
    EXPECT_GT(m->compute_units, 0);
    EXPECT_GT(m->fp16_tflops, 0);
  }
}

TEST(Catalog, NvidiaFacts) {
  EXPECT_EQ(Model("T4").memory_mib, 16 * 1024);
  EXPECT_EQ(Model("T4").compute_units, 40);
  EXPECT_EQ(Model("V100-32G").memory_mib, 32 * 1024);
  EXPECT_EQ(Model("V100-16G").compute_units, 80);
  EXPECT_EQ(Model("A10").memory_mib, 24 * 1024);
  EXPECT_EQ(Model("A100-40G").compute_units, 108);
  EXPECT_DOUBLE_EQ(Model("A100-80G").fp16_tflops, 312);
  EXPECT_EQ(Model("H100-80G").compute_units, 132);
  EXPECT_DOUBLE_EQ(Model("H100-80G").fp16_tflops, 989);
  EXPECT_EQ(Model("T4").partitioning, Partitioning::kNone);
  EXPECT_EQ(Model("H100-80G").partitioning, Partitioning::kMig);
}

TEST(Catalog, LookupByAliasIsCaseInsensitive) {
  EXPECT_EQ(Catalog::Builtin().Find("v100m32")->name, "V100-32G");
  EXPECT_EQ(Catalog::Builtin().Find("Tesla-T4")->name, "T4");
  EXPECT_EQ(Catalog::Builtin().Find("910B4-1")->name, "Ascend910B4-1");
  EXPECT_EQ(Catalog::Builtin().Find("nope"), nullptr);
}

std::string Sanitize(std::string s) {
  for (char& c : s)
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

struct MigFact {
  std::string model, profile;
  int64_t memory;
  int compute, slot_size;
  std::vector<int> starts;
};
void PrintTo(const MigFact& f, std::ostream* os) { *os << f.model + " " + f.profile; }


class MigProfiles : public ::testing::TestWithParam<MigFact> {};

TEST_P(MigProfiles, MatchTheMigUserGuide) {
  const auto& f = GetParam();
  const auto* p = Model(f.model).FindProfile(f.profile);
  ASSERT_NE(p, nullptr) << f.model << " " << f.profile;
  EXPECT_EQ(p->memory_mib, f.memory);
  EXPECT_EQ(p->compute, f.compute);
  EXPECT_EQ(p->slot_size, f.slot_size);
  EXPECT_EQ(p->start_slots, f.starts);
}

INSTANTIATE_TEST_SUITE_P(
    Catalog, MigProfiles,
    ::testing::Values(MigFact{"A100-40G", "1g.5gb", 5120, 1, 1, {0, 1, 2, 3, 4, 5, 6}},
                      MigFact{"A100-40G", "2g.10gb", 10240, 2, 2, {0, 2, 4}},
                      MigFact{"A100-40G", "3g.20gb", 20480, 3, 4, {0, 4}},
                      MigFact{"A100-40G", "4g.20gb", 20480, 4, 4, {0}},
                      MigFact{"A100-40G", "7g.40gb", 40960, 7, 8, {0}},
                      MigFact{"A100-80G", "1g.10gb", 10240, 1, 1, {0, 1, 2, 3, 4, 5, 6}},
                      MigFact{"A100-80G", "1g.20gb", 20480, 1, 2, {0, 2, 4, 6}},
                      MigFact{"A100-80G", "3g.40gb", 40960, 3, 4, {0, 4}},
                      MigFact{"H100-80G", "2g.20gb", 20480, 2, 2, {0, 2, 4}},
                      MigFact{"H100-80G", "4g.40gb", 40960, 4, 4, {0}},
                      MigFact{"H100-80G", "7g.80gb", 81920, 7, 8, {0}}),
    [](const auto& info) { return Sanitize(info.param.model + "_" + info.param.profile); });

struct AscendFact {
  std::string model, profile;
  int64_t memory;
  int aicore, aicpu;
};
void PrintTo(const AscendFact& f, std::ostream* os) { *os << f.model + " " + f.profile; }


class AscendTemplates : public ::testing::TestWithParam<AscendFact> {};

TEST_P(AscendTemplates, MatchTheVendorTables) {
  const auto& f = GetParam();
  const auto* p = Model(f.model).FindProfile(f.profile);
  ASSERT_NE(p, nullptr) << f.model << " " << f.profile;
  EXPECT_EQ(p->memory_mib, f.memory);
  EXPECT_EQ(p->compute, f.aicore);
  EXPECT_EQ(p->aicpu, f.aicpu);
}

INSTANTIATE_TEST_SUITE_P(Catalog, AscendTemplates,
                         ::testing::Values(AscendFact{"Ascend910B3", "vir05_1c_16g", 16384, 5, 1},
                                           AscendFact{"Ascend910B3", "vir10_3c_32g", 32768, 10, 3},
                                           AscendFact{"Ascend910B2", "vir03_1c_8g", 8192, 3, 1},
                                           AscendFact{"Ascend910B2", "vir06_1c_16g", 16384, 6, 1},
                                           AscendFact{"Ascend910B2", "vir12_3c_32g", 32768, 12, 3},
                                           AscendFact{"Ascend910B4", "vir05_1c_8g", 8192, 5, 1},
                                           AscendFact{"Ascend910B4", "vir10_3c_16g", 16384, 10, 3},
                                           AscendFact{"Ascend910B4-1", "vir05_1c_16g", 16384, 5, 1},
                                           AscendFact{"Ascend910B4-1", "vir10_3c_32g", 32768, 10, 3},
                                           AscendFact{"Ascend310P3", "vir01", 3072, 1, 1},
                                           AscendFact{"Ascend310P3", "vir02_1c", 6144, 2, 1},
                                           AscendFact{"Ascend310P3", "vir04_3c", 12288, 4, 3},
                                           AscendFact{"Ascend910A", "vir16", 17476, 16, 0}),
                         [](const auto& info) { return Sanitize(info.param.model + "_" + info.param.profile); });

TEST(Catalog, Ascend910B4And910B4dash1DifferInMemoryAndTemplates) {
  // HAMi issue #1497: B4-1 inherited B4's 8g/16g templates although it has 64 GB.
  EXPECT_EQ(Model("Ascend910B4").memory_mib, 32768);
  EXPECT_EQ(Model("Ascend910B4-1").memory_mib, 65536);
  EXPECT_EQ(Model("Ascend910B4-1").FindProfile("vir05_1c_8g"), nullptr);
  EXPECT_EQ(Model("Ascend910B4").FindProfile("vir05_1c_16g"), nullptr);
}

TEST(Catalog, Ascend310P3TemplateList) {
  std::vector<std::string> names;
  for (const auto& p : Model("Ascend310P3").profiles) names.push_back(p.name);
  EXPECT_THAT(names, ElementsAre("vir01", "vir02", "vir02_1c", "vir04", "vir04_3c", "vir04_3c_ndvpp", "vir04_4c_dvpp"));
}

TEST(CatalogLoader, RejectsUnknownKeysNamingThem) {
  auto c = Catalog::FromJson(R"({"models":[{"name":"X","vendor":"v","memory_mib":1,"compute_units":1,"memroy":2}]})");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().field(), "catalog.models[0].memroy");
}

TEST(CatalogLoader, RejectsBadValues) {
  EXPECT_THAT(Catalog::FromJson("not json").status().message(), HasSubstr("not valid JSON"));
  EXPECT_THAT(Catalog::FromJson(R"({"models":[{"name":"X","vendor":"v","memory_mib":0,"compute_units":1}]})")
                  .status()
                  .field(),
              "catalog.models[0].memory_mib");
  EXPECT_THAT(Catalog::FromJson(R"({"models":[{"name":"X","vendor":"v","memory_mib":1,"compute_units":1,"partitioning":"magic"}]})")
                  .status()
                  .message(),
              HasSubstr("none, mig or ascend-vnpu"));
  auto overlap = Catalog::FromJson(
      R"({"models":[{"name":"X","vendor":"v","memory_mib":8,"compute_units":1,"partitioning":"mig","mig_memory_slices":8,
         "mig_compute_slices":7,"profiles":[{"name":"p","memory_mib":1,"compute_slices":1,"slot_size":4,"start_slots":[6],"max_instances":1}]}]})");
  EXPECT_THAT(overlap.status().message(), HasSubstr("runs past"));
  auto twice = Catalog::FromJson(
      R"({"models":[{"name":"X","vendor":"v","memory_mib":1,"compute_units":1},{"name":"x","vendor":"v","memory_mib":1,"compute_units":1}]})");
  EXPECT_THAT(twice.status().message(), HasSubstr("defined twice"));
  EXPECT_THAT(Catalog::FromJson(R"({"version":"v9","models":[]})").status().field(), "catalog.version");
}

// Found by fuzz_catalog: nlohmann throws out_of_range (not parse_error) for huge numbers.
TEST(CatalogLoader, HugeNumbersAreAnErrorNotACrash) {
  auto c = Catalog::FromJson(R"({"models":[{"name":"X","vendor":"v","memory_mib":1e999,"compute_units":1}]})");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("not valid JSON"));
}

TEST(CatalogLoader, MergeOverridesAndAdds) {
  Catalog c = Catalog::Builtin();
  auto over = Catalog::FromJson(
      R"({"models":[{"name":"T4","vendor":"nvidia","memory_mib":15360,"compute_units":40},
                    {"name":"MLU370","vendor":"cambricon","memory_mib":24576,"compute_units":8}]})");
  ASSERT_TRUE(over.ok()) << over.status().ToString();
  c.Merge(*over);
  EXPECT_EQ(c.Find("T4")->memory_mib, 15360);
  EXPECT_NE(c.Find("MLU370"), nullptr);
  EXPECT_EQ(Catalog::Builtin().Find("T4")->memory_mib, 16384);  // the built-in stays as it was
}

}  // namespace
}  // namespace tideslice::catalog
