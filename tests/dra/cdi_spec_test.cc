#include "device-plugin/dra/cdi_spec.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "device-plugin/plugin/container_response.h"
#include "device-plugin/plugin/limiter_setup.h"

namespace tideslice::dra {
namespace {

using nlohmann::json;

deviceplugin::AssignedSlice Slice(int index, const std::string& vendor) {
  deviceplugin::AssignedSlice s;
  s.card.uuid = "GPU-" + std::to_string(index);
  s.card.index = index;
  s.card.vendor = vendor;
  s.whole = true;
  return s;
}

TEST(DraCdiSpec, NamesFollowTheCdiRules) {
  EXPECT_EQ(CdiKind("tideslice.io"), "k8s.tideslice.io/card");
  EXPECT_EQ(CdiDeviceId("tideslice.io", "0f1c-uid", "gpu"), "k8s.tideslice.io/card=0f1c-uid-gpu");
  EXPECT_EQ(CdiSpecFileName("tideslice.io", "0f1c-uid"), "k8s.tideslice.io-card_0f1c-uid.json");
}

TEST(DraCdiSpec, ContainerEditsOfTheDevicePluginWithTheLimiter) {
  auto response = deviceplugin::BuildContainerResponse({Slice(1, "nvidia"), Slice(0, "nvidia")});
  ASSERT_TRUE(response.ok());
  deviceplugin::LimiterLayout layout{"/var/lib/tideslice/limiter"};
  deviceplugin::AddLimiterToResponse(layout, "0f1c-uid", "gpu", *response);
  auto spec = BuildCdiSpec("tideslice.io", "0f1c-uid", {{"gpu", *response}});
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ((*spec)["cdiVersion"], "0.5.0");
  EXPECT_EQ((*spec)["kind"], "k8s.tideslice.io/card");
  ASSERT_EQ((*spec)["devices"].size(), 1u);
  const json& d = (*spec)["devices"][0];
  EXPECT_EQ(d["name"], "0f1c-uid-gpu");
  const json& edits = d["containerEdits"];
  EXPECT_NE(std::find(edits["env"].begin(), edits["env"].end(), json("NVIDIA_VISIBLE_DEVICES=GPU-0,GPU-1")), edits["env"].end());
  EXPECT_NE(std::find(edits["env"].begin(), edits["env"].end(), json("TIDESLICE_LIMITER=on")), edits["env"].end());
  bool nvidia0 = false;
  for (const auto& n : edits["deviceNodes"])
    if (n["path"] == "/dev/nvidia0") {
      nvidia0 = true;
      EXPECT_EQ(n["hostPath"], "/dev/nvidia0");
      EXPECT_EQ(n["permissions"], "rw");
    }
  EXPECT_TRUE(nvidia0);
  bool config = false;
  for (const auto& m : edits["mounts"])
    if (m["containerPath"] == deviceplugin::kLimiterConfigInContainer) {
      config = true;
      EXPECT_EQ(m["hostPath"], layout.ConfigPath("0f1c-uid", "gpu"));
      EXPECT_EQ(m["options"], (json{"ro", "nosuid", "nodev", "bind"}));
    }
  EXPECT_TRUE(config);
  // Only keys the CDI 0.5.0 loader knows (it refuses unknown ones).
  for (const auto& [k, v] : edits.items()) EXPECT_TRUE(k == "env" || k == "deviceNodes" || k == "mounts") << k;
}

TEST(DraCdiSpec, RefusesBadNamesAndRelativePaths) {
  auto response = deviceplugin::BuildContainerResponse({Slice(0, "huawei")});
  ASSERT_TRUE(response.ok());
  EXPECT_FALSE(BuildCdiSpec("tideslice.io", "uid/../x", {{"npu", *response}}).ok());
  EXPECT_FALSE(BuildCdiSpec("tideslice.io", "uid", {}).ok());
  auto rel = *response;
  rel.add_mounts()->set_host_path("relative");
  EXPECT_FALSE(BuildCdiSpec("tideslice.io", "uid", {{"npu", rel}}).ok());
}

TEST(DraCdiSpec, AtomicWriteAndIdempotentRemove) {
  auto dir = std::filesystem::temp_directory_path() / ("dra-cdi-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  json spec = {{"cdiVersion", "0.5.0"}, {"kind", "k8s.tideslice.io/card"}, {"devices", json::array()}};
  ASSERT_TRUE(WriteCdiSpec(dir, "k8s.tideslice.io-card_u.json", spec).ok());
  ASSERT_TRUE(WriteCdiSpec(dir, "k8s.tideslice.io-card_u.json", spec).ok());  // replaced in place
  std::ifstream in(dir / "k8s.tideslice.io-card_u.json");
  EXPECT_EQ(json::parse(in), spec);
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1u);  // no temporary left behind
  EXPECT_FALSE(WriteCdiSpec(dir, "../escape.json", spec).ok());
  EXPECT_FALSE(WriteCdiSpec((dir / "missing").string(), "x.json", spec).ok());
  EXPECT_TRUE(RemoveCdiSpec(dir, "k8s.tideslice.io-card_u.json").ok());
  EXPECT_TRUE(RemoveCdiSpec(dir, "k8s.tideslice.io-card_u.json").ok());
  EXPECT_FALSE(std::filesystem::exists(dir / "k8s.tideslice.io-card_u.json"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tideslice::dra
