// The agent's side of the in-container limiter (libtideslice-limiter.so, device-plugin/limiter/):
// what a container holding a soft slice is told (LimiterConfig), what it gets mounted, and the
// per-container files on the host, written at Allocate and removed when the pod is gone.
//
// Compute shares: a container holding a soft slice with a compute share on a card takes a slot in
// that card's roster (<limiter-dir>/cards/<card uuid>/, limiter/card_coordination.h). The
// container's own record of its slots (containers/<uid>/<container>/seats.json, agent-only) is
// the truth; each card's roster is rebuilt from the records whenever one changes, so a roster
// always lists exactly the containers whose directories exist, survives agent restarts, and a
// slot is freed exactly when its container's directory goes (same rules: never on a failed list
// of pods, never a recent one).
//
// Only soft slices need it: a whole card is the container's alone, and a hard partition (MIG
// instance, vNPU) is enforced by the hardware. A container with at least one soft slice gets the
// limiter for all its cards (the config lists every card it sees, limit 0 where none applies).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
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
  // The pod's workload class as the scheduler reads it (label tideslice.io/workload, else its
  // owner's kind): "inference" or "training"; anything else is written as "" (unspecified, which
  // the limiter treats as training). And tideslice.io/compute-mode: work-conserving.
  std::string workload_class{};
  bool work_conserving = false;
};

// A container's place in one card's roster (compute shares).
struct CardSeat {
  std::string card_uuid;        // the card on the node (DeviceInfo::uuid): names cards/<card_uuid>/
  uint32_t region_card = 0;     // the card's ordinal inside the container (LimiterCard.region_card)
  uint32_t share_permille = 0;  // the slice's compute share (1..1000)
  uint32_t slot = 0;            // its roster slot, chosen by LimiterFiles::SetUpContainer
};

// The cards on which a container holds a compute share: its soft slices with compute_permille >
// 0, in the container's visible order (region_card as BuildLimiterConfig numbers them).
std::vector<CardSeat> ComputeSeats(const std::vector<AssignedSlice>& slices);

// Tells the container's config where each seat's card directory is inside the container
// (kLimiterCardsInContainer/<region card>) and its slot there.
void SetCoordination(v1::LimiterConfig& config, const std::vector<CardSeat>& seats);

// WorkloadClassCode (card_coordination.h) of a class name: 1 inference, 2 training, else 0.
uint32_t WorkloadClassCode(const std::string& workload_class);

// The config for one container, cards in the order the container sees them (VisibleOrder):
// visible_index and region_card are that ordinal; memory_limit_bytes is the slice's memory
// (MiB * 2^20) for soft slices and 0 for whole cards and hard partitions; compute_permille the
// soft slice's share (0 = not limited). uuid: the GPU UUID (NVIDIA) or the physical device id as
// text (Ascend). workload_class and work_conserving from `pod`; the coordination fields are left
// empty (SetCoordination fills them once slots are taken). Pure; refuses more cards than the
// region has books for.
StatusOr<v1::LimiterConfig> BuildLimiterConfig(const LimiterPod& pod, const std::vector<AssignedSlice>& slices,
                                               uint64_t context_reserve_bytes);

// proto3 JSON (lowerCamelCase, uint64 as decimal strings), every field printed, zeros included.
std::string LimiterConfigJson(const v1::LimiterConfig& config);

// Adds the limiter's mounts (library, /etc/ld.so.preload, config read-only; the region's
// directory read-write) and TIDESLICE_LIMITER=on to a container's response; per seat, the card's
// directory read-only at kLimiterCardsInContainer/<region card> and the container's own entry
// file read-write at .../entry-<slot> (after the directory: the runtime mounts a parent first).
void AddLimiterToResponse(const LimiterLayout& layout, const std::string& pod_uid, const std::string& container,
                          const std::vector<CardSeat>& seats, v1beta1::ContainerAllocateResponse& response);
inline void AddLimiterToResponse(const LimiterLayout& layout, const std::string& pod_uid, const std::string& container,
                                 v1beta1::ContainerAllocateResponse& response) {
  AddLimiterToResponse(layout, pod_uid, container, {}, response);
}

// The per-container directories under <limiter-dir>/containers/ and the card directories under
// <limiter-dir>/cards/. Thread-safe: Allocate and the reconciler may call it at once.
class LimiterFiles {
 public:
  explicit LimiterFiles(std::string root) : layout_{std::move(root)} {}
  const LimiterLayout& layout() const { return layout_; }

  // Everything Allocate writes for one container, or nothing: for each seat a free slot in the
  // card's roster (the lowest no container's record holds; refused when all kRosterMaxEntries
  // are taken) with its entry file created (InitCardEntry, zeros, mode 0666), the config's
  // coordination fields set (SetCoordination), the container's directory (WriteContainer) with
  // its seats.json, then each card's roster rewritten. Seats left by an earlier Allocate of the
  // same container are freed once the new directory replaced the old. Card UUIDs must pass
  // IsLimiterPathSegment. On failure every file this call made is removed and the rosters are
  // what they were.
  Status SetUpContainer(v1::LimiterConfig& config, std::vector<CardSeat>& seats);

  // Writes containers/<pod uid>/<container>/{config.json, region/region}: everything is built in
  // a temporary directory beside it and renamed into place, so the directory is there complete
  // or not at all (a crash leaves a ".tmp-" directory that RemoveGonePods clears). The region is
  // sizeof(Region) zero bytes with the header initialised, mode 0666 (any container UID maps it
  // read-write), itself written under a temporary name and linked into place. A directory left
  // by an earlier Allocate of the same container is replaced. Pod UID and container name must
  // pass IsLimiterPathSegment.
  Status WriteContainer(const v1::LimiterConfig& config);
  // Removes one container's directory (the undo of WriteContainer / SetUpContainer), and the
  // pod's directory when it was the last; its roster slots are freed and their entries removed.
  Status RemoveContainer(const std::string& pod_uid, const std::string& container);

  // The seats a container's record holds (empty when it has none or it is unreadable).
  std::vector<CardSeat> SeatsOf(const std::string& pod_uid, const std::string& container);

  // Makes every card's roster and entry files match the containers' seat records: a slot no
  // record holds is freed and its entry removed (leftovers of an interrupted Allocate), a
  // missing entry is created, a missing or unreadable roster rewritten; a roster that already
  // says the same is left as it is (its generation only moves on a change). Needs no list of
  // pods. Returns what could not be done.
  std::vector<std::string> SyncCards();

  // Pod UIDs that have a directory.
  std::vector<std::string> PodUids() const;

  struct GcReport {
    std::vector<std::string> removed;  // pod UIDs
    std::vector<std::string> errors;
  };
  // Removes the directories of pods not in `live_uids`, except those changed after `now - grace`
  // (pass the time the caller began listing the live pods: a pod allocated after that has a
  // directory newer than the list), and leftovers of interrupted writes older than that. Names
  // that are not directories the agent could have written (links, files) are left alone. Then
  // SyncCards: the removed containers' roster slots are freed.
  GcReport RemoveGonePods(const std::set<std::string>& live_uids, std::chrono::system_clock::time_point now,
                          std::chrono::seconds grace);

 private:
  struct Record;
  Status WriteContainerLocked(const v1::LimiterConfig& config, const std::string* seats_json);
  Status RemoveContainerLocked(const std::string& pod_uid, const std::string& container);
  std::vector<Record> RecordsLocked() const;
  // `just_created`: entry paths this caller made (they say nothing about an earlier roster).
  Status SyncCardLocked(const std::string& card_uuid, const std::vector<Record>& records,
                        const std::set<std::string>* just_created = nullptr);
  std::vector<std::string> SyncCardsLocked();

  LimiterLayout layout_;
  std::mutex mu_;  // every change to containers/ and cards/
};

// At agent start: copies `library` to <limiter-dir>/lib/libtideslice-limiter.so (a temporary file
// in the same directory, synced, renamed over the old one: containers already running keep the
// file they mapped) and writes <limiter-dir>/ld.so.preload. Files already up to date are left as
// they are. Refuses a library that is not a regular ELF file.
Status InstallLimiterLibrary(const std::string& library, const LimiterLayout& layout);

}  // namespace tideslice::deviceplugin
