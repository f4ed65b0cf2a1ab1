// What tideslice-device-plugin's command line means: the flags (and the --config file of flags)
// become one typed, validated DevicePluginLaunch before anything starts, so a bad flag stops
// start-up with a message that names it. DevicePluginApp (app.h) runs it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "common/status.h"
#include "device-plugin/plugin/agent.h"
#include "device-plugin/plugin/limiter_paths.h"

namespace tideslice::deviceplugin {

struct DevicePluginLaunch {
  AgentOptions agent;                       // kubelet side: socket dir and name, resource, replicas, polls
  std::string backend = "nvml";             // nvml | dcmi | mock
  std::string mock_config;                  // --backend mock: the cards file
  std::string sysfs_root = "/sys";          // NUMA and CPU affinity (tests point it elsewhere)
  std::string critical_xids;                // added to the built-in critical XID list
  std::string node_name;                    // resolved: flag, else $NODE_NAME, else host name
  std::string metrics_address = "0.0.0.0:9400";
  std::chrono::seconds heartbeat{30};
  std::string pod_resources_socket = "/var/lib/kubelet/pod-resources/kubelet.sock";
  bool standalone = false;                  // no Kubernetes: Allocate is refused
  std::string kubeconfig;                   // "" = in-cluster
  std::string catalog_file;                 // catalog overrides
  std::string verify_key_file;              // the scheduler's public key; "" = signatures not required
  std::string lease_name, lease_namespace;  // fencing by the scheduler's Lease; "" = off
  bool limiter = true;
  std::string limiter_dir = kDefaultLimiterDir;
  std::string limiter_library = kDefaultLimiterLibrary;
  uint64_t limiter_context_reserve = 0;     // bytes
  std::chrono::seconds reconcile_period{30};
};

struct DevicePluginCommandLine {
  bool help = false;
  std::string usage;
  DevicePluginLaunch launch;
};

StatusOr<DevicePluginCommandLine> ParseDevicePluginCommandLine(int argc, const char* const* argv);

}  // namespace tideslice::deviceplugin
