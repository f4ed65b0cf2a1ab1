// tideslice-scheduler: the scheduler extender service (filter, prioritize, bind, preempt for
// kube-scheduler's tideslice-scheduler profile), its watch cache, leader election, health
// endpoints, metrics and the admission webhook. scheduler/app/launch.* turns the flags into typed
// options and runs the parts; this file only connects them to the process.
#include <atomic>
#include <csignal>
#include <cstdio>

#include "scheduler/app/launch.h"

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }
}  // namespace

int main(int argc, char** argv) {
  using namespace tideslice;
  auto command_line = service::ParseSchedulerCommandLine(argc, argv);
  if (!command_line.ok()) {
    std::fprintf(stderr, "tideslice-scheduler: %s\n(see --help)\n", command_line.status().ToString().c_str());
    return 2;
  }
  if (command_line->help) {
    std::printf("%s", command_line->usage.c_str());
    return 0;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  return service::RunScheduler(std::move(command_line->launch), g_stop);
}
