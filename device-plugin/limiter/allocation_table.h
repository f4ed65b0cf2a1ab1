// What this process holds, by handle: device pointer, array, VMM handle or ACL pointer -> the
// card and bytes charged for it, so a free releases exactly what its allocation reserved.
// Open addressing with linear probing and backward-shift deletion, storage from mmap (the
// limiter does not use operator new), one mutex: an allocation or free costs one lock and a few
// probes. After fork the child starts empty (its parent's allocations are not its own).
#pragma once

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

namespace tideslice::limiter {

enum class HandleKind : uint8_t {
  kNone = 0,
  kDevicePointer = 1,   // cuMemAlloc*, cuMemAllocManaged, aclrtMalloc*, rtMalloc*
  kArray = 2,           // cuArrayCreate_v2, cuArray3DCreate_v2
  kMipmappedArray = 3,  // cuMipmappedArrayCreate
  kPhysicalHandle = 4,  // cuMemCreate, aclrtMallocPhysical, rtMallocPhysical
  kPoolPointer = 5,     // cuMemAllocAsync / cuMemAllocFromPoolAsync: pointer -> pool index
  kContext = 6,         // cuCtxCreate*: context -> device ordinal
};

struct Holding {
  uint32_t card;       // region card (or pool index / device ordinal, by kind)
  uint64_t bytes;
  uint64_t owner = 0;  // the context the allocation belongs to (0: none / not tracked)
};

class AllocationTable {
 public:
  // Constant-initialised: the limiter's globals must not need a constructor at load time.
  constexpr AllocationTable() = default;
  // Never destroyed in the limiter (threads may still call in during exit); tests destroy theirs.
  ~AllocationTable();
  AllocationTable(const AllocationTable&) = delete;
  AllocationTable& operator=(const AllocationTable&) = delete;

  // False only when memory for a larger table cannot be mapped.
  bool Insert(HandleKind kind, uint64_t key, Holding holding);
  // Removes the entry and returns it; false if the handle is not known.
  bool Take(HandleKind kind, uint64_t key, Holding* out);
  bool Find(HandleKind kind, uint64_t key, Holding* out);
  // Removes every entry owned by `owner` (a context that was destroyed, with its memory) and
  // calls `fn` for each, outside the table's lock. Returns how many.
  using OwnedFn = void (*)(void* arg, HandleKind kind, uint64_t key, Holding holding);
  size_t TakeOwnedBy(uint64_t owner, OwnedFn fn, void* arg);
  size_t size();
  // In a fork child: forget everything and reset the lock (a parent thread may have held it).
  void ResetAfterFork();

 private:
  struct Entry {
    uint64_t key;
    uint32_t card;
    uint8_t kind;  // HandleKind; kNone = empty
    uint8_t pad[3];
    uint64_t bytes;
    uint64_t owner;
  };
  bool TakeLocked(HandleKind kind, uint64_t key, Holding* out);
  bool GrowLocked();
  size_t Probe(HandleKind kind, uint64_t key) const;

  pthread_mutex_t mu_ = PTHREAD_MUTEX_INITIALIZER;
  Entry* slots_ = nullptr;
  size_t capacity_ = 0;  // power of two
  size_t count_ = 0;
};

}  // namespace tideslice::limiter
