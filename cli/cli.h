// kubectl-tideslice: the command line (pure parsing), where it finds the API server (kubectl's
// rules), and one run of a command against the API (fetch, views.h, render.h).
#pragma once

#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "cli/views.h"
#include "common/kube/access.h"
#include "common/status.h"

namespace tideslice::cli {

struct CliArgs {
  std::string command;                    // "nodes", "pods", "why", "tide", "help"
  std::string pod;                        // why POD
  std::string pool;                       // tide [POOL]
  std::string ns;                         // -n; "" = the context's namespace
  bool all_namespaces = false;            // -A
  bool json = false;                      // -o json
  std::string kubeconfig, context;
  std::string tideslice_namespace = "tideslice-system";  // where the scheduler keeps its ConfigMaps
  std::string tides_configmap = "tideslice-tides";       // the tidal controller's state
  std::string scheduler_configmap = "tideslice-scheduler";  // the chart's scheduler config (pools)
  std::string scheduler_name = "tideslice-scheduler";
};

// Usage errors (exit 2) say what to write instead.
StatusOr<CliArgs> ParseArgs(const std::vector<std::string>& args);
std::string Usage();

// kubectl's order: --kubeconfig, else the first file of $KUBECONFIG that exists, else
// $HOME/.kube/config if it exists, else the pod's service account (in-cluster).
StatusOr<kube::KubeAccess> ResolveCliAccess(const std::string& kubeconfig_flag, const std::string& context,
                                            const char* kubeconfig_env, const char* home_env);

struct CliEnv {
  std::function<StatusOr<kube::KubeAccess>(const std::string& kubeconfig, const std::string& context)> access;
  std::function<Time()> now;
  bool colour = false;  // stdout is a terminal and NO_COLOR is unset
};

// Runs one command line; returns the exit status (0 done, 1 the API or an object failed us,
// 2 usage error).
int RunCli(const std::vector<std::string>& args, const CliEnv& env, std::ostream& out, std::ostream& err);

}  // namespace tideslice::cli
