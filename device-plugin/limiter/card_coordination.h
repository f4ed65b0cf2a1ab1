// Coordination between the containers that share one physical card (compute shares): a
// directory per card on the node, <limiter-dir>/cards/<card uuid>/, holding
//   roster         written by the node agent only (mounted read-only into every container on
//                  the card): who is on the card, their class, share and mode;
//   entry-<slot>   one per container on the card, written by that container's limiter only (the
//                  file is mounted read-write into its own container, every other container sees
//                  it through the read-only directory mount): when it last launched work, how far
//                  its queued work reaches, and what it measured.
// A training container's limiter reads its inference peers' entries to yield the card to them.
// Fixed layouts, versioned, no pointers; header-only and free of the C++ library (the limiter
// may not use libstdc++), shared by the limiter, the agent and the tests.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

namespace tideslice::limiter {

inline constexpr char kRosterMagic[8] = {'T', 'S', 'R', 'O', 'S', 'T', 'E', 'R'};
inline constexpr char kEntryMagic[8] = {'T', 'S', 'E', 'N', 'T', 'R', 'Y', '1'};
inline constexpr uint32_t kCoordinationVersion = 1;
inline constexpr uint32_t kRosterMaxEntries = 64;  // containers sharing one card
inline constexpr const char* kRosterFileName = "roster";
inline constexpr const char* kEntryFilePrefix = "entry-";  // + decimal slot

enum WorkloadClassCode : uint32_t { kClassUnspecified = 0, kClassInference = 1, kClassTraining = 2 };

struct alignas(64) RosterSlot {
  uint32_t state;            // 0 = free, 1 = taken
  uint32_t workload_class;   // WorkloadClassCode
  uint32_t share_permille;   // the slice's compute share, 0 = not limited
  uint32_t work_conserving;  // 1 = may use idle capacity beyond its share
  char pod_uid[40];          // NUL-terminated (for the exporter's labels; informational)
  uint8_t reserved[8];
};

struct alignas(64) RosterHeader {
  char magic[8];
  uint32_t version;
  uint32_t max_entries;       // kRosterMaxEntries
  uint32_t slot_bytes;        // sizeof(RosterSlot)
  uint32_t reserved0;
  uint64_t generation;        // bumped by the agent on every change
  uint64_t total_bytes;       // sizeof(Roster)
  uint8_t reserved[24];
};

struct Roster {
  RosterHeader header;
  RosterSlot slots[kRosterMaxEntries];
};

struct alignas(64) CardEntry {
  char magic[8];
  uint32_t version;
  uint32_t entry_bytes;                     // sizeof(CardEntry)
  // Written by the container's limiter (CLOCK_MONOTONIC nanoseconds, host-wide).
  std::atomic<uint64_t> last_launch_ns;     // its most recent launch on this card
  std::atomic<uint64_t> queued_until_ns;    // when the work it has queued is expected to finish
  std::atomic<uint64_t> busy_ns;            // measured device time, cumulative
  std::atomic<uint64_t> throttled_ns;       // time its launches waited for budget, cumulative
  std::atomic<uint64_t> yields;             // times it yielded the card to an inference peer
  std::atomic<uint64_t> yielded_ns;         // time spent yielding, cumulative
  std::atomic<uint64_t> launches;           // launches seen, cumulative
  std::atomic<uint64_t> window_share_ppm;   // share achieved over the last measurement window
  std::atomic<uint64_t> charged_ns;         // device time its launches were charged, cumulative
  uint8_t reserved[32];
};

static_assert(sizeof(RosterSlot) == 64);
static_assert(sizeof(RosterHeader) == 64);
static_assert(sizeof(Roster) == 64 + 64 * 64);
static_assert(sizeof(CardEntry) == 128);

inline void InitRosterHeader(RosterHeader& h) {
  for (int i = 0; i < 8; ++i) h.magic[i] = kRosterMagic[i];
  h.version = kCoordinationVersion;
  h.max_entries = kRosterMaxEntries;
  h.slot_bytes = sizeof(RosterSlot);
  h.total_bytes = sizeof(Roster);
}

inline bool RosterHeaderValid(const RosterHeader& h) {
  for (int i = 0; i < 8; ++i)
    if (h.magic[i] != kRosterMagic[i]) return false;
  return h.version == kCoordinationVersion && h.max_entries == kRosterMaxEntries &&
         h.slot_bytes == sizeof(RosterSlot) && h.total_bytes == sizeof(Roster);
}

inline void InitCardEntry(CardEntry& e) {
  for (int i = 0; i < 8; ++i) e.magic[i] = kEntryMagic[i];
  e.version = kCoordinationVersion;
  e.entry_bytes = sizeof(CardEntry);
}

inline bool CardEntryValid(const CardEntry& e) {
  for (int i = 0; i < 8; ++i)
    if (e.magic[i] != kEntryMagic[i]) return false;
  return e.version == kCoordinationVersion && e.entry_bytes == sizeof(CardEntry);
}

}  // namespace tideslice::limiter
