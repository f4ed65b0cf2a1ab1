// A fake libascendcl.so for the limiter's preload tests, shaped like CANN 8.5 (shared/ASCEND-ABI.md
// A.0/A.2): every aclrt* memory call is a thin wrapper that validates its arguments, applies the
// real size arithmetic and calls the rt* function of libruntime.so, which this library is linked
// against, so the call crosses a shared-object boundary through the PLT and an LD_PRELOAD
// definition of rtMalloc sees it (a limiter that counts both aclrtMalloc and rtMalloc counts
// twice). rt error codes are returned to the caller unchanged.
//
// Execution (ASCEND-ABI A.4) on the fake devices' timeline, kept by libruntime.so:
//   - aclmdlExecuteAsync calls rtModelExecute through the PLT (graph mode ends there in CANN);
//     aclmdlExecute does too, on the default stream, then waits until its kernel has ended;
//   - aclrtSynchronizeStream calls rtStreamSynchronize and aclrtRecordEvent rtEventRecord
//     through the PLT;
//   - aclrtLaunchKernel, aclrtLaunchKernelWithConfig, aclopExecute, aclopExecuteV2,
//     aclopCompileAndExecute[V2] (one kernel each, asynchronous on the given stream) and the other
//     stream and event calls go to fake-only tsfake_rt_* exports of libruntime.so, so they reach no
//     hookable rt function (which rt function CANN's own would reach is not known, ASCEND-ABI U-5);
//   - tsfake_set_kernel_us(us) sets the calling thread's kernel length (0 = the default 100 us);
//   - aclrtGetDeviceUtilizationRate (A.3): cube and vector utilisation = the device's busy time
//     over the last 100 ms in percent (every process), AI CPU 0, memory -1 (not supported).
#include <stdint.h>

#include <atomic>

#include "tests/limiter/abi/acl_abi.h"
#include "tests/limiter/fakes/fake_state.h"

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

FAKE_EXPORT aclError aclrtGetDeviceUtilizationRate(int32_t deviceId, aclrtUtilizationInfo* info) {
  if (!info || info->utilizationExtend) return ACL_ERROR_INVALID_PARAM;
  tideslice::fake::FakeState* s = tideslice::fake::FakeProcessState();
  if (deviceId < 0 || deviceId >= static_cast<int32_t>(s->device_count)) return ACL_ERROR_RT_INVALID_DEVICEID;
  constexpr int64_t kWindow = 100000000;
  const int64_t now = tideslice::fake::FakeNowNs();
  uint64_t busy = 0;
  tideslice::fake::FakeBusyNs(s, deviceId, -1, now - kWindow, now, &busy);
  const int32_t percent = static_cast<int32_t>((busy * 100 + kWindow / 2) / kWindow);
  info->cubeUtilization = percent;
  info->vectorUtilization = percent;
  info->aicpuUtilization = 0;
  info->memoryUtilization = -1;
  return ACL_SUCCESS;
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

// ---- execution (A.4)

FAKE_EXPORT aclError aclrtLaunchKernel(aclrtFuncHandle funcHandle, uint32_t blockDim, const void* argsData,
                                       size_t argsSize, aclrtStream stream) {
  (void)blockDim;
  (void)argsData;
  (void)argsSize;
  return funcHandle ? tsfake_rt_submit(stream) : ACL_ERROR_INVALID_PARAM;
}

FAKE_EXPORT aclError aclrtLaunchKernelWithConfig(aclrtFuncHandle funcHandle, uint32_t numBlocks, aclrtStream stream,
                                                 aclrtLaunchKernelCfg* cfg, aclrtArgsHandle argsHandle, void* reserve) {
  (void)numBlocks;
  (void)cfg;
  (void)argsHandle;
  (void)reserve;
  return funcHandle ? tsfake_rt_submit(stream) : ACL_ERROR_INVALID_PARAM;
}

FAKE_EXPORT aclError aclmdlExecute(uint32_t modelId, const aclmdlDataset* input, aclmdlDataset* output) {
  (void)input;
  (void)output;
  aclError r = rtModelExecute(reinterpret_cast<rtModel_t>(static_cast<uintptr_t>(modelId) + 1), nullptr, 0);
  if (r == ACL_SUCCESS) tideslice::fake::FakeSleepUntil(static_cast<int64_t>(tsfake_last_kernel_end_ns()));
  return r;
}

FAKE_EXPORT aclError aclmdlExecuteAsync(uint32_t modelId, const aclmdlDataset* input, aclmdlDataset* output,
                                        aclrtStream stream) {
  (void)input;
  (void)output;
  return rtModelExecute(reinterpret_cast<rtModel_t>(static_cast<uintptr_t>(modelId) + 1), stream, 0);
}

FAKE_EXPORT aclError aclopExecute(const char* opType, int numInputs, const aclTensorDesc* const inputDesc[],
                                  const aclDataBuffer* const inputs[], int numOutputs,
                                  const aclTensorDesc* const outputDesc[], aclDataBuffer* const outputs[],
                                  const aclopAttr* attr, aclrtStream stream) {
  (void)inputDesc, (void)inputs, (void)outputDesc, (void)outputs, (void)attr;
  if (!opType || numInputs < 0 || numOutputs < 0) return ACL_ERROR_INVALID_PARAM;
  return tsfake_rt_submit(stream);
}

FAKE_EXPORT aclError aclopExecuteV2(const char* opType, int numInputs, aclTensorDesc* inputDesc[],
                                    aclDataBuffer* inputs[], int numOutputs, aclTensorDesc* outputDesc[],
                                    aclDataBuffer* outputs[], aclopAttr* attr, aclrtStream stream) {
  (void)inputDesc, (void)inputs, (void)outputDesc, (void)outputs, (void)attr;
  if (!opType || numInputs < 0 || numOutputs < 0) return ACL_ERROR_INVALID_PARAM;
  return tsfake_rt_submit(stream);
}

FAKE_EXPORT aclError aclopCompileAndExecute(const char* opType, int numInputs, const aclTensorDesc* const inputDesc[],
                                            const aclDataBuffer* const inputs[], int numOutputs,
                                            const aclTensorDesc* const outputDesc[], aclDataBuffer* const outputs[],
                                            const aclopAttr* attr, aclopEngineType engineType,
                                            aclopCompileType compileFlag, const char* opPath, aclrtStream stream) {
  (void)inputDesc, (void)inputs, (void)outputDesc, (void)outputs, (void)attr, (void)opPath;
  if (!opType || numInputs < 0 || numOutputs < 0 || engineType < 0 || engineType > 2 || compileFlag < 0 ||
      compileFlag > 1)
    return ACL_ERROR_INVALID_PARAM;
  return tsfake_rt_submit(stream);
}

FAKE_EXPORT aclError aclopCompileAndExecuteV2(const char* opType, int numInputs, aclTensorDesc* inputDesc[],
                                              aclDataBuffer* inputs[], int numOutputs, aclTensorDesc* outputDesc[],
                                              aclDataBuffer* outputs[], aclopAttr* attr, aclopEngineType engineType,
                                              aclopCompileType compileFlag, const char* opPath, aclrtStream stream) {
  (void)inputDesc, (void)inputs, (void)outputDesc, (void)outputs, (void)attr, (void)opPath;
  if (!opType || numInputs < 0 || numOutputs < 0 || engineType < 0 || engineType > 2 || compileFlag < 0 ||
      compileFlag > 1)
    return ACL_ERROR_INVALID_PARAM;
  return tsfake_rt_submit(stream);
}

// ---- streams and events

FAKE_EXPORT aclError aclrtCreateStream(aclrtStream* stream) {
  if (!stream) return ACL_ERROR_INVALID_PARAM;
  return tsfake_rt_stream_create(stream);
}

FAKE_EXPORT aclError aclrtDestroyStream(aclrtStream stream) {
  if (!stream) return ACL_ERROR_INVALID_PARAM;
  return tsfake_rt_stream_destroy(stream);
}

FAKE_EXPORT aclError aclrtSynchronizeStream(aclrtStream stream) { return rtStreamSynchronize(stream); }

FAKE_EXPORT aclError aclrtCreateEvent(aclrtEvent* event) {
  if (!event) return ACL_ERROR_INVALID_PARAM;
  return tsfake_rt_event_create(event);
}

FAKE_EXPORT aclError aclrtRecordEvent(aclrtEvent event, aclrtStream stream) {
  if (!event) return ACL_ERROR_INVALID_PARAM;
  return rtEventRecord(event, stream);
}

FAKE_EXPORT aclError aclrtQueryEventStatus(aclrtEvent event, aclrtEventRecordedStatus* status) {
  if (!event || !status) return ACL_ERROR_INVALID_PARAM;
  int complete = 0;
  aclError r = tsfake_rt_event_status(event, &complete);
  if (r == ACL_SUCCESS) *status = complete ? ACL_EVENT_RECORDED_STATUS_COMPLETE : ACL_EVENT_RECORDED_STATUS_NOT_READY;
  return r;
}

FAKE_EXPORT aclError aclrtSynchronizeEvent(aclrtEvent event) {
  if (!event) return ACL_ERROR_INVALID_PARAM;
  return tsfake_rt_event_synchronize(event);
}

FAKE_EXPORT aclError aclrtEventElapsedTime(float* ms, aclrtEvent startEvent, aclrtEvent endEvent) {
  if (!ms || !startEvent || !endEvent) return ACL_ERROR_INVALID_PARAM;
  return tsfake_rt_event_elapsed(ms, startEvent, endEvent);
}

FAKE_EXPORT aclError aclrtDestroyEvent(aclrtEvent event) {
  if (!event) return ACL_ERROR_INVALID_PARAM;
  return tsfake_rt_event_destroy(event);
}

// Fake-only: the calling thread's kernel length (kept by libruntime.so).
FAKE_EXPORT void tsfake_set_kernel_us(unsigned int us) { tsfake_rt_set_kernel_us(us); }
