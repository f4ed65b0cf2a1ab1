// tideslice-dra-driver: the kubelet DRA plugin for TideSlice's cards (docs/dra.md). app.* turns
// the flags into typed options and owns the parts; this file only connects them to the process.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <thread>

#include "device-plugin/dra/app.h"

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }
}  // namespace

int main(int argc, char** argv) {
  using namespace tideslice::dra;
  auto command_line = ParseDraCommandLine(argc, argv);
  if (command_line.ok() && command_line->help) {
    std::printf("%s", command_line->usage.c_str());
    return 0;
  }
  auto app = command_line.ok() ? DraDriverApp::Start(std::move(command_line->launch))
                               : decltype(DraDriverApp::Start({}))(command_line.status());
  if (!app.ok()) {
    std::fprintf(stderr, "tideslice-dra-driver: %s\n(see --help)\n", app.status().ToString().c_str());
    return 2;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  (*app)->Stop();
  return 0;
}
