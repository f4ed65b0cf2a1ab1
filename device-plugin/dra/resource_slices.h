// What the DRA driver publishes for its node: the cards of the backend inventory as
// resource.k8s.io/v1 ResourceSlice objects of one pool (named after the node), and the table
// that lets NodePrepareResources map an allocated device name back to a card and a partition.
// Pure: no I/O; the publisher (slice_publisher.*) writes what this builds.
//
// Device model (docs/dra.md, "Model"), per card with index <i>:
//   card-<i>               the whole card, exclusive
//   card-<i>-shared        the card shared by several claims (allowMultipleAllocations) with
//                          consumable capacities `memory` (MiB steps) and `cores` (percent, 0 =
//                          best effort), which the limiter enforces per claim
//   card-<i>-mig-<profile>-<start>   one MIG placement (MIG-enabled NVIDIA cards only)
//   card-<i>-vnpu-<template>-<k>     one Ascend vNPU instance of a template
// In the partitionable layout every device consumes the card's counter set card-<i>: the whole
// card and the shared card take all of it (a shared card's counters are taken by its first
// allocation only), a MIG placement takes its memory slices and compute slices, a vNPU its AI
// cores, AI CPUs and memory; so the scheduler cannot over-commit a card. The basic layout (for
// clusters without DRAPartitionableDevices / DRAConsumableCapacity) has whole cards only.
// An unhealthy card's devices are tainted tideslice.io/unhealthy:NoSchedule, not dropped.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/catalog/catalog.h"
#include "common/status.h"
#include "device-plugin/backends/device_backend.h"

namespace tideslice::dra {

inline constexpr const char* kDefaultDriverName = "tideslice.io";
inline constexpr const char* kUnhealthyTaintKey = "tideslice.io/unhealthy";

enum class DeviceKind { kWhole, kShared, kMig, kVnpu };
const char* DeviceKindName(DeviceKind kind);  // "card", "shared", "mig", "vnpu" (the `type` attribute)

enum class SliceLayout {
  kBasic,          // whole cards only, no counters or consumable capacity (1.34/1.35 defaults)
  kPartitionable,  // + shared cards, MIG placements, vNPU templates; counter sets in their own slices (1.35+)
  // The same devices for 1.34 with DRAPartitionableDevices and DRAConsumableCapacity on: 1.34
  // validation wants each counter set in the same slice as the devices that consume it, and
  // 1.35+ forbids exactly that, so the two layouts cannot be one.
  kPartitionableCombined,
};
StatusOr<SliceLayout> ParseSliceLayout(const std::string& text);

struct PublishedDevice {
  std::string name;           // DNS label, unique in the pool
  DeviceKind kind = DeviceKind::kWhole;
  deviceplugin::DeviceInfo card;
  std::string profile{};      // MIG profile / vNPU template
  int start_slot = -1;        // MIG placement
  nlohmann::json entry{};     // the spec.devices[] object
};

struct NodeInventory {
  SliceLayout layout = SliceLayout::kPartitionable;  // how BuildResourceSlices groups them
  std::vector<PublishedDevice> devices;
  std::vector<nlohmann::json> counter_sets;  // spec.sharedCounters[] entries

  const PublishedDevice* Find(const std::string& device_name) const;
};

// The devices (and counter sets) of `cards`. A card whose model the catalog does not know is
// published as a whole card with what the backend says (no partitions, memory as reported).
StatusOr<NodeInventory> BuildNodeInventory(const std::vector<deviceplugin::DeviceInfo>& cards,
                                           const catalog::Catalog& catalog, SliceLayout layout);

struct SliceTarget {
  std::string driver = kDefaultDriverName;
  std::string node_name;
  std::string node_uid;     // owner reference (slices go with their Node); empty = none
  int64_t generation = 1;
};

// Limits of resource.k8s.io/v1 validation (1.35+; docs/dra.md "API limits").
inline constexpr int kMaxDevicesPerSlice = 128;
// 1.34's own limits where they differ (kubernetes/api resource/v1 types.go at kubernetes-1.34.x):
// all counter sets of a slice together hold at most 32 counters, at most 1024 counter
// references by the slice's devices, at most 4 taints per device; no 64-device rule.
inline constexpr int kMaxCountersPerSlice134 = 32;
inline constexpr int kMaxCounterConsumptionsPerSlice134 = 1024;
inline constexpr int kMaxTaintsPerDevice134 = 4;
inline constexpr int kMaxDevicesPerSliceWithTaintsOrCounters = 64;
inline constexpr int kMaxAttributesAndCapacitiesPerDevice = 32;
inline constexpr int kMaxAttributeStringLength = 64;
inline constexpr int kMaxTaintsPerDevice = 16;
inline constexpr int kMaxCounterSetsPerSlice = 8;
inline constexpr int kMaxCountersPerSet = 32;
inline constexpr int kMaxConsumesCountersPerDevice = 2;

// The whole pool, every slice with the same generation and resourceSliceCount. Names are
// <node>-<driver>-<n>, so that publishing is a PUT by name. Split layout (kBasic,
// kPartitionable): counter sets in slices of their own (at most 8 per slice), devices in slices
// of at most 64. kPartitionableCombined: whole cards' groups (a card's counter set and every
// device consuming it) packed into slices within 1.34's limits. Each slice passes
// ValidateResourceSlice under the rules of its layout.
StatusOr<std::vector<nlohmann::json>> BuildResourceSlices(const NodeInventory& inventory, const SliceTarget& target);

// Which release's validation a slice must pass: 1.35+ (a slice carries devices or counter sets)
// or 1.34 (devices reference only the counter sets of their own slice).
enum class SliceRules { kSplit135, kCombined134 };

// Checks a ResourceSlice object against the API's validation rules that a driver can get
// wrong: names (DNS labels / subdomains / qualified names), counts and lengths.
Status ValidateResourceSlice(const nlohmann::json& slice, SliceRules rules = SliceRules::kSplit135);

// Quantity text for MiB ("40960Mi").
std::string MiB(int64_t mib);

}  // namespace tideslice::dra
