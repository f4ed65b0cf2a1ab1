// What a container gets for its assigned slices: environment for the vendor runtime, device
// nodes, and annotations. Pure: the hand-off decides which slices, this decides how they look
// inside the container.
//
// NVIDIA: NVIDIA_VISIBLE_DEVICES lists card (or MIG instance) UUIDs for the NVIDIA container
//   runtime.
// Ascend: ASCEND_VISIBLE_DEVICES lists device indexes (or vNPU IDs) for the Ascend docker
//   runtime, with /dev/davinci<N>, /dev/davinci_manager, /dev/devmm_svm and /dev/hisi_hdc.
// Soft slices carry no limit here: their memory limit is enforced by TideSlice's own preloaded
// limiter, whose mounts, config and TIDESLICE_LIMITER=on the hand-off adds (limiter_setup.h).
// (No CUDA_DEVICE_MEMORY_LIMIT_<i> / CUDA_DEVICE_SM_LIMIT: those belong to another project's
// limiter, which TideSlice does not ship, so they promised a limit nothing enforced.)
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "device-plugin/backends/device_backend.h"
#include "deviceplugin/v1beta1/api.pb.h"

namespace tideslice::deviceplugin {

struct AssignedSlice {
  DeviceInfo card;
  int64_t memory_mib = 0;       // 0 with whole = the whole card
  int compute_permille = 0;     // 0 = best effort
  bool whole = false;
  std::string profile;          // MIG profile / Ascend template, empty for soft slices
  std::string partition_id;     // MIG instance UUID or vNPU ID once created
  int start_slot = -1;          // MIG placement the scheduler chose, -1 = any
};

// The slices in the order the container sees their cards (by card index): the order of
// NVIDIA_VISIBLE_DEVICES / ASCEND_VISIBLE_DEVICES, hence CUDA / ACL device ordinals.
std::vector<AssignedSlice> VisibleOrder(const std::vector<AssignedSlice>& slices);

StatusOr<v1beta1::ContainerAllocateResponse> BuildContainerResponse(const std::vector<AssignedSlice>& slices);

}  // namespace tideslice::deviceplugin
