#include "device-plugin/plugin/container_response.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tideslice::deviceplugin {
namespace {

using ::testing::HasSubstr;

DeviceInfo Card(const std::string& vendor, int index, const std::string& uuid) {
  DeviceInfo d;
  d.vendor = vendor;
  d.index = index;
  d.uuid = uuid;
  return d;
}

std::vector<std::string> Paths(const v1beta1::ContainerAllocateResponse& r) {
  std::vector<std::string> out;
  for (const auto& d : r.devices()) {
    EXPECT_EQ(d.permissions(), "rw");
    out.push_back(d.host_path());
  }
  return out;
}

// Soft slices: the visible cards, nothing else. Their limit is TideSlice's own limiter's, which
// the hand-off adds (limiter_setup_test); the variables of another project's limiter, which
// TideSlice does not ship, are not set: they promised a limit nothing enforced.
TEST(ContainerResponse, NvidiaSoftSlicesCarryNoForeignLimiterVariables) {
  AssignedSlice a{Card("nvidia", 3, "GPU-c"), 8192, 300, false, "", ""};
  AssignedSlice b{Card("nvidia", 1, "GPU-a"), 4096, 500, false, "", ""};
  auto r = BuildContainerResponse({a, b});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->envs().at("NVIDIA_VISIBLE_DEVICES"), "GPU-a,GPU-c");  // ordered by card index
  EXPECT_EQ(r->envs().size(), 1u) << "no CUDA_DEVICE_MEMORY_LIMIT_<i> / CUDA_DEVICE_SM_LIMIT";
  EXPECT_EQ(r->mounts_size(), 0);
  auto order = VisibleOrder({a, b});
  EXPECT_EQ(order[0].card.uuid, "GPU-a");
  EXPECT_EQ(order[1].card.uuid, "GPU-c");
  EXPECT_THAT(Paths(*r), ::testing::ElementsAre("/dev/nvidia1", "/dev/nvidia3", "/dev/nvidiactl", "/dev/nvidia-uvm",
                                                "/dev/nvidia-uvm-tools"));
  EXPECT_EQ(r->annotations().at("tideslice.io/cards"), "GPU-a,GPU-c");
}

TEST(ContainerResponse, NvidiaWholeCardsAndMigInstances) {
  auto whole = BuildContainerResponse({{Card("nvidia", 0, "GPU-0"), 0, 1000, true, "", ""}});
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->envs().size(), 1u);
  auto mig = BuildContainerResponse({{Card("nvidia", 2, "GPU-2"), 10240, 142, false, "1g.10gb", "MIG-abc"}});
  ASSERT_TRUE(mig.ok());
  EXPECT_EQ(mig->envs().at("NVIDIA_VISIBLE_DEVICES"), "MIG-abc");
  EXPECT_EQ(mig->envs().size(), 1u);  // the hardware enforces it
  auto pending = BuildContainerResponse({{Card("nvidia", 2, "GPU-2"), 10240, 142, false, "1g.10gb", ""}});
  EXPECT_THAT(pending.status().message(), HasSubstr("no instance yet"));
}

TEST(ContainerResponse, AscendCardsAndVnpus) {
  auto r = BuildContainerResponse({{Card("huawei", 5, "NPU-5"), 0, 1000, true, "", ""}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->envs().at("ASCEND_VISIBLE_DEVICES"), "5");
  EXPECT_THAT(Paths(*r), ::testing::ElementsAre("/dev/davinci5", "/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc"));
  auto v = BuildContainerResponse({{Card("huawei", 0, "NPU-0"), 16384, 250, false, "vir05_1c_16g", "100"}});
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->envs().at("ASCEND_VISIBLE_DEVICES"), "100");
  EXPECT_EQ(v->devices(0).host_path(), "/dev/davinci100");
}

TEST(ContainerResponse, RejectsWhatItCannotExpress) {
  EXPECT_FALSE(BuildContainerResponse({}).ok());
  auto mixed = BuildContainerResponse({{Card("nvidia", 0, "g"), 0, 0, true, "", ""}, {Card("huawei", 0, "n"), 0, 0, true, "", ""}});
  EXPECT_THAT(mixed.status().message(), HasSubstr("cannot mix"));
  EXPECT_THAT(BuildContainerResponse({{Card("cambricon", 0, "m"), 0, 0, true, "", ""}}).status().message(),
              HasSubstr("no container layout"));
}

}  // namespace
}  // namespace tideslice::deviceplugin
