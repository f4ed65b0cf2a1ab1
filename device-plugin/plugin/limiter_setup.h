// The agent's side of the in-container limiter (libtideslice-limiter.so, device-plugin/limiter/):
// what a container holding a soft slice is told (LimiterConfig), what it gets mounted, and the
// per-container files on the host, written at Allocate and removed when the pod is gone.
//
// Only soft slices need it: a whole card is the container's alone, and a hard partition (MIG
// instance, vNPU) is enforced by the hardware. A container with at least one soft slice gets the
// limiter for all its cards (the config lists every card it sees, limit 0 where none applies).
#pragma once

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "device-plugin/plugin/container_response.h"
#include "device-plugin/plugin/limiter_paths.h"
#include "tideslice/v1/tideslice.pb.h"

namespace tideslice::deviceplugin {

// Neither a whole card nor a hard partition: memory and compute shared with other containers,
// enforced only by the limiter.
inline bool IsSoftSlice(const AssignedSlice& s) { return !s.whole && s.profile.empty(); }
bool NeedsLimiter(const std::vector<AssignedSlice>& slices);

struct LimiterPod {
  std::string pod_namespace, pod_name, pod_uid, container;
};

// The config for one container, cards in the order the container sees them (VisibleOrder):
// visible_index and region_card are that ordinal; memory_limit_bytes is the slice's memory
// (MiB * 2^20) for soft slices and 0 for whole cards and hard partitions; compute_permille the
// soft slice's share (0 = not limited). uuid: the GPU UUID (NVIDIA) or the physical device id as
// text (Ascend). Pure; refuses more cards than the region has books for.
StatusOr<v1::LimiterConfig> BuildLimiterConfig(const LimiterPod& pod, const std::vector<AssignedSlice>& slices,
                                               uint64_t context_reserve_bytes);

// proto3 JSON (lowerCamelCase, uint64 as decimal strings), every field printed, zeros included.
std::string LimiterConfigJson(const v1::LimiterConfig& config);

// Adds the limiter's mounts (library, /etc/ld.so.preload, config read-only; the region's
// directory read-write) and TIDESLICE_LIMITER=on to a container's response.
void AddLimiterToResponse(const LimiterLayout& layout, const std::string& pod_uid, const std::string& container,
                          v1beta1::ContainerAllocateResponse& response);

// The per-container directories under <limiter-dir>/containers/.
class LimiterFiles {
 public:
  explicit LimiterFiles(std::string root) : layout_{std::move(root)} {}
  const LimiterLayout& layout() const { return layout_; }

  // Writes containers/<pod uid>/<container>/{config.json, region/region}: everything is built in
  // a temporary directory beside it and renamed into place, so the directory is there complete
  // or not at all (a crash leaves a ".tmp-" directory that RemoveGonePods clears). The region is
  // sizeof(Region) zero bytes with the header initialised, mode 0666 (any container UID maps it
  // read-write), itself written under a temporary name and linked into place. A directory left
  // by an earlier Allocate of the same container is replaced. Pod UID and container name must
  // pass IsLimiterPathSegment.
  Status WriteContainer(const v1::LimiterConfig& config);
  // Removes one container's directory (the undo of WriteContainer), and the pod's directory
  // when it was the last.
  Status RemoveContainer(const std::string& pod_uid, const std::string& container);

  // Pod UIDs that have a directory.
  std::vector<std::string> PodUids() const;

  struct GcReport {
    std::vector<std::string> removed;  // pod UIDs
    std::vector<std::string> errors;
  };
  // Removes the directories of pods not in `live_uids`, except those changed after `now - grace`
  // (pass the time the caller began listing the live pods: a pod allocated after that has a
  // directory newer than the list), and leftovers of interrupted writes older than that. Names
  // that are not directories the agent could have written (links, files) are left alone.
  GcReport RemoveGonePods(const std::set<std::string>& live_uids, std::chrono::system_clock::time_point now,
                          std::chrono::seconds grace);

 private:
  LimiterLayout layout_;
};

// At agent start: copies `library` to <limiter-dir>/lib/libtideslice-limiter.so (a temporary file
// in the same directory, synced, renamed over the old one: containers already running keep the
// file they mapped) and writes <limiter-dir>/ld.so.preload. Files already up to date are left as
// they are. Refuses a library that is not a regular ELF file.
Status InstallLimiterLibrary(const std::string& library, const LimiterLayout& layout);

}  // namespace tideslice::deviceplugin
