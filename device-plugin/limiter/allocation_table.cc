#include "device-plugin/limiter/allocation_table.h"

#include <string.h>
#include <sys/mman.h>

namespace tideslice::limiter {
namespace {

constexpr size_t kInitialCapacity = 4096;

uint64_t Mix(uint64_t key, uint8_t kind) {
  uint64_t x = key ^ (static_cast<uint64_t>(kind) << 56);
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

void* MapZeroed(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

class Guard {
 public:
  explicit Guard(pthread_mutex_t* mu) : mu_(mu) { pthread_mutex_lock(mu_); }
  ~Guard() { pthread_mutex_unlock(mu_); }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

 private:
  pthread_mutex_t* mu_;
};

}  // namespace

AllocationTable::~AllocationTable() {
  if (slots_) munmap(slots_, capacity_ * sizeof(Entry));
}

size_t AllocationTable::Probe(HandleKind kind, uint64_t key) const {
  size_t mask = capacity_ - 1;
  size_t i = Mix(key, static_cast<uint8_t>(kind)) & mask;
  while (slots_[i].kind != static_cast<uint8_t>(HandleKind::kNone) &&
         !(slots_[i].key == key && slots_[i].kind == static_cast<uint8_t>(kind)))
    i = (i + 1) & mask;
  return i;
}

bool AllocationTable::GrowLocked() {
  size_t capacity = capacity_ ? capacity_ * 2 : kInitialCapacity;
  auto* fresh = static_cast<Entry*>(MapZeroed(capacity * sizeof(Entry)));
  if (!fresh) return false;
  Entry* old = slots_;
  size_t old_capacity = capacity_;
  slots_ = fresh;
  capacity_ = capacity;
  for (size_t i = 0; i < old_capacity; ++i)
    if (old[i].kind != static_cast<uint8_t>(HandleKind::kNone))
      slots_[Probe(static_cast<HandleKind>(old[i].kind), old[i].key)] = old[i];
  if (old) munmap(old, old_capacity * sizeof(Entry));
  return true;
}

bool AllocationTable::Insert(HandleKind kind, uint64_t key, Holding holding) {
  Guard guard(&mu_);
  if ((count_ + 1) * 10 > capacity_ * 7 && !GrowLocked()) return false;
  size_t i = Probe(kind, key);
  if (slots_[i].kind == static_cast<uint8_t>(HandleKind::kNone)) ++count_;
  slots_[i].key = key;
  slots_[i].kind = static_cast<uint8_t>(kind);
  slots_[i].card = holding.card;
  slots_[i].bytes = holding.bytes;
  slots_[i].owner = holding.owner;
  return true;
}

bool AllocationTable::Find(HandleKind kind, uint64_t key, Holding* out) {
  Guard guard(&mu_);
  if (!slots_) return false;
  size_t i = Probe(kind, key);
  if (slots_[i].kind == static_cast<uint8_t>(HandleKind::kNone)) return false;
  *out = Holding{slots_[i].card, slots_[i].bytes, slots_[i].owner};
  return true;
}

bool AllocationTable::Take(HandleKind kind, uint64_t key, Holding* out) {
  Guard guard(&mu_);
  return TakeLocked(kind, key, out);
}

size_t AllocationTable::TakeOwnedBy(uint64_t owner, OwnedFn fn, void* arg) {
  if (owner == 0) return 0;
  // Collect a batch under the lock, call back outside it (the callback releases ledger bytes).
  struct Taken {
    HandleKind kind;
    uint64_t key;
    Holding holding;
  };
  constexpr size_t kBatch = 64;
  size_t total = 0;
  for (;;) {
    Taken batch[kBatch];
    size_t n = 0;
    {
      Guard guard(&mu_);
      for (size_t i = 0; slots_ && i < capacity_ && n < kBatch; ++i) {
        if (slots_[i].kind == static_cast<uint8_t>(HandleKind::kNone) || slots_[i].owner != owner) continue;
        Taken t{static_cast<HandleKind>(slots_[i].kind), slots_[i].key, {}};
        if (TakeLocked(t.kind, t.key, &t.holding)) batch[n++] = t;
        --i;  // backward shift may have moved another entry into slot i
      }
    }
    for (size_t i = 0; i < n; ++i) fn(arg, batch[i].kind, batch[i].key, batch[i].holding);
    total += n;
    if (n < kBatch) return total;
  }
}

bool AllocationTable::TakeLocked(HandleKind kind, uint64_t key, Holding* out) {
  if (!slots_) return false;
  size_t mask = capacity_ - 1;
  size_t i = Probe(kind, key);
  if (slots_[i].kind == static_cast<uint8_t>(HandleKind::kNone)) return false;
  *out = Holding{slots_[i].card, slots_[i].bytes, slots_[i].owner};
  // Backward-shift deletion: pull later members of the probe run into the hole.
  size_t hole = i;
  size_t j = i;
  for (;;) {
    j = (j + 1) & mask;
    if (slots_[j].kind == static_cast<uint8_t>(HandleKind::kNone)) break;
    size_t home = Mix(slots_[j].key, slots_[j].kind) & mask;
    // Move j into the hole unless its home lies cyclically in (hole, j].
    bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (stays) continue;
    slots_[hole] = slots_[j];
    hole = j;
  }
  memset(&slots_[hole], 0, sizeof(Entry));
  --count_;
  return true;
}

size_t AllocationTable::size() {
  Guard guard(&mu_);
  return count_;
}

void AllocationTable::ResetAfterFork() {
  pthread_mutex_init(&mu_, nullptr);
  if (slots_) memset(slots_, 0, capacity_ * sizeof(Entry));
  count_ = 0;
}

}  // namespace tideslice::limiter
