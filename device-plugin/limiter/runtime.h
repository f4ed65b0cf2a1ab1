// The limiter's process-wide state and the decisions every hook shares: is this process limited
// at all, which card of the configuration a device is, may an allocation of N bytes go ahead.
//
// Failure policy (docs/isolation.md): no configuration at all = the container holds no soft
// slice, every hook passes straight through. A configuration that exists but cannot be read or
// is invalid, or a region that cannot be used = every counted allocation is refused with the
// vendor's out-of-memory code and one log line says why. A container that holds a slice is never
// silently unlimited.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "device-plugin/limiter/allocation_table.h"
#include "device-plugin/limiter/config.h"
#include "device-plugin/limiter/ledger.h"

#ifndef TIDESLICE_LIMITER_MOUNTED_CONFIG
#define TIDESLICE_LIMITER_MOUNTED_CONFIG "/etc/tideslice/limiter/config.json"
#endif

namespace tideslice::limiter {

enum class Mode : int { kInactive = 1, kActive = 2, kBroken = 3 };

inline constexpr int kNoCard = -1;        // a device this configuration does not cover
inline constexpr int kMaxOrdinals = 64;

struct Runtime {
  Mode mode = Mode::kInactive;
  Config config = {};
  Ledger ledger;
  AllocationTable table;
};

// Initialises on first use (reads the configuration, maps the region); cheap afterwards.
Runtime& Rt();
inline Mode CurrentMode() { return Rt().mode; }

// Config card index for a visible device index (Ascend, and CUDA when no UUID is known).
int CardForVisibleIndex(uint32_t visible_index);
// Config card index whose uuid equals `uuid` (ASCII case-insensitive), or kNoCard.
int CardForUuid(const char* uuid);

// Effective limit of a config card (UINT64_MAX when the card is not limited).
uint64_t LimitOf(int card);
uint64_t UsedOn(int card);

// A memory query's answer as the slice sees it: total = min(limit, physical); free = what the
// slice has left, never more than the card really has free. Unlimited cards are left alone; a
// device outside the configuration reports nothing free.
void ClampToSlice(int card, uint64_t* free_bytes, uint64_t* total_bytes);

enum class Decision { kAllow, kRefuse };
// Reserves `bytes` on config card `card` before a driver call. kRefuse = answer out-of-memory.
// `card` == kNoCard refuses (a device outside the slice's configuration) and logs once.
Decision Reserve(int card, uint64_t bytes, const char* api);
void Release(int card, uint64_t bytes);
// Charges memory the driver already handed out (pool growth beyond what was reserved).
void ChargeAfterTheFact(int card, uint64_t bytes);
// Frees take the handle out of the books *before* the driver call and settle after it: the
// moment the driver has freed an address, another thread's allocation may get the same address
// back (drivers reuse addresses at once), and the entry this free removes must not be that new
// allocation's, nor may the new entry be overwritten by a late removal. A free the driver
// refuses puts the entry back.
struct TakenHandle {
  bool taken = false;
  HandleKind kind = HandleKind::kNone;
  uint64_t key = 0;
  Holding holding{};
};
TakenHandle TakeHandle(HandleKind kind, uint64_t key);
// After the driver's answer: freed = release the bytes the handle was charged (device pointers,
// arrays, physical handles); not freed = the entry goes back. kPoolPointer and kContext entries
// carry no bytes (their callers settle pools and contexts themselves).
void SettleHandle(const TakenHandle& handle, bool freed);

// Hooks that can free memory the books still count call this before a refusal is final.
using ReconcileFn = bool (*)(int card);  // true if anything was released
void SetReconciler(ReconcileFn fn);

// Per-thread nesting: a counted call made while another counted call of this thread is running
// (ACL's aclrtMalloc calling rtMalloc through the PLT) passes through uncounted.
struct NestGuard {
  NestGuard();
  ~NestGuard();
  NestGuard(const NestGuard&) = delete;
  NestGuard& operator=(const NestGuard&) = delete;
  bool outermost() const { return outermost_; }

 private:
  bool outermost_;
};

// Hooks registered for fork: run in the child, after the runtime's own reset.
using ForkChildFn = void (*)();
void AddForkChildHandler(ForkChildFn fn);

}  // namespace tideslice::limiter
