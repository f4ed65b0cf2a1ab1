// The accounting region: one file per container, shared by every process of the container that
// holds a soft slice (the preloaded limiter maps it read-write) and read by the node agent's
// exporter. Fixed layout, versioned; nothing in it is a pointer, so every process and the agent
// can map it at any address. Header-only and free of the C++ library so that the limiter (which
// may not need libstdc++, see docs/isolation.md) and the agent share one definition.
//
// Who writes what:
//   - header: whoever creates the file (the node agent at Allocate; the limiter only for a
//     development config naming a region that does not exist yet), once, before it is visible
//     under its final name (written to a temporary name, then linked into place).
//   - cards[c].lock/used_bytes/peak_bytes/refused: the limiter, under cards[c].lock.
//   - slots[s]: the process that owns the slot (it holds an open-file-description lock on the
//     slot's first byte for as long as it lives) or, after its death, whoever takes that lock.
//
// Liveness without PIDs: a process proves it is alive by holding an OFD lock (fcntl
// F_OFD_SETLK) on byte SlotLockOffset(s). The kernel drops the lock when the process dies, so
// any process that can take the lock knows the owner is gone, whatever PID namespace either is
// in, and may fold the slot's bytes back into the free budget.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <atomic>

namespace tideslice::limiter {

inline constexpr char kRegionMagic[8] = {'T', 'S', 'R', 'E', 'G', 'I', 'O', 'N'};
inline constexpr uint32_t kRegionVersion = 1;
inline constexpr uint32_t kRegionMaxCards = 16;   // cards one container can hold slices of
inline constexpr uint32_t kRegionMaxSlots = 256;  // live processes of one container
inline constexpr const char* kRegionFileName = "region";

enum SlotState : uint32_t {
  kSlotFree = 0,
  kSlotLive = 1,
};

struct alignas(64) RegionHeader {
  char magic[8];
  uint32_t version;
  uint32_t header_bytes;   // sizeof(RegionHeader)
  uint32_t max_cards;      // kRegionMaxCards
  uint32_t max_slots;      // kRegionMaxSlots
  uint32_t card_bytes;     // sizeof(CardBook)
  uint32_t slot_bytes;     // sizeof(ProcessSlot)
  uint64_t total_bytes;    // sizeof(Region): the file is exactly this long
  uint64_t created_unix_s;
};

struct alignas(64) CardBook {
  std::atomic<uint32_t> lock;               // 0 = free, else (owner slot index + 1)
  uint32_t reserved0;
  std::atomic<uint64_t> used_bytes;         // sum over live slots of slots[s].bytes[card]
  std::atomic<uint64_t> peak_bytes;         // highest used_bytes seen
  std::atomic<uint64_t> refused;            // allocations answered with out-of-memory
  std::atomic<uint64_t> limit_bytes;        // the limit the limiter enforces (informational copy)
  std::atomic<uint64_t> reclaimed_bytes;    // bytes taken back from dead processes, cumulative
};

struct alignas(64) ProcessSlot {
  std::atomic<uint32_t> state;              // SlotState
  int32_t pid;                              // in the owner's PID namespace; informational only
  uint64_t started_ns;                      // CLOCK_REALTIME when claimed
  std::atomic<uint64_t> bytes[kRegionMaxCards];
};

// A container's compute budget on one card (compute shares; docs/isolation.md), shared by its
// processes and changed only under `lock` (same identities as the card locks).
struct alignas(64) ComputeBook {
  std::atomic<uint32_t> lock;
  uint32_t reserved0;
  int64_t tokens_ns;                // device time it may still use; negative = debt
  uint64_t refill_ns;               // CLOCK_MONOTONIC of the last refill
  uint64_t estimate_ns;             // expected device time of one launch (from measurements)
  uint64_t sample_ns;               // when busy time was last measured (0 = never)
  uint64_t charged_since_sample;    // estimates charged since then
  uint64_t launches_since_sample;
  uint64_t busy_ns;                 // measured device time, cumulative
};

struct Region {
  RegionHeader header;
  CardBook cards[kRegionMaxCards];
  ProcessSlot slots[kRegionMaxSlots];
  ComputeBook compute[kRegionMaxCards];
};

static_assert(sizeof(RegionHeader) == 64);
static_assert(sizeof(CardBook) == 64);
static_assert(sizeof(ProcessSlot) == 192);
static_assert(sizeof(ComputeBook) == 64);
static_assert(sizeof(Region) == 64 + 16 * 64 + 256 * 192 + 16 * 64);
static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<uint32_t>::is_always_lock_free);

inline constexpr off_t SlotLockOffset(uint32_t slot) {
  return static_cast<off_t>(offsetof(Region, slots) + static_cast<size_t>(slot) * sizeof(ProcessSlot));
}

// A region whose header says it is this version, with this layout. Anything else is refused.
inline bool RegionHeaderValid(const RegionHeader& h) {
  for (int i = 0; i < 8; ++i)
    if (h.magic[i] != kRegionMagic[i]) return false;
  return h.version == kRegionVersion && h.header_bytes == sizeof(RegionHeader) && h.max_cards == kRegionMaxCards &&
         h.max_slots == kRegionMaxSlots && h.card_bytes == sizeof(CardBook) && h.slot_bytes == sizeof(ProcessSlot) &&
         h.total_bytes == sizeof(Region);
}

inline void InitRegionHeader(RegionHeader& h, uint64_t now_unix_s) {
  for (int i = 0; i < 8; ++i) h.magic[i] = kRegionMagic[i];
  h.version = kRegionVersion;
  h.header_bytes = sizeof(RegionHeader);
  h.max_cards = kRegionMaxCards;
  h.max_slots = kRegionMaxSlots;
  h.card_bytes = sizeof(CardBook);
  h.slot_bytes = sizeof(ProcessSlot);
  h.total_bytes = sizeof(Region);
  h.created_unix_s = now_unix_s;
}

}  // namespace tideslice::limiter
