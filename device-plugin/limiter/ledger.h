// One process's view of its container's accounting region (region_layout.h): it claims a
// process slot, admits allocations against a card's limit by reserving before the driver call,
// releases on free, and folds back the bytes of processes that died.
//
// Admission is exact across processes: a card's used_bytes and the slots' per-card bytes change
// together under the card's lock word, so two processes can never both pass a check that only
// one of them fits. A process that dies holding the lock is detected through its slot's OFD lock
// and the card's books are rebuilt from the slots, which are always complete for live owners.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "device-plugin/limiter/region_layout.h"

namespace tideslice::limiter {

class Ledger {
 public:
  enum class Admit { kOk, kOverLimit, kNoSlot };

  // Maps the region at `path`; creates it (temp file + link, so no one sees half a header) when
  // it is missing and its directory exists. False with a reason in `error` otherwise.
  bool Open(const char* path, char* error, size_t error_size);
  bool is_open() const { return region_ != nullptr; }

  // Claims this process's slot if it has none. False when every slot is held by a live process.
  bool EnsureSlot();

  // Reserves `bytes` on region card `card` if used + bytes stays within `limit`. On refusal it
  // first folds back dead processes' bytes and tries once more.
  Admit Reserve(uint32_t card, uint64_t bytes, uint64_t limit);
  // Charges without a limit check (memory the driver already handed out, e.g. pool growth).
  bool Charge(uint32_t card, uint64_t bytes);
  void Release(uint32_t card, uint64_t bytes);
  uint64_t Used(uint32_t card) const;

  // The compute book of region card `card`, locked (the same dead-holder recovery as the card
  // locks, without a rebuild: a dead holder leaves nothing half-done that matters).
  ComputeBook* LockCompute(uint32_t card);
  void UnlockCompute(uint32_t card);
  // Live processes' PIDs (as each saw itself); returns how many were written.
  int LivePids(int32_t* out, int capacity);
  void PublishLimit(uint32_t card, uint64_t limit);

  // Folds back the bytes of every slot whose owner is gone. Returns how many slots it freed.
  int ReclaimDead();

  // After fork, in the child: the inherited descriptor shares the parent's locks, so the child
  // opens its own and will claim its own slot; the parent's slot is never touched.
  void AfterForkInChild();
  // Gives this process's slot back (its bytes go back) and keeps the mapping: at exit, when the
  // driver frees everything the process held. A later allocation claims a new slot.
  void ReleaseSlot();
  // ReleaseSlot and unmap; for tests.
  void Close();

  int slot() const { return slot_.load(std::memory_order_acquire); }
  Region* region() { return region_; }

 private:
  void LockCard(uint32_t card, uint32_t identity);
  void LockWord(std::atomic<uint32_t>& word, uint32_t identity, int rebuild_card);
  void UnlockCard(uint32_t card);
  // Folds back slot `s`, whose owner is dead; the caller holds the slot's OFD lock and the
  // process-local reclaim lock.
  // `identity` is the card-lock identity to use (this process's slot + 1, or s + 1 while the
  // process claims s and has no slot yet).
  // `steal_locks`: card locks still held under the slot's identity are the dead owner's (not when
  // a live process gives back its own slot: another of its threads may hold one).
  void ReclaimSlotLocked(uint32_t s, uint32_t identity, bool steal_locks = true);
  void RebuildCard(uint32_t card);  // caller holds the card lock
  uint32_t Identity() const { return static_cast<uint32_t>(slot_.load(std::memory_order_acquire)) + 1; }
  void LockLocal();
  void UnlockLocal();
  int ReclaimDeadLocked();

  Region* region_ = nullptr;
  int fd_ = -1;
  std::atomic<int> slot_{-1};  // set once claimed; read lock-free by every thread
  // Slot whose OFD lock this process holds while folding it back (-1: none). Another thread of
  // this process would see that lock as free (same open file description) and must not treat
  // the slot as abandoned by someone else.
  std::atomic<int> reclaiming_{-1};
  std::atomic<bool> local_busy_{false};  // serialises slot claims and reclaims in this process
  char path_[512] = {};
};

}  // namespace tideslice::limiter
