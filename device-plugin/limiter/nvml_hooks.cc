// NVML memory queries (nvidia-smi and frameworks read them): inside a limited container a card
// reports the slice's limit as its total and the container's usage as used.
#include <atomic>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "device-plugin/limiter/hook_table.h"
#include "device-plugin/limiter/runtime.h"

#define TS_EXPORT extern "C" __attribute__((visibility("default")))

namespace tideslice::limiter::nvml {
namespace {

using nvmlReturn_t = int;
using nvmlDevice_t = void*;
constexpr nvmlReturn_t kSuccess = 0;
constexpr unsigned kMemoryV2Version = 0x02000028u;  // sizeof(nvmlMemory_v2_t) | 2 << 24

struct Memory {
  unsigned long long total, free, used;
};
struct MemoryV2 {
  unsigned version;
  unsigned long long total, reserved, free, used;
};
static_assert(sizeof(Memory) == 24 && sizeof(MemoryV2) == 40);

enum HookId : int { kGetMemoryInfo, kGetMemoryInfo_v2, kHookCount };
HookEntry* Entries();

// Device handle -> config card, for the few cards a container sees.
constexpr int kCacheSize = 32;
struct CacheEntry {
  std::atomic<void*> device;
  std::atomic<int> card;
};
CacheEntry g_cache[kCacheSize];
pthread_mutex_t g_cache_mu = PTHREAD_MUTEX_INITIALIZER;

using GetUuidFn = nvmlReturn_t (*)(nvmlDevice_t, char*, unsigned);

int CardOf(nvmlDevice_t device) {
  for (auto& e : g_cache)
    if (e.device.load(std::memory_order_acquire) == device) return e.card.load(std::memory_order_relaxed);
  auto get_uuid = reinterpret_cast<GetUuidFn>(RealByName(Library::kNvml, "nvmlDeviceGetUUID"));
  char uuid[96];
  int card = kNoCard;
  if (get_uuid && get_uuid(device, uuid, sizeof uuid) == kSuccess) card = CardForUuid(uuid);
  pthread_mutex_lock(&g_cache_mu);
  for (auto& e : g_cache) {
    void* present = e.device.load(std::memory_order_relaxed);
    if (present == device) break;
    if (present == nullptr) {
      e.card.store(card, std::memory_order_relaxed);
      e.device.store(device, std::memory_order_release);
      break;
    }
  }
  pthread_mutex_unlock(&g_cache_mu);
  return card;
}

// total = min(limit, physical); used = the container's usage; free = the rest, never more than
// the card has free.
bool Slice(nvmlDevice_t device, unsigned long long physical_total, unsigned long long physical_free,
           unsigned long long* total, unsigned long long* used, unsigned long long* free_bytes) {
  if (CurrentMode() != Mode::kActive) return false;
  int card = CardOf(device);
  if (card == kNoCard) return false;
  uint64_t limit = LimitOf(card);
  if (limit == UINT64_MAX) return false;
  uint64_t t = limit < physical_total ? limit : physical_total;
  uint64_t u = UsedOn(card);
  uint64_t f = t > u ? t - u : 0;
  if (f > physical_free) f = physical_free;
  *total = t;
  *used = u;
  *free_bytes = f;
  return true;
}

}  // namespace
}  // namespace tideslice::limiter::nvml

using namespace tideslice::limiter;
using namespace tideslice::limiter::nvml;

TS_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, Memory* memory) {
  auto real = reinterpret_cast<nvmlReturn_t (*)(nvmlDevice_t, Memory*)>(RealOf(Entries()[kGetMemoryInfo]));
  nvmlReturn_t r = real(device, memory);
  if (r == kSuccess && memory) Slice(device, memory->total, memory->free, &memory->total, &memory->used, &memory->free);
  return r;
}

TS_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, MemoryV2* memory) {
  auto real = reinterpret_cast<nvmlReturn_t (*)(nvmlDevice_t, MemoryV2*)>(RealOf(Entries()[kGetMemoryInfo_v2]));
  nvmlReturn_t r = real(device, memory);
  if (r == kSuccess && memory && memory->version == kMemoryV2Version &&
      Slice(device, memory->total, memory->free, &memory->total, &memory->used, &memory->free))
    memory->reserved = 0;  // the driver's reservation is not part of the slice's view
  return r;
}

namespace tideslice::limiter {
namespace nvml {
namespace {
HookEntry g_entries[kHookCount] = {
    HookEntry{"nvmlDeviceGetMemoryInfo", nullptr, 0, false, Library::kNvml,
              reinterpret_cast<void*>(&::nvmlDeviceGetMemoryInfo), {nullptr}},
    HookEntry{"nvmlDeviceGetMemoryInfo_v2", nullptr, 0, false, Library::kNvml,
              reinterpret_cast<void*>(&::nvmlDeviceGetMemoryInfo_v2), {nullptr}},
};
HookEntry* Entries() { return g_entries; }
}  // namespace
}  // namespace nvml

HookEntry* NvmlHookEntries(int* count) {
  *count = nvml::kHookCount;
  return nvml::g_entries;
}

}  // namespace tideslice::limiter
