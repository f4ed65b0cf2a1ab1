#include "common/process.h"

#include <csignal>
#include <cstdio>
#include <thread>

namespace tideslice::process {
namespace {

std::atomic<bool> g_terminate{false};
void OnTerminationSignal(int) { g_terminate = true; }

}  // namespace

const std::atomic<bool>& TerminationRequested() {
  static const bool installed = [] {
    std::signal(SIGINT, OnTerminationSignal);
    std::signal(SIGTERM, OnTerminationSignal);
    return true;
  }();
  (void)installed;
  return g_terminate;
}

void WaitForTermination() {
  const std::atomic<bool>& stop = TerminationRequested();
  while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(200));
}

int StartFailed(const std::string& program, const Status& status) {
  std::fprintf(stderr, "%s: %s\n(see --help)\n", program.c_str(), status.ToString().c_str());
  return 2;
}

int PrintUsage(const std::string& usage) {
  std::printf("%s", usage.c_str());
  return 0;
}

}  // namespace tideslice::process
