// kubectl-tideslice: found by kubectl's plugin mechanism as `kubectl tideslice` when the binary
// is on PATH. All the work is in cli.cc; this only wires the process to it.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "cli/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  tideslice::cli::CliEnv env;
  env.access = [](const std::string& kubeconfig, const std::string& context) {
    return tideslice::cli::ResolveCliAccess(kubeconfig, context, std::getenv("KUBECONFIG"), std::getenv("HOME"));
  };
  env.now = [] { return std::chrono::system_clock::now(); };
  const char* no_colour = std::getenv("NO_COLOR");
  env.colour = ::isatty(STDOUT_FILENO) == 1 && !(no_colour && *no_colour);
  return tideslice::cli::RunCli(args, env, std::cout, std::cerr);
}
