// The scheduler's reading of DRA objects (resource.k8s.io/v1), pure: what an allocated
// ResourceClaim holds on a TideSlice DRA node (for accounting), and what slices a claim's device
// requests ask for (for filter and prioritize). The cache (cache.*) keeps both from its watches.
//
// On the DRA path kube-scheduler's DRA allocator decides which device a claim gets, and
// tideslice-dra-driver refuses double use at prepare; the extender reads claims only to score
// nodes (docs/dra.md, "Device-plugin path vs DRA path").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "scheduler/core/cluster.h"
#include "scheduler/core/request.h"

namespace tideslice::service {

// The DeviceClasses the chart installs for a driver (charts/tideslice/templates/dra-driver.yaml).
struct DraClasses {
  std::string whole, shared, mig, vnpu;
  static DraClasses ForDriver(const std::string& driver) {
    return {driver, driver + "-shared", driver + "-mig", driver + "-vnpu"};
  }
};

// One allocated device of a claim (status.allocation.devices.results[]).
struct ClaimResult {
  std::string request, driver, pool, device;
  std::optional<int64_t> memory_mib;     // consumedCapacity.memory, rounded up to MiB
  std::optional<int> cores_percent;      // consumedCapacity.cores
};

struct ClaimAllocation {
  std::string uid;
  std::string key;                       // namespace/name
  std::vector<ClaimResult> results;      // every driver's
};

// The allocation of a ResourceClaim object: nullopt when it has none (pending or deallocated);
// an error naming the field when the object is malformed.
StatusOr<std::optional<ClaimAllocation>> ClaimAllocationOf(const nlohmann::json& claim);

// The key a claim holds its devices under in the core's ClusterState (':' cannot occur in a
// namespace, so it never collides with a pod's namespace/name).
inline std::string ClaimHolderKey(const std::string& uid) { return "claim:" + uid; }
inline bool IsClaimHolder(const std::string& key) { return key.rfind("claim:", 0) == 0; }

// What the claim's results of `driver` in `node`'s pool hold on its cards, one container grant
// per result. Device names follow device-plugin/dra/resource_slices.h: card-<i> (the whole
// card), card-<i>-shared (consumed memory, default the whole card's; consumed cores), and
// card-<i>-mig-<profile>-<start> / card-<i>-vnpu-<template>-<k> (the partition's memory, slots
// and compute, the profile matched against the card's catalog model). <i> is the card's index.
// An error names the device that matches no card or profile of the node.
StatusOr<core::PodPlacement> PlacementFromClaim(const ClaimAllocation& claim, const std::string& driver,
                                                const core::NodeState& node);

// The slices one claim spec asks for (ResourceClaimSpec, i.e. a claim's `spec` or a template's
// `spec.spec`): one container request per device request of a TideSlice class, named
// `<claim>/<request>`. `exactly`: count (allocationMode All counts as 1), capacity.requests
// memory and cores for the shared class (memory defaults to the whole card, as the published
// request policy does); `firstAvailable`: its first subrequest. Selectors (CEL) are not
// evaluated, so model or profile choices there are not seen: a MIG or vNPU class request is
// judged as a slice of its requested memory (SliceSpec::partition_class). Requests of other
// classes are not TideSlice's and are left out.
StatusOr<std::vector<core::ContainerRequest>> ClaimedSlices(const nlohmann::json& claim_spec,
                                                            const std::string& claim_name, const DraClasses& classes);

}  // namespace tideslice::service
