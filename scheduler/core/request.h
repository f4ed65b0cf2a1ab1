// PreFilter: turns a pod (kube::PodSpec, plain data) into a validated PodRequest. Every
// user-facing rule of the request contract lives here, so admission, the extender, the
// simulator and the benchmarks all judge a pod the same way.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/catalog/catalog.h"
#include "common/kube/pod_spec.h"
#include "common/kube/workload_class.h"
#include "common/status.h"

namespace tideslice::core {

// Resource and annotation names of the user-facing contract.
namespace names {
inline constexpr const char* kVnpu = "tideslice.io/vnpu";
inline constexpr const char* kVnpuMemory = "tideslice.io/vnpu-memory";
inline constexpr const char* kVnpuMemoryPercent = "tideslice.io/vnpu-memory-percent";
inline constexpr const char* kVnpuCores = "tideslice.io/vnpu-cores";
inline constexpr const char* kVnpuTflops = "tideslice.io/vnpu-tflops";
inline constexpr const char* kCardType = "tideslice.io/card-type";
inline constexpr const char* kCardTypeExclude = "tideslice.io/card-type-exclude";
inline constexpr const char* kCardUuid = "tideslice.io/card-uuid";
inline constexpr const char* kCardUuidExclude = "tideslice.io/card-uuid-exclude";
inline constexpr const char* kProfile = "tideslice.io/profile";
inline constexpr const char* kPlacement = "tideslice.io/placement";
inline constexpr const char* kExclusive = "tideslice.io/exclusive";
inline constexpr const char* kWorkloadLabel = kube::kWorkloadLabel;
// How a soft slice's compute share is enforced: "capped" (default) or "work-conserving". Read
// by the node agent when the container gets its cards (common/kube/workload_class.h).
inline constexpr const char* kComputeMode = kube::kComputeModeAnnotation;
// Vendor-native aliases accepted so that existing pod specs move over unchanged.
inline constexpr const char* kNvidiaGpu = "nvidia.com/gpu";
inline constexpr const char* kNvidiaGpuMem = "nvidia.com/gpumem";                 // MiB
inline constexpr const char* kNvidiaGpuMemPercent = "nvidia.com/gpumem-percentage";
inline constexpr const char* kNvidiaGpuCores = "nvidia.com/gpucores";             // % of a card
inline constexpr const char* kHuaweiPrefix = "huawei.com/Ascend";                 // huawei.com/Ascend910B3[-memory]
}  // namespace names

enum class PlacementPolicy { kBinpack, kSpread };
enum class WorkloadClass { kUnspecified, kInference, kTraining };

// The pod's tidal class: its tideslice.io/workload label, else the default from its owner
// (Deployment/StatefulSet-like owners serve inference, Job-like owners train). A malformed
// label counts as unspecified here; PreFilter reports it.
WorkloadClass WorkloadOf(const kube::PodSpec& pod);

// What one container asks for on accelerators.
struct SliceSpec {
  int count = 0;                // N slices, each on a different card
  bool whole = false;           // whole cards (no memory/cores/profile given)
  int64_t memory_mib = 0;       // per slice; 0 = not given
  int memory_percent = 0;       // per slice, % of the card; 0 = not given
  int compute_permille = 0;     // per slice, share of one card (user percent x 10); 0 = best-effort
  // Memory not given but compute is: reserve memory in proportion to the compute share, so
  // that a "30 % of the cores" slice cannot starve its neighbours of memory.
  bool memory_proportional = false;
  double tflops = 0;            // per slice, normalised compute; 0 = not given
  std::string profile;          // hard partition profile
  // A DRA claim for MIG or vNPU devices (class tideslice.io-mig / -vnpu) whose profile the core
  // does not know (it is chosen by a CEL selector, which TideSlice does not evaluate): judged as a
  // soft slice of its memory, and never the reason a DRA node is dropped for room.
  bool partition_class = false;
};

struct ContainerRequest {
  std::string name;
  bool init = false;
  SliceSpec slice;
};

struct PodRequest {
  std::string pod_key;
  std::string pod_uid;
  int32_t priority = 0;
  std::vector<ContainerRequest> containers;   // app containers first, then init containers
  int64_t cpu_milli = 0;                      // host resources (effective pod request)
  int64_t memory_mib = 0;
  std::set<std::string> type_include;         // canonical catalog model names; empty = any
  std::set<std::string> type_exclude;
  std::set<std::string> uuid_include;
  std::set<std::string> uuid_exclude;
  std::optional<PlacementPolicy> placement;   // per-pod override of card/node policy
  bool exclusive = false;
  WorkloadClass workload = WorkloadClass::kUnspecified;
  bool work_conserving = false;               // tideslice.io/compute-mode: work-conserving

  bool WantsAccelerators() const;
  int MaxCardsPerContainer() const;
  // Sum of whole-card equivalents the pod asks for (compute share), for reports and metrics.
  double CardEquivalents() const;
};

// Parses and validates. Errors name the field (resource name, annotation key or label) and
// say what to change. The catalog is used to resolve card types and profiles and to reject
// requests no known card could ever serve.
StatusOr<PodRequest> PreFilter(const kube::PodSpec& pod, const catalog::Catalog& catalog);

// Models the request may use (after type include/exclude), from the catalog.
std::vector<const catalog::AcceleratorModel*> AllowedModels(const PodRequest& request,
                                                             const catalog::Catalog& catalog);

}  // namespace tideslice::core
