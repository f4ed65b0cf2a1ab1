// Huawei CANN hooks: the ACL memory calls frameworks make (torch_npu, MindSpore) and the
// runtime (rt*) calls below them, which old MindSpore calls directly. An ACL call that reaches
// rt* through the PLT (CANN 8.x) is counted once, at the ACL level (NestGuard). The list and the
// sources are in docs/isolation.md, "Ascend facts".
#include <stdint.h>

#include "device-plugin/limiter/compute.h"
#include "device-plugin/limiter/hook_table.h"
#include "device-plugin/limiter/runtime.h"

#define TS_EXPORT extern "C" __attribute__((visibility("default")))

namespace tideslice::limiter::ascend {
namespace {

using aclError = int;
constexpr aclError kSuccess = 0;
constexpr aclError kMemoryAllocation = 207001;  // the only code torch_npu and MindSpore treat as OOM
constexpr uint32_t kLocationDevice = 1;

struct PhysicalMemProp {  // aclrtPhysicalMemProp, 32 bytes
  int handle_type;
  int allocation_type;
  int mem_attr;
  uint32_t location_id;
  int location_type;
  uint64_t reserve;
};
static_assert(sizeof(PhysicalMemProp) == 32);

struct RtDrvMemProp {  // rtDrvMemProp_t, 32 bytes
  uint32_t side, devid, module_id, pg_type, mem_type;
  uint64_t reserve;
};
static_assert(sizeof(RtDrvMemProp) == 32);

enum HookId : int {
  kAclrtMalloc, kAclrtMallocAlign32, kAclrtMallocCached, kAclrtMallocWithCfg, kAclrtFree, kAclrtMallocPhysical,
  kAclrtFreePhysical, kAclrtGetMemInfo, kRtMalloc, kRtMallocCached, kRtFree, kRtDvppMalloc, kRtDvppFree,
  kRtMallocPhysical, kRtFreePhysical, kRtMemGetInfoEx, kRtMemGetInfo, kAclrtLaunchKernel,
  kAclrtLaunchKernelWithConfig, kAclmdlExecute, kAclmdlExecuteAsync, kAclopExecute, kAclopExecuteV2,
  kAclopCompileAndExecute, kAclopCompileAndExecuteV2, kRtKernelLaunch, kRtKernelLaunchWithFlag,
  kRtKernelLaunchWithFlagV2, kRtKernelLaunchWithHandle, kRtKernelLaunchWithHandleV2, kRtModelExecute,
  kRtLaunchKernelByFuncHandle, kRtLaunchKernelByFuncHandleV2, kRtLaunchKernelByFuncHandleV3, kHookCount
};
HookEntry* Entries();

template <typename Fn>
Fn Real(int id) {
  return reinterpret_cast<Fn>(RealOf(Entries()[id]));
}


// The calling thread's current device (ACL's view, else the runtime's), as a config card.
// The calling thread's current device as a config card (compute.cc owns the lookup).
int CurrentCard() { return compute::CardOfCurrentAscendDevice(); }

bool Active() { return CurrentMode() != Mode::kInactive; }

uint64_t RoundUp32(uint64_t n) { return (n + 31) / 32 * 32; }

void Remember(uint64_t key, HandleKind kind, int card, uint64_t bytes) {
  Rt().table.Insert(kind, key, Holding{static_cast<uint32_t>(card), bytes});
}

// The shape of every counted device allocation: reserve, call, roll back or remember.
template <typename Call>
aclError Allocate(void** ptr, uint64_t charged, const char* api, Call call) {
  NestGuard nest;
  if (!Active() || !nest.outermost() || !ptr) return call();
  int card = CurrentCard();
  if (Reserve(card, charged, api) != Decision::kAllow) return kMemoryAllocation;
  aclError r = call();
  if (r != kSuccess) Release(card, charged);
  else Remember(reinterpret_cast<uint64_t>(*ptr), HandleKind::kDevicePointer, card, charged);
  return r;
}

template <typename Call>
aclError AllocatePhysical(void** handle, uint64_t size, bool on_device, uint32_t device, const char* api, Call call) {
  NestGuard nest;
  if (!Active() || !nest.outermost() || !handle || !on_device) return call();
  int card = CardForVisibleIndex(device);
  if (Reserve(card, size, api) != Decision::kAllow) return kMemoryAllocation;
  aclError r = call();
  if (r != kSuccess) Release(card, size);
  else Remember(reinterpret_cast<uint64_t>(*handle), HandleKind::kPhysicalHandle, card, size);
  return r;
}

// Out of the books before the runtime's call, settled after it (runtime.h, TakeHandle).
template <typename Call>
aclError Free(void* ptr, HandleKind kind, Call call) {
  NestGuard nest;
  const TakenHandle taken =
      nest.outermost() && Active() ? TakeHandle(kind, reinterpret_cast<uint64_t>(ptr)) : TakenHandle{};
  aclError r = call();
  SettleHandle(taken, r == kSuccess);
  return r;
}

// Device-memory queries report the slice (every memory attribute: on 310P cards device memory
// is DDR).
void Clamp(size_t* free_bytes, size_t* total_bytes) {
  if (CurrentMode() != Mode::kActive || !free_bytes || !total_bytes) return;
  uint64_t f = *free_bytes, t = *total_bytes;
  ClampToSlice(CurrentCard(), &f, &t);
  *free_bytes = f;
  *total_bytes = t;
}

}  // namespace
}  // namespace tideslice::limiter::ascend

using namespace tideslice::limiter;
using namespace tideslice::limiter::ascend;

// ---- ACL ----

// aclrtMalloc and aclrtMallocCached pad like the runtime does (32-byte multiple plus 32).
TS_EXPORT aclError aclrtMalloc(void** ptr, size_t size, int policy) {
  auto real = Real<aclError (*)(void**, size_t, int)>(kAclrtMalloc);
  uint64_t charged = (policy == 6 || policy == 7) ? RoundUp32(size) : RoundUp32(size) + 32;
  return Allocate(ptr, charged, "aclrtMalloc", [&] { return real(ptr, size, policy); });
}
TS_EXPORT aclError aclrtMallocAlign32(void** ptr, size_t size, int policy) {
  auto real = Real<aclError (*)(void**, size_t, int)>(kAclrtMallocAlign32);
  return Allocate(ptr, RoundUp32(size), "aclrtMallocAlign32", [&] { return real(ptr, size, policy); });
}
TS_EXPORT aclError aclrtMallocCached(void** ptr, size_t size, int policy) {
  auto real = Real<aclError (*)(void**, size_t, int)>(kAclrtMallocCached);
  return Allocate(ptr, RoundUp32(size) + 32, "aclrtMallocCached", [&] { return real(ptr, size, policy); });
}
TS_EXPORT aclError aclrtMallocWithCfg(void** ptr, size_t size, int policy, void* cfg) {
  auto real = Real<aclError (*)(void**, size_t, int, void*)>(kAclrtMallocWithCfg);
  return Allocate(ptr, size, "aclrtMallocWithCfg", [&] { return real(ptr, size, policy, cfg); });
}
TS_EXPORT aclError aclrtFree(void* ptr) {
  auto real = Real<aclError (*)(void*)>(kAclrtFree);
  return Free(ptr, HandleKind::kDevicePointer, [&] { return real(ptr); });
}
TS_EXPORT aclError aclrtMallocPhysical(void** handle, size_t size, const PhysicalMemProp* prop, uint64_t flags) {
  auto real = Real<aclError (*)(void**, size_t, const PhysicalMemProp*, uint64_t)>(kAclrtMallocPhysical);
  bool on_device = prop && prop->location_type == static_cast<int>(kLocationDevice);
  return AllocatePhysical(handle, size, on_device, prop ? prop->location_id : 0, "aclrtMallocPhysical",
                          [&] { return real(handle, size, prop, flags); });
}
TS_EXPORT aclError aclrtFreePhysical(void* handle) {
  auto real = Real<aclError (*)(void*)>(kAclrtFreePhysical);
  return Free(handle, HandleKind::kPhysicalHandle, [&] { return real(handle); });
}
TS_EXPORT aclError aclrtGetMemInfo(int attr, size_t* free_bytes, size_t* total_bytes) {
  aclError r = Real<aclError (*)(int, size_t*, size_t*)>(kAclrtGetMemInfo)(attr, free_bytes, total_bytes);
  if (r == kSuccess) Clamp(free_bytes, total_bytes);
  return r;
}

// ---- runtime (rt*), reached directly by older MindSpore and through the PLT by ACL ----

TS_EXPORT int rtMalloc(void** ptr, uint64_t size, uint32_t type, uint16_t module) {
  auto real = Real<int (*)(void**, uint64_t, uint32_t, uint16_t)>(kRtMalloc);
  // Host memory types are not the card's.
  if ((type & 0x3FF) == 0x81) return real(ptr, size, type, module);
  return Allocate(ptr, size, "rtMalloc", [&] { return real(ptr, size, type, module); });
}
TS_EXPORT int rtMallocCached(void** ptr, uint64_t size, uint32_t type, uint16_t module) {
  auto real = Real<int (*)(void**, uint64_t, uint32_t, uint16_t)>(kRtMallocCached);
  if ((type & 0x3FF) == 0x81) return real(ptr, size, type, module);
  return Allocate(ptr, size, "rtMallocCached", [&] { return real(ptr, size, type, module); });
}
TS_EXPORT int rtFree(void* ptr) {
  auto real = Real<int (*)(void*)>(kRtFree);
  return Free(ptr, HandleKind::kDevicePointer, [&] { return real(ptr); });
}
TS_EXPORT int rtDvppMalloc(void** ptr, uint64_t size, uint16_t module) {
  auto real = Real<int (*)(void**, uint64_t, uint16_t)>(kRtDvppMalloc);
  return Allocate(ptr, size, "rtDvppMalloc", [&] { return real(ptr, size, module); });
}
TS_EXPORT int rtDvppFree(void* ptr) {
  auto real = Real<int (*)(void*)>(kRtDvppFree);
  return Free(ptr, HandleKind::kDevicePointer, [&] { return real(ptr); });
}
TS_EXPORT int rtMallocPhysical(void** handle, size_t size, RtDrvMemProp* prop, uint64_t flags) {
  auto real = Real<int (*)(void**, size_t, RtDrvMemProp*, uint64_t)>(kRtMallocPhysical);
  bool on_device = prop && prop->side == kLocationDevice;
  return AllocatePhysical(handle, size, on_device, prop ? prop->devid : 0, "rtMallocPhysical",
                          [&] { return real(handle, size, prop, flags); });
}
TS_EXPORT int rtFreePhysical(void* handle) {
  auto real = Real<int (*)(void*)>(kRtFreePhysical);
  return Free(handle, HandleKind::kPhysicalHandle, [&] { return real(handle); });
}
TS_EXPORT int rtMemGetInfoEx(int type, size_t* free_bytes, size_t* total_bytes) {
  int r = Real<int (*)(int, size_t*, size_t*)>(kRtMemGetInfoEx)(type, free_bytes, total_bytes);
  if (r == kSuccess) Clamp(free_bytes, total_bytes);
  return r;
}
TS_EXPORT int rtMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  int r = Real<int (*)(size_t*, size_t*)>(kRtMemGetInfo)(free_bytes, total_bytes);
  if (r == kSuccess) Clamp(free_bytes, total_bytes);
  return r;
}

// ---- execution entry points (compute shares): gated once, at the outermost call ----

namespace {
// An ACL execution call that reaches rt* launches through the PLT is gated once. `stream`: the
// stream the work was queued on (nullptr for synchronous calls, done when they return).
template <typename Call>
int Launch(void* stream, Call call) {
  NestGuard nest;
  int card = kNoCard;
  if (nest.outermost() && Active() && compute::Enabled()) {
    card = compute::CardOfCurrentAscendDevice();
    compute::BeforeLaunch(card);
  }
  int r = call();
  if (r == 0 && card != kNoCard && stream) compute::AfterLaunch(card, stream);
  return r;
}
using P = void*;
}  // namespace

TS_EXPORT aclError aclrtLaunchKernel(P func, uint32_t blocks, const void* args, size_t size, P stream) {
  auto real = Real<aclError (*)(P, uint32_t, const void*, size_t, P)>(kAclrtLaunchKernel);
  return Launch(stream, [&] { return real(func, blocks, args, size, stream); });
}
TS_EXPORT aclError aclrtLaunchKernelWithConfig(P func, uint32_t blocks, P stream, P cfg, P args, P reserve) {
  auto real = Real<aclError (*)(P, uint32_t, P, P, P, P)>(kAclrtLaunchKernelWithConfig);
  return Launch(stream, [&] { return real(func, blocks, stream, cfg, args, reserve); });
}
TS_EXPORT aclError aclmdlExecute(uint32_t model, const void* input, P output) {
  auto real = Real<aclError (*)(uint32_t, const void*, P)>(kAclmdlExecute);
  return Launch(nullptr, [&] { return real(model, input, output); });
}
TS_EXPORT aclError aclmdlExecuteAsync(uint32_t model, const void* input, P output, P stream) {
  auto real = Real<aclError (*)(uint32_t, const void*, P, P)>(kAclmdlExecuteAsync);
  return Launch(stream, [&] { return real(model, input, output, stream); });
}
TS_EXPORT aclError aclopExecute(const char* op, int n_in, const P* in_desc, const P* in, int n_out, const P* out_desc,
                                P* out, const void* attr, P stream) {
  auto real = Real<aclError (*)(const char*, int, const P*, const P*, int, const P*, P*, const void*, P)>(kAclopExecute);
  return Launch(stream, [&] { return real(op, n_in, in_desc, in, n_out, out_desc, out, attr, stream); });
}
TS_EXPORT aclError aclopExecuteV2(const char* op, int n_in, P* in_desc, P* in, int n_out, P* out_desc, P* out, P attr,
                                  P stream) {
  auto real = Real<aclError (*)(const char*, int, P*, P*, int, P*, P*, P, P)>(kAclopExecuteV2);
  return Launch(stream, [&] { return real(op, n_in, in_desc, in, n_out, out_desc, out, attr, stream); });
}
TS_EXPORT aclError aclopCompileAndExecute(const char* op, int n_in, const P* in_desc, const P* in, int n_out,
                                          const P* out_desc, P* out, const void* attr, int engine, int compile,
                                          const char* path, P stream) {
  auto real = Real<aclError (*)(const char*, int, const P*, const P*, int, const P*, P*, const void*, int, int,
                                const char*, P)>(kAclopCompileAndExecute);
  return Launch(stream, [&] { return real(op, n_in, in_desc, in, n_out, out_desc, out, attr, engine, compile, path, stream); });
}
TS_EXPORT aclError aclopCompileAndExecuteV2(const char* op, int n_in, P* in_desc, P* in, int n_out, P* out_desc,
                                            P* out, P attr, int engine, int compile, const char* path, P stream) {
  auto real = Real<aclError (*)(const char*, int, P*, P*, int, P*, P*, P, int, int, const char*, P)>(
      kAclopCompileAndExecuteV2);
  return Launch(stream, [&] { return real(op, n_in, in_desc, in, n_out, out_desc, out, attr, engine, compile, path, stream); });
}
TS_EXPORT int rtKernelLaunch(const void* stub, uint32_t blocks, P args, uint32_t size, P sm, P stream) {
  auto real = Real<int (*)(const void*, uint32_t, P, uint32_t, P, P)>(kRtKernelLaunch);
  return Launch(stream, [&] { return real(stub, blocks, args, size, sm, stream); });
}
TS_EXPORT int rtKernelLaunchWithFlag(const void* stub, uint32_t blocks, P args, P sm, P stream, uint32_t flags) {
  auto real = Real<int (*)(const void*, uint32_t, P, P, P, uint32_t)>(kRtKernelLaunchWithFlag);
  return Launch(stream, [&] { return real(stub, blocks, args, sm, stream, flags); });
}
TS_EXPORT int rtKernelLaunchWithFlagV2(const void* stub, uint32_t blocks, P args, P sm, P stream, uint32_t flags,
                                       const void* cfg) {
  auto real = Real<int (*)(const void*, uint32_t, P, P, P, uint32_t, const void*)>(kRtKernelLaunchWithFlagV2);
  return Launch(stream, [&] { return real(stub, blocks, args, sm, stream, flags, cfg); });
}
TS_EXPORT int rtKernelLaunchWithHandle(P handle, uint64_t tiling, uint32_t blocks, P args, P sm, P stream,
                                       const void* info) {
  auto real = Real<int (*)(P, uint64_t, uint32_t, P, P, P, const void*)>(kRtKernelLaunchWithHandle);
  return Launch(stream, [&] { return real(handle, tiling, blocks, args, sm, stream, info); });
}
TS_EXPORT int rtKernelLaunchWithHandleV2(P handle, uint64_t tiling, uint32_t blocks, P args, P sm, P stream,
                                         const void* cfg) {
  auto real = Real<int (*)(P, uint64_t, uint32_t, P, P, P, const void*)>(kRtKernelLaunchWithHandleV2);
  return Launch(stream, [&] { return real(handle, tiling, blocks, args, sm, stream, cfg); });
}
TS_EXPORT int rtModelExecute(P model, P stream, uint32_t flag) {
  auto real = Real<int (*)(P, P, uint32_t)>(kRtModelExecute);
  return Launch(stream, [&] { return real(model, stream, flag); });
}
TS_EXPORT int rtLaunchKernelByFuncHandle(P func, uint32_t blocks, P args, P stream) {
  auto real = Real<int (*)(P, uint32_t, P, P)>(kRtLaunchKernelByFuncHandle);
  return Launch(stream, [&] { return real(func, blocks, args, stream); });
}
TS_EXPORT int rtLaunchKernelByFuncHandleV2(P func, uint32_t blocks, P args, P stream, const void* cfg) {
  auto real = Real<int (*)(P, uint32_t, P, P, const void*)>(kRtLaunchKernelByFuncHandleV2);
  return Launch(stream, [&] { return real(func, blocks, args, stream, cfg); });
}
TS_EXPORT int rtLaunchKernelByFuncHandleV3(P func, uint32_t blocks, const void* args, P stream, const void* cfg) {
  auto real = Real<int (*)(P, uint32_t, const void*, P, const void*)>(kRtLaunchKernelByFuncHandleV3);
  return Launch(stream, [&] { return real(func, blocks, args, stream, cfg); });
}

namespace tideslice::limiter {
namespace ascend {
namespace {

#define TS_ACL(name) HookEntry{#name, nullptr, 0, false, Library::kAcl, reinterpret_cast<void*>(&::name), {nullptr}}
#define TS_RT(name) \
  HookEntry{#name, nullptr, 0, false, Library::kAscendRuntime, reinterpret_cast<void*>(&::name), {nullptr}}

HookEntry g_entries[kHookCount] = {
    TS_ACL(aclrtMalloc),       TS_ACL(aclrtMallocAlign32), TS_ACL(aclrtMallocCached), TS_ACL(aclrtMallocWithCfg),
    TS_ACL(aclrtFree),         TS_ACL(aclrtMallocPhysical), TS_ACL(aclrtFreePhysical), TS_ACL(aclrtGetMemInfo),
    TS_RT(rtMalloc),           TS_RT(rtMallocCached),      TS_RT(rtFree),            TS_RT(rtDvppMalloc),
    TS_RT(rtDvppFree),         TS_RT(rtMallocPhysical),    TS_RT(rtFreePhysical),    TS_RT(rtMemGetInfoEx),
    TS_RT(rtMemGetInfo),
    TS_ACL(aclrtLaunchKernel), TS_ACL(aclrtLaunchKernelWithConfig), TS_ACL(aclmdlExecute), TS_ACL(aclmdlExecuteAsync),
    TS_ACL(aclopExecute), TS_ACL(aclopExecuteV2), TS_ACL(aclopCompileAndExecute), TS_ACL(aclopCompileAndExecuteV2),
    TS_RT(rtKernelLaunch), TS_RT(rtKernelLaunchWithFlag), TS_RT(rtKernelLaunchWithFlagV2),
    TS_RT(rtKernelLaunchWithHandle), TS_RT(rtKernelLaunchWithHandleV2), TS_RT(rtModelExecute),
    TS_RT(rtLaunchKernelByFuncHandle), TS_RT(rtLaunchKernelByFuncHandleV2), TS_RT(rtLaunchKernelByFuncHandleV3),
};
HookEntry* Entries() { return g_entries; }

}  // namespace
}  // namespace ascend

HookEntry* AscendHookEntries(int* count) {
  *count = ascend::kHookCount;
  return ascend::g_entries;
}

}  // namespace tideslice::limiter
