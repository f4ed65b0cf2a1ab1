// tideslice-scheduler: the scheduler extender service (filter, prioritize, bind, preempt for
// kube-scheduler's tideslice-scheduler profile), its watch cache, leader election, health
// endpoints, metrics and the admission webhook. scheduler/app/launch.* turns the flags into typed
// options and runs the parts; this file only connects them to the process.
#include "common/process.h"
#include "scheduler/app/launch.h"

int main(int argc, char** argv) {
  using namespace tideslice;
  auto command_line = service::ParseSchedulerCommandLine(argc, argv);
  if (!command_line.ok()) return process::StartFailed("tideslice-scheduler", command_line.status());
  if (command_line->help) return process::PrintUsage(command_line->usage);
  return service::RunScheduler(std::move(command_line->launch), process::TerminationRequested());
}
