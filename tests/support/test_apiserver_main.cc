// tideslice-test-apiserver: the test Kubernetes API server as a process, for script tests that
// start the real binaries (tests/chart/prometheus_test.sh). Writes a kubeconfig, creates the
// nodes it is told to, serves until SIGTERM.
//   tideslice-test-apiserver --kubeconfig-dir DIR [--node NAME]...
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_apiserver.h"

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }
}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  std::vector<std::string> nodes;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string f = argv[i];
    if (f == "--kubeconfig-dir") dir = argv[i + 1];
    else if (f == "--node") nodes.push_back(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown flag %s\n", f.c_str());
      return 2;
    }
  }
  if (dir.empty()) {
    std::fprintf(stderr, "usage: tideslice-test-apiserver --kubeconfig-dir DIR [--node NAME]...\n");
    return 2;
  }
  auto server = tideslice::testsupport::TestApiServer::Start();
  if (!server) return 1;
  // Registered as a kubelet registers its node: with its hostname label.
  for (const auto& n : nodes)
    server->Upsert("nodes", {{"metadata", {{"name", n}, {"labels", {{"kubernetes.io/hostname", n}}}}}});
  std::string kubeconfig = server->WriteKubeconfig(dir);
  std::printf("%s %s\n", server->url().c_str(), kubeconfig.c_str());
  std::fflush(stdout);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return 0;
}
