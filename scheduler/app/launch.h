// What tideslice-scheduler's command line means, and running it: the flags become one typed,
// validated SchedulerLaunch (files read, the SchedulerConfig decoded, pools checked) before anything
// starts, so a bad flag or file stops start-up with a message that names it; RunScheduler then owns
// the process's parts (Kubernetes client, metrics endpoint, SchedulerApp) until asked to stop.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "common/catalog/catalog.h"
#include "common/status.h"
#include "scheduler/service/app.h"

namespace tideslice::service {

struct SchedulerLaunch {
  AppOptions app;
  catalog::Catalog catalog = catalog::Catalog::Builtin();
  std::string kubeconfig;                        // "" = in-cluster
  std::string metrics_address = "0.0.0.0:10261";   // "off" disables /metrics
  int http_threads = 2;
};

struct SchedulerCommandLine {
  bool help = false;
  std::string usage;
  SchedulerLaunch launch;
};

// argv -> launch options. Errors name the flag (or the file and field) and say what to change.
StatusOr<SchedulerCommandLine> ParseSchedulerCommandLine(int argc, const char* const* argv);

// Runs until `stop` turns true; returns the process's exit code (0, or 2 when start-up failed,
// with the reason on stderr).
int RunScheduler(SchedulerLaunch launch, const std::atomic<bool>& stop);

}  // namespace tideslice::service
