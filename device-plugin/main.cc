// tideslice-device-plugin: the node agent. device-plugin/app/launch.* turns the flags into typed
// options; DevicePluginApp (app/app.*) owns the parts and their loops. This file only connects
// them to the process.
#include "common/process.h"
#include "device-plugin/app/app.h"
#include "device-plugin/app/launch.h"

int main(int argc, char** argv) {
  using namespace tideslice;
  const char* program = "tideslice-device-plugin";
  auto command_line = deviceplugin::ParseDevicePluginCommandLine(argc, argv);
  if (!command_line.ok()) return process::StartFailed(program, command_line.status());
  if (command_line->help) return process::PrintUsage(command_line->usage);
  auto app = deviceplugin::DevicePluginApp::Start(std::move(command_line->launch));
  if (!app.ok()) return process::StartFailed(program, app.status());
  process::WaitForTermination();
  (*app)->Stop();
  return 0;
}
