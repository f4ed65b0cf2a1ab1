// The real tideslice-device-plugin binary against the test API server: started with a
// kubeconfig and the mock backend, it installs the in-container limiter under --limiter-dir,
// publishes the node's inventory annotation and card labels, and exits cleanly on SIGTERM.
// Without the library it refuses to start unless the node group opted out (--limiter off).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <filesystem>
#include <fstream>
#include <sstream>
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
  const std::string library = dir.path() + "/libtideslice-limiter.so";
  std::ofstream(library, std::ios::binary) << std::string("\x7f" "ELF", 4) << "a limiter";
  const std::string limiter_dir = dir.path() + "/limiter";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl(TIDESLICE_DP_BINARY, TIDESLICE_DP_BINARY, "--backend", "mock", "--mock-config", cards.c_str(),
          "--device-plugin-dir", dir.path().c_str(), "--kubeconfig", kubeconfig.c_str(), "--node-name", "ci-node",
          "--metrics-address", "off", "--health-poll-seconds", "1", "--limiter-dir", limiter_dir.c_str(),
          "--limiter-library", library.c_str(), "--limiter-context-reserve", "256Mi", static_cast<char*>(nullptr));
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
  auto read = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  EXPECT_EQ(read(limiter_dir + "/lib/libtideslice-limiter.so"), read(library));
  EXPECT_EQ(read(limiter_dir + "/ld.so.preload"), "/usr/local/tideslice/lib/libtideslice-limiter.so\n");
  EXPECT_TRUE(std::filesystem::is_directory(limiter_dir + "/containers"));
}

// Runs the binary to its exit (it must stop by itself) and returns its exit code and stderr.
std::pair<int, std::string> RunToExit(std::vector<std::string> args, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    std::vector<char*> argv = {const_cast<char*>(TIDESLICE_DP_BINARY)};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(TIDESLICE_DP_BINARY, argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ss.str()};
}

TEST(DevicePluginBinaryKube, WithoutTheLimiterLibraryItStartsOnlyIfTheNodeGroupOptedOut) {
  auto server = tideslice::testsupport::TestApiServer::Start();
  ASSERT_NE(server, nullptr);
  server->Upsert("nodes", {{"metadata", {{"name", "ci-node"}}}});
  tideslice::testsupport::TempDir dir("tsbin");
  std::string kubeconfig = server->WriteKubeconfig(dir.path());
  std::string cards = std::string(TIDESLICE_SOURCE_DIR) + "/deploy/examples/mock-cards.json";
  std::vector<std::string> common = {"--backend", "mock", "--mock-config", cards, "--device-plugin-dir", dir.path(),
                                     "--kubeconfig", kubeconfig, "--node-name", "ci-node", "--metrics-address", "off",
                                     "--limiter-dir", dir.path() + "/limiter"};
  auto args = common;
  args.insert(args.end(), {"--limiter-library", dir.path() + "/missing.so"});
  auto [rc, err] = RunToExit(args, dir.path() + "/on.log");
  EXPECT_EQ(rc, 2) << err;
  EXPECT_NE(err.find("installing the memory limiter"), std::string::npos) << err;
  EXPECT_NE(err.find("--limiter off"), std::string::npos) << err;
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/limiter/lib/libtideslice-limiter.so"));

  // --limiter off: no library needed, the agent runs (and says soft slices are not limited).
  args = common;
  args.insert(args.end(), {"--limiter", "off", "--limiter-library", dir.path() + "/missing.so"});
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  const std::string log = dir.path() + "/off.log";
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    std::vector<char*> argv = {const_cast<char*>(TIDESLICE_DP_BINARY)};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(TIDESLICE_DP_BINARY, argv.data());
    _exit(127);
  }
  bool published = false;
  for (int i = 0; i < 200 && !published; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto inv = tideslice::kube::InventoryOf(*server->Get("nodes", "", "ci-node"));
    published = inv.ok() && inv->has_value();
  }
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(published) << text;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "exit status " << status << "\n" << text;
  EXPECT_NE(text.find("limiter.off"), std::string::npos) << text;
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/limiter/lib"));
}

}  // namespace
