// The exporter served by a real prometheus-cpp Exposer on 127.0.0.1 (ephemeral port), read over
// a real socket, and checked with the real promtool when it is installed (scripts/install-deps.sh
// installs it).
#include "device-plugin/exporter/card_metrics.h"
#include "device-plugin/exporter/allocation_metrics.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/exposer.h>

#include "tests/support/test_support.h"

namespace tideslice::deviceplugin {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

DeviceInfo Card(int index, const std::string& uuid, bool healthy) {
  DeviceInfo d;
  d.index = index;
  d.uuid = uuid;
  d.vendor = "nvidia";
  d.model = "H100-80G";
  d.memory_mib = 81920;
  d.healthy = healthy;
  return d;
}

TEST(CardMetrics, ServedOverHttpWithBoundedLabelsAndPromtoolClean) {
  auto registry = std::make_shared<prometheus::Registry>();
  CardMetrics metrics(registry, "gpu-node-1");
  DeviceInfo a = Card(0, "GPU-a", true);
  a.memory_used_mib = 1024;
  a.utilization_ratio = 0.42;
  a.temperature_celsius = 61;
  a.power_watts = 350.5;
  metrics.Update({a, Card(1, "GPU-b", false)});
  AllocationMetrics allocations(registry, "gpu-node-1");
  allocations.Update({a, Card(1, "GPU-b", false)},
                     {{"ml", "infer-0", "server", "uid-0", "GPU-a", 20480, 250, false},
                      {"ml", "infer-1", "server", "uid-1", "GPU-a", 10240, 500, false},
                      {"ml", "train-0", "trainer", "uid-2", "GPU-b", 0, 0, true}},
                     {{{"uid-0", "GPU-a"}, 3ll << 30}, {{"uid-9", "GPU-a"}, 1ll << 30}});  // uid-9: not ours

  prometheus::Exposer exposer("127.0.0.1:0");
  exposer.RegisterCollectable(registry);
  ASSERT_FALSE(exposer.GetListeningPorts().empty());
  std::string text = testsupport::HttpRequest(exposer.GetListeningPorts()[0], "GET", "/metrics").second;
  EXPECT_THAT(text, HasSubstr(R"(tideslice_card_memory_total_bytes{card="0",model="H100-80G",node="gpu-node-1",uuid="GPU-a",vendor="nvidia"} 85899345920)"));
  EXPECT_THAT(text, HasSubstr(R"(tideslice_card_healthy{card="1",model="H100-80G",node="gpu-node-1",uuid="GPU-b",vendor="nvidia"} 0)"));
  EXPECT_THAT(text, HasSubstr(R"(tideslice_card_utilization_ratio{card="0")"));
  EXPECT_THAT(text, HasSubstr(R"(tideslice_card_power_watts{card="0")"));
  EXPECT_THAT(text, Not(HasSubstr(R"(tideslice_card_temperature_celsius{card="1")")));  // unknown: not exported

  // Allocated versus total: 30 GiB and 75 % of GPU-a; GPU-b is held whole.
  EXPECT_THAT(text, HasSubstr(R"(tideslice_card_memory_allocated_bytes{card="0",model="H100-80G",node="gpu-node-1",uuid="GPU-a",vendor="nvidia"} 32212254720)"));
  EXPECT_THAT(text, HasSubstr(R"(tideslice_card_compute_allocated_ratio{card="0",model="H100-80G",node="gpu-node-1",uuid="GPU-a",vendor="nvidia"} 0.75)"));
  EXPECT_THAT(text, HasSubstr(R"(tideslice_card_slices_assigned{card="0",model="H100-80G",node="gpu-node-1",uuid="GPU-a",vendor="nvidia"} 2)"));
  EXPECT_THAT(text, HasSubstr(R"(tideslice_card_compute_allocated_ratio{card="1",model="H100-80G",node="gpu-node-1",uuid="GPU-b",vendor="nvidia"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(tideslice_container_memory_allocated_bytes{card="0",container="server",namespace="ml",node="gpu-node-1",pod="infer-1",uuid="GPU-a"} 10737418240)"));
  EXPECT_THAT(text, HasSubstr(R"(tideslice_container_compute_allocated_ratio{card="1",container="trainer",namespace="ml",node="gpu-node-1",pod="train-0",uuid="GPU-b"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(tideslice_pod_memory_used_bytes{card="0",namespace="ml",node="gpu-node-1",pod="infer-0",uuid="GPU-a"} 3221225472)"));
  EXPECT_THAT(text, Not(HasSubstr("uid-9")));
  // A finished pod's series go away with the next update.
  allocations.Update({a, Card(1, "GPU-b", false)}, {{"ml", "infer-0", "server", "uid-0", "GPU-a", 20480, 250, false}});
  text = testsupport::HttpRequest(exposer.GetListeningPorts()[0], "GET", "/metrics").second;
  EXPECT_THAT(text, Not(HasSubstr("infer-1")));
  EXPECT_THAT(text, HasSubstr(R"(tideslice_card_slices_assigned{card="1",model="H100-80G",node="gpu-node-1",uuid="GPU-b",vendor="nvidia"} 0)"));

  // A card that goes away disappears from the output.
  metrics.Update({a});
  allocations.Update({a}, {{"ml", "infer-0", "server", "uid-0", "GPU-a", 20480, 250, false}});
  text = testsupport::HttpRequest(exposer.GetListeningPorts()[0], "GET", "/metrics").second;
  EXPECT_THAT(text, Not(HasSubstr("GPU-b")));

  if (std::system("command -v promtool >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "promtool not installed (scripts/install-deps.sh installs Debian's prometheus package)";
  auto file = std::filesystem::temp_directory_path() / ("tsmetrics-" + std::to_string(getpid()) + ".txt");
  std::ofstream(file) << text;
  std::string cmd = "promtool check metrics < " + file.string() + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  int rc = pclose(p);
  std::filesystem::remove(file);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "") << "promtool lint findings:\n" << out;
}

}  // namespace
}  // namespace tideslice::deviceplugin
