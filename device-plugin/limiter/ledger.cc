#include "device-plugin/limiter/ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "device-plugin/limiter/sys.h"

namespace tideslice::limiter {
namespace {

constexpr int kSpinsBeforeYield = 64;
constexpr int kYieldsBeforeOwnerCheck = 256;

void CpuRelax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

// Creates the region file at `path` if it does not exist: a fully written file is linked into
// place, so a concurrent opener sees either nothing or a complete header.
int CreateRegion(const char* path) {
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, static_cast<int>(getpid()));
  int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) return -errno;
  int result = 0;
  if (ftruncate(fd, static_cast<off_t>(sizeof(Region))) != 0) {
    result = -errno;
  } else {
    RegionHeader header;
    memset(&header, 0, sizeof header);
    InitRegionHeader(header, sys::RealtimeNs() / 1000000000ull);
    if (pwrite(fd, &header, sizeof header, 0) != static_cast<ssize_t>(sizeof header)) result = -EIO;
    // The umask may have narrowed the mode; every UID in the container must be able to map it.
    if (result == 0) (void)fchmod(fd, 0666);
    if (result == 0 && link(tmp, path) != 0 && errno != EEXIST) result = -errno;
  }
  close(fd);
  unlink(tmp);
  return result;
}

}  // namespace

bool Ledger::Open(const char* path, char* error, size_t error_size) {
  if (strlen(path) >= sizeof path_) {
    snprintf(error, error_size, "region path too long: %s", path);
    return false;
  }
  strcpy(path_, path);
  int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
  if (fd < 0 && errno == ENOENT) {
    int created = CreateRegion(path);
    if (created != 0) {
      snprintf(error, error_size, "cannot create the accounting region %s: %s", path, strerror(-created));
      return false;
    }
    fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
  }
  if (fd < 0) {
    snprintf(error, error_size, "cannot open the accounting region %s: %s", path, strerror(errno));
    return false;
  }
  off_t size = lseek(fd, 0, SEEK_END);
  if (size != static_cast<off_t>(sizeof(Region))) {
    snprintf(error, error_size, "accounting region %s is %lld bytes, expected %zu", path,
             static_cast<long long>(size), sizeof(Region));
    close(fd);
    return false;
  }
  void* map = mmap(nullptr, sizeof(Region), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    snprintf(error, error_size, "cannot map the accounting region %s: %s", path, strerror(errno));
    close(fd);
    return false;
  }
  auto* region = static_cast<Region*>(map);
  if (!RegionHeaderValid(region->header)) {
    snprintf(error, error_size, "accounting region %s has an unknown header (version %u)", path,
             region->header.version);
    munmap(map, sizeof(Region));
    close(fd);
    return false;
  }
  region_ = region;
  fd_ = fd;
  slot_.store(-1, std::memory_order_relaxed);
  return true;
}

void Ledger::LockLocal() {
  while (local_busy_.exchange(true, std::memory_order_acquire)) sys::Yield();
}

void Ledger::UnlockLocal() { local_busy_.store(false, std::memory_order_release); }

bool Ledger::EnsureSlot() {
  if (slot_.load(std::memory_order_acquire) >= 0) return true;
  if (!region_) return false;
  LockLocal();
  if (slot_.load(std::memory_order_acquire) >= 0) {
    UnlockLocal();
    return true;
  }
  // Free slots first; a slot whose owner died is taken only when no free one is left (its bytes
  // are folded back first, under its own identity, which no one else can hold: we hold its lock).
  for (int pass = 0; pass < 2 && slot_.load(std::memory_order_relaxed) < 0; ++pass) {
    for (uint32_t s = 0; s < kRegionMaxSlots; ++s) {
      ProcessSlot& slot = region_->slots[s];
      bool live = slot.state.load(std::memory_order_acquire) == kSlotLive;
      if (pass == 0 && live) continue;
      if (sys::TryLockByte(fd_, SlotLockOffset(s)) != 0) continue;  // a live owner holds it
      if (live) {
        // Folded back under the dead owner's identity, which no one else can hold: we hold its
        // slot lock. Other threads of this process see no slot until it is ready.
        reclaiming_.store(static_cast<int>(s), std::memory_order_release);
        ReclaimSlotLocked(s, s + 1);
        reclaiming_.store(-1, std::memory_order_release);
      }
      slot.pid = static_cast<int32_t>(getpid());
      slot.started_ns = sys::RealtimeNs();
      for (uint32_t c = 0; c < kRegionMaxCards; ++c) slot.bytes[c].store(0, std::memory_order_relaxed);
      slot.state.store(kSlotLive, std::memory_order_release);
      slot_.store(static_cast<int>(s), std::memory_order_release);
      break;
    }
  }
  UnlockLocal();
  return slot_.load(std::memory_order_acquire) >= 0;
}

void Ledger::LockCard(uint32_t card, uint32_t identity) { LockWord(region_->cards[card].lock, identity, static_cast<int>(card)); }

ComputeBook* Ledger::LockCompute(uint32_t card) {
  if (!region_ || card >= kRegionMaxCards || !EnsureSlot()) return nullptr;
  LockWord(region_->compute[card].lock, Identity(), -1);
  return &region_->compute[card];
}

void Ledger::UnlockCompute(uint32_t card) { region_->compute[card].lock.store(0, std::memory_order_release); }

int Ledger::LivePids(int32_t* out, int capacity) {
  int n = 0;
  for (uint32_t s = 0; s < kRegionMaxSlots && n < capacity; ++s)
    if (region_->slots[s].state.load(std::memory_order_acquire) == kSlotLive) out[n++] = region_->slots[s].pid;
  return n;
}

// `rebuild_card` >= 0: the word is that card's lock, whose books are rebuilt on a take-over.
void Ledger::LockWord(std::atomic<uint32_t>& word, uint32_t identity, int rebuild_card) {
  int spins = 0, yields = 0;
  for (;;) {
    uint32_t expected = 0;
    if (word.load(std::memory_order_relaxed) == 0 &&
        word.compare_exchange_weak(expected, identity, std::memory_order_acquire, std::memory_order_relaxed))
      return;
    if (++spins < kSpinsBeforeYield) {
      CpuRelax();
      continue;
    }
    sys::Yield();
    if (++yields < kYieldsBeforeOwnerCheck) continue;
    yields = 0;
    // Held for a long time: is the holder alive? Its slot's OFD lock says so in any PID namespace.
    uint32_t holder = word.load(std::memory_order_acquire);
    if (holder == 0 || holder == identity) continue;
    if (holder > kRegionMaxSlots) {  // not a slot identity at all: a scribbled word
      word.compare_exchange_strong(holder, 0);
      continue;
    }
    const uint32_t holder_slot = holder - 1;
    if (static_cast<int>(holder_slot) == slot_.load(std::memory_order_acquire) ||
        static_cast<int>(holder_slot) == reclaiming_.load(std::memory_order_acquire))
      continue;  // this process: another thread holds it, or is folding that slot back now
    if (sys::TryLockByte(fd_, SlotLockOffset(holder_slot)) != 0) continue;  // alive; keep waiting
    // The holder died inside the critical section. Take the card over and rebuild its books
    // from the slots: the dead slot's bytes on this card are dropped (the driver freed its
    // memory); its other cards are folded back by the next ReclaimDead.
    if (word.compare_exchange_strong(holder, identity, std::memory_order_acquire)) {
      if (rebuild_card >= 0) {
        region_->slots[holder_slot].bytes[rebuild_card].store(0, std::memory_order_relaxed);
        RebuildCard(static_cast<uint32_t>(rebuild_card));
      }
      sys::UnlockByte(fd_, SlotLockOffset(holder_slot));
      return;
    }
    sys::UnlockByte(fd_, SlotLockOffset(holder_slot));
  }
}

void Ledger::UnlockCard(uint32_t card) { region_->cards[card].lock.store(0, std::memory_order_release); }

void Ledger::RebuildCard(uint32_t card) {
  uint64_t sum = 0;
  for (uint32_t s = 0; s < kRegionMaxSlots; ++s)
    if (region_->slots[s].state.load(std::memory_order_acquire) == kSlotLive)
      sum += region_->slots[s].bytes[card].load(std::memory_order_relaxed);
  region_->cards[card].used_bytes.store(sum, std::memory_order_relaxed);
}

void Ledger::ReclaimSlotLocked(uint32_t s, uint32_t identity, bool steal_locks) {
  ProcessSlot& slot = region_->slots[s];
  const uint32_t dead = s + 1;
  // Card locks the dead owner still holds are ours now (no one else can take its identity while
  // we hold its slot lock): drop its bytes there and rebuild those cards from the slots.
  for (uint32_t c = 0; steal_locks && c < kRegionMaxCards; ++c) {
    if (region_->cards[c].lock.load(std::memory_order_acquire) != dead) continue;
    slot.bytes[c].store(0, std::memory_order_relaxed);
    RebuildCard(c);
    UnlockCard(c);
  }
  for (uint32_t c = 0; c < kRegionMaxCards; ++c) {
    if (slot.bytes[c].load(std::memory_order_relaxed) == 0) continue;
    LockCard(c, identity);
    uint64_t bytes = slot.bytes[c].exchange(0, std::memory_order_relaxed);
    CardBook& book = region_->cards[c];
    uint64_t used = book.used_bytes.load(std::memory_order_relaxed);
    book.used_bytes.store(used >= bytes ? used - bytes : 0, std::memory_order_relaxed);
    book.reclaimed_bytes.fetch_add(bytes, std::memory_order_relaxed);
    UnlockCard(c);
  }
  slot.state.store(kSlotFree, std::memory_order_release);
}

Ledger::Admit Ledger::Reserve(uint32_t card, uint64_t bytes, uint64_t limit) {
  if (card >= kRegionMaxCards) return Admit::kOverLimit;
  if (!EnsureSlot()) {
    ReclaimDead();
    if (!EnsureSlot()) return Admit::kNoSlot;
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    LockCard(card, Identity());
    CardBook& book = region_->cards[card];
    uint64_t used = book.used_bytes.load(std::memory_order_relaxed);
    if (bytes <= limit && used <= limit - bytes) {
      book.used_bytes.store(used + bytes, std::memory_order_relaxed);
      region_->slots[slot()].bytes[card].fetch_add(bytes, std::memory_order_relaxed);
      if (used + bytes > book.peak_bytes.load(std::memory_order_relaxed))
        book.peak_bytes.store(used + bytes, std::memory_order_relaxed);
      UnlockCard(card);
      return Admit::kOk;
    }
    UnlockCard(card);
    if (attempt == 0 && ReclaimDead() == 0) break;
  }
  region_->cards[card].refused.fetch_add(1, std::memory_order_relaxed);
  return Admit::kOverLimit;
}

bool Ledger::Charge(uint32_t card, uint64_t bytes) {
  if (card >= kRegionMaxCards || !EnsureSlot()) return false;
  LockCard(card, Identity());
  CardBook& book = region_->cards[card];
  uint64_t used = book.used_bytes.load(std::memory_order_relaxed) + bytes;
  book.used_bytes.store(used, std::memory_order_relaxed);
  region_->slots[slot()].bytes[card].fetch_add(bytes, std::memory_order_relaxed);
  if (used > book.peak_bytes.load(std::memory_order_relaxed)) book.peak_bytes.store(used, std::memory_order_relaxed);
  UnlockCard(card);
  return true;
}

void Ledger::Release(uint32_t card, uint64_t bytes) {
  const int mine_slot = slot_.load(std::memory_order_acquire);
  if (card >= kRegionMaxCards || mine_slot < 0 || bytes == 0) return;
  LockCard(card, Identity());
  CardBook& book = region_->cards[card];
  // Never below what this process holds: a release it never reserved must not free a sibling's.
  std::atomic<uint64_t>& mine = region_->slots[mine_slot].bytes[card];
  uint64_t held = mine.load(std::memory_order_relaxed);
  if (bytes > held) bytes = held;
  mine.store(held - bytes, std::memory_order_relaxed);
  uint64_t used = book.used_bytes.load(std::memory_order_relaxed);
  book.used_bytes.store(used >= bytes ? used - bytes : 0, std::memory_order_relaxed);
  UnlockCard(card);
}

uint64_t Ledger::Used(uint32_t card) const {
  if (!region_ || card >= kRegionMaxCards) return 0;
  return region_->cards[card].used_bytes.load(std::memory_order_relaxed);
}

void Ledger::PublishLimit(uint32_t card, uint64_t limit) {
  if (region_ && card < kRegionMaxCards) region_->cards[card].limit_bytes.store(limit, std::memory_order_relaxed);
}

int Ledger::ReclaimDead() {
  if (!region_ || slot() < 0) return 0;  // card locks need this process's identity
  LockLocal();
  int freed = ReclaimDeadLocked();
  UnlockLocal();
  return freed;
}

int Ledger::ReclaimDeadLocked() {
  int freed = 0;
  for (uint32_t s = 0; s < kRegionMaxSlots; ++s) {
    if (static_cast<int>(s) == slot()) continue;  // our own lock would "succeed" on our descriptor
    if (region_->slots[s].state.load(std::memory_order_acquire) != kSlotLive) continue;
    if (sys::TryLockByte(fd_, SlotLockOffset(s)) != 0) continue;
    reclaiming_.store(static_cast<int>(s), std::memory_order_release);
    ReclaimSlotLocked(s, Identity());
    reclaiming_.store(-1, std::memory_order_release);
    sys::UnlockByte(fd_, SlotLockOffset(s));
    ++freed;
  }
  return freed;
}

void Ledger::AfterForkInChild() {
  if (fd_ < 0) return;
  // A parent thread may have held these at fork; in the child no one does.
  local_busy_.store(false, std::memory_order_relaxed);
  reclaiming_.store(-1, std::memory_order_relaxed);
  close(fd_);  // the parent's descriptor (and its slot lock) stays with the parent
  fd_ = open(path_, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
  slot_.store(-1, std::memory_order_relaxed);
  if (fd_ < 0) {
    munmap(region_, sizeof(Region));
    region_ = nullptr;
  }
}

void Ledger::ReleaseSlot() {
  if (!region_) return;
  LockLocal();
  int s = slot();
  if (s >= 0) {
    ReclaimSlotLocked(static_cast<uint32_t>(s), Identity(), /*steal_locks=*/false);
    slot_.store(-1, std::memory_order_release);
    sys::UnlockByte(fd_, SlotLockOffset(static_cast<uint32_t>(s)));
  }
  UnlockLocal();
}

void Ledger::Close() {
  if (!region_) return;
  ReleaseSlot();
  munmap(region_, sizeof(Region));
  close(fd_);
  region_ = nullptr;
  fd_ = -1;
  slot_.store(-1, std::memory_order_relaxed);
}

}  // namespace tideslice::limiter
