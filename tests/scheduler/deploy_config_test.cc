// deploy/scheduler/kube-scheduler-config.yaml agrees with the code: the extender URL is the
// scheduler's default address, every resource name TideSlice accepts is ignored by
// NodeResourcesFit (and a valid extended resource name; the extender has no managedResources, so
// DRA pods reach it), the HTTP timeout covers the bind wait, and the fields follow the
// KubeSchedulerConfiguration v1 rules (KUBE-WIRE §4.1).
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "common/catalog/catalog.h"
#include "common/codec/yaml_json.h"
#include "scheduler/core/request.h"
#include "scheduler/service/app.h"

namespace tideslice {
namespace {

TEST(DeployConfig, KubeSchedulerConfigurationMatchesTheScheduler) {
  std::ifstream in(std::string(TIDESLICE_SOURCE_DIR) + "/deploy/scheduler/kube-scheduler-config.yaml");
  std::stringstream ss;
  ss << in.rdbuf();
  auto doc = codec::YamlToJson(ss.str(), "kube-scheduler-config.yaml");
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ((*doc)["apiVersion"], "kubescheduler.config.k8s.io/v1");
  EXPECT_EQ((*doc)["kind"], "KubeSchedulerConfiguration");
  ASSERT_EQ((*doc)["profiles"].size(), 1u);
  EXPECT_EQ((*doc)["profiles"][0]["schedulerName"], service::WebhookOptions().scheduler_name);
  EXPECT_NE((*doc)["leaderElection"]["resourceName"], "kube-scheduler");
  ASSERT_EQ((*doc)["extenders"].size(), 1u);
  const auto& e = (*doc)["extenders"][0];
  EXPECT_EQ(e["urlPrefix"], service::AppOptions().extender_address);
  for (const char* verb : {"filter", "prioritize", "bind", "preempt"}) EXPECT_EQ(e[std::string(verb) + "Verb"], verb);
  EXPECT_GT(e["weight"].get<int>(), 0);
  EXPECT_TRUE(e["nodeCacheCapable"].get<bool>());
  std::string timeout = e["httpTimeout"];
  ASSERT_EQ(timeout.back(), 's');
  EXPECT_GT(std::stoi(timeout), std::chrono::duration_cast<std::chrono::seconds>(service::BinderOptions().max_wait).count());

  // No managedResources: kube-scheduler calls an extender that has them only for pods asking for
  // one, and pods asking for cards only through DRA claims must reach it too. NodeResourcesFit
  // ignores what the extender accounts instead.
  EXPECT_FALSE(e.contains("managedResources"));
  const auto& plugin_config = (*doc)["profiles"][0]["pluginConfig"];
  ASSERT_EQ(plugin_config.size(), 1u);
  EXPECT_EQ(plugin_config[0]["name"], "NodeResourcesFit");
  std::set<std::string> managed;
  const std::regex qualified(R"(^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$)");
  for (const auto& r : plugin_config[0]["args"]["ignoredResources"]) {
    std::string name = r;
    EXPECT_TRUE(managed.insert(name).second) << "duplicate " << name;
    EXPECT_TRUE(std::regex_match(name, qualified)) << name;
    EXPECT_EQ(name.find("kubernetes.io/"), std::string::npos) << name;
  }
  for (const char* name : {core::names::kVnpu, core::names::kVnpuMemory, core::names::kVnpuMemoryPercent,
                           core::names::kVnpuCores, core::names::kVnpuTflops, core::names::kNvidiaGpu,
                           core::names::kNvidiaGpuMem, core::names::kNvidiaGpuMemPercent, core::names::kNvidiaGpuCores})
    EXPECT_TRUE(managed.count(name)) << name << " is accepted by PreFilter but not managed by the extender";
  for (const auto& m : catalog::Catalog::Builtin().models())
    if (m.vendor == "huawei") {
      EXPECT_TRUE(managed.count(std::string(core::names::kHuaweiPrefix) + m.name.substr(6))) << m.name;
      EXPECT_TRUE(managed.count(std::string(core::names::kHuaweiPrefix) + m.name.substr(6) + "-memory")) << m.name;
    }
}

}  // namespace
}  // namespace tideslice
