// tideslice-device-plugin: the node agent. device-plugin/app/launch.* turns the flags into typed
// options; DevicePluginApp (app/app.*) owns the parts and their loops. This file only connects
// them to the process.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <thread>

#include "device-plugin/app/app.h"
#include "device-plugin/app/launch.h"

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }
}  // namespace

int main(int argc, char** argv) {
  using namespace tideslice::deviceplugin;
  auto command_line = ParseDevicePluginCommandLine(argc, argv);
  if (command_line.ok() && command_line->help) {
    std::printf("%s", command_line->usage.c_str());
    return 0;
  }
  auto app = command_line.ok() ? DevicePluginApp::Start(std::move(command_line->launch))
                               : decltype(DevicePluginApp::Start({}))(command_line.status());
  if (!app.ok()) {
    std::fprintf(stderr, "tideslice-device-plugin: %s\n(see --help)\n", app.status().ToString().c_str());
    return 2;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  (*app)->Stop();
  return 0;
}
