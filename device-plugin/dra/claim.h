// A resource.k8s.io/v1 ResourceClaim as NodePrepareResources reads it: the results of its
// allocation that belong to this driver, checked against what the kubelet asked for. The claim
// comes from the API server, but it is still input: every field used is validated, and the
// errors say which field to look at. Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "device-plugin/backends/device_backend.h"
#include "device-plugin/dra/resource_slices.h"
#include "device-plugin/plugin/container_response.h"

namespace tideslice::dra {

// What the kubelet sends: only what identifies the claim.
struct ClaimRef {
  std::string ns, name, uid;
};

struct AllocatedDevice {
  std::string request;        // results[].request as written: "<request>" or "<request>/<subrequest>"
  std::string base_request;   // "<request>": what containers reference and Device.request_names carries
  std::string pool, device;
  std::string share_id;       // set for a multi-allocatable device
  // consumedCapacity of a shared device, converted: memory rounded up to MiB, cores in percent.
  std::optional<int64_t> memory_mib;
  std::optional<int64_t> cores_percent;
};

struct AllocatedClaim {
  ClaimRef ref;
  std::vector<AllocatedDevice> devices;   // only results with driver == this driver
  // From this driver's opaque config (class and claim, claim last): the workload class for the
  // limiter ("inference" / "training") and whether the compute share may use idle time.
  std::string workload_class;
  bool work_conserving = false;
};

// Parses `claim_text` (the API's JSON) for `driver`. Refuses: not JSON or not a ResourceClaim; a
// UID other than `expected.uid` ("the claim was replaced"); no status.allocation; a result with
// missing or malformed fields; more than 32 results; an opaque config of this driver that is not
// a JSON object or has unknown keys / wrong types. A claim with no result for this driver parses
// to an empty device list.
StatusOr<AllocatedClaim> ParseAllocatedClaim(std::string_view claim_text, const std::string& driver,
                                             const ClaimRef& expected);

// One base request of a claim and what its container(s) get.
struct PreparedRequest {
  std::string base_request;
  std::vector<const PublishedDevice*> devices{};         // in result order
  std::vector<const AllocatedDevice*> results{};         // parallel to devices
  std::vector<deviceplugin::AssignedSlice> slices{};     // parallel to devices; partition_id filled later
};

// Maps the claim's results to the node's published devices: every result must name this node's
// pool and a device the driver publishes now, on a healthy card; a shared device needs its
// consumed memory (cores default to 0 = best effort). Grouped by base request, in first-seen order.
StatusOr<std::vector<PreparedRequest>> PlanClaim(const AllocatedClaim& claim, const NodeInventory& inventory,
                                                 const std::string& pool);

}  // namespace tideslice::dra
