// Client of the kubelet PodResources API (v1, /var/lib/kubelet/pod-resources/kubelet.sock): the
// kubelet's own record of which container holds which device IDs. The reconciler compares it
// with the scheduler's assignments to release dynamic partitions of pods that are gone.
#pragma once

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"

namespace tideslice::deviceplugin {

struct ContainerDevices {
  std::string pod_key;     // namespace/name
  std::string container;
  std::vector<std::string> device_ids;
};

class PodResourcesClient {
 public:
  explicit PodResourcesClient(std::string socket_path) : socket_path_(std::move(socket_path)) {}
  // Containers holding devices of `resource_name`, as the kubelet reports them.
  StatusOr<std::vector<ContainerDevices>> List(const std::string& resource_name, std::chrono::milliseconds timeout);

 private:
  std::string socket_path_;
};

// Pods we handed devices to (acknowledged) that the kubelet no longer lists: their dynamic
// partitions can be released. Sorted.
std::vector<std::string> PodsGone(const std::set<std::string>& acknowledged_pods,
                                  const std::vector<ContainerDevices>& live);

}  // namespace tideslice::deviceplugin
