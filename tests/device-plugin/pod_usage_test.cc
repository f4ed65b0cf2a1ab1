#include "device-plugin/exporter/pod_usage.h"

#include <gtest/gtest.h>

namespace tideslice::deviceplugin {
namespace {

TEST(PodUsage, PodUidFromEveryCgroupLayout) {
  // cgroup v1, cgroupfs driver
  EXPECT_EQ(PodUidFromCgroup("12:memory:/kubepods/burstable/pod1c2d3e4f-5a6b-7c8d-9e0f-a1b2c3d4e5f6/0123abcd\n"),
            "1c2d3e4f-5a6b-7c8d-9e0f-a1b2c3d4e5f6");
  // cgroup v2, systemd driver (dashes in the UID become underscores)
  EXPECT_EQ(PodUidFromCgroup("0::/kubepods.slice/kubepods-besteffort.slice/"
                             "kubepods-besteffort-pod1c2d3e4f_5a6b_7c8d_9e0f_a1b2c3d4e5f6.slice/cri-containerd-ab12.scope\n"),
            "1c2d3e4f-5a6b-7c8d-9e0f-a1b2c3d4e5f6");
  EXPECT_EQ(PodUidFromCgroup("0::/system.slice/podman.service\n"), std::nullopt);
  EXPECT_EQ(PodUidFromCgroup("0::/user.slice/pod-not-a-uid\n"), std::nullopt);
  EXPECT_EQ(PodUidFromCgroup(""), std::nullopt);
}

TEST(PodUsage, SumsPerPodAndCardAndSkipsProcessesOutsidePods) {
  std::vector<ProcessUsage> procs = {{"GPU-0", 10, 100}, {"GPU-0", 11, 50}, {"GPU-1", 10, 7}, {"GPU-0", 12, 9}, {"GPU-0", 13, 1}};
  auto read = [](uint32_t pid) -> std::optional<std::string> {
    if (pid == 10 || pid == 11) return "0::/kubepods/pod11111111-2222-3333-4444-555555555555/c\n";
    if (pid == 12) return "0::/system.slice/nvidia-persistenced.service\n";
    return std::nullopt;  // exited
  };
  auto usage = UsageByPod(procs, read);
  EXPECT_EQ(usage.size(), 2u);
  EXPECT_EQ((usage[{"11111111-2222-3333-4444-555555555555", "GPU-0"}]), 150);
  EXPECT_EQ((usage[{"11111111-2222-3333-4444-555555555555", "GPU-1"}]), 7);
}

}  // namespace
}  // namespace tideslice::deviceplugin
