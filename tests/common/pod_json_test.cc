#include "common/kube/pod_json.h"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace tideslice::kube {
namespace {

std::string ReadShared(const std::string& rel) {
  std::ifstream in(std::string(TIDESLICE_SHARED_DIR) + "/" + rel);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(PodJson, ParsesTheRealApiserverPod) {
  std::string text = ReadShared("k8s-fixtures/pod.json");
  if (text.empty()) GTEST_SKIP() << "shared/k8s-fixtures/pod.json not found beside the repository";
  auto pod = PodSpecFromJson(text);
  ASSERT_TRUE(pod.ok()) << pod.status().ToString();
  EXPECT_EQ(pod->name, "nginx-deployment-67d4bdd6f5-w6kd7");
  EXPECT_EQ(pod->namespace_name, "default");
  EXPECT_FALSE(pod->uid.empty());
  ASSERT_EQ(pod->containers.size(), 1u);
  EXPECT_EQ(pod->containers[0].requests.at("cpu"), "500m");
  EXPECT_EQ(pod->containers[0].limits.at("memory"), "128Mi");
  ASSERT_FALSE(pod->owners.empty());
  EXPECT_EQ(pod->owners[0].kind, "ReplicaSet");
  EXPECT_EQ(pod->node_name, "kube-worker-1");
  EXPECT_EQ(pod->phase, "Running");
}

TEST(PodJson, NullsAreAbsentLikeGoEncodingJson) {
  auto pod = PodSpecFromJson(R"({"metadata":{"name":"p","labels":null,"annotations":null},
      "spec":{"containers":null,"initContainers":null},"status":{}})");
  ASSERT_TRUE(pod.ok()) << pod.status().ToString();
  EXPECT_EQ(pod->namespace_name, "default");
  EXPECT_TRUE(pod->containers.empty());
}

TEST(PodJson, InitContainersAndAnnotations) {
  auto pod = PodSpecFromJson(R"({"metadata":{"name":"p","namespace":"ml","annotations":{"tideslice.io/card-type":"H100"}},
      "spec":{"priority":100,"initContainers":[{"name":"warm","resources":{"limits":{"tideslice.io/vnpu":"1"}}}],
              "containers":[{"name":"a","resources":{"limits":{"tideslice.io/vnpu":2}}}]}})");
  ASSERT_TRUE(pod.ok()) << pod.status().ToString();
  EXPECT_EQ(pod->Key(), "ml/p");
  EXPECT_EQ(pod->priority, 100);
  ASSERT_EQ(pod->init_containers.size(), 1u);
  EXPECT_EQ(pod->containers[0].limits.at("tideslice.io/vnpu"), "2");  // a JSON number is accepted
  EXPECT_EQ(pod->annotations.at("tideslice.io/card-type"), "H100");
}

TEST(PodJson, MalformedInputNamesTheField) {
  EXPECT_EQ(PodSpecFromJson("{").status().field(), "pod");
  EXPECT_EQ(PodSpecFromJson("[]").status().field(), "pod");
  EXPECT_EQ(PodSpecFromJson(R"({"metadata":{"name":7}})").status().field(), "metadata.name");
  EXPECT_EQ(PodSpecFromJson(R"({"spec":{"containers":{}}})").status().field(), "spec.containers");
  EXPECT_EQ(PodSpecFromJson(R"({"spec":{"containers":[{"resources":{"limits":{"x":true}}}]}})").status().field(),
            "spec.containers[0].resources.limits.x");
  EXPECT_EQ(PodSpecFromJson(R"({"spec":{"priority":"high"}})").status().field(), "spec.priority");
  EXPECT_EQ(PodSpecFromJson(R"({"spec":{"priority":99999999999}})").status().field(), "spec.priority");
  EXPECT_EQ(PodSpecFromJson(R"({"spec":{"priority":1e999}})").status().field(), "pod");
}

// Every field the decoder reads, given the wrong JSON type (or nesting far deeper than any
// pod): a Status, never an exception. The webhook and the extender hand it whatever they got.
TEST(PodJson, HostileTypesAreStatusesNeverThrows) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const char* fields[] = {R"("metadata":5)", R"("metadata":{"name":[]})", R"("metadata":{"namespace":{}})",
                          R"("metadata":{"labels":"x"})", R"("metadata":{"annotations":{"a":{}}})",
                          R"("metadata":{"ownerReferences":{}})", R"("metadata":{"ownerReferences":[5,{"kind":1}]})",
                          R"("spec":[])", R"("spec":{"containers":{}})", R"("spec":{"containers":[7]})",
                          R"("spec":{"containers":[{"resources":[]}]})", R"("spec":{"containers":[{"resources":{"limits":[1]}}]})",
                          R"("spec":{"priority":"high"})", R"("spec":{"priority":1.5})", R"("spec":{"priority":18446744073709551615})",
                          R"("spec":{"schedulerName":true})", R"("status":7)", R"("status":{"phase":{}})"};
  for (const char* f : fields) {
    const std::string text = std::string("{") + f + "}";
    EXPECT_NO_THROW((void)PodSpecFromJson(text)) << text;
  }
  EXPECT_FALSE(PodSpecFromJson(R"({"metadata":{"labels":{"a":)" + deep + "}}}").ok());
  EXPECT_FALSE(PodSpecFromJson(deep).ok());
  EXPECT_FALSE(PodSpecFromJson(R"({"spec":{"priority":18446744073709551615}})").ok());
}

}  // namespace
}  // namespace tideslice::kube
