// PreFilter: the request contract of docs/architecture.md, one rule per test.
#include "scheduler/core/request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/scheduler/core/test_cluster.h"

namespace tideslice::core {
namespace {

using ::testing::HasSubstr;
using testing::PodBuilder;

TEST(PreFilter, SliceWithMemoryQuantities) {
  for (auto [text, mib] : std::vector<std::pair<std::string, int64_t>>{{"8Gi", 8192}, {"8192Mi", 8192}, {"500M", 477}, {"8192", 8192}}) {
    auto r = PodBuilder("p").Container("c", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", text}}).Request();
    ASSERT_TRUE(r.ok()) << text << ": " << r.status().ToString();
    EXPECT_EQ(r->containers[0].slice.memory_mib, mib) << text;
    EXPECT_FALSE(r->containers[0].slice.whole);
    EXPECT_EQ(r->containers[0].slice.compute_permille, 0);  // best-effort compute
  }
}

TEST(PreFilter, PercentCoresAndTflops) {
  auto r = PodBuilder("p").Container("c", {{"tideslice.io/vnpu", "2"}, {"tideslice.io/vnpu-memory-percent", "25"},
                                           {"tideslice.io/vnpu-cores", "30"}}).Request();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->containers[0].slice.count, 2);
  EXPECT_EQ(r->containers[0].slice.memory_percent, 25);
  EXPECT_EQ(r->containers[0].slice.compute_permille, 300);
  EXPECT_FALSE(r->containers[0].slice.memory_proportional);

  auto t = PodBuilder("p").Container("c", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-tflops", "100"}}).Request();
  ASSERT_TRUE(t.ok());
  EXPECT_DOUBLE_EQ(t->containers[0].slice.tflops, 100);
  EXPECT_TRUE(t->containers[0].slice.memory_proportional);
}

TEST(PreFilter, CountAloneMeansWholeCards) {
  auto r = PodBuilder("p").Container("c", {{"tideslice.io/vnpu", "4"}}).Request();
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->containers[0].slice.whole);
  EXPECT_EQ(r->MaxCardsPerContainer(), 4);
  EXPECT_DOUBLE_EQ(r->CardEquivalents(), 4);
}

TEST(PreFilter, SeveralContainersAndInitContainers) {
  auto r = PodBuilder("p")
               .Init("warmup", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "4Gi"}, {"cpu", "8"}, {"memory", "4Gi"}})
               .Container("a", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "8Gi"}, {"cpu", "2"}, {"memory", "1Gi"}})
               .Container("b", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "8Gi"}, {"cpu", "2"}, {"memory", "1Gi"}})
               .Container("sidecar", {{"cpu", "100m"}})
               .Request();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->containers.size(), 4u);
  EXPECT_FALSE(r->containers[0].init);
  EXPECT_TRUE(r->containers[3].init);
  EXPECT_EQ(r->containers[2].slice.count, 0);  // sidecar asks for no card
  EXPECT_EQ(r->cpu_milli, 8000);               // max(sum of apps 4.1, init 8)
  EXPECT_EQ(r->memory_mib, 4096);
}

TEST(PreFilter, NvidiaAliases) {
  auto r = PodBuilder("p").Container("c", {{"nvidia.com/gpu", "1"}, {"nvidia.com/gpumem", "8000"}, {"nvidia.com/gpucores", "30"}}).Request();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->containers[0].slice.memory_mib, 8000);
  EXPECT_EQ(r->containers[0].slice.compute_permille, 300);
  EXPECT_TRUE(r->type_include.count("H100-80G"));
  EXPECT_FALSE(r->type_include.count("Ascend910B3"));  // nvidia.com/* only lands on NVIDIA cards
  auto pct = PodBuilder("p").Container("c", {{"nvidia.com/gpu", "1"}, {"nvidia.com/gpumem-percentage", "50"}}).Request();
  EXPECT_EQ(pct->containers[0].slice.memory_percent, 50);
}

TEST(PreFilter, HuaweiAliasesImplyTheModel) {
  auto r = PodBuilder("p").Container("c", {{"huawei.com/Ascend910B3", "1"}, {"huawei.com/Ascend910B3-memory", "16384"}}).Request();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->type_include, std::set<std::string>{"Ascend910B3"});
  EXPECT_EQ(r->containers[0].slice.memory_mib, 16384);
  auto bad = PodBuilder("p").Container("c", {{"huawei.com/Ascend999", "1"}}).Request();
  EXPECT_THAT(bad.status().message(), HasSubstr("unknown Ascend model Ascend999"));
}

TEST(PreFilter, AnnotationsForTypesUuidsPolicyExclusiveWorkload) {
  auto r = PodBuilder("p")
               .Container("c", {{"tideslice.io/vnpu", "1"}})
               .Annotate("tideslice.io/card-type", "Ascend910B3, h100")
               .Annotate("tideslice.io/card-type-exclude", "T4")
               .Annotate("tideslice.io/card-uuid-exclude", "GPU-bad")
               .Annotate("tideslice.io/placement", "spread")
               .Annotate("tideslice.io/exclusive", "true")
               .Label("tideslice.io/workload", "training")
               .Request();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->type_include, (std::set<std::string>{"Ascend910B3", "H100-80G"}));  // aliases resolved
  EXPECT_EQ(r->type_exclude, std::set<std::string>{"T4"});
  EXPECT_TRUE(r->uuid_exclude.count("GPU-bad"));
  EXPECT_EQ(r->placement, PlacementPolicy::kSpread);
  EXPECT_TRUE(r->exclusive);
  EXPECT_EQ(r->workload, WorkloadClass::kTraining);
}

TEST(PreFilter, WorkloadClassDefaultsFromTheOwner) {
  EXPECT_EQ(PodBuilder("p").Owner("ReplicaSet").MustRequest().workload, WorkloadClass::kInference);
  EXPECT_EQ(PodBuilder("p").Owner("StatefulSet").MustRequest().workload, WorkloadClass::kInference);
  EXPECT_EQ(PodBuilder("p").Owner("Job").MustRequest().workload, WorkloadClass::kTraining);
  EXPECT_EQ(PodBuilder("p").Owner("PyTorchJob").MustRequest().workload, WorkloadClass::kTraining);
  EXPECT_EQ(PodBuilder("p").MustRequest().workload, WorkloadClass::kUnspecified);
}

TEST(PreFilter, ProfileAnnotation) {
  auto r = PodBuilder("p").Container("c", {{"tideslice.io/vnpu", "1"}}).Annotate("tideslice.io/profile", "vir05_1c_16g").Request();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->containers[0].slice.profile, "vir05_1c_16g");
  EXPECT_FALSE(r->containers[0].slice.whole);
}

struct BadCase {
  std::string name;
  PodBuilder pod;
  std::string field;    // the field the error must name
  std::string message;  // a phrase it must contain
};
void PrintTo(const BadCase& f, std::ostream* os) { *os << f.name; }


class PreFilterRejects : public ::testing::TestWithParam<BadCase> {};

TEST_P(PreFilterRejects, WithAnErrorThatNamesTheField) {
  const auto& c = GetParam();
  auto r = c.pod.Request();
  ASSERT_FALSE(r.ok()) << c.name;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().field(), HasSubstr(c.field)) << r.status().ToString();
  EXPECT_THAT(r.status().message(), HasSubstr(c.message)) << r.status().ToString();
}

PodBuilder One(std::map<std::string, std::string> limits, std::map<std::string, std::string> ann = {}) {
  PodBuilder b("p");
  b.Container("c", std::move(limits));
  for (auto& [k, v] : ann) b.Annotate(k, v);
  return b;
}

INSTANTIATE_TEST_SUITE_P(
    Bad, PreFilterRejects,
    ::testing::Values(
        BadCase{"cores_above_100", One({{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-cores", "150"}}), "tideslice.io/vnpu-cores", "between 1 and 100"},
        BadCase{"cores_zero", One({{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-cores", "0"}}), "tideslice.io/vnpu-cores", "between 1 and 100"},
        BadCase{"percent_101", One({{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory-percent", "101"}}), "vnpu-memory-percent", "between 1 and 100"},
        BadCase{"memory_above_every_card", One({{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "200Gi"}}), "tideslice.io/vnpu-memory", "largest allowed card has 81920 MiB"},
        BadCase{"memory_above_allowed_cards", One({{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "20Gi"}}, {{"tideslice.io/card-type", "T4"}}), "tideslice.io/vnpu-memory", "16384 MiB"},
        BadCase{"memory_garbage", One({{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "8GB"}}), "tideslice.io/vnpu-memory", "8Gi, 8192Mi"},
        BadCase{"memory_without_count", One({{"tideslice.io/vnpu-memory", "8Gi"}}), "tideslice.io/vnpu-memory", "add tideslice.io/vnpu: 1"},
        BadCase{"memory_and_percent", One({{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "8Gi"}, {"tideslice.io/vnpu-memory-percent", "10"}}), "vnpu-memory-percent", "not both"},
        BadCase{"fractional_count", One({{"tideslice.io/vnpu", "1.5"}}), "tideslice.io/vnpu", "whole number"},
        BadCase{"count_too_large", One({{"tideslice.io/vnpu", "100"}}), "tideslice.io/vnpu", "at most 64"},
        BadCase{"conflicting_aliases", One({{"tideslice.io/vnpu", "1"}, {"nvidia.com/gpu", "2"}}), "tideslice.io/vnpu", "conflicts with nvidia.com/gpu (2 vs 1)"},
        BadCase{"unknown_profile", One({{"tideslice.io/vnpu", "1"}}, {{"tideslice.io/profile", "9g.99gb"}}), "tideslice.io/profile", "no allowed card offers profile"},
        BadCase{"profile_wrong_type", One({{"tideslice.io/vnpu", "1"}}, {{"tideslice.io/profile", "3g.40gb"}, {"tideslice.io/card-type", "Ascend910B3"}}), "tideslice.io/profile", "vir05_1c_16g"},
        BadCase{"profile_plus_memory", One({{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "8Gi"}}, {{"tideslice.io/profile", "1g.10gb"}}), "tideslice.io/profile", "fixes memory and cores"},
        BadCase{"profile_without_vnpu", One({{"cpu", "1"}}, {{"tideslice.io/profile", "1g.10gb"}}), "tideslice.io/profile", "no container asks"},
        BadCase{"unknown_card_type", One({{"tideslice.io/vnpu", "1"}}, {{"tideslice.io/card-type", "Z80"}}), "tideslice.io/card-type", "unknown card type \"Z80\""},
        BadCase{"exclude_everything", One({{"tideslice.io/vnpu", "1"}}, {{"tideslice.io/card-type", "T4"}, {"tideslice.io/card-type-exclude", "T4"}}), "card-type-exclude", "excludes every card type"},
        BadCase{"huawei_vs_annotation", One({{"huawei.com/Ascend910B3", "1"}}, {{"tideslice.io/card-type", "H100-80G"}}), "tideslice.io/card-type", "make them agree"},
        BadCase{"nvidia_vs_annotation", One({{"nvidia.com/gpu", "1"}}, {{"tideslice.io/card-type", "Ascend910B3"}}), "tideslice.io/card-type", "no NVIDIA model"},
        BadCase{"uuid_pin_and_avoid", One({{"tideslice.io/vnpu", "1"}}, {{"tideslice.io/card-uuid", "g1"}, {"tideslice.io/card-uuid-exclude", "g1"}}), "card-uuid-exclude", "pins"},
        BadCase{"bad_placement", One({{"tideslice.io/vnpu", "1"}}, {{"tideslice.io/placement", "pack"}}), "tideslice.io/placement", "binpack"},
        BadCase{"bad_exclusive", One({{"tideslice.io/vnpu", "1"}}, {{"tideslice.io/exclusive", "yes"}}), "tideslice.io/exclusive", "\"true\" or \"false\""},
        BadCase{"tflops_too_high", One({{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-tflops", "5000"}}), "tideslice.io/vnpu-tflops", "fastest"},
        BadCase{"requests_differ_from_limits",
                [] {
                  PodBuilder b("p");
                  b.Container("c", {{"tideslice.io/vnpu", "1"}});
                  b.spec.containers[0].requests["tideslice.io/vnpu"] = "2";
                  return b;
                }(),
                "tideslice.io/vnpu", "differ"},
        BadCase{"bad_workload_label", [] { auto b = One({{"tideslice.io/vnpu", "1"}}); b.Label("tideslice.io/workload", "batch"); return b; }(),
                "tideslice.io/workload", "inference"},
        BadCase{"bad_cpu", One({{"cpu", "lots"}}), "cpu", "not a valid CPU quantity"}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace tideslice::core
