// CUDA driver API hooks: allocations reserve against the slice before the driver call and roll
// back when it fails; frees release what the allocation reserved; memory queries report the
// slice. See docs/isolation.md for the list and for what is not covered.
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "device-plugin/limiter/compute.h"
#include "device-plugin/limiter/cuda_types.h"
#include "device-plugin/limiter/hook_table.h"
#include "device-plugin/limiter/runtime.h"
#include "device-plugin/limiter/sys.h"

#define TS_EXPORT extern "C" __attribute__((visibility("default")))

namespace tideslice::limiter::cuda {

uint64_t ArrayBytes(size_t width, size_t height, size_t depth, int format, unsigned channels, unsigned levels) {
  // Bytes per element for plain formats; block-compressed formats are per 4x4 block.
  uint64_t element = 0, block = 0;
  switch (format) {
    case 0x01: case 0x08: case 0xc0: case 0xc6: element = 1; break;
    case 0x02: case 0x09: case 0x10: case 0xc1: case 0xc7: case 0xc3: case 0xc9: element = 2; break;
    case 0x03: case 0x0a: case 0x20: case 0xc2: case 0xc8: case 0xc4: case 0xca: element = 4; break;
    case 0xc5: case 0xcb: element = 8; break;
    case 0x91: case 0x92: case 0x97: case 0x98: block = 8; break;
    case 0x93: case 0x94: case 0x95: case 0x96: case 0x99: case 0x9a: case 0x9b: case 0x9c: case 0x9d: case 0x9e:
      block = 16; break;
    case 0xb0: element = 2; break;  // NV12: 1.5 bytes per pixel, rounded up
    default: element = 4; break;    // unknown or YUV 10/16-bit: 3 bytes per pixel, rounded up
  }
  // Packed formats imply their channel count.
  if (format >= 0xc0 && format <= 0xcb) channels = 1;
  if (channels == 0) channels = 1;
  if (levels == 0) levels = 1;
  uint64_t total = 0;
  uint64_t w = width ? width : 1, h = height ? height : 1;
  const uint64_t d = depth ? depth : 1;
  for (unsigned level = 0; level < levels && level < 32; ++level) {
    uint64_t bytes;
    if (block)
      bytes = ((w + 3) / 4) * ((h + 3) / 4) * block * d;
    else
      bytes = w * h * d * channels * element;
    total += bytes;
    w = w > 1 ? w / 2 : 1;
    h = h > 1 ? h / 2 : 1;
  }
  return total;
}

std::atomic<int> g_card_of_ordinal[kMaxOrdinals];  // 0 = unknown, else card + 2 (1 = no card)

using DeviceGetUuidFn = CUresult (*)(unsigned char*, CUdevice);

int CardOfDevice(CUdevice dev) {
  if (dev < 0 || dev >= kMaxOrdinals) return kNoCard;
  int cached = g_card_of_ordinal[dev].load(std::memory_order_relaxed);
  if (cached) return cached - 2;
  int card = kNoCard;
  // The physical card's UUID (cuDeviceGetUuid, not _v2 which names a MIG instance) is what the
  // agent wrote; the visible ordinal is the fallback where the driver cannot say.
  auto uuid_fn = reinterpret_cast<DeviceGetUuidFn>(RealByName(Library::kCuda, "cuDeviceGetUuid"));
  if (!uuid_fn) uuid_fn = reinterpret_cast<DeviceGetUuidFn>(RealByName(Library::kCuda, "cuDeviceGetUuid_v2"));
  unsigned char raw[16];
  if (uuid_fn && uuid_fn(raw, dev) == kSuccess) {
    char text[48];
    snprintf(text, sizeof text, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", raw[0],
             raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[7], raw[8], raw[9], raw[10], raw[11], raw[12],
             raw[13], raw[14], raw[15]);
    card = CardForUuid(text);
  } else {
    card = CardForVisibleIndex(static_cast<uint32_t>(dev));
  }
  g_card_of_ordinal[dev].store(card + 2, std::memory_order_relaxed);
  return card;
}

namespace {

constexpr uint64_t kPoolChunk = 2ull << 20;  // a pool grows by at least this much
constexpr int kMaxPools = 64;

// ---- devices ----

using CtxGetDeviceFn = CUresult (*)(CUdevice*);

// The device of the calling thread's current context; false (with the driver's error) if none.
std::atomic<void*> g_ctx_get_device{nullptr}, g_stream_is_capturing{nullptr}, g_device_get_mem_pool{nullptr},
    g_pool_get_attribute{nullptr};

bool CurrentDevice(CUdevice* dev, CUresult* error) {
  auto f = reinterpret_cast<CtxGetDeviceFn>(CachedRealByName(g_ctx_get_device, Library::kCuda, "cuCtxGetDevice"));
  if (!f) {
    *error = kNotInitialized;
    return false;
  }
  CUresult r = f(dev);
  if (r != kSuccess) {
    *error = r;
    return false;
  }
  return true;
}

bool Active() { return CurrentMode() != Mode::kInactive; }

int CardOfCurrentDevice() {
  CUdevice dev = 0;
  CUresult error = kSuccess;
  return CurrentDevice(&dev, &error) ? CardOfDevice(dev) : kNoCard;
}

// ---- contexts: the first context of this process on a device is charged context_reserve ----

pthread_mutex_t g_ctx_mu = PTHREAD_MUTEX_INITIALIZER;
int g_primary_refs[kMaxOrdinals];
int g_created_ctx[kMaxOrdinals];
bool g_ctx_charged[kMaxOrdinals];
CUcontext g_primary_ctx[kMaxOrdinals];  // the primary context of each device, once retained
void ReconcilePoolsOfDevice(CUdevice dev);

uint64_t ContextReserve() { return Rt().config.context_reserve_bytes; }

// Before creating a context on `dev`: reserve its footprint if it is the process's first there.
bool BeforeContext(CUdevice dev, bool primary) {
  if (dev < 0 || dev >= kMaxOrdinals) return true;
  pthread_mutex_lock(&g_ctx_mu);
  bool ok = true;
  if (!g_ctx_charged[dev] && ContextReserve() > 0) {
    ok = Reserve(CardOfDevice(dev), ContextReserve(), primary ? "cuDevicePrimaryCtxRetain" : "cuCtxCreate") ==
         Decision::kAllow;
    g_ctx_charged[dev] = ok;
  }
  if (ok) ++(primary ? g_primary_refs : g_created_ctx)[dev];
  pthread_mutex_unlock(&g_ctx_mu);
  return ok;
}

// Everything allocated in a context goes with it (cuCtxDestroy, a primary context reset or its
// last release): give the slice its bytes back although no free was called.
void ReleaseContextMemory(CUcontext ctx, CUdevice dev) {
  if (!ctx) return;
  Rt().table.TakeOwnedBy(
      reinterpret_cast<uint64_t>(ctx),
      [](void*, HandleKind kind, uint64_t, Holding h) {
        if (kind == HandleKind::kDevicePointer || kind == HandleKind::kArray || kind == HandleKind::kMipmappedArray)
          Release(static_cast<int>(h.card), h.bytes);
      },
      nullptr);
  ReconcilePoolsOfDevice(dev);
}

// After a context on `dev` went away (or its creation failed): the footprint goes with the last.
// `reset` = the primary context was reset, whatever its reference count.
void AfterContextGone(CUdevice dev, bool primary, bool reset = false, bool existed = true) {
  if (dev < 0 || dev >= kMaxOrdinals) return;
  CUcontext destroyed_primary = nullptr;
  pthread_mutex_lock(&g_ctx_mu);
  int& refs = (primary ? g_primary_refs : g_created_ctx)[dev];
  if (reset) refs = 0;
  else if (refs > 0) --refs;
  if (primary && existed && g_primary_refs[dev] == 0) {
    destroyed_primary = g_primary_ctx[dev];
    g_primary_ctx[dev] = nullptr;
  }
  if (g_ctx_charged[dev] && g_primary_refs[dev] + g_created_ctx[dev] == 0) {
    Release(CardOfDevice(dev), ContextReserve());
    g_ctx_charged[dev] = false;
  }
  pthread_mutex_unlock(&g_ctx_mu);
  if (destroyed_primary) ReleaseContextMemory(destroyed_primary, dev);
}

// ---- stream-ordered pools: charged by their reserved size ----

struct PoolBook {
  CUmemoryPool pool;
  CUdevice device;
  uint64_t accounted;  // reserved bytes the books hold for this pool
};
// Recursive: an allocation holds it across the driver call, and a refusal inside it re-reads the
// card's pools (the reconciler) on the same thread.
pthread_mutex_t g_pool_mu = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
PoolBook g_pools[kMaxPools];
int g_pool_count = 0;
std::atomic<void*> g_ctx_get_current{nullptr};

using PoolGetAttributeFn = CUresult (*)(CUmemoryPool, int, void*);
constexpr int kPoolAttrUsedMemCurrent = 7;

bool PoolUsed(CUmemoryPool pool, uint64_t* out);
using DeviceGetMemPoolFn = CUresult (*)(CUmemoryPool*, CUdevice);
using StreamIsCapturingFn = CUresult (*)(CUstream, int*);

bool PoolReserved(CUmemoryPool pool, uint64_t* out) {
  auto fn = reinterpret_cast<PoolGetAttributeFn>(
      CachedRealByName(g_pool_get_attribute, Library::kCuda, "cuMemPoolGetAttribute"));
  return fn && fn(pool, kPoolAttrReservedMemCurrent, out) == kSuccess;
}

bool PoolUsed(CUmemoryPool pool, uint64_t* out) {
  auto fn = reinterpret_cast<PoolGetAttributeFn>(
      CachedRealByName(g_pool_get_attribute, Library::kCuda, "cuMemPoolGetAttribute"));
  return fn && fn(pool, kPoolAttrUsedMemCurrent, out) == kSuccess;
}

int PoolIndexLocked(CUmemoryPool pool, CUdevice device) {
  for (int i = 0; i < g_pool_count; ++i)
    if (g_pools[i].pool == pool) return i;
  if (g_pool_count == kMaxPools) return -1;
  g_pools[g_pool_count] = PoolBook{pool, device, 0};
  return g_pool_count++;
}

// Brings the books for pool `index` to its reserved size now. `credit` = bytes the caller
// already reserved for this pool's growth (settled here in one step, so the books never hold
// both the reservation and the growth). True if bytes were released.
bool ReconcilePoolLocked(int index, uint64_t credit = 0) {
  PoolBook& p = g_pools[index];
  int card = CardOfDevice(p.device);
  uint64_t now = 0;
  if (!p.pool || !PoolReserved(p.pool, &now)) {
    // The pool is gone (destroyed, or with its context): so is its memory.
    Release(card, p.accounted + credit);
    bool released = p.accounted + credit > 0;
    p.accounted = 0;
    p.pool = nullptr;
    return released;
  }
  uint64_t held = p.accounted + credit;  // what the books hold for this pool, reservation included
  bool released = false;
  if (now < held) {
    Release(card, held - now);
    released = now < p.accounted;
  } else if (now > held) {
    ChargeAfterTheFact(card, now - held);
  }
  p.accounted = now;
  return released;
}

// Pools shrink on their own at synchronisation points (release threshold): before refusing an
// allocation, look again at every pool on that card.
bool ReconcilePoolsOfCard(int card) {
  bool released = false;
  pthread_mutex_lock(&g_pool_mu);
  for (int i = 0; i < g_pool_count; ++i)
    if (CardOfDevice(g_pools[i].device) == card) released |= ReconcilePoolLocked(i);
  pthread_mutex_unlock(&g_pool_mu);
  return released;
}

void ReconcilePoolsOfDevice(CUdevice dev) {
  pthread_mutex_lock(&g_pool_mu);
  for (int i = 0; i < g_pool_count; ++i)
    if (g_pools[i].device == dev && g_pools[i].pool) ReconcilePoolLocked(i);
  pthread_mutex_unlock(&g_pool_mu);
}

void ForgetAfterFork() {
  pthread_mutex_init(&g_ctx_mu, nullptr);
  memset(g_primary_refs, 0, sizeof g_primary_refs);
  memset(g_created_ctx, 0, sizeof g_created_ctx);
  memset(g_ctx_charged, 0, sizeof g_ctx_charged);
  memset(g_primary_ctx, 0, sizeof g_primary_ctx);
  pthread_mutex_t fresh = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
  g_pool_mu = fresh;
  g_pool_count = 0;
}

// Runs once per process on the first CUDA hook that needs the runtime.
void EnsureCudaSetup() {
  static std::atomic<bool> done{false};
  if (done.load(std::memory_order_acquire)) return;
  SetReconciler(&ReconcilePoolsOfCard);
  AddForkChildHandler(&ForgetAfterFork);
  done.store(true, std::memory_order_release);
}

// ---- the common allocation paths ----

template <typename Fn>
Fn Real(int id);

enum HookId : int {
  kMemAlloc_v2, kMemAlloc, kMemAllocPitch_v2, kMemAllocPitch, kMemFree_v2, kMemAllocManaged, kMemGetInfo_v2,
  kMemGetInfo, kDeviceTotalMem_v2, kDeviceTotalMem, kMemAllocAsync, kMemAllocAsync_ptsz, kMemAllocFromPoolAsync,
  kMemAllocFromPoolAsync_ptsz, kMemFreeAsync, kMemFreeAsync_ptsz, kMemPoolTrimTo, kMemPoolCreate, kMemPoolDestroy,
  kMemCreate, kMemRelease, kArrayCreate_v2, kArrayCreate, kArray3DCreate_v2, kArray3DCreate, kArrayDestroy,
  kMipmappedArrayCreate, kMipmappedArrayDestroy, kDevicePrimaryCtxRetain, kDevicePrimaryCtxRelease,
  kDevicePrimaryCtxRelease_v2, kDevicePrimaryCtxReset, kDevicePrimaryCtxReset_v2, kCtxCreate_v2, kCtxCreate_v3,
  kCtxCreate_v4, kCtxDestroy_v2, kLaunchKernel, kLaunchKernel_ptsz, kGetProcAddress, kGetProcAddress_v2, kLaunchKernelEx,
  kLaunchKernelEx_ptsz, kLaunchCooperativeKernel, kLaunchCooperativeKernel_ptsz, kGraphLaunch, kGraphLaunch_ptsz, kHookCount
};

HookEntry* Entries();

template <typename Fn>
Fn Real(int id) {
  return reinterpret_cast<Fn>(RealOf(Entries()[id]));
}

// Reserve on the current device; on success *card is set. Returns kSuccess or the CUDA error.
CUresult ReserveOnCurrent(uint64_t bytes, const char* api, int* card) {
  EnsureCudaSetup();
  CUdevice dev = 0;
  CUresult error = kSuccess;
  if (!CurrentDevice(&dev, &error)) return error;
  *card = CardOfDevice(dev);
  return Reserve(*card, bytes, api) == Decision::kAllow ? kSuccess : kOutOfMemory;
}

using CtxGetCurrentFn = CUresult (*)(CUcontext*);

// The calling thread's current context: what owns an allocation made now.
uint64_t CurrentContext() {
  auto f = reinterpret_cast<CtxGetCurrentFn>(CachedRealByName(g_ctx_get_current, Library::kCuda, "cuCtxGetCurrent"));
  CUcontext ctx = nullptr;
  if (!f || f(&ctx) != kSuccess) return 0;
  return reinterpret_cast<uint64_t>(ctx);
}

void Remember(HandleKind kind, uint64_t key, int card, uint64_t bytes, bool context_owned = true) {
  Holding holding{static_cast<uint32_t>(card), bytes, context_owned ? CurrentContext() : 0};
  if (!Rt().table.Insert(kind, key, holding)) {
    // No memory for the table: the allocation stays charged until the process exits.
    static std::atomic<bool> logged{false};
    if (!logged.exchange(true)) sys::Log("allocation table full: some frees will not be credited");
  }
}

// A free of a handle the books may hold (TakeHandle: out of the books before the driver call).
template <typename Call>
CUresult FreeTracked(HandleKind kind, uint64_t key, Call call) {
  const TakenHandle taken = Active() ? TakeHandle(kind, key) : TakenHandle{};
  CUresult r = call();
  SettleHandle(taken, r == kSuccess);
  return r;
}

using AllocFn = CUresult (*)(CUdeviceptr*, size_t);
using AllocAsyncFn = CUresult (*)(CUdeviceptr*, size_t, CUstream);
using AllocFromPoolFn = CUresult (*)(CUdeviceptr*, size_t, CUmemoryPool, CUstream);
using FreeAsyncFn = CUresult (*)(CUdeviceptr, CUstream);

CUresult AllocAsyncCommon(CUdeviceptr* dptr, size_t bytes, CUmemoryPool explicit_pool, CUstream stream,
                          AllocAsyncFn plain, AllocFromPoolFn from_pool, FreeAsyncFn free_async) {
  auto call = [&]() { return explicit_pool ? from_pool(dptr, bytes, explicit_pool, stream) : plain(dptr, bytes, stream); };
  NestGuard nest;
  if (!Active() || !nest.outermost() || !dptr) return call();
  EnsureCudaSetup();
  // Allocations recorded into a graph come from the graph's own pool (docs/isolation.md).
  auto capturing = reinterpret_cast<StreamIsCapturingFn>(
      CachedRealByName(g_stream_is_capturing, Library::kCuda, "cuStreamIsCapturing"));
  int status = 0;
  if (capturing && stream && capturing(stream, &status) == kSuccess && status != 0) return call();
  CUdevice dev = 0;
  CUresult error = kSuccess;
  if (!CurrentDevice(&dev, &error)) return error;
  CUmemoryPool pool = explicit_pool;
  if (!pool) {
    auto get_pool = reinterpret_cast<DeviceGetMemPoolFn>(
        CachedRealByName(g_device_get_mem_pool, Library::kCuda, "cuDeviceGetMemPool"));
    if (!get_pool || get_pool(&pool, dev) != kSuccess) pool = nullptr;
  }
  const char* api = explicit_pool ? "cuMemAllocFromPoolAsync" : "cuMemAllocAsync";
  // The most a pool can grow for this allocation (it grows in chunks of at least 2 MiB).
  const uint64_t worst = (static_cast<uint64_t>(bytes) + kPoolChunk - 1) / kPoolChunk * kPoolChunk;
  if (!pool) {  // no pool to measure: charge the allocation itself
    int card = CardOfDevice(dev);
    if (Reserve(card, worst, api) != Decision::kAllow) return kOutOfMemory;
    CUresult r = call();
    if (r != kSuccess) Release(card, worst);
    else Remember(HandleKind::kDevicePointer, *dptr, card, worst);
    return r;
  }
  // One async allocation at a time per process, so that the pool's growth seen afterwards is
  // this allocation's alone.
  pthread_mutex_lock(&g_pool_mu);
  int index = PoolIndexLocked(pool, dev);
  if (index < 0) {
    pthread_mutex_unlock(&g_pool_mu);
    sys::Log("more than %d memory pools in one process: %s refused", kMaxPools, api);
    return kOutOfMemory;
  }
  ReconcilePoolLocked(index);  // the pool may have trimmed itself since we last looked
  const int card = CardOfDevice(g_pools[index].device);
  uint64_t credit = worst;
  if (Reserve(card, worst, api) != Decision::kAllow) {
    // Can the pool's cache serve it without new memory? Asked only now: a refused Reserve ran
    // the reconciler, and other threads' synchronisations trim the pool without our lock. Bring
    // the books to the pool first, then look: the pool can only shrink from here until the call,
    // so the bytes it may take back are already in the books (asking before the reconcile let a
    // trim in between take the cache away, and the pool grew past the slice; CI caught it).
    ReconcilePoolLocked(index);
    uint64_t reserved = 0, used = 0;
    const bool cached = PoolReserved(pool, &reserved) && PoolUsed(pool, &used) && reserved >= used &&
                        reserved - used >= bytes;
    if (!cached) {
      pthread_mutex_unlock(&g_pool_mu);
      return kOutOfMemory;
    }
    credit = 0;  // the pool's cache can serve it: no new memory is needed
  }
  CUresult r = call();
  if (r != kSuccess) {
    Release(card, credit);
    pthread_mutex_unlock(&g_pool_mu);
    return r;
  }
  const uint64_t before = g_pools[index].accounted;
  ReconcilePoolLocked(index, credit);
  if (credit == 0 && g_pools[index].accounted > before && UsedOn(card) > LimitOf(card)) {
    // The cache could not serve it after all (fragmentation) and the pool grew past the slice:
    // give the block back, let the stream reach the free, trim the growth off, refuse.
    free_async(*dptr, stream);
    auto sync = reinterpret_cast<CUresult (*)(CUstream)>(RealByName(Library::kCuda, "cuStreamSynchronize"));
    auto trim = reinterpret_cast<CUresult (*)(CUmemoryPool, size_t)>(RealByName(Library::kCuda, "cuMemPoolTrimTo"));
    if (sync) sync(stream);
    if (trim) trim(pool, before);
    ReconcilePoolLocked(index);
    pthread_mutex_unlock(&g_pool_mu);
    return kOutOfMemory;
  }
  pthread_mutex_unlock(&g_pool_mu);
  Remember(HandleKind::kPoolPointer, *dptr, index, 0);
  return r;
}

// cuMemFree and cuMemFreeAsync take either kind of device pointer: a stream-ordered one goes back
// to its pool (whose reserved size the books follow), a plain one gives its bytes back.
template <typename Call>
CUresult FreeDevicePointer(CUdeviceptr dptr, Call call) {
  if (!Active()) return call();
  const TakenHandle pooled = TakeHandle(HandleKind::kPoolPointer, dptr);
  const TakenHandle plain = pooled.taken ? TakenHandle{} : TakeHandle(HandleKind::kDevicePointer, dptr);
  CUresult r = call();
  SettleHandle(plain, r == kSuccess);
  SettleHandle(pooled, r == kSuccess);
  if (r == kSuccess && pooled.taken) {
    pthread_mutex_lock(&g_pool_mu);
    if (static_cast<int>(pooled.holding.card) < g_pool_count) ReconcilePoolLocked(static_cast<int>(pooled.holding.card));
    pthread_mutex_unlock(&g_pool_mu);
  }
  return r;
}

CUresult FreeAsyncCommon(CUdeviceptr dptr, CUstream stream, FreeAsyncFn real) {
  return FreeDevicePointer(dptr, [&] { return real(dptr, stream); });
}

}  // namespace
}  // namespace tideslice::limiter::cuda

using namespace tideslice::limiter;
using namespace tideslice::limiter::cuda;

// ---- exported wrappers ----

TS_EXPORT CUresult cuMemAlloc_v2(CUdeviceptr* dptr, size_t bytes) {
  auto real = Real<CUresult (*)(CUdeviceptr*, size_t)>(kMemAlloc_v2);
  NestGuard nest;
  if (!Active() || !nest.outermost() || !dptr) return real(dptr, bytes);
  int card = kNoCard;
  CUresult admitted = ReserveOnCurrent(bytes, "cuMemAlloc", &card);
  if (admitted != kSuccess) return admitted;
  CUresult r = real(dptr, bytes);
  if (r != kSuccess) Release(card, bytes);
  else Remember(HandleKind::kDevicePointer, *dptr, card, bytes);
  return r;
}

TS_EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr* dptr, size_t* pitch, size_t width, size_t height,
                                      unsigned element_size) {
  auto real = Real<CUresult (*)(CUdeviceptr*, size_t*, size_t, size_t, unsigned)>(kMemAllocPitch_v2);
  NestGuard nest;
  if (!Active() || !nest.outermost() || !dptr || !pitch) return real(dptr, pitch, width, height, element_size);
  // The pitch is known only afterwards: reserve the widest row the driver pads to (512 bytes),
  // then settle to pitch × height.
  uint64_t reserve = ((static_cast<uint64_t>(width) + 511) / 512 * 512) * (height ? height : 1);
  int card = kNoCard;
  CUresult admitted = ReserveOnCurrent(reserve, "cuMemAllocPitch", &card);
  if (admitted != kSuccess) return admitted;
  CUresult r = real(dptr, pitch, width, height, element_size);
  if (r != kSuccess) {
    Release(card, reserve);
    return r;
  }
  uint64_t actual = static_cast<uint64_t>(*pitch) * (height ? height : 1);
  if (actual < reserve) Release(card, reserve - actual);
  else if (actual > reserve) ChargeAfterTheFact(card, actual - reserve);
  Remember(HandleKind::kDevicePointer, *dptr, card, actual);
  return r;
}

TS_EXPORT CUresult cuMemAllocManaged(CUdeviceptr* dptr, size_t bytes, unsigned flags) {
  auto real = Real<CUresult (*)(CUdeviceptr*, size_t, unsigned)>(kMemAllocManaged);
  NestGuard nest;
  if (!Active() || !nest.outermost() || !dptr) return real(dptr, bytes, flags);
  // Managed memory may all become resident on the device: charged in full.
  int card = kNoCard;
  CUresult admitted = ReserveOnCurrent(bytes, "cuMemAllocManaged", &card);
  if (admitted != kSuccess) return admitted;
  CUresult r = real(dptr, bytes, flags);
  if (r != kSuccess) Release(card, bytes);
  else Remember(HandleKind::kDevicePointer, *dptr, card, bytes);
  return r;
}

TS_EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr) {
  return FreeDevicePointer(dptr, [&] { return Real<CUresult (*)(CUdeviceptr)>(kMemFree_v2)(dptr); });
}

// The 32-bit entry points of CUDA 2.x cannot address 64-bit memory; a limited process gets none.
TS_EXPORT CUresult cuMemAlloc(unsigned* dptr, unsigned bytes) {
  if (Active()) return kOutOfMemory;
  return Real<CUresult (*)(unsigned*, unsigned)>(kMemAlloc)(dptr, bytes);
}
TS_EXPORT CUresult cuMemAllocPitch(unsigned* dptr, unsigned* pitch, unsigned w, unsigned h, unsigned e) {
  if (Active()) return kOutOfMemory;
  return Real<CUresult (*)(unsigned*, unsigned*, unsigned, unsigned, unsigned)>(kMemAllocPitch)(dptr, pitch, w, h, e);
}
TS_EXPORT CUresult cuArrayCreate(CUarray* handle, const void* desc) {
  if (Active()) return kOutOfMemory;
  return Real<CUresult (*)(CUarray*, const void*)>(kArrayCreate)(handle, desc);
}
TS_EXPORT CUresult cuArray3DCreate(CUarray* handle, const void* desc) {
  if (Active()) return kOutOfMemory;
  return Real<CUresult (*)(CUarray*, const void*)>(kArray3DCreate)(handle, desc);
}

TS_EXPORT CUresult cuMemGetInfo_v2(size_t* free_bytes, size_t* total_bytes) {
  CUresult r = Real<CUresult (*)(size_t*, size_t*)>(kMemGetInfo_v2)(free_bytes, total_bytes);
  if (r != kSuccess || !free_bytes || !total_bytes || CurrentMode() != Mode::kActive) return r;
  CUdevice dev = 0;
  CUresult error = kSuccess;
  if (!CurrentDevice(&dev, &error)) return r;
  uint64_t f = *free_bytes, t = *total_bytes;
  int card = CardOfDevice(dev);
  if (card != kNoCard) ReconcilePoolsOfCard(card);
  ClampToSlice(card, &f, &t);
  *free_bytes = f;
  *total_bytes = t;
  return r;
}

TS_EXPORT CUresult cuMemGetInfo(unsigned* free_bytes, unsigned* total_bytes) {
  CUresult r = Real<CUresult (*)(unsigned*, unsigned*)>(kMemGetInfo)(free_bytes, total_bytes);
  if (r != kSuccess || !free_bytes || !total_bytes || CurrentMode() != Mode::kActive) return r;
  CUdevice dev = 0;
  CUresult error = kSuccess;
  if (!CurrentDevice(&dev, &error)) return r;
  uint64_t f = *free_bytes, t = *total_bytes;
  ClampToSlice(CardOfDevice(dev), &f, &t);
  *free_bytes = static_cast<unsigned>(f);
  *total_bytes = static_cast<unsigned>(t);
  return r;
}

TS_EXPORT CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice dev) {
  CUresult r = Real<CUresult (*)(size_t*, CUdevice)>(kDeviceTotalMem_v2)(bytes, dev);
  if (r != kSuccess || !bytes || CurrentMode() != Mode::kActive) return r;
  int card = CardOfDevice(dev);
  uint64_t limit = LimitOf(card);
  if (card != kNoCard && limit < *bytes) *bytes = limit;
  return r;
}

TS_EXPORT CUresult cuDeviceTotalMem(unsigned* bytes, CUdevice dev) {
  CUresult r = Real<CUresult (*)(unsigned*, CUdevice)>(kDeviceTotalMem)(bytes, dev);
  if (r != kSuccess || !bytes || CurrentMode() != Mode::kActive) return r;
  int card = CardOfDevice(dev);
  uint64_t limit = LimitOf(card);
  if (card != kNoCard && limit < *bytes) *bytes = static_cast<unsigned>(limit);
  return r;
}

// Stream-ordered allocator, legacy and per-thread-stream variants.
#define TS_ALLOC_ASYNC(name, id, pool_id, free_id)                                                             \
  TS_EXPORT CUresult name(CUdeviceptr* dptr, size_t bytes, CUstream stream) {                                 \
    return AllocAsyncCommon(dptr, bytes, nullptr, stream, Real<AllocAsyncFn>(id), Real<AllocFromPoolFn>(pool_id), \
                            Real<FreeAsyncFn>(free_id));                                                       \
  }
#define TS_ALLOC_FROM_POOL(name, id, plain_id, free_id)                                                        \
  TS_EXPORT CUresult name(CUdeviceptr* dptr, size_t bytes, CUmemoryPool pool, CUstream stream) {              \
    if (!pool) return Real<AllocFromPoolFn>(id)(dptr, bytes, pool, stream);                                   \
    return AllocAsyncCommon(dptr, bytes, pool, stream, Real<AllocAsyncFn>(plain_id), Real<AllocFromPoolFn>(id), \
                            Real<FreeAsyncFn>(free_id));                                                       \
  }
TS_ALLOC_ASYNC(cuMemAllocAsync, kMemAllocAsync, kMemAllocFromPoolAsync, kMemFreeAsync)
TS_ALLOC_ASYNC(cuMemAllocAsync_ptsz, kMemAllocAsync_ptsz, kMemAllocFromPoolAsync_ptsz, kMemFreeAsync_ptsz)
TS_ALLOC_FROM_POOL(cuMemAllocFromPoolAsync, kMemAllocFromPoolAsync, kMemAllocAsync, kMemFreeAsync)
TS_ALLOC_FROM_POOL(cuMemAllocFromPoolAsync_ptsz, kMemAllocFromPoolAsync_ptsz, kMemAllocAsync_ptsz, kMemFreeAsync_ptsz)

TS_EXPORT CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream stream) {
  return FreeAsyncCommon(dptr, stream, Real<FreeAsyncFn>(kMemFreeAsync));
}
TS_EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream stream) {
  return FreeAsyncCommon(dptr, stream, Real<FreeAsyncFn>(kMemFreeAsync_ptsz));
}

TS_EXPORT CUresult cuMemPoolTrimTo(CUmemoryPool pool, size_t keep) {
  CUresult r = Real<CUresult (*)(CUmemoryPool, size_t)>(kMemPoolTrimTo)(pool, keep);
  if (r != kSuccess || !Active()) return r;
  pthread_mutex_lock(&g_pool_mu);
  for (int i = 0; i < g_pool_count; ++i)
    if (g_pools[i].pool == pool) ReconcilePoolLocked(i);
  pthread_mutex_unlock(&g_pool_mu);
  return r;
}

TS_EXPORT CUresult cuMemPoolCreate(CUmemoryPool* pool, const MemPoolProps* props) {
  CUresult r = Real<CUresult (*)(CUmemoryPool*, const MemPoolProps*)>(kMemPoolCreate)(pool, props);
  if (r != kSuccess || !Active() || !pool || !props || props->location.type != kMemLocationDevice) return r;
  pthread_mutex_lock(&g_pool_mu);
  PoolIndexLocked(*pool, props->location.id);
  pthread_mutex_unlock(&g_pool_mu);
  return r;
}

TS_EXPORT CUresult cuMemPoolDestroy(CUmemoryPool pool) {
  CUresult r = Real<CUresult (*)(CUmemoryPool)>(kMemPoolDestroy)(pool);
  if (r != kSuccess || !Active()) return r;
  pthread_mutex_lock(&g_pool_mu);
  for (int i = 0; i < g_pool_count; ++i) {
    if (g_pools[i].pool != pool) continue;
    // Its reservation is gone with it. The slot stays (pointer records name it by index) but
    // can no longer match a live pool.
    Release(CardOfDevice(g_pools[i].device), g_pools[i].accounted);
    g_pools[i].accounted = 0;
    g_pools[i].pool = nullptr;
  }
  pthread_mutex_unlock(&g_pool_mu);
  return r;
}

// Virtual memory management: physical memory is charged at cuMemCreate, on the device it is on.
TS_EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle* handle, size_t size, const MemAllocationProp* prop,
                               unsigned long long flags) {
  auto real = Real<CUresult (*)(CUmemGenericAllocationHandle*, size_t, const MemAllocationProp*,
                                unsigned long long)>(kMemCreate);
  NestGuard nest;
  if (!Active() || !nest.outermost() || !handle || !prop || prop->location.type != kMemLocationDevice)
    return real(handle, size, prop, flags);  // host or host-NUMA memory is not the card's
  EnsureCudaSetup();
  int card = CardOfDevice(prop->location.id);
  if (Reserve(card, size, "cuMemCreate") != Decision::kAllow) return kOutOfMemory;
  CUresult r = real(handle, size, prop, flags);
  if (r != kSuccess) Release(card, size);
  else Remember(HandleKind::kPhysicalHandle, *handle, card, size);
  return r;
}

TS_EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle handle) {
  return FreeTracked(HandleKind::kPhysicalHandle, handle,
                     [&] { return Real<CUresult (*)(CUmemGenericAllocationHandle)>(kMemRelease)(handle); });
}

// Arrays: charged by their element bytes (a lower bound; docs/isolation.md).
template <typename Desc>
CUresult ArrayCreateCommon(CUarray* handle, const Desc* desc, uint64_t bytes, HandleKind kind, const char* api,
                           CUresult (*real)(CUarray*, const Desc*)) {
  NestGuard nest;
  if (!Active() || !nest.outermost() || !handle || !desc) return real(handle, desc);
  int card = kNoCard;
  CUresult admitted = ReserveOnCurrent(bytes, api, &card);
  if (admitted != kSuccess) return admitted;
  CUresult r = real(handle, desc);
  if (r != kSuccess) Release(card, bytes);
  else Remember(kind, reinterpret_cast<uint64_t>(*handle), card, bytes);
  return r;
}

TS_EXPORT CUresult cuArrayCreate_v2(CUarray* handle, const ArrayDescriptor* d) {
  uint64_t bytes = d ? ArrayBytes(d->width, d->height, 0, d->format, d->num_channels, 1) : 0;
  return ArrayCreateCommon(handle, d, bytes, HandleKind::kArray, "cuArrayCreate",
                           Real<CUresult (*)(CUarray*, const ArrayDescriptor*)>(kArrayCreate_v2));
}

TS_EXPORT CUresult cuArray3DCreate_v2(CUarray* handle, const Array3DDescriptor* d) {
  uint64_t bytes = d ? ArrayBytes(d->width, d->height, d->depth, d->format, d->num_channels, 1) : 0;
  return ArrayCreateCommon(handle, d, bytes, HandleKind::kArray, "cuArray3DCreate",
                           Real<CUresult (*)(CUarray*, const Array3DDescriptor*)>(kArray3DCreate_v2));
}

TS_EXPORT CUresult cuArrayDestroy(CUarray handle) {
  return FreeTracked(HandleKind::kArray, reinterpret_cast<uint64_t>(handle),
                     [&] { return Real<CUresult (*)(CUarray)>(kArrayDestroy)(handle); });
}

TS_EXPORT CUresult cuMipmappedArrayCreate(CUmipmappedArray* handle, const Array3DDescriptor* d, unsigned levels) {
  auto real = Real<CUresult (*)(CUmipmappedArray*, const Array3DDescriptor*, unsigned)>(kMipmappedArrayCreate);
  NestGuard nest;
  if (!Active() || !nest.outermost() || !handle || !d) return real(handle, d, levels);
  uint64_t bytes = ArrayBytes(d->width, d->height, d->depth, d->format, d->num_channels, levels);
  int card = kNoCard;
  CUresult admitted = ReserveOnCurrent(bytes, "cuMipmappedArrayCreate", &card);
  if (admitted != kSuccess) return admitted;
  CUresult r = real(handle, d, levels);
  if (r != kSuccess) Release(card, bytes);
  else Remember(HandleKind::kMipmappedArray, reinterpret_cast<uint64_t>(*handle), card, bytes);
  return r;
}

TS_EXPORT CUresult cuMipmappedArrayDestroy(CUmipmappedArray handle) {
  return FreeTracked(HandleKind::kMipmappedArray, reinterpret_cast<uint64_t>(handle),
                     [&] { return Real<CUresult (*)(CUmipmappedArray)>(kMipmappedArrayDestroy)(handle); });
}

// Contexts: the footprint no allocation call reports.
TS_EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext* ctx, CUdevice dev) {
  auto real = Real<CUresult (*)(CUcontext*, CUdevice)>(kDevicePrimaryCtxRetain);
  if (!Active()) return real(ctx, dev);
  EnsureCudaSetup();
  if (!BeforeContext(dev, true)) return kOutOfMemory;
  CUresult r = real(ctx, dev);
  if (r != kSuccess) {
    AfterContextGone(dev, true, false, /*existed=*/false);
  } else if (ctx && dev >= 0 && dev < kMaxOrdinals) {
    pthread_mutex_lock(&g_ctx_mu);
    g_primary_ctx[dev] = *ctx;
    pthread_mutex_unlock(&g_ctx_mu);
  }
  return r;
}

#define TS_PRIMARY_RELEASE(name, id, all)                     \
  TS_EXPORT CUresult name(CUdevice dev) {                     \
    CUresult r = Real<CUresult (*)(CUdevice)>(id)(dev);       \
    if (r == kSuccess && Active()) AfterContextGone(dev, true, all); \
    return r;                                                 \
  }
TS_PRIMARY_RELEASE(cuDevicePrimaryCtxRelease, kDevicePrimaryCtxRelease, false)
TS_PRIMARY_RELEASE(cuDevicePrimaryCtxRelease_v2, kDevicePrimaryCtxRelease_v2, false)
TS_PRIMARY_RELEASE(cuDevicePrimaryCtxReset, kDevicePrimaryCtxReset, true)
TS_PRIMARY_RELEASE(cuDevicePrimaryCtxReset_v2, kDevicePrimaryCtxReset_v2, true)

template <typename Call>
CUresult CtxCreateCommon(CUcontext* ctx, CUdevice dev, Call call) {
  if (!Active() || !ctx) return call();
  EnsureCudaSetup();
  if (!BeforeContext(dev, false)) return kOutOfMemory;
  CUresult r = call();
  if (r != kSuccess) AfterContextGone(dev, false, false, /*existed=*/false);
  else Remember(HandleKind::kContext, reinterpret_cast<uint64_t>(*ctx), dev, 0, /*context_owned=*/false);
  return r;
}

TS_EXPORT CUresult cuCtxCreate_v2(CUcontext* ctx, unsigned flags, CUdevice dev) {
  auto real = Real<CUresult (*)(CUcontext*, unsigned, CUdevice)>(kCtxCreate_v2);
  return CtxCreateCommon(ctx, dev, [&] { return real(ctx, flags, dev); });
}
TS_EXPORT CUresult cuCtxCreate_v3(CUcontext* ctx, void* params, int count, unsigned flags, CUdevice dev) {
  auto real = Real<CUresult (*)(CUcontext*, void*, int, unsigned, CUdevice)>(kCtxCreate_v3);
  return CtxCreateCommon(ctx, dev, [&] { return real(ctx, params, count, flags, dev); });
}
TS_EXPORT CUresult cuCtxCreate_v4(CUcontext* ctx, void* params, unsigned flags, CUdevice dev) {
  auto real = Real<CUresult (*)(CUcontext*, void*, unsigned, CUdevice)>(kCtxCreate_v4);
  return CtxCreateCommon(ctx, dev, [&] { return real(ctx, params, flags, dev); });
}

TS_EXPORT CUresult cuCtxDestroy_v2(CUcontext ctx) {
  CUresult r = Real<CUresult (*)(CUcontext)>(kCtxDestroy_v2)(ctx);
  if (r != kSuccess || !Active()) return r;
  Holding h;
  if (Rt().table.Take(HandleKind::kContext, reinterpret_cast<uint64_t>(ctx), &h)) {
    ReleaseContextMemory(ctx, static_cast<CUdevice>(h.card));
    AfterContextGone(static_cast<CUdevice>(h.card), false);
  }
  return r;
}

// Launches: gated by the container's compute share on the current device's card (compute.cc);
// a container without compute shares pays one flag test.
// Launches recorded into a graph during stream capture do not run: they are not gated (the
// graph's launch is).
// Returns the card to report the launch to afterwards (kNoCard: nothing to do).
inline int GateLaunch(CUstream stream) {
  if (!compute::Enabled()) return kNoCard;
  if (stream) {
    auto capturing = reinterpret_cast<StreamIsCapturingFn>(
        CachedRealByName(g_stream_is_capturing, Library::kCuda, "cuStreamIsCapturing"));
    int status = 0;
    if (capturing && capturing(stream, &status) == kSuccess && status != 0) return kNoCard;
  }
  int card = CardOfCurrentDevice();
  compute::BeforeLaunch(card);
  return card;
}

// The launch went through: remember when it will have run. `per_thread`: a NULL stream of a
// _ptsz export is the calling thread's default stream.
inline CUresult AfterLaunch(int card, CUstream stream, bool per_thread, CUresult r) {
  if (r == kSuccess && card != kNoCard)
    compute::AfterLaunch(card, stream || !per_thread ? stream : reinterpret_cast<CUstream>(0x2));
  return r;
}

#define TS_LAUNCH_KERNEL(name, id, pt)                                                                              \
  TS_EXPORT CUresult name(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,        \
                          unsigned bz, unsigned shared, CUstream stream, void** params, void** extra) {         \
    auto real = Real<CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,      \
                                  unsigned, CUstream, void**, void**)>(id);                                    \
    int card = GateLaunch(stream);                                                                              \
    return AfterLaunch(card, stream, pt, real(f, gx, gy, gz, bx, by, bz, shared, stream, params, extra));       \
  }
TS_LAUNCH_KERNEL(cuLaunchKernel, kLaunchKernel, false)
TS_LAUNCH_KERNEL(cuLaunchKernel_ptsz, kLaunchKernel_ptsz, true)

#define TS_LAUNCH_KERNEL_EX(name, id, pt)                                                               \
  TS_EXPORT CUresult name(const void* config, CUfunction f, void** params, void** extra) {          \
    auto real = Real<CUresult (*)(const void*, CUfunction, void**, void**)>(id);                    \
    CUstream stream = nullptr; /* CUlaunchConfig.hStream, at byte 32 */                              \
    if (config) memcpy(&stream, static_cast<const char*>(config) + 32, sizeof stream);              \
    int card = GateLaunch(stream);                                                                  \
    return AfterLaunch(card, stream, pt, real(config, f, params, extra));                           \
  }
TS_LAUNCH_KERNEL_EX(cuLaunchKernelEx, kLaunchKernelEx, false)
TS_LAUNCH_KERNEL_EX(cuLaunchKernelEx_ptsz, kLaunchKernelEx_ptsz, true)

#define TS_LAUNCH_COOPERATIVE(name, id, pt)                                                                         \
  TS_EXPORT CUresult name(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,        \
                          unsigned bz, unsigned shared, CUstream stream, void** params) {                       \
    auto real = Real<CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,      \
                                  unsigned, CUstream, void**)>(id);                                            \
    int card = GateLaunch(stream);                                                                              \
    return AfterLaunch(card, stream, pt, real(f, gx, gy, gz, bx, by, bz, shared, stream, params));              \
  }
TS_LAUNCH_COOPERATIVE(cuLaunchCooperativeKernel, kLaunchCooperativeKernel, false)
TS_LAUNCH_COOPERATIVE(cuLaunchCooperativeKernel_ptsz, kLaunchCooperativeKernel_ptsz, true)

// A graph launch runs all its kernels: it is gated once and charged the graph's measured time.
#define TS_GRAPH_LAUNCH(name, id, pt)                                              \
  TS_EXPORT CUresult name(void* exec, CUstream stream) {                       \
    auto real = Real<CUresult (*)(void*, CUstream)>(id);                       \
    int card = GateLaunch(stream);                                             \
    return AfterLaunch(card, stream, pt, real(exec, stream));                  \
  }
TS_GRAPH_LAUNCH(cuGraphLaunch, kGraphLaunch, false)
TS_GRAPH_LAUNCH(cuGraphLaunch_ptsz, kGraphLaunch_ptsz, true)

// The driver's entry-point lookup (CUDA runtime 11.3 and later reach every function this way).
TS_EXPORT CUresult cuGetProcAddress(const char* symbol, void** pfn, int version, unsigned long long flags) {
  auto real = Real<CUresult (*)(const char*, void**, int, unsigned long long)>(kGetProcAddress);
  if (!real) return kNotInitialized;
  CUresult r = real(symbol, pfn, version, flags);
  if (r == kSuccess && symbol && pfn && *pfn) *pfn = InterposeProcAddress(symbol, *pfn, version, flags);
  return r;
}

TS_EXPORT CUresult cuGetProcAddress_v2(const char* symbol, void** pfn, int version, unsigned long long flags,
                                       int* status) {
  auto real = Real<CUresult (*)(const char*, void**, int, unsigned long long, int*)>(kGetProcAddress_v2);
  if (!real) return kNotInitialized;
  CUresult r = real(symbol, pfn, version, flags, status);
  if (r == kSuccess && symbol && pfn && *pfn) *pfn = InterposeProcAddress(symbol, *pfn, version, flags);
  return r;
}

namespace tideslice::limiter {
namespace cuda {
namespace {

#define TS_HOOK(id, name, base, pfn, pt) \
  HookEntry{#name, base, pfn, pt, Library::kCuda, reinterpret_cast<void*>(&::name), {nullptr}}

HookEntry g_entries[kHookCount] = {
    TS_HOOK(kMemAlloc_v2, cuMemAlloc_v2, "cuMemAlloc", 3020, false),
    TS_HOOK(kMemAlloc, cuMemAlloc, "cuMemAlloc", 2000, false),
    TS_HOOK(kMemAllocPitch_v2, cuMemAllocPitch_v2, "cuMemAllocPitch", 3020, false),
    TS_HOOK(kMemAllocPitch, cuMemAllocPitch, "cuMemAllocPitch", 2000, false),
    TS_HOOK(kMemFree_v2, cuMemFree_v2, "cuMemFree", 3020, false),
    TS_HOOK(kMemAllocManaged, cuMemAllocManaged, "cuMemAllocManaged", 6000, false),
    TS_HOOK(kMemGetInfo_v2, cuMemGetInfo_v2, "cuMemGetInfo", 3020, false),
    TS_HOOK(kMemGetInfo, cuMemGetInfo, "cuMemGetInfo", 2000, false),
    TS_HOOK(kDeviceTotalMem_v2, cuDeviceTotalMem_v2, "cuDeviceTotalMem", 3020, false),
    TS_HOOK(kDeviceTotalMem, cuDeviceTotalMem, "cuDeviceTotalMem", 2000, false),
    TS_HOOK(kMemAllocAsync, cuMemAllocAsync, "cuMemAllocAsync", 11020, false),
    TS_HOOK(kMemAllocAsync_ptsz, cuMemAllocAsync_ptsz, "cuMemAllocAsync", 11020, true),
    TS_HOOK(kMemAllocFromPoolAsync, cuMemAllocFromPoolAsync, "cuMemAllocFromPoolAsync", 11020, false),
    TS_HOOK(kMemAllocFromPoolAsync_ptsz, cuMemAllocFromPoolAsync_ptsz, "cuMemAllocFromPoolAsync", 11020, true),
    TS_HOOK(kMemFreeAsync, cuMemFreeAsync, "cuMemFreeAsync", 11020, false),
    TS_HOOK(kMemFreeAsync_ptsz, cuMemFreeAsync_ptsz, "cuMemFreeAsync", 11020, true),
    TS_HOOK(kMemPoolTrimTo, cuMemPoolTrimTo, "cuMemPoolTrimTo", 11020, false),
    TS_HOOK(kMemPoolCreate, cuMemPoolCreate, "cuMemPoolCreate", 11020, false),
    TS_HOOK(kMemPoolDestroy, cuMemPoolDestroy, "cuMemPoolDestroy", 11020, false),
    TS_HOOK(kMemCreate, cuMemCreate, "cuMemCreate", 10020, false),
    TS_HOOK(kMemRelease, cuMemRelease, "cuMemRelease", 10020, false),
    TS_HOOK(kArrayCreate_v2, cuArrayCreate_v2, "cuArrayCreate", 3020, false),
    TS_HOOK(kArrayCreate, cuArrayCreate, "cuArrayCreate", 2000, false),
    TS_HOOK(kArray3DCreate_v2, cuArray3DCreate_v2, "cuArray3DCreate", 3020, false),
    TS_HOOK(kArray3DCreate, cuArray3DCreate, "cuArray3DCreate", 2000, false),
    TS_HOOK(kArrayDestroy, cuArrayDestroy, "cuArrayDestroy", 2000, false),
    TS_HOOK(kMipmappedArrayCreate, cuMipmappedArrayCreate, "cuMipmappedArrayCreate", 5000, false),
    TS_HOOK(kMipmappedArrayDestroy, cuMipmappedArrayDestroy, "cuMipmappedArrayDestroy", 5000, false),
    TS_HOOK(kDevicePrimaryCtxRetain, cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", 7000, false),
    TS_HOOK(kDevicePrimaryCtxRelease, cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease", 7000, false),
    TS_HOOK(kDevicePrimaryCtxRelease_v2, cuDevicePrimaryCtxRelease_v2, "cuDevicePrimaryCtxRelease", 11000, false),
    TS_HOOK(kDevicePrimaryCtxReset, cuDevicePrimaryCtxReset, "cuDevicePrimaryCtxReset", 7000, false),
    TS_HOOK(kDevicePrimaryCtxReset_v2, cuDevicePrimaryCtxReset_v2, "cuDevicePrimaryCtxReset", 11000, false),
    TS_HOOK(kCtxCreate_v2, cuCtxCreate_v2, "cuCtxCreate", 3020, false),
    TS_HOOK(kCtxCreate_v3, cuCtxCreate_v3, "cuCtxCreate", 11040, false),
    TS_HOOK(kCtxCreate_v4, cuCtxCreate_v4, "cuCtxCreate", 12050, false),
    TS_HOOK(kCtxDestroy_v2, cuCtxDestroy_v2, "cuCtxDestroy", 4000, false),
    TS_HOOK(kLaunchKernel, cuLaunchKernel, "cuLaunchKernel", 4000, false),
    TS_HOOK(kLaunchKernel_ptsz, cuLaunchKernel_ptsz, "cuLaunchKernel", 7000, true),
    TS_HOOK(kGetProcAddress, cuGetProcAddress, "cuGetProcAddress", 11030, false),
    TS_HOOK(kGetProcAddress_v2, cuGetProcAddress_v2, "cuGetProcAddress", 12000, false),
    TS_HOOK(kLaunchKernelEx, cuLaunchKernelEx, "cuLaunchKernelEx", 11060, false),
    TS_HOOK(kLaunchKernelEx_ptsz, cuLaunchKernelEx_ptsz, "cuLaunchKernelEx", 11060, true),
    TS_HOOK(kLaunchCooperativeKernel, cuLaunchCooperativeKernel, "cuLaunchCooperativeKernel", 9000, false),
    TS_HOOK(kLaunchCooperativeKernel_ptsz, cuLaunchCooperativeKernel_ptsz, "cuLaunchCooperativeKernel", 9000, true),
    TS_HOOK(kGraphLaunch, cuGraphLaunch, "cuGraphLaunch", 10000, false),
    TS_HOOK(kGraphLaunch_ptsz, cuGraphLaunch_ptsz, "cuGraphLaunch", 10000, true),
};

HookEntry* Entries() { return g_entries; }

}  // namespace
}  // namespace cuda

HookEntry* CudaHookEntries(int* count) {
  *count = cuda::kHookCount;
  return cuda::g_entries;
}

}  // namespace tideslice::limiter
