// tideslice-dra-driver: the kubelet DRA plugin for TideSlice's cards (docs/dra.md). app.* turns
// the flags into typed options and owns the parts; this file only connects them to the process.
#include "common/process.h"
#include "device-plugin/dra/app.h"

int main(int argc, char** argv) {
  using namespace tideslice;
  const char* program = "tideslice-dra-driver";
  auto command_line = dra::ParseDraCommandLine(argc, argv);
  if (!command_line.ok()) return process::StartFailed(program, command_line.status());
  if (command_line->help) return process::PrintUsage(command_line->usage);
  auto app = dra::DraDriverApp::Start(std::move(command_line->launch));
  if (!app.ok()) return process::StartFailed(program, app.status());
  process::WaitForTermination();
  (*app)->Stop();
  return 0;
}
