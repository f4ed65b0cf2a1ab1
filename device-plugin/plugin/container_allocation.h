// What the scheduler handed one container on one card, as its pod's assignment records it. Plain
// data: the Kubernetes store produces it, the allocation metrics consume it, and neither layer
// depends on the other.
#pragma once

#include <cstdint>
#include <string>

namespace tideslice::deviceplugin {

struct ContainerAllocation {
  std::string pod_namespace, pod, container;
  std::string pod_uid;
  std::string card_uuid;
  int64_t memory_mib = 0;      // ignored when whole
  int compute_permille = 0;    // ignored when whole
  bool whole = false;
};

}  // namespace tideslice::deviceplugin
