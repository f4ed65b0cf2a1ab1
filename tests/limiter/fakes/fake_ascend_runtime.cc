// A fake libruntime.so (the CANN rt layer, shared/ASCEND-ABI.md A.2c) for the limiter's preload
// tests: device memory is counted with real byte counts in the shared fake state (fake_state.h),
// device i of the state = ACL device id i. The thread's current device is set by rtSetDevice
// (default 0). The first rtSetDevice of a device in a process charges the state's context_bytes,
// the matching last rtDeviceReset gives them back; an atexit handler gives back everything the
// process still holds.
#include <pthread.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>

#include "tests/limiter/abi/acl_abi.h"
#include "tests/limiter/fakes/fake_state.h"

#define FAKE_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

using namespace tideslice::fake;

enum class Kind { kMalloc, kCached, kDvpp };

struct Block {
  uint64_t bytes;
  int device;
  Kind kind;
};

struct Physical {
  uint64_t bytes;
  int device;  // -1 = host side, not counted
  int maps = 0;
  bool released = false;
};

struct Proc {
  std::mutex mu;
  FakeProc* entry = nullptr;
  int set_count[kFakeMaxDevices] = {};
  std::map<uintptr_t, Block> blocks;
  std::map<uintptr_t, Physical> physical;
  std::map<uintptr_t, uint64_t> va_ranges;
  std::map<uintptr_t, uintptr_t> mappings;  // mapped address -> physical handle
  uintptr_t next_ptr = 0x12c000000000ull;
  uintptr_t next_handle = 0x5000;
};

Proc* g_proc = new Proc;
thread_local int t_device = 0;

FakeState* State() { return FakeProcessState(); }
int DeviceCount() { return static_cast<int>(State()->device_count); }
bool ValidDevice(int d) { return d >= 0 && d < DeviceCount(); }

FakeProc* Entry(Proc* p) {
  if (!p->entry) p->entry = FakeClaimProc(State());
  return p->entry;
}
bool Charge(Proc* p, int dev, uint64_t b) { return FakeCharge(State(), Entry(p), dev, static_cast<int64_t>(b)); }
void Uncharge(Proc* p, int dev, uint64_t b) { FakeUncharge(State(), Entry(p), dev, static_cast<int64_t>(b)); }

uint64_t RoundUp(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

void AtExit() {
  Proc* p = g_proc;
  std::lock_guard<std::mutex> lock(p->mu);
  if (p->entry) FakeDropProc(State(), p->entry);
  p->entry = nullptr;
}

void AtForkChild() {
  g_proc = new Proc;
  t_device = 0;
}

__attribute__((constructor)) void Register() {
  atexit(AtExit);
  pthread_atfork(nullptr, nullptr, AtForkChild);
}

rtError_t DeviceAlloc(void** devPtr, uint64_t size, Kind kind) {
  if (!devPtr || size == 0) return ACL_ERROR_RT_PARAM_INVALID;
  int dev = t_device;
  if (!ValidDevice(dev)) return ACL_ERROR_RT_INVALID_DEVICEID;
  Proc* p = g_proc;
  std::lock_guard<std::mutex> lock(p->mu);
  if (!Charge(p, dev, size)) return ACL_ERROR_RT_MEMORY_ALLOCATION;
  uintptr_t ptr = p->next_ptr;
  p->next_ptr += RoundUp(size, 4096) + 4096;
  p->blocks[ptr] = Block{size, dev, kind};
  *devPtr = reinterpret_cast<void*>(ptr);
  return ACL_SUCCESS;
}

rtError_t DeviceFree(void* devPtr, bool dvpp) {
  if (!devPtr) return ACL_ERROR_RT_PARAM_INVALID;
  Proc* p = g_proc;
  std::lock_guard<std::mutex> lock(p->mu);
  auto it = p->blocks.find(reinterpret_cast<uintptr_t>(devPtr));
  if (it == p->blocks.end() || (it->second.kind == Kind::kDvpp) != dvpp) return ACL_ERROR_RT_PARAM_INVALID;
  Uncharge(p, it->second.device, it->second.bytes);
  p->blocks.erase(it);
  return ACL_SUCCESS;
}

bool IsHbmInfoType(int t) { return t == 1 || t == 4 || t == 5 || (t >= 8 && t <= 17); }

}  // namespace

FAKE_EXPORT rtError_t rtMalloc(void** devPtr, uint64_t size, rtMemType_t type, const uint16_t moduleId) {
  // Every memory type counts as device memory here (HBM, DDR on 310P, ...).
  (void)type;
  (void)moduleId;
  return DeviceAlloc(devPtr, size, Kind::kMalloc);
}

FAKE_EXPORT rtError_t rtMallocCached(void** devPtr, uint64_t size, rtMemType_t type, const uint16_t moduleId) {
  (void)type;
  (void)moduleId;
  return DeviceAlloc(devPtr, size, Kind::kCached);
}

FAKE_EXPORT rtError_t rtFree(void* devPtr) { return DeviceFree(devPtr, false); }

FAKE_EXPORT rtError_t rtDvppMalloc(void** devPtr, uint64_t size, const uint16_t moduleId) {
  (void)moduleId;
  return DeviceAlloc(devPtr, size, Kind::kDvpp);
}

FAKE_EXPORT rtError_t rtDvppFree(void* devPtr) { return DeviceFree(devPtr, true); }

FAKE_EXPORT rtError_t rtMallocHost(void** hostPtr, uint64_t size, const uint16_t moduleId) {
  (void)moduleId;
  if (!hostPtr || size == 0) return ACL_ERROR_RT_PARAM_INVALID;
  *hostPtr = malloc(size);
  return *hostPtr ? ACL_SUCCESS : ACL_ERROR_RT_MEMORY_ALLOCATION;
}

FAKE_EXPORT rtError_t rtFreeHost(void* hostPtr) {
  if (!hostPtr) return ACL_ERROR_RT_PARAM_INVALID;
  free(hostPtr);
  return ACL_SUCCESS;
}

FAKE_EXPORT rtError_t rtMemGetInfoEx(rtMemInfoType_t type, size_t* freeSize, size_t* totalSize) {
  if (!freeSize || !totalSize || type < 0 || type > 17) return ACL_ERROR_RT_PARAM_INVALID;
  int dev = t_device;
  if (!ValidDevice(dev)) return ACL_ERROR_RT_INVALID_DEVICEID;
  if (!IsHbmInfoType(type)) {  // no DDR device memory on this fake SoC
    *freeSize = 0;
    *totalSize = 0;
    return ACL_SUCCESS;
  }
  const FakeDevice& d = State()->devices[dev];
  int64_t out = std::max<int64_t>(d.outstanding_bytes.load(), 0);
  *totalSize = d.total_bytes;
  *freeSize = static_cast<uint64_t>(out) >= d.total_bytes ? 0 : d.total_bytes - static_cast<uint64_t>(out);
  return ACL_SUCCESS;
}

FAKE_EXPORT rtError_t rtMemGetInfo(size_t* freeSize, size_t* totalSize) {
  return rtMemGetInfoEx(RT_MEMORYINFO_HBM, freeSize, totalSize);
}

FAKE_EXPORT rtError_t rtReserveMemAddress(void** devPtr, size_t size, size_t alignment, void* devAddr,
                                          uint64_t flags) {
  (void)devAddr;
  (void)flags;
  if (!devPtr || size == 0) return ACL_ERROR_RT_PARAM_INVALID;
  Proc* p = g_proc;
  std::lock_guard<std::mutex> lock(p->mu);
  uint64_t align = std::max<uint64_t>(alignment, 2ull << 20);
  uintptr_t base = RoundUp(p->next_ptr, align);
  p->next_ptr = base + RoundUp(size, 4096) + align;
  p->va_ranges[base] = size;
  *devPtr = reinterpret_cast<void*>(base);
  return ACL_SUCCESS;
}

FAKE_EXPORT rtError_t rtReleaseMemAddress(void* devPtr) {
  Proc* p = g_proc;
  std::lock_guard<std::mutex> lock(p->mu);
  auto it = p->va_ranges.find(reinterpret_cast<uintptr_t>(devPtr));
  if (it == p->va_ranges.end()) return ACL_ERROR_RT_PARAM_INVALID;
  p->va_ranges.erase(it);
  return ACL_SUCCESS;
}

FAKE_EXPORT rtError_t rtMallocPhysical(rtDrvMemHandle* handle, size_t size, rtDrvMemProp_t* prop, uint64_t flags) {
  if (!handle || !prop || size == 0 || flags != 0) return ACL_ERROR_RT_PARAM_INVALID;
  int device = -1;
  if (prop->side == ACL_MEM_LOCATION_TYPE_DEVICE) {
    if (!ValidDevice(static_cast<int>(prop->devid))) return ACL_ERROR_RT_INVALID_DEVICEID;
    device = static_cast<int>(prop->devid);
  } else if (prop->side != ACL_MEM_LOCATION_TYPE_HOST) {
    return ACL_ERROR_RT_PARAM_INVALID;
  }
  Proc* p = g_proc;
  std::lock_guard<std::mutex> lock(p->mu);
  if (device >= 0 && !Charge(p, device, size)) return ACL_ERROR_RT_MEMORY_ALLOCATION;
  uintptr_t h = p->next_handle;
  p->next_handle += 16;
  p->physical[h] = Physical{size, device};
  *handle = reinterpret_cast<rtDrvMemHandle>(h);
  return ACL_SUCCESS;
}

FAKE_EXPORT rtError_t rtFreePhysical(rtDrvMemHandle handle) {
  Proc* p = g_proc;
  std::lock_guard<std::mutex> lock(p->mu);
  auto it = p->physical.find(reinterpret_cast<uintptr_t>(handle));
  if (it == p->physical.end() || it->second.released) return ACL_ERROR_RT_PARAM_INVALID;
  it->second.released = true;
  if (it->second.maps == 0) {
    if (it->second.device >= 0) Uncharge(p, it->second.device, it->second.bytes);
    p->physical.erase(it);
  }
  return ACL_SUCCESS;
}

FAKE_EXPORT rtError_t rtMapMem(void* devPtr, size_t size, size_t offset, rtDrvMemHandle handle, uint64_t flags) {
  if (!devPtr || size == 0 || flags != 0) return ACL_ERROR_RT_PARAM_INVALID;
  Proc* p = g_proc;
  std::lock_guard<std::mutex> lock(p->mu);
  auto h = p->physical.find(reinterpret_cast<uintptr_t>(handle));
  if (h == p->physical.end() || h->second.released || offset + size > h->second.bytes)
    return ACL_ERROR_RT_PARAM_INVALID;
  uintptr_t addr = reinterpret_cast<uintptr_t>(devPtr);
  auto r = p->va_ranges.upper_bound(addr);
  if (r == p->va_ranges.begin()) return ACL_ERROR_RT_PARAM_INVALID;
  --r;
  if (addr + size > r->first + r->second || p->mappings.count(addr)) return ACL_ERROR_RT_PARAM_INVALID;
  p->mappings[addr] = h->first;
  ++h->second.maps;
  return ACL_SUCCESS;
}

FAKE_EXPORT rtError_t rtUnmapMem(void* devPtr) {
  Proc* p = g_proc;
  std::lock_guard<std::mutex> lock(p->mu);
  auto m = p->mappings.find(reinterpret_cast<uintptr_t>(devPtr));
  if (m == p->mappings.end()) return ACL_ERROR_RT_PARAM_INVALID;
  auto h = p->physical.find(m->second);
  if (h != p->physical.end() && --h->second.maps == 0 && h->second.released) {
    if (h->second.device >= 0) Uncharge(p, h->second.device, h->second.bytes);
    p->physical.erase(h);
  }
  p->mappings.erase(m);
  return ACL_SUCCESS;
}

FAKE_EXPORT rtError_t rtSetDevice(int32_t devId) {
  if (!ValidDevice(devId)) return ACL_ERROR_RT_INVALID_DEVICEID;
  Proc* p = g_proc;
  std::lock_guard<std::mutex> lock(p->mu);
  if (p->set_count[devId] == 0 && State()->context_bytes > 0 && !Charge(p, devId, State()->context_bytes))
    return ACL_ERROR_RT_MEMORY_ALLOCATION;
  ++p->set_count[devId];
  t_device = devId;
  return ACL_SUCCESS;
}

FAKE_EXPORT rtError_t rtGetDevice(int32_t* devId) {
  if (!devId) return ACL_ERROR_RT_PARAM_INVALID;
  *devId = t_device;
  return ACL_SUCCESS;
}

FAKE_EXPORT rtError_t rtGetDeviceCount(int32_t* cnt) {
  if (!cnt) return ACL_ERROR_RT_PARAM_INVALID;
  *cnt = DeviceCount();
  return ACL_SUCCESS;
}

FAKE_EXPORT rtError_t rtDeviceReset(int32_t devId) {
  if (!ValidDevice(devId)) return ACL_ERROR_RT_INVALID_DEVICEID;
  Proc* p = g_proc;
  std::lock_guard<std::mutex> lock(p->mu);
  if (p->set_count[devId] > 0 && --p->set_count[devId] == 0 && State()->context_bytes > 0)
    Uncharge(p, devId, State()->context_bytes);
  return ACL_SUCCESS;
}

FAKE_EXPORT rtError_t rtKernelLaunchWithHandleV2(void* hdl, const uint64_t, uint32_t, rtArgsEx_t*, rtSmDesc_t*,
                                                 rtStream_t, const rtTaskCfgInfo_t*) {
  return hdl ? ACL_SUCCESS : ACL_ERROR_RT_PARAM_INVALID;
}

FAKE_EXPORT rtError_t rtKernelLaunchWithFlagV2(const void* stubFunc, uint32_t, rtArgsEx_t*, rtSmDesc_t*, rtStream_t,
                                               uint32_t, const rtTaskCfgInfo_t*) {
  return stubFunc ? ACL_SUCCESS : ACL_ERROR_RT_PARAM_INVALID;
}

FAKE_EXPORT rtError_t rtModelExecute(rtModel_t mdl, rtStream_t, uint32_t) {
  return mdl ? ACL_SUCCESS : ACL_ERROR_RT_PARAM_INVALID;
}
