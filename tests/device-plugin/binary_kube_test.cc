// The real tideslice-device-plugin binary against the test API server: started with a
// kubeconfig and the mock backend, it publishes the node's inventory annotation and card
// labels, and exits cleanly on SIGTERM.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "common/kube/objects.h"
#include "tests/support/test_apiserver.h"
#include "tests/support/test_support.h"

namespace {

TEST(DevicePluginBinaryKube, PublishesInventoryThroughTheApiServer) {
  auto server = tideslice::testsupport::TestApiServer::Start();
  ASSERT_NE(server, nullptr);
  server->Upsert("nodes", {{"metadata", {{"name", "ci-node"}}}});
  tideslice::testsupport::TempDir dir("tsbin");
  std::string kubeconfig = server->WriteKubeconfig(dir.path());
  std::string cards = std::string(TIDESLICE_SOURCE_DIR) + "/deploy/examples/mock-cards.json";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl(TIDESLICE_DP_BINARY, TIDESLICE_DP_BINARY, "--backend", "mock", "--mock-config", cards.c_str(),
          "--device-plugin-dir", dir.path().c_str(), "--kubeconfig", kubeconfig.c_str(), "--node-name", "ci-node",
          "--metrics-address", "off", "--health-poll-seconds", "1", static_cast<char*>(nullptr));
    _exit(127);
  }
  std::optional<tideslice::v1::NodeInventory> inventory;
  for (int i = 0; i < 200 && !inventory; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto node = server->Get("nodes", "", "ci-node");
    auto inv = tideslice::kube::InventoryOf(*node);
    ASSERT_TRUE(inv.ok()) << inv.status().ToString();
    if (inv->has_value()) inventory = **inv;
  }
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(inventory.has_value()) << "the agent never published an inventory";
  EXPECT_EQ(inventory->node_name(), "ci-node");
  EXPECT_EQ(inventory->backend(), "mock");
  EXPECT_GT(inventory->cards_size(), 0);
  auto labels = (*server->Get("nodes", "", "ci-node"))["metadata"]["labels"];
  EXPECT_TRUE(labels.contains("tideslice.io/vendor.nvidia")) << labels.dump();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "exit status " << status;
}

}  // namespace
