// A CUDA driver-API workload for the limiter's preload tests. It reaches the (fake) driver the
// way real programs and frameworks do, chosen with --path:
//   linked            the executable has DT_NEEDED on libcuda.so.1 and calls cu* exports
//                     (built as cuda_workload_linked, the only binary that accepts it);
//   dlopen            dlopen("libcuda.so.1", RTLD_NOW|RTLD_LOCAL) + dlsym(handle, "cuMemAlloc_v2") ...
//   procaddress       dlopen + dlsym(handle, "cuGetProcAddress") (4 arguments), the self-query
//                     ("cuGetProcAddress", 11080), then every function by base name at 11080;
//   procaddress_v2    dlsym(handle, "cuGetProcAddress_v2"), self-query at 12060 as cudart 12
//                     does, then every function by base name at 12060;
//   procaddress_ptsz  as procaddress_v2 with CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM.
// Subcommands: fill, query, each-kind, stress, hold, fork-child, exec-child (see Usage()).
// Output: `key=value` lines on stdout; exit status 0 when the program ran to its end (even if
// allocations failed as the test intended), 3 when something unexpected happened.
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "tests/limiter/abi/cuda_abi.h"
#include "tests/limiter/programs/workload_common.h"

using namespace workload;

namespace {

const char* Usage() {
  return "usage: cuda_workload [--path linked|dlopen|procaddress|procaddress_v2|procaddress_ptsz] [--device i]\n"
         "                     [--ctx primary|create] COMMAND ...\n"
         "  fill --chunk BYTES [--api alloc|legacy|managed|async]\n"
         "  query [--alloc BYTES] [--nvml] [--no-free]\n"
         "  each-kind --bytes N [--probe]\n"
         "  stress --threads T --seconds S --max-chunk BYTES --seed N [--threads-before-init]\n"
         "  hold --bytes N --ready-file F\n"
         "  fork-child --parent-bytes A --child-bytes B [--child-bytes2 C] [--after-bytes D]\n"
         "  exec-child --bytes A --then-alloc B [--clear-preload]\n"
         "  pool-cache --bytes N        (release threshold kept high: freed pool memory stays reserved)\n"
         "  host-kinds --bytes N        (cuMemAllocHost_v2, cuMemCreate on HOST_NUMA)\n"
         "  bad-args [--fill BYTES]     (invalid calls, then one allocation of BYTES)\n"
         "  ctx-reset --first A --second B  (allocate A, destroy/reset the context without freeing, allocate B)\n";
}

// The driver functions the workload calls, with the signature of the variant it resolved.
struct Cu {
  decltype(&cuInit) Init = nullptr;
  decltype(&cuDriverGetVersion) DriverGetVersion = nullptr;
  decltype(&cuDeviceGet) DeviceGet = nullptr;
  decltype(&cuDeviceGetCount) DeviceGetCount = nullptr;
  decltype(&cuDeviceGetUuid_v2) DeviceGetUuid = nullptr;
  decltype(&cuDeviceTotalMem_v2) DeviceTotalMem = nullptr;
  decltype(&cuDeviceTotalMem) DeviceTotalMemLegacy = nullptr;
  decltype(&cuDeviceGetAttribute) DeviceGetAttribute = nullptr;
  decltype(&cuDevicePrimaryCtxRetain) PrimaryCtxRetain = nullptr;
  decltype(&cuDevicePrimaryCtxRelease_v2) PrimaryCtxRelease = nullptr;
  decltype(&cuCtxCreate_v2) CtxCreateV2 = nullptr;
  decltype(&cuCtxCreate_v3) CtxCreateV3 = nullptr;
  decltype(&cuCtxCreate_v4) CtxCreateV4 = nullptr;
  decltype(&cuCtxDestroy_v2) CtxDestroy = nullptr;
  decltype(&cuCtxSetCurrent) CtxSetCurrent = nullptr;
  decltype(&cuCtxGetCurrent) CtxGetCurrent = nullptr;
  decltype(&cuCtxSynchronize) CtxSynchronize = nullptr;
  decltype(&cuMemGetInfo_v2) MemGetInfo = nullptr;
  decltype(&cuMemGetInfo) MemGetInfoLegacy = nullptr;
  decltype(&cuMemAlloc_v2) MemAlloc = nullptr;
  decltype(&cuMemAlloc) MemAllocLegacy = nullptr;
  decltype(&cuMemFree_v2) MemFree = nullptr;
  decltype(&cuMemFree) MemFreeLegacy = nullptr;
  decltype(&cuMemAllocPitch_v2) MemAllocPitch = nullptr;
  decltype(&cuMemAllocManaged) MemAllocManaged = nullptr;
  decltype(&cuMemAllocAsync) MemAllocAsync = nullptr;
  decltype(&cuMemAllocFromPoolAsync) MemAllocFromPoolAsync = nullptr;
  decltype(&cuMemFreeAsync) MemFreeAsync = nullptr;
  decltype(&cuMemPoolCreate) MemPoolCreate = nullptr;
  decltype(&cuMemPoolDestroy) MemPoolDestroy = nullptr;
  decltype(&cuMemPoolTrimTo) MemPoolTrimTo = nullptr;
  decltype(&cuMemPoolGetAttribute) MemPoolGetAttribute = nullptr;
  decltype(&cuMemPoolSetAttribute) MemPoolSetAttribute = nullptr;
  decltype(&cuMemAllocHost_v2) MemAllocHost = nullptr;
  decltype(&cuMemFreeHost) MemFreeHost = nullptr;
  decltype(&cuDevicePrimaryCtxReset_v2) PrimaryCtxReset = nullptr;
  decltype(&cuDeviceGetDefaultMemPool) DeviceGetDefaultMemPool = nullptr;
  decltype(&cuStreamCreate) StreamCreate = nullptr;
  decltype(&cuStreamDestroy_v2) StreamDestroy = nullptr;
  decltype(&cuStreamSynchronize) StreamSynchronize = nullptr;
  decltype(&cuMemCreate) MemCreate = nullptr;
  decltype(&cuMemRelease) MemRelease = nullptr;
  decltype(&cuMemAddressReserve) MemAddressReserve = nullptr;
  decltype(&cuMemAddressFree) MemAddressFree = nullptr;
  decltype(&cuMemMap) MemMap = nullptr;
  decltype(&cuMemUnmap) MemUnmap = nullptr;
  decltype(&cuMemSetAccess) MemSetAccess = nullptr;
  decltype(&cuArrayCreate_v2) ArrayCreate = nullptr;
  decltype(&cuArray3DCreate_v2) Array3DCreate = nullptr;
  decltype(&cuArrayDestroy) ArrayDestroy = nullptr;
  decltype(&cuMipmappedArrayCreate) MipmappedArrayCreate = nullptr;
  decltype(&cuMipmappedArrayDestroy) MipmappedArrayDestroy = nullptr;
};

struct Nvml {
  decltype(&nvmlInit_v2) Init = nullptr;
  decltype(&nvmlShutdown) Shutdown = nullptr;
  decltype(&nvmlDeviceGetHandleByUUID) GetHandleByUUID = nullptr;
  decltype(&nvmlDeviceGetMemoryInfo) GetMemoryInfo = nullptr;
  decltype(&nvmlDeviceGetMemoryInfo_v2) GetMemoryInfoV2 = nullptr;
};

enum class Path { kLinked, kDlopen, kProc, kProcV2, kProcPtsz };

Cu cu;
Path g_path;
int g_device = 0;
bool g_create_ctx = false;

#ifdef WORKLOAD_LINKED
#define LINKED(name) reinterpret_cast<void*>(&name)
#else
#define LINKED(name) nullptr
#endif

struct Entry {
  void** slot;
  const char* base;         // name for cuGetProcAddress
  const char* export_name;  // name for dlsym / the linked call
  int version;              // 0: the path's version; else ask for this version (legacy, ctx variants)
  void* linked;
};

#define E(field, base, exp, ver) Entry{reinterpret_cast<void**>(&cu.field), base, #exp, ver, LINKED(exp)}

std::vector<Entry> Entries() {
  return {
      E(Init, "cuInit", cuInit, 0),
      E(DriverGetVersion, "cuDriverGetVersion", cuDriverGetVersion, 0),
      E(DeviceGet, "cuDeviceGet", cuDeviceGet, 0),
      E(DeviceGetCount, "cuDeviceGetCount", cuDeviceGetCount, 0),
      E(DeviceGetUuid, "cuDeviceGetUuid", cuDeviceGetUuid_v2, 0),
      E(DeviceTotalMem, "cuDeviceTotalMem", cuDeviceTotalMem_v2, 0),
      E(DeviceTotalMemLegacy, "cuDeviceTotalMem", cuDeviceTotalMem, 3000),
      E(DeviceGetAttribute, "cuDeviceGetAttribute", cuDeviceGetAttribute, 0),
      E(PrimaryCtxRetain, "cuDevicePrimaryCtxRetain", cuDevicePrimaryCtxRetain, 0),
      E(PrimaryCtxRelease, "cuDevicePrimaryCtxRelease", cuDevicePrimaryCtxRelease_v2, 0),
      E(CtxCreateV2, "cuCtxCreate", cuCtxCreate_v2, 3020),
      E(CtxCreateV3, "cuCtxCreate", cuCtxCreate_v3, 11040),
      E(CtxCreateV4, "cuCtxCreate", cuCtxCreate_v4, 12050),
      E(CtxDestroy, "cuCtxDestroy", cuCtxDestroy_v2, 0),
      E(CtxSetCurrent, "cuCtxSetCurrent", cuCtxSetCurrent, 0),
      E(CtxGetCurrent, "cuCtxGetCurrent", cuCtxGetCurrent, 0),
      E(CtxSynchronize, "cuCtxSynchronize", cuCtxSynchronize, 0),
      E(MemGetInfo, "cuMemGetInfo", cuMemGetInfo_v2, 0),
      E(MemGetInfoLegacy, "cuMemGetInfo", cuMemGetInfo, 3000),
      E(MemAlloc, "cuMemAlloc", cuMemAlloc_v2, 0),
      E(MemAllocLegacy, "cuMemAlloc", cuMemAlloc, 3000),
      E(MemFree, "cuMemFree", cuMemFree_v2, 0),
      E(MemFreeLegacy, "cuMemFree", cuMemFree, 3000),
      E(MemAllocPitch, "cuMemAllocPitch", cuMemAllocPitch_v2, 0),
      E(MemAllocManaged, "cuMemAllocManaged", cuMemAllocManaged, 0),
      E(MemAllocAsync, "cuMemAllocAsync", cuMemAllocAsync, 0),
      E(MemAllocFromPoolAsync, "cuMemAllocFromPoolAsync", cuMemAllocFromPoolAsync, 0),
      E(MemFreeAsync, "cuMemFreeAsync", cuMemFreeAsync, 0),
      E(MemPoolCreate, "cuMemPoolCreate", cuMemPoolCreate, 0),
      E(MemPoolDestroy, "cuMemPoolDestroy", cuMemPoolDestroy, 0),
      E(MemPoolTrimTo, "cuMemPoolTrimTo", cuMemPoolTrimTo, 0),
      E(MemPoolGetAttribute, "cuMemPoolGetAttribute", cuMemPoolGetAttribute, 0),
      E(MemPoolSetAttribute, "cuMemPoolSetAttribute", cuMemPoolSetAttribute, 0),
      E(MemAllocHost, "cuMemAllocHost", cuMemAllocHost_v2, 0),
      E(MemFreeHost, "cuMemFreeHost", cuMemFreeHost, 0),
      E(PrimaryCtxReset, "cuDevicePrimaryCtxReset", cuDevicePrimaryCtxReset_v2, 0),
      E(DeviceGetDefaultMemPool, "cuDeviceGetDefaultMemPool", cuDeviceGetDefaultMemPool, 0),
      E(StreamCreate, "cuStreamCreate", cuStreamCreate, 0),
      E(StreamDestroy, "cuStreamDestroy", cuStreamDestroy_v2, 0),
      E(StreamSynchronize, "cuStreamSynchronize", cuStreamSynchronize, 0),
      E(MemCreate, "cuMemCreate", cuMemCreate, 0),
      E(MemRelease, "cuMemRelease", cuMemRelease, 0),
      E(MemAddressReserve, "cuMemAddressReserve", cuMemAddressReserve, 0),
      E(MemAddressFree, "cuMemAddressFree", cuMemAddressFree, 0),
      E(MemMap, "cuMemMap", cuMemMap, 0),
      E(MemUnmap, "cuMemUnmap", cuMemUnmap, 0),
      E(MemSetAccess, "cuMemSetAccess", cuMemSetAccess, 0),
      E(ArrayCreate, "cuArrayCreate", cuArrayCreate_v2, 0),
      E(Array3DCreate, "cuArray3DCreate", cuArray3DCreate_v2, 0),
      E(ArrayDestroy, "cuArrayDestroy", cuArrayDestroy, 0),
      E(MipmappedArrayCreate, "cuMipmappedArrayCreate", cuMipmappedArrayCreate, 0),
      E(MipmappedArrayDestroy, "cuMipmappedArrayDestroy", cuMipmappedArrayDestroy, 0),
  };
}

#undef E

void* g_cuda_handle = nullptr;

void* OpenCuda() {
  if (!g_cuda_handle) g_cuda_handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!g_cuda_handle) Die("dlopen libcuda.so.1: %s", dlerror());
  return g_cuda_handle;
}

void ResolveDriver() {
  std::vector<Entry> entries = Entries();
  if (g_path == Path::kLinked) {
#ifndef WORKLOAD_LINKED
    Die("--path linked needs the cuda_workload_linked binary");
#endif
    for (Entry& e : entries) *e.slot = e.linked;
    return;
  }
  void* h = OpenCuda();
  if (g_path == Path::kDlopen) {
    for (Entry& e : entries) {
      *e.slot = dlsym(h, e.export_name);
      if (!*e.slot) Die("dlsym(%s) failed", e.export_name);
    }
    return;
  }
  const int version = g_path == Path::kProc ? 11080 : 12060;
  const cuuint64_t flags = g_path == Path::kProcPtsz ? cuuint64_t{CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM} : cuuint64_t{0};
  decltype(&cuGetProcAddress) gpa4 = nullptr;
  decltype(&cuGetProcAddress_v2) gpa5 = nullptr;
  if (g_path == Path::kProc) {
    auto boot = reinterpret_cast<decltype(&cuGetProcAddress)>(dlsym(h, "cuGetProcAddress"));
    if (!boot) Die("dlsym(cuGetProcAddress) failed");
    void* self = nullptr;
    CUresult r = boot("cuGetProcAddress", &self, version, 0);
    Out("getproc_self_result", "%d", r);
    if (r != CUDA_SUCCESS || !self) Die("self-query of cuGetProcAddress at %d failed", version);
    gpa4 = reinterpret_cast<decltype(&cuGetProcAddress)>(self);
  } else {
    auto boot = reinterpret_cast<decltype(&cuGetProcAddress_v2)>(dlsym(h, "cuGetProcAddress_v2"));
    if (!boot) Die("dlsym(cuGetProcAddress_v2) failed");
    void* self = nullptr;
    CUdriverProcAddressQueryResult st = -1;
    CUresult r = boot("cuGetProcAddress", &self, version, 0, &st);
    Out("getproc_self_result", "%d", r);
    if (r != CUDA_SUCCESS || !self || st != CU_GET_PROC_ADDRESS_SUCCESS)
      Die("self-query of cuGetProcAddress at %d failed", version);
    gpa5 = reinterpret_cast<decltype(&cuGetProcAddress_v2)>(self);
  }
  for (Entry& e : entries) {
    int v = e.version ? e.version : version;
    if (v > version) continue;  // a caller built for `version` never asks for newer variants
    if (v < 3020) continue;     // nor for the 32-bit variants of pre-3.2 headers
    void* fn = nullptr;
    CUresult r;
    CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SUCCESS;
    if (gpa4)
      r = gpa4(e.base, &fn, v, flags);
    else
      r = gpa5(e.base, &fn, v, flags, &st);
    if (r != CUDA_SUCCESS || !fn || st != CU_GET_PROC_ADDRESS_SUCCESS)
      Die("cuGetProcAddress(%s, %d, %llu) = %d, status %d, fn %p", e.base, v, (unsigned long long)flags, r, st, fn);
    *e.slot = fn;
  }
  // A name the driver does not have: CUDA_SUCCESS with a NULL pointer and SYMBOL_NOT_FOUND.
  void* fn = reinterpret_cast<void*>(0x1);
  CUdriverProcAddressQueryResult st = -1;
  CUresult r = gpa4 ? gpa4("cuNoSuchFunctionTideSlice", &fn, version, flags)
                    : gpa5("cuNoSuchFunctionTideSlice", &fn, version, flags, &st);
  Out("getproc_unknown_result", "%d", r);
  Out("getproc_unknown_null", "%d", fn == nullptr ? 1 : 0);
  if (gpa5) Out("getproc_unknown_status", "%d", st);
}

Nvml ResolveNvml() {
  Nvml n;
#ifdef WORKLOAD_LINKED
  if (g_path == Path::kLinked) {
    n.Init = &nvmlInit_v2;
    n.Shutdown = &nvmlShutdown;
    n.GetHandleByUUID = &nvmlDeviceGetHandleByUUID;
    n.GetMemoryInfo = &nvmlDeviceGetMemoryInfo;
    n.GetMemoryInfoV2 = &nvmlDeviceGetMemoryInfo_v2;
    return n;
  }
#endif
  void* h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) Die("dlopen libnvidia-ml.so.1: %s", dlerror());
  n.Init = reinterpret_cast<decltype(n.Init)>(dlsym(h, "nvmlInit_v2"));
  n.Shutdown = reinterpret_cast<decltype(n.Shutdown)>(dlsym(h, "nvmlShutdown"));
  n.GetHandleByUUID = reinterpret_cast<decltype(n.GetHandleByUUID)>(dlsym(h, "nvmlDeviceGetHandleByUUID"));
  n.GetMemoryInfo = reinterpret_cast<decltype(n.GetMemoryInfo)>(dlsym(h, "nvmlDeviceGetMemoryInfo"));
  n.GetMemoryInfoV2 = reinterpret_cast<decltype(n.GetMemoryInfoV2)>(dlsym(h, "nvmlDeviceGetMemoryInfo_v2"));
  if (!n.Init || !n.Shutdown || !n.GetHandleByUUID || !n.GetMemoryInfo || !n.GetMemoryInfoV2)
    Die("dlsym of an NVML function failed");
  return n;
}

// ---- context setup

struct Session {
  CUdevice dev = 0;
  CUcontext ctx = nullptr;
  bool created = false;
};

Session Open(const char* prefix = "") {
  Session s;
  std::string p = prefix;
  CUresult r = cu.Init(0);
  OutI(p + "init_result", r);
  if (r != CUDA_SUCCESS) Die("cuInit: %d", r);
  r = cu.DeviceGet(&s.dev, g_device);
  if (r != CUDA_SUCCESS) Die("cuDeviceGet(%d): %d", g_device, r);
  if (g_create_ctx) {
    // The variant a program of this path would call: 12.x headers -> _v2 for the linked and
    // dlopen paths; cuGetProcAddress hands out _v3 at 11080 and _v4 at 12060.
    if (g_path == Path::kLinked || g_path == Path::kDlopen) {
      r = cu.CtxCreateV2(&s.ctx, 0, s.dev);
    } else if (cu.CtxCreateV4) {
      CUctxCreateParams params{};
      r = cu.CtxCreateV4(&s.ctx, &params, 0, s.dev);
    } else {
      r = cu.CtxCreateV3(&s.ctx, nullptr, 0, 0, s.dev);
    }
    s.created = true;
    OutI(p + "ctx_result", r);
    if (r != CUDA_SUCCESS) return s;
  } else {
    r = cu.PrimaryCtxRetain(&s.ctx, s.dev);
    OutI(p + "ctx_result", r);
    if (r != CUDA_SUCCESS) return s;
    r = cu.CtxSetCurrent(s.ctx);
    if (r != CUDA_SUCCESS) Die("cuCtxSetCurrent: %d", r);
  }
  return s;
}

void Close(const Session& s, const char* prefix = "") {
  if (!s.ctx) return;
  CUresult r = s.created ? cu.CtxDestroy(s.ctx) : cu.PrimaryCtxRelease(s.dev);
  OutI(std::string(prefix) + "release_result", r);
}

// Bytes in use as the process sees them: total - free from cuMemGetInfo_v2.
long long UsedNow() {
  size_t f = 0, t = 0;
  if (cu.MemGetInfo(&f, &t) != CUDA_SUCCESS) return -1;
  return static_cast<long long>(t) - static_cast<long long>(f);
}

void ReportMemInfo(const std::string& p) {
  size_t f = 0, t = 0;
  CUresult r = cu.MemGetInfo(&f, &t);
  OutI(p + "meminfo_result", r);
  OutU(p + "free", f);
  OutU(p + "total", t);
  size_t dt = 0;
  r = cu.DeviceTotalMem(&dt, g_device);
  OutI(p + "device_total_result", r);
  OutU(p + "device_total", dt);
}

// ---- fill

int CmdFill(const Args& a) {
  const uint64_t chunk = a.Bytes("chunk", 64ull << 20);
  const std::string api = a.Str("api", "alloc");
  Session s = Open();
  if (!s.ctx) return 0;
  CUstream stream = nullptr;
  if (api == "async" && cu.StreamCreate(&stream, 0) != CUDA_SUCCESS) Die("cuStreamCreate");
  std::vector<CUdeviceptr> ptrs;
  CUresult last = -1;
  for (int i = 0; i < 100000; ++i) {
    CUdeviceptr p = 0;
    CUresult r;
    if (api == "alloc") {
      r = cu.MemAlloc(&p, chunk);
    } else if (api == "legacy") {
      CUdeviceptr_v1 p32 = 0;
      r = cu.MemAllocLegacy(&p32, static_cast<unsigned int>(chunk));
      p = p32;
    } else if (api == "managed") {
      r = cu.MemAllocManaged(&p, chunk, CU_MEM_ATTACH_GLOBAL);
    } else if (api == "async") {
      r = cu.MemAllocAsync(&p, chunk, stream);
    } else {
      Die("unknown --api %s", api.c_str());
    }
    if (r != CUDA_SUCCESS) {
      last = r;
      break;
    }
    ptrs.push_back(p);
  }
  OutI("fill_successes", static_cast<long long>(ptrs.size()));
  OutI("fill_result", last);
  OutU("fill_bytes", ptrs.size() * chunk);
  ReportMemInfo("");
  int free_errors = 0;
  for (CUdeviceptr p : ptrs) {
    CUresult r;
    if (api == "legacy") r = cu.MemFreeLegacy(static_cast<CUdeviceptr_v1>(p));
    else if (api == "async") r = cu.MemFreeAsync(p, stream);
    else r = cu.MemFree(p);
    if (r != CUDA_SUCCESS) ++free_errors;
  }
  if (stream) {
    cu.StreamSynchronize(stream);
    cu.StreamDestroy(stream);
  }
  OutI("free_errors", free_errors);
  OutI("used_after_free", UsedNow());
  Close(s);
  Out("done", "1");
  return 0;
}

// ---- query

std::string UuidString(const CUuuid& u) {
  const auto* b = reinterpret_cast<const unsigned char*>(u.bytes);
  char s[64];
  snprintf(s, sizeof s, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
           b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return s;
}

int CmdQuery(const Args& a) {
  Session s = Open();
  if (!s.ctx) return 0;
  CUdeviceptr held = 0;
  if (a.Has("alloc")) {
    CUresult r = cu.MemAlloc(&held, a.Bytes("alloc", 0));
    OutI("alloc_result", r);
    if (r != CUDA_SUCCESS) held = 0;
  }
  size_t f = 0, t = 0;
  CUresult r = cu.MemGetInfo(&f, &t);
  OutI("meminfo_result", r);
  OutU("cuda_free", f);
  OutU("cuda_total", t);
  size_t dt = 0;
  r = cu.DeviceTotalMem(&dt, s.dev);
  OutI("device_total_result", r);
  OutU("device_total", dt);
  if (cu.MemGetInfoLegacy) {
    unsigned int lf = 0, lt = 0;
    r = cu.MemGetInfoLegacy(&lf, &lt);
    OutI("legacy_meminfo_result", r);
    OutU("legacy_free", lf);
    OutU("legacy_total", lt);
  }
  if (cu.DeviceTotalMemLegacy) {
    unsigned int lt = 0;
    r = cu.DeviceTotalMemLegacy(&lt, s.dev);
    OutI("legacy_device_total_result", r);
    OutU("legacy_device_total", lt);
  }
  CUuuid uuid{};
  r = cu.DeviceGetUuid(&uuid, s.dev);
  if (r != CUDA_SUCCESS) Die("cuDeviceGetUuid: %d", r);
  std::string us = UuidString(uuid);
  Out("uuid", "%s", us.c_str());
  if (a.Has("nvml")) {
    Nvml n = ResolveNvml();
    nvmlReturn_t nr = n.Init();
    OutI("nvml_init_result", nr);
    nvmlDevice_t d = nullptr;
    nr = n.GetHandleByUUID(us.c_str(), &d);
    OutI("nvml_handle_result", nr);
    if (nr == NVML_SUCCESS) {
      nvmlMemory_t m{};
      nr = n.GetMemoryInfo(d, &m);
      OutI("nvml_result", nr);
      OutU("nvml_total", m.total);
      OutU("nvml_free", m.free);
      OutU("nvml_used", m.used);
      nvmlMemory_v2_t m2{};
      m2.version = nvmlMemory_v2;
      nr = n.GetMemoryInfoV2(d, &m2);
      OutI("nvml2_result", nr);
      OutU("nvml2_total", m2.total);
      OutU("nvml2_reserved", m2.reserved);
      OutU("nvml2_free", m2.free);
      OutU("nvml2_used", m2.used);
      nvmlMemory_v2_t bad{};
      bad.version = 0x01000028;
      OutI("nvml2_badversion_result", n.GetMemoryInfoV2(d, &bad));
    }
    n.Shutdown();
  }
  if (a.Has("no-free")) {
    // Exit with the allocation and the context still held, as many programs do.
    Out("done", "1");
    return 0;
  }
  if (held) OutI("free_result", cu.MemFree(held));
  Close(s);
  Out("done", "1");
  return 0;
}

// ---- each-kind

struct KindState {
  CUdeviceptr ptr = 0;
  CUstream stream = nullptr;
  CUmemoryPool pool = nullptr;
  CUmemGenericAllocationHandle handle = 0;
  CUdeviceptr va = 0;
  CUarray array = nullptr;
  CUmipmappedArray mip = nullptr;
};

struct Kind {
  const char* name;
  // Returns the CUresult; sets *expected to the bytes the driver counts (A.1.4 formulas).
  CUresult (*alloc)(uint64_t n, KindState& st, uint64_t* expected);
  CUresult (*release)(KindState& st);
};

CUresult AllocPlain(uint64_t n, KindState& st, uint64_t* e) {
  *e = n;
  return cu.MemAlloc(&st.ptr, n);
}
CUresult FreePlain(KindState& st) { return cu.MemFree(st.ptr); }

CUresult AllocPitch(uint64_t n, KindState& st, uint64_t* e) {
  // Width 4000 B is padded to a 4096 B pitch: the driver counts pitch x height, not width x height.
  const size_t width = 4000, height = n / 4096;
  *e = 4096 * height;
  size_t pitch = 0;
  CUresult r = cu.MemAllocPitch(&st.ptr, &pitch, width, height, 4);
  if (r == CUDA_SUCCESS && pitch != 4096) Die("pitch %zu, expected 4096", pitch);
  return r;
}

CUresult AllocManaged(uint64_t n, KindState& st, uint64_t* e) {
  *e = n;
  return cu.MemAllocManaged(&st.ptr, n, CU_MEM_ATTACH_GLOBAL);
}

CUresult AllocAsyncDefault(uint64_t n, KindState& st, uint64_t* e) {
  *e = n;
  if (cu.StreamCreate(&st.stream, 0) != CUDA_SUCCESS) Die("cuStreamCreate");
  return cu.MemAllocAsync(&st.ptr, n, st.stream);
}

CUresult FreeAsyncDefault(KindState& st) {
  CUresult r = cu.MemFreeAsync(st.ptr, st.stream);
  if (r == CUDA_SUCCESS) r = cu.StreamSynchronize(st.stream);
  CUmemoryPool pool = nullptr;
  if (r == CUDA_SUCCESS && cu.DeviceGetDefaultMemPool(&pool, g_device) == CUDA_SUCCESS) r = cu.MemPoolTrimTo(pool, 0);
  cu.StreamDestroy(st.stream);
  st.stream = nullptr;
  return r;
}

CUresult AllocFromPool(uint64_t n, KindState& st, uint64_t* e) {
  *e = n;
  CUmemPoolProps props{};
  props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
  props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  props.location.id = g_device;
  if (cu.MemPoolCreate(&st.pool, &props) != CUDA_SUCCESS) Die("cuMemPoolCreate");
  if (cu.StreamCreate(&st.stream, 0) != CUDA_SUCCESS) Die("cuStreamCreate");
  return cu.MemAllocFromPoolAsync(&st.ptr, n, st.pool, st.stream);
}

CUresult FreeFromPool(KindState& st) {
  CUresult r = cu.MemFreeAsync(st.ptr, st.stream);
  if (r == CUDA_SUCCESS) r = cu.StreamSynchronize(st.stream);
  if (r == CUDA_SUCCESS) r = cu.MemPoolTrimTo(st.pool, 0);
  CUresult d = cu.MemPoolDestroy(st.pool);
  cu.StreamDestroy(st.stream);
  st.pool = nullptr;
  st.stream = nullptr;
  return r != CUDA_SUCCESS ? r : d;
}

void CleanupPoolKind(KindState& st) {
  if (st.pool) cu.MemPoolDestroy(st.pool);
  if (st.stream) cu.StreamDestroy(st.stream);
  st.pool = nullptr;
  st.stream = nullptr;
}

CUresult AllocVmm(uint64_t n, KindState& st, uint64_t* e) {
  *e = n;
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = g_device;
  CUresult r = cu.MemCreate(&st.handle, n, &prop, 0);
  if (r != CUDA_SUCCESS) return r;
  if (cu.MemAddressReserve(&st.va, n, 0, 0, 0) != CUDA_SUCCESS) Die("cuMemAddressReserve");
  if (cu.MemMap(st.va, n, 0, st.handle, 0) != CUDA_SUCCESS) Die("cuMemMap");
  CUmemAccessDesc access{};
  access.location = prop.location;
  access.flags = 3;
  if (cu.MemSetAccess(st.va, n, &access, 1) != CUDA_SUCCESS) Die("cuMemSetAccess");
  st.ptr = n;  // remembered size
  return r;
}

CUresult FreeVmm(KindState& st) {
  uint64_t n = st.ptr;
  CUresult r = cu.MemUnmap(st.va, n);
  CUresult r2 = cu.MemRelease(st.handle);
  CUresult r3 = cu.MemAddressFree(st.va, n);
  return r != CUDA_SUCCESS ? r : r2 != CUDA_SUCCESS ? r2 : r3;
}

CUresult AllocArray(uint64_t n, KindState& st, uint64_t* e) {
  CUDA_ARRAY_DESCRIPTOR d{};
  d.Width = 1024;
  d.Height = n / (1024 * 16);
  d.Format = CU_AD_FORMAT_FLOAT;
  d.NumChannels = 4;
  *e = d.Width * d.Height * 16;
  return cu.ArrayCreate(&st.array, &d);
}
CUresult FreeArray(KindState& st) { return cu.ArrayDestroy(st.array); }

CUresult AllocArray3D(uint64_t n, KindState& st, uint64_t* e) {
  CUDA_ARRAY3D_DESCRIPTOR d{};
  d.Width = 256;
  d.Height = 256;
  d.Depth = n / (256 * 256 * 16);
  d.Format = CU_AD_FORMAT_FLOAT;
  d.NumChannels = 4;
  *e = d.Width * d.Height * d.Depth * 16;
  return cu.Array3DCreate(&st.array, &d);
}

CUresult AllocMipmapped(uint64_t n, KindState& st, uint64_t* e) {
  // A 2D mipmapped array of two levels: level 0 has n bytes, level 1 a quarter of that.
  CUDA_ARRAY3D_DESCRIPTOR d{};
  d.Width = 2048;
  d.Height = n / (2048 * 16);
  d.Format = CU_AD_FORMAT_FLOAT;
  d.NumChannels = 4;
  *e = d.Width * d.Height * 16 + (d.Width / 2) * (d.Height / 2) * 16;
  return cu.MipmappedArrayCreate(&st.mip, &d, 2);
}
CUresult FreeMipmapped(KindState& st) { return cu.MipmappedArrayDestroy(st.mip); }

const Kind kKinds[] = {
    {"mem_alloc", AllocPlain, FreePlain},
    {"pitch", AllocPitch, FreePlain},
    {"managed", AllocManaged, FreePlain},
    {"async", AllocAsyncDefault, FreeAsyncDefault},
    {"pool_async", AllocFromPool, FreeFromPool},
    {"vmm", AllocVmm, FreeVmm},
    {"array", AllocArray, FreeArray},
    {"array3d", AllocArray3D, FreeArray},
    {"mipmapped", AllocMipmapped, FreeMipmapped},
};

int CmdEachKind(const Args& a) {
  const uint64_t n = a.Bytes("bytes", 32ull << 20);
  if (n % (32ull << 20) != 0) Die("--bytes must be a multiple of 32 MiB");
  Session s = Open();
  if (!s.ctx) return 0;
  if (a.Has("probe")) {
    // One kind at a time: allocate it, show that it is counted (the process's view of used
    // memory and a probe allocation of n that must not fit next to it), free it, and show that
    // the free is seen (the probe fits again).
    for (const Kind& k : kKinds) {
      std::string p = std::string(k.name) + ".";
      KindState st;
      uint64_t expected = 0;
      long long before = UsedNow();
      CUresult r = k.alloc(n, st, &expected);
      OutI(p + "result", r);
      OutU(p + "expected_bytes", expected);
      if (r != CUDA_SUCCESS) {
        CleanupPoolKind(st);
        continue;
      }
      OutI(p + "used_held", UsedNow() - before);
      CUdeviceptr probe = 0;
      CUresult pr = cu.MemAlloc(&probe, n);
      OutI(p + "probe_held", pr);
      if (pr == CUDA_SUCCESS) cu.MemFree(probe);
      OutI(p + "free_result", k.release(st));
      OutI(p + "used_after", UsedNow() - before);
      pr = cu.MemAlloc(&probe, n);
      OutI(p + "probe_freed", pr);
      if (pr == CUDA_SUCCESS) cu.MemFree(probe);
    }
  } else {
    // All kinds at once, each held: with a limit a little above n only the first fits.
    std::vector<std::pair<const Kind*, KindState>> held;
    for (const Kind& k : kKinds) {
      KindState st;
      uint64_t expected = 0;
      CUresult r = k.alloc(n, st, &expected);
      OutI(std::string(k.name) + ".result", r);
      if (r == CUDA_SUCCESS)
        held.emplace_back(&k, st);
      else
        CleanupPoolKind(st);
    }
    OutI("kinds_held", static_cast<long long>(held.size()));
    OutI("used_held", UsedNow());
    for (auto& [k, st] : held) OutI(std::string(k->name) + ".free_result", k->release(st));
    OutI("used_after_free", UsedNow());
  }
  Close(s);
  Out("done", "1");
  return 0;
}

// ---- stress

struct StressTotals {
  std::atomic<long long> allocs{0}, ooms{0}, errors{0}, frees{0}, free_errors{0}, async_allocs{0};
  std::atomic<int> first_error{0};
};

void StressThread(int index, const Args& a, StressTotals& tot, std::latch& start, CUcontext shared_ctx,
                  bool own_init) {
  const uint64_t max_chunk = a.Bytes("max-chunk", 64ull << 20);
  const double seconds = static_cast<double>(a.Int("seconds-ms", a.Int("seconds", 5) * 1000)) / 1000.0;
  Rng rng(static_cast<uint64_t>(a.Int("seed", 1)) * 1000003ull + static_cast<uint64_t>(index));
  start.arrive_and_wait();
  CUcontext ctx = shared_ctx;
  CUdevice dev = 0;
  if (own_init) {
    // Threads that exist before the process's first CUDA call race into it together.
    CUresult r = cu.Init(0);
    if (r != CUDA_SUCCESS) Die("thread %d: cuInit %d", index, r);
    if (cu.DeviceGet(&dev, g_device) != CUDA_SUCCESS) Die("cuDeviceGet");
    r = cu.PrimaryCtxRetain(&ctx, dev);
    if (r != CUDA_SUCCESS) Die("thread %d: cuDevicePrimaryCtxRetain %d", index, r);
  }
  if (cu.CtxSetCurrent(ctx) != CUDA_SUCCESS) Die("cuCtxSetCurrent");
  CUstream stream = nullptr;
  if (cu.StreamCreate(&stream, 0) != CUDA_SUCCESS) Die("cuStreamCreate");
  struct Held {
    CUdeviceptr ptr;
    bool async;
  };
  std::vector<Held> held;
  auto free_one = [&](size_t i) {
    Held h = held[i];
    held[i] = held.back();
    held.pop_back();
    CUresult r;
    if (h.async) {
      r = cu.MemFreeAsync(h.ptr, stream);
      if (r == CUDA_SUCCESS) r = cu.StreamSynchronize(stream);
    } else {
      r = cu.MemFree(h.ptr);
    }
    if (r == CUDA_SUCCESS)
      ++tot.frees;
    else
      ++tot.free_errors;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    for (int burst = 0; burst < 16; ++burst) {
      if (held.size() < 4 && (held.empty() || rng.Below(100) < 55)) {
        uint64_t size = 1 + rng.Below(max_chunk);
        bool async = rng.Below(2) == 0;
        CUdeviceptr p = 0;
        CUresult r = async ? cu.MemAllocAsync(&p, size, stream) : cu.MemAlloc(&p, size);
        if (r == CUDA_SUCCESS) {
          held.push_back({p, async});
          ++tot.allocs;
          if (async) ++tot.async_allocs;
        } else if (r == CUDA_ERROR_OUT_OF_MEMORY) {
          ++tot.ooms;
        } else {
          ++tot.errors;
          int zero = 0;
          tot.first_error.compare_exchange_strong(zero, r);
        }
      } else if (!held.empty()) {
        free_one(rng.Below(held.size()));
      }
    }
  }
  while (!held.empty()) free_one(held.size() - 1);
  cu.StreamSynchronize(stream);
  cu.StreamDestroy(stream);
  if (own_init) cu.PrimaryCtxRelease(dev);
}

int CmdStress(const Args& a) {
  const int threads = static_cast<int>(a.Int("threads", 16));
  const bool before_init = a.Has("threads-before-init");
  StressTotals tot;
  std::latch start(threads + 1);
  std::vector<std::thread> pool;
  Session s;
  if (before_init) {
    for (int i = 0; i < threads; ++i)
      pool.emplace_back(StressThread, i, std::cref(a), std::ref(tot), std::ref(start), nullptr, true);
    start.arrive_and_wait();
  } else {
    s = Open();
    if (!s.ctx) Die("no context");
    for (int i = 0; i < threads; ++i)
      pool.emplace_back(StressThread, i, std::cref(a), std::ref(tot), std::ref(start), s.ctx, false);
    start.arrive_and_wait();
  }
  for (auto& t : pool) t.join();
  if (before_init) {
    // Keep a context while trimming the default pool, then drop it again.
    s = Open();
  }
  cu.CtxSynchronize();
  CUmemoryPool pool_handle = nullptr;
  if (cu.DeviceGetDefaultMemPool(&pool_handle, s.dev) == CUDA_SUCCESS) cu.MemPoolTrimTo(pool_handle, 0);
  OutI("stress_allocs", tot.allocs);
  OutI("stress_async_allocs", tot.async_allocs);
  OutI("stress_ooms", tot.ooms);
  OutI("stress_errors", tot.errors);
  OutI("stress_first_error", tot.first_error);
  OutI("stress_frees", tot.frees);
  OutI("stress_free_errors", tot.free_errors);
  OutI("used_after", UsedNow());
  Close(s);
  Out("done", "1");
  return 0;
}

// ---- hold

int CmdHold(const Args& a) {
  const std::string ready = a.Str("ready-file", "");
  if (ready.empty()) Die("hold needs --ready-file");
  Session s = Open();
  CUdeviceptr p = 0;
  CUresult r = s.ctx ? cu.MemAlloc(&p, a.Bytes("bytes", 0)) : CUDA_ERROR_INVALID_CONTEXT;
  OutI("hold_result", r);
  WriteFileAtomically(ready, "hold_result=" + std::to_string(r) + "\n");
  for (;;) pause();
}

// ---- fork-child

int CmdForkChild(const Args& a) {
  Session s = Open();
  if (!s.ctx) Die("no context");
  CUdeviceptr parent = 0;
  CUresult r = cu.MemAlloc(&parent, a.Bytes("parent-bytes", 0));
  OutI("parent_alloc", r);
  pid_t pid = fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    // The child: CUDA state is not inherited; it initialises again and allocates.
    Session c = Open("child_");
    if (!c.ctx) _exit(0);
    CUdeviceptr p1 = 0, p2 = 0;
    CUresult r1 = cu.MemAlloc(&p1, a.Bytes("child-bytes", 0));
    OutI("child_alloc", r1);
    if (a.Has("child-bytes2")) {
      CUresult r2 = cu.MemAlloc(&p2, a.Bytes("child-bytes2", 0));
      OutI("child_alloc2", r2);
      size_t f = 0, t = 0;
      cu.MemGetInfo(&f, &t);
      OutU("child_free", f);
      OutU("child_total", t);
      if (r2 == CUDA_SUCCESS) cu.MemFree(p2);
    }
    if (r1 == CUDA_SUCCESS) cu.MemFree(p1);
    Close(c, "child_");
    exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  OutI("child_status", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  if (a.Has("after-bytes")) {
    CUdeviceptr p = 0;
    CUresult ra = cu.MemAlloc(&p, a.Bytes("after-bytes", 0));
    OutI("parent_after", ra);
    if (ra == CUDA_SUCCESS) cu.MemFree(p);
  }
  if (r == CUDA_SUCCESS) cu.MemFree(parent);
  Close(s);
  Out("done", "1");
  return 0;
}


// ---- pool-cache: a stream-ordered pool keeps freed memory reserved

int CmdPoolCache(const Args& a) {
  const uint64_t n = a.Bytes("bytes", 32ull << 20);
  Session s = Open();
  if (!s.ctx) Die("no context");
  CUmemoryPool pool = nullptr;
  if (cu.DeviceGetDefaultMemPool(&pool, s.dev) != CUDA_SUCCESS) Die("cuDeviceGetDefaultMemPool");
  // Keep everything cached across synchronisations (PyTorch, CuPy and JAX set this).
  cuuint64_t keep = ~0ull;
  OutI("set_threshold_result", cu.MemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &keep));
  CUstream stream = nullptr;
  if (cu.StreamCreate(&stream, 0) != CUDA_SUCCESS) Die("cuStreamCreate");
  CUdeviceptr p = 0;
  OutI("async_result", cu.MemAllocAsync(&p, n, stream));
  OutI("free_async_result", cu.MemFreeAsync(p, stream));
  OutI("sync_result", cu.StreamSynchronize(stream));
  cuuint64_t reserved = 0;
  cu.MemPoolGetAttribute(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT, &reserved);
  OutU("pool_reserved", reserved);
  OutI("used_cached", UsedNow());
  // The pool still holds n bytes of device memory: another n must not fit under a limit < 2n.
  CUdeviceptr q = 0;
  CUresult r = cu.MemAlloc(&q, n);
  OutI("probe_cached", r);
  if (r == CUDA_SUCCESS) cu.MemFree(q);
  // Reuse from the cache needs no new memory.
  r = cu.MemAllocAsync(&p, n, stream);
  OutI("async_reuse", r);
  if (r == CUDA_SUCCESS) {
    cu.MemFreeAsync(p, stream);
    cu.StreamSynchronize(stream);
  }
  OutI("trim_result", cu.MemPoolTrimTo(pool, 0));
  OutI("used_trimmed", UsedNow());
  r = cu.MemAlloc(&q, n);
  OutI("probe_trimmed", r);
  if (r == CUDA_SUCCESS) cu.MemFree(q);
  cu.StreamDestroy(stream);
  Close(s);
  Out("done", "1");
  return 0;
}

// ---- host-kinds: host memory is not device memory

int CmdHostKinds(const Args& a) {
  const uint64_t n = a.Bytes("bytes", 64ull << 20);
  Session s = Open();
  if (!s.ctx) Die("no context");
  void* h = nullptr;
  CUresult r = cu.MemAllocHost(&h, n);
  OutI("alloc_host", r);
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_HOST_NUMA;
  prop.location.id = 0;  // NUMA node 0, not device 0
  CUmemGenericAllocationHandle handle = 0;
  CUresult rv = cu.MemCreate(&handle, n, &prop, 0);
  OutI("vmm_host_numa", rv);
  OutI("used_with_host", UsedNow());
  if (rv == CUDA_SUCCESS) OutI("vmm_host_release", cu.MemRelease(handle));
  if (r == CUDA_SUCCESS) OutI("free_host", cu.MemFreeHost(h));
  Close(s);
  Out("done", "1");
  return 0;
}

// ---- bad-args: calls the driver refuses must come back with the driver's error and cost nothing

int CmdBadArgs(const Args& a) {
  const uint64_t fill = a.Bytes("fill", 0);
  Session s = Open();
  if (!s.ctx) Die("no context");
  CUdeviceptr p = 0;
  size_t pitch = 0;
  OutI("alloc_zero", cu.MemAlloc(&p, 0));
  OutI("pitch_bad_element", cu.MemAllocPitch(&p, &pitch, 4096, 1024, 3));
  OutI("managed_bad_flags", cu.MemAllocManaged(&p, 32ull << 20, 0));
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = g_device;
  CUmemGenericAllocationHandle h = 0;
  OutI("vmm_unaligned", cu.MemCreate(&h, (32ull << 20) + 4096, &prop, 0));
  CUDA_ARRAY_DESCRIPTOR d{};
  d.Width = 1024;
  d.Height = 1024;
  d.Format = 0x77;  // no such format
  d.NumChannels = 4;
  CUarray arr = nullptr;
  OutI("array_bad_format", cu.ArrayCreate(&arr, &d));
  OutI("free_unknown", cu.MemFree(0x1234567));
  OutI("used_after_errors", UsedNow());
  if (fill) {
    CUresult r = cu.MemAlloc(&p, fill);
    OutI("fill_result", r);
    if (r == CUDA_SUCCESS) cu.MemFree(p);
  }
  Close(s);
  Out("done", "1");
  return 0;
}

// ---- ctx-reset: destroying a context (or resetting the primary one) frees its memory

int CmdCtxReset(const Args& a) {
  const uint64_t first = a.Bytes("first", 0), second = a.Bytes("second", 0);
  Session s = Open();
  if (!s.ctx) Die("no context");
  CUdeviceptr p = 0;
  OutI("first_alloc", cu.MemAlloc(&p, first));
  // No cuMemFree: the context goes away with the allocation in it.
  CUresult r = s.created ? cu.CtxDestroy(s.ctx) : cu.PrimaryCtxReset(s.dev);
  OutI("reset_result", r);
  Session t = Open("again_");
  if (!t.ctx) Die("no context after reset");
  OutI("used_after_reset", UsedNow());
  r = cu.MemAlloc(&p, second);
  OutI("second_alloc", r);
  if (r == CUDA_SUCCESS) cu.MemFree(p);
  Close(t);
  Out("done", "1");
  return 0;
}

// ---- exec-child

int CmdExecChild(const Args& a) {
  Session s = Open("exec_parent_");
  if (!s.ctx) Die("no context");
  CUdeviceptr p = 0;
  CUresult r = cu.MemAlloc(&p, a.Bytes("bytes", 0));
  OutI("exec_parent_alloc", r);
  // Replace the image while holding the allocation: the old image's memory goes with it.
  std::vector<std::string> args = {"cuda_workload", "--path", a.Str("path", "dlopen"), "--device",
                                   std::to_string(g_device), "query", "--alloc", a.Str("then-alloc", "0")};
  if (a.Has("nvml")) args.push_back("--nvml");
  std::vector<char*> argv;
  for (auto& x : args) argv.push_back(x.data());
  argv.push_back(nullptr);
  if (a.Has("clear-preload")) unsetenv("LD_PRELOAD");
  execv("/proc/self/exe", argv.data());
  Die("execv: %s", strerror(errno));
}

}  // namespace

int main(int argc, char** argv) {
  Args a = Parse(argc, argv);
  const std::string path = a.Str("path", "dlopen");
  if (path == "linked") g_path = Path::kLinked;
  else if (path == "dlopen") g_path = Path::kDlopen;
  else if (path == "procaddress") g_path = Path::kProc;
  else if (path == "procaddress_v2") g_path = Path::kProcV2;
  else if (path == "procaddress_ptsz") g_path = Path::kProcPtsz;
  else Die("unknown --path %s", path.c_str());
  g_device = static_cast<int>(a.Int("device", 0));
  g_create_ctx = a.Str("ctx", "primary") == "create";
  Out("pid", "%d", getpid());
  ResolveDriver();
  if (a.command == "fill") return CmdFill(a);
  if (a.command == "query") return CmdQuery(a);
  if (a.command == "each-kind") return CmdEachKind(a);
  if (a.command == "stress") return CmdStress(a);
  if (a.command == "hold") return CmdHold(a);
  if (a.command == "fork-child") return CmdForkChild(a);
  if (a.command == "exec-child") return CmdExecChild(a);
  if (a.command == "pool-cache") return CmdPoolCache(a);
  if (a.command == "host-kinds") return CmdHostKinds(a);
  if (a.command == "bad-args") return CmdBadArgs(a);
  if (a.command == "ctx-reset") return CmdCtxReset(a);
  fputs(Usage(), stderr);
  return 2;
}
