// A fake libascendcl.so for the limiter's preload tests, shaped like CANN 8.5 (shared/ASCEND-ABI.md
// A.0/A.2): every aclrt* memory call is a thin wrapper that validates its arguments, applies the
// real size arithmetic and calls the rt* function of libruntime.so, which this library is linked
// against, so the call crosses a shared-object boundary through the PLT and an LD_PRELOAD
// definition of rtMalloc sees it (a limiter that counts both aclrtMalloc and rtMalloc counts
// twice). rt error codes are returned to the caller unchanged.
#include <stdint.h>

#include <atomic>

#include "tests/limiter/abi/acl_abi.h"

#define FAKE_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

std::atomic<bool> g_initialized{false};

uint64_t RoundUp32(uint64_t v) { return (v + 31) / 32 * 32; }

// aclrtMemMallocPolicy -> rt policy bits OR-ed into the rtMalloc type (A.1b).
uint32_t PolicyFlags(int policy) {
  static const uint32_t kFlags[8] = {0x400, 0x800, 0x1000, 0x2000, 0x4000, 0x8000, 0x10000, 0x20000};
  return policy >= 0 && policy < 8 ? kFlags[policy] : RT_MEMORY_DEFAULT;
}

bool IsHuge1G(int policy) { return policy == ACL_MEM_MALLOC_HUGE1G_ONLY || policy == ACL_MEM_MALLOC_HUGE1G_ONLY_P2P; }

// aclrtMalloc / aclrtMallocCached: round_up(size + 32 + pad, 32) with the default pad of 32
// => round_up(size, 32) + 32; no padding for the HUGE1G policies.
uint64_t PaddedSize(uint64_t size, int policy) { return IsHuge1G(policy) ? RoundUp32(size) : RoundUp32(size) + 32; }

}  // namespace

FAKE_EXPORT aclError aclInit(const char* configPath) {
  (void)configPath;
  bool expected = false;
  if (!g_initialized.compare_exchange_strong(expected, true)) return ACL_ERROR_REPEAT_INITIALIZE;
  return ACL_SUCCESS;
}

FAKE_EXPORT aclError aclFinalize(void) {
  g_initialized = false;
  return ACL_SUCCESS;
}

FAKE_EXPORT aclError aclrtSetDevice(int32_t deviceId) { return rtSetDevice(deviceId); }
FAKE_EXPORT aclError aclrtGetDevice(int32_t* deviceId) {
  if (!deviceId) return ACL_ERROR_INVALID_PARAM;
  return rtGetDevice(deviceId);
}
FAKE_EXPORT aclError aclrtResetDevice(int32_t deviceId) { return rtDeviceReset(deviceId); }

FAKE_EXPORT aclError aclrtGetDeviceCount(uint32_t* count) {
  if (!count) return ACL_ERROR_INVALID_PARAM;
  int32_t c = 0;
  rtError_t r = rtGetDeviceCount(&c);
  if (r == ACL_SUCCESS) *count = static_cast<uint32_t>(c);
  return r;
}

FAKE_EXPORT aclError aclrtMalloc(void** devPtr, size_t size, aclrtMemMallocPolicy policy) {
  if (!devPtr || size == 0) return ACL_ERROR_INVALID_PARAM;
  return rtMalloc(devPtr, PaddedSize(size, policy), RT_MEMORY_DEFAULT | PolicyFlags(policy), kAclModuleIdApp);
}

FAKE_EXPORT aclError aclrtMallocAlign32(void** devPtr, size_t size, aclrtMemMallocPolicy policy) {
  if (!devPtr || size == 0) return ACL_ERROR_INVALID_PARAM;
  return rtMalloc(devPtr, RoundUp32(size), RT_MEMORY_DEFAULT | PolicyFlags(policy), kAclModuleIdApp);
}

FAKE_EXPORT aclError aclrtMallocCached(void** devPtr, size_t size, aclrtMemMallocPolicy policy) {
  if (!devPtr || size == 0) return ACL_ERROR_INVALID_PARAM;
  uint32_t flags = (policy == 0 || policy == 1 || policy == 2 || policy == 6) ? PolicyFlags(policy) : 0;
  return rtMallocCached(devPtr, PaddedSize(size, policy), RT_MEMORY_DEFAULT | flags, kAclModuleIdApp);
}

FAKE_EXPORT aclError aclrtMallocWithCfg(void** devPtr, size_t size, aclrtMemMallocPolicy policy,
                                        aclrtMallocConfig* cfg) {
  if (!devPtr || size == 0) return ACL_ERROR_INVALID_PARAM;
  if (cfg && cfg->numAttrs > 0 && !cfg->attrs) return ACL_ERROR_INVALID_PARAM;
  return rtMalloc(devPtr, size, RT_MEMORY_DEFAULT | PolicyFlags(policy), kAclModuleIdApp);
}

FAKE_EXPORT aclError aclrtFree(void* devPtr) {
  if (!devPtr) return ACL_ERROR_INVALID_PARAM;
  return rtFree(devPtr);
}

FAKE_EXPORT aclError aclrtMallocHost(void** hostPtr, size_t size) {
  if (!hostPtr || size == 0) return ACL_ERROR_INVALID_PARAM;
  return rtMallocHost(hostPtr, size, kAclModuleIdApp);
}

FAKE_EXPORT aclError aclrtFreeHost(void* hostPtr) {
  if (!hostPtr) return ACL_ERROR_INVALID_PARAM;
  return rtFreeHost(hostPtr);
}

FAKE_EXPORT aclError aclrtGetMemInfo(aclrtMemAttr attr, size_t* free_bytes, size_t* total) {
  if (!free_bytes || !total) return ACL_ERROR_INVALID_PARAM;
  return rtMemGetInfoEx(static_cast<rtMemInfoType_t>(attr), free_bytes, total);
}

FAKE_EXPORT aclError aclrtReserveMemAddress(void** virPtr, size_t size, size_t alignment, void* expectPtr,
                                            uint64_t flags) {
  if (!virPtr || size == 0 || flags > 1) return ACL_ERROR_INVALID_PARAM;
  return rtReserveMemAddress(virPtr, size, alignment, expectPtr, 0);
}

FAKE_EXPORT aclError aclrtReleaseMemAddress(void* virPtr) {
  if (!virPtr) return ACL_ERROR_INVALID_PARAM;
  return rtReleaseMemAddress(virPtr);
}

FAKE_EXPORT aclError aclrtMallocPhysical(aclrtDrvMemHandle* handle, size_t size, const aclrtPhysicalMemProp* prop,
                                         uint64_t flags) {
  if (!handle || !prop || size == 0 || flags != 0) return ACL_ERROR_INVALID_PARAM;
  if (prop->handleType != ACL_MEM_HANDLE_TYPE_NONE || prop->allocationType != ACL_MEM_ALLOCATION_TYPE_PINNED)
    return ACL_ERROR_INVALID_PARAM;
  if (prop->location.type != ACL_MEM_LOCATION_TYPE_HOST && prop->location.type != ACL_MEM_LOCATION_TYPE_DEVICE)
    return ACL_ERROR_INVALID_PARAM;
  rtDrvMemProp_t rt{};
  rt.side = static_cast<uint32_t>(prop->location.type);
  rt.devid = prop->location.id;
  rt.module_id = kAclModuleIdApp;
  const int attr = prop->memAttr;
  rt.pg_type = (attr == ACL_HBM_MEM_HUGE || attr == ACL_DDR_MEM_HUGE || attr == 8 || attr == 10 || attr == 11) ? 1 : 0;
  rt.mem_type = (attr == ACL_DDR_MEM || attr == ACL_DDR_MEM_HUGE || attr == ACL_DDR_MEM_NORMAL) ? 0 : 1;
  rt.reserve = prop->reserve;
  return rtMallocPhysical(handle, size, &rt, 0);
}

FAKE_EXPORT aclError aclrtFreePhysical(aclrtDrvMemHandle handle) {
  if (!handle) return ACL_ERROR_INVALID_PARAM;
  return rtFreePhysical(handle);
}

FAKE_EXPORT aclError aclrtMapMem(void* virPtr, size_t size, size_t offset, aclrtDrvMemHandle handle, uint64_t flags) {
  if (!virPtr || !handle || size == 0 || flags != 0) return ACL_ERROR_INVALID_PARAM;
  return rtMapMem(virPtr, size, offset, handle, flags);
}

FAKE_EXPORT aclError aclrtUnmapMem(void* virPtr) {
  if (!virPtr) return ACL_ERROR_INVALID_PARAM;
  return rtUnmapMem(virPtr);
}

FAKE_EXPORT aclError aclrtLaunchKernel(aclrtFuncHandle funcHandle, uint32_t blockDim, const void* argsData,
                                       size_t argsSize, aclrtStream stream) {
  (void)blockDim;
  (void)argsData;
  (void)argsSize;
  (void)stream;
  return funcHandle ? ACL_SUCCESS : ACL_ERROR_INVALID_PARAM;
}

FAKE_EXPORT aclError aclmdlExecute(uint32_t modelId, const aclmdlDataset* input, aclmdlDataset* output) {
  (void)input;
  (void)output;
  return rtModelExecute(reinterpret_cast<rtModel_t>(static_cast<uintptr_t>(modelId) + 1), nullptr, 0);
}

FAKE_EXPORT aclError aclmdlExecuteAsync(uint32_t modelId, const aclmdlDataset* input, aclmdlDataset* output,
                                        aclrtStream stream) {
  (void)input;
  (void)output;
  return rtModelExecute(reinterpret_cast<rtModel_t>(static_cast<uintptr_t>(modelId) + 1), stream, 0);
}
