// A fake libruntime.so (the CANN rt layer, shared/ASCEND-ABI.md A.2c) for the limiter's preload
// tests: device memory is counted with real byte counts in the shared fake state (fake_state.h),
// device i of the state = ACL device id i. The thread's current device is set by rtSetDevice
// (default 0). The first rtSetDevice of a device in a process charges the state's context_bytes,
// the matching last rtDeviceReset gives them back; an atexit handler gives back everything the
// process still holds. A freed device address is handed out again (the smallest freed range that
// is large enough), as the real runtime reuses addresses at once.
//
// Execution (fake_state.h's timeline): every launch (rtKernelLaunch, rtKernelLaunchWithFlag[V2],
// rtKernelLaunchWithHandle[V2], rtLaunchKernelByFuncHandle[V2/V3], rtModelExecute = one kernel)
// is one kernel of the thread's tsfake_set_kernel_us length (default 100 us) on the current
// device's engine, after the stream's previous work (NULL = the device's default stream of the
// process). rtStreamSynchronize sleeps until the stream's work has ended; an event's time is the
// end of its stream's work at rtEventRecord (the record time if idle). The fake libascendcl.so
// reaches streams, events and its own launch calls through the fake-only tsfake_rt_* exports.
#include <pthread.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <set>

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
  uint64_t span;  // address range reserved for it
};

struct Physical {
  uint64_t bytes;
  int device;  // -1 = host side, not counted
  int maps = 0;
  bool released = false;
};

struct RtStream {
  int device;
  int64_t last_end = 0;
};

struct RtEvent {
  bool recorded = false;
  int64_t at_ns = 0;
};

struct Proc {
  std::mutex mu;
  FakeProc* entry = nullptr;
  std::set<RtStream*> streams;
  std::set<RtEvent*> events;
  int64_t default_end[kFakeMaxDevices] = {};  // the default stream of each device
  int set_count[kFakeMaxDevices] = {};
  std::map<uintptr_t, Block> blocks;
  std::map<uintptr_t, Physical> physical;
  std::map<uintptr_t, uint64_t> va_ranges;
  std::map<uintptr_t, uintptr_t> mappings;  // mapped address -> physical handle
  uintptr_t next_ptr = 0x12c000000000ull;
  std::multimap<uint64_t, uintptr_t> free_spans;  // span -> freed device address
  uintptr_t next_handle = 0x5000;
};

Proc* g_proc = new Proc;
thread_local int t_device = 0;
thread_local uint64_t t_kernel_override_ns = 0;
thread_local int64_t t_last_start_ns = 0, t_last_end_ns = 0;

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
  t_last_start_ns = t_last_end_ns = 0;
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
  uint64_t span = RoundUp(size, 4096) + 4096;
  uintptr_t ptr;
  if (auto reuse = p->free_spans.lower_bound(span); reuse != p->free_spans.end()) {
    span = reuse->first;
    ptr = reuse->second;
    p->free_spans.erase(reuse);
  } else {
    ptr = p->next_ptr;
    p->next_ptr += span;
  }
  p->blocks[ptr] = Block{size, dev, kind, span};
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
  p->free_spans.emplace(it->second.span, it->first);
  p->blocks.erase(it);
  return ACL_SUCCESS;
}

// The end of the work queued on `stm` (NULL: the current device's default stream). Caller
// holds p->mu. Null for an unknown stream.
int64_t* StreamEnd(Proc* p, rtStream_t stm, int* device) {
  if (!stm) {
    if (!ValidDevice(t_device)) return nullptr;
    *device = t_device;
    return &p->default_end[t_device];
  }
  auto* st = static_cast<RtStream*>(stm);
  if (!p->streams.count(st)) return nullptr;
  *device = st->device;
  return &st->last_end;
}

rtError_t Submit(rtStream_t stm) {
  Proc* p = g_proc;
  std::lock_guard<std::mutex> lock(p->mu);
  int dev = 0;
  int64_t* end = StreamEnd(p, stm, &dev);
  if (!end) return ACL_ERROR_RT_PARAM_INVALID;
  FakeRun run = FakeScheduleKernel(State(), dev, t_kernel_override_ns ? t_kernel_override_ns : kFakeDefaultKernelNs, *end);
  *end = std::max(*end, run.end_ns);
  t_last_start_ns = run.start_ns;
  t_last_end_ns = run.end_ns;
  return ACL_SUCCESS;
}

bool EventTime(rtEvent_t evt, int64_t* at) {
  Proc* p = g_proc;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* e = static_cast<RtEvent*>(evt);
  if (!p->events.count(e)) return false;
  *at = e->recorded ? e->at_ns : 0;
  return true;
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

// ---- execution

FAKE_EXPORT rtError_t rtKernelLaunch(const void* stubFunc, uint32_t, void*, uint32_t, rtSmDesc_t*, rtStream_t stm) {
  return stubFunc ? Submit(stm) : ACL_ERROR_RT_PARAM_INVALID;
}

FAKE_EXPORT rtError_t rtKernelLaunchWithFlag(const void* stubFunc, uint32_t, rtArgsEx_t*, rtSmDesc_t*, rtStream_t stm,
                                             uint32_t) {
  return stubFunc ? Submit(stm) : ACL_ERROR_RT_PARAM_INVALID;
}

FAKE_EXPORT rtError_t rtKernelLaunchWithFlagV2(const void* stubFunc, uint32_t, rtArgsEx_t*, rtSmDesc_t*, rtStream_t stm,
                                               uint32_t, const rtTaskCfgInfo_t*) {
  return stubFunc ? Submit(stm) : ACL_ERROR_RT_PARAM_INVALID;
}

FAKE_EXPORT rtError_t rtKernelLaunchWithHandle(void* hdl, const uint64_t, uint32_t, rtArgsEx_t*, rtSmDesc_t*,
                                               rtStream_t stm, const void*) {
  return hdl ? Submit(stm) : ACL_ERROR_RT_PARAM_INVALID;
}

FAKE_EXPORT rtError_t rtKernelLaunchWithHandleV2(void* hdl, const uint64_t, uint32_t, rtArgsEx_t*, rtSmDesc_t*,
                                                 rtStream_t stm, const rtTaskCfgInfo_t*) {
  return hdl ? Submit(stm) : ACL_ERROR_RT_PARAM_INVALID;
}

FAKE_EXPORT rtError_t rtLaunchKernelByFuncHandle(rtFuncHandle funcHandle, uint32_t, rtLaunchArgsHandle, rtStream_t stm) {
  return funcHandle ? Submit(stm) : ACL_ERROR_RT_PARAM_INVALID;
}

FAKE_EXPORT rtError_t rtLaunchKernelByFuncHandleV2(rtFuncHandle funcHandle, uint32_t, rtLaunchArgsHandle,
                                                   rtStream_t stm, const rtTaskCfgInfo_t*) {
  return funcHandle ? Submit(stm) : ACL_ERROR_RT_PARAM_INVALID;
}

FAKE_EXPORT rtError_t rtLaunchKernelByFuncHandleV3(rtFuncHandle funcHandle, uint32_t, const rtArgsEx_t*, rtStream_t stm,
                                                   const rtTaskCfgInfo_t*) {
  return funcHandle ? Submit(stm) : ACL_ERROR_RT_PARAM_INVALID;
}

// One model execution = one kernel.
FAKE_EXPORT rtError_t rtModelExecute(rtModel_t mdl, rtStream_t stm, uint32_t) {
  return mdl ? Submit(stm) : ACL_ERROR_RT_PARAM_INVALID;
}

FAKE_EXPORT rtError_t rtStreamSynchronize(rtStream_t stm) {
  int64_t at = 0;
  {
    Proc* p = g_proc;
    std::lock_guard<std::mutex> lock(p->mu);
    int dev = 0;
    int64_t* end = StreamEnd(p, stm, &dev);
    if (!end) return ACL_ERROR_RT_PARAM_INVALID;
    at = *end;
  }
  FakeSleepUntil(at);
  return ACL_SUCCESS;
}

FAKE_EXPORT rtError_t rtEventRecord(rtEvent_t evt, rtStream_t stm) {
  Proc* p = g_proc;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* e = static_cast<RtEvent*>(evt);
  int dev = 0;
  int64_t* end = StreamEnd(p, stm, &dev);
  if (!p->events.count(e) || !end) return ACL_ERROR_RT_PARAM_INVALID;
  e->recorded = true;
  e->at_ns = std::max(FakeNowNs(), *end);
  return ACL_SUCCESS;
}

// ---- fake-only exports (the fake libascendcl.so's streams, events and launches)

FAKE_EXPORT void tsfake_rt_set_kernel_us(unsigned int us) { t_kernel_override_ns = static_cast<uint64_t>(us) * 1000; }
FAKE_EXPORT void tsfake_set_kernel_us(unsigned int us) { t_kernel_override_ns = static_cast<uint64_t>(us) * 1000; }
FAKE_EXPORT unsigned long long tsfake_last_kernel_start_ns(void) { return static_cast<unsigned long long>(t_last_start_ns); }
FAKE_EXPORT unsigned long long tsfake_last_kernel_end_ns(void) { return static_cast<unsigned long long>(t_last_end_ns); }

FAKE_EXPORT int tsfake_busy_ns(unsigned int dev, int pid, unsigned long long from_ns, unsigned long long to_ns,
                               unsigned long long* out) {
  if (!out) return -1;
  uint64_t busy = 0;
  int r = FakeBusyNs(State(), static_cast<int>(dev), pid == 0 ? static_cast<int32_t>(getpid()) : pid,
                     static_cast<int64_t>(from_ns), static_cast<int64_t>(to_ns), &busy);
  *out = busy;
  return r;
}

FAKE_EXPORT rtError_t tsfake_rt_submit(rtStream_t stm) { return Submit(stm); }

FAKE_EXPORT rtError_t tsfake_rt_stream_create(rtStream_t* stm) {
  if (!stm) return ACL_ERROR_RT_PARAM_INVALID;
  if (!ValidDevice(t_device)) return ACL_ERROR_RT_INVALID_DEVICEID;
  Proc* p = g_proc;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* st = new RtStream{t_device};
  p->streams.insert(st);
  *stm = st;
  return ACL_SUCCESS;
}

FAKE_EXPORT rtError_t tsfake_rt_stream_destroy(rtStream_t stm) {
  Proc* p = g_proc;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* st = static_cast<RtStream*>(stm);
  if (!p->streams.erase(st)) return ACL_ERROR_RT_PARAM_INVALID;
  delete st;
  return ACL_SUCCESS;
}

FAKE_EXPORT rtError_t tsfake_rt_event_create(rtEvent_t* evt) {
  if (!evt) return ACL_ERROR_RT_PARAM_INVALID;
  Proc* p = g_proc;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* e = new RtEvent;
  p->events.insert(e);
  *evt = e;
  return ACL_SUCCESS;
}

FAKE_EXPORT rtError_t tsfake_rt_event_destroy(rtEvent_t evt) {
  Proc* p = g_proc;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* e = static_cast<RtEvent*>(evt);
  if (!p->events.erase(e)) return ACL_ERROR_RT_PARAM_INVALID;
  delete e;
  return ACL_SUCCESS;
}

// *complete: 1 once the recorded point has been reached, 0 before (and for a never-recorded event).
FAKE_EXPORT rtError_t tsfake_rt_event_status(rtEvent_t evt, int* complete) {
  int64_t at = 0;
  if (!complete || !EventTime(evt, &at)) return ACL_ERROR_RT_PARAM_INVALID;
  *complete = at != 0 && FakeNowNs() >= at;
  return ACL_SUCCESS;
}

FAKE_EXPORT rtError_t tsfake_rt_event_synchronize(rtEvent_t evt) {
  int64_t at = 0;
  if (!EventTime(evt, &at)) return ACL_ERROR_RT_PARAM_INVALID;
  FakeSleepUntil(at);
  return ACL_SUCCESS;
}

FAKE_EXPORT rtError_t tsfake_rt_event_elapsed(float* ms, rtEvent_t start, rtEvent_t end) {
  int64_t a = 0, b = 0;
  if (!ms || !EventTime(start, &a) || !EventTime(end, &b) || a == 0 || b == 0) return ACL_ERROR_RT_PARAM_INVALID;
  int64_t now = FakeNowNs();
  if (now < a || now < b) return ACL_ERROR_RT_PARAM_INVALID;  // not complete yet
  *ms = static_cast<float>(static_cast<double>(b - a) / 1e6);
  return ACL_SUCCESS;
}
