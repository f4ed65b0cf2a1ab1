// The slice of Huawei's ACL runtime (libascendcl.so) and rt layer (libruntime.so) ABI the preload
// tests use, written from shared/ASCEND-ABI.md section A (A.1 codes, A.1b enums, A.1c layouts,
// A.2 memory calls, A.2c rt prototypes, A.3 device calls, A.4 execution entry points).
#pragma once

#include <stddef.h>
#include <stdint.h>

extern "C" {

typedef int aclError;
typedef int32_t rtError_t;
typedef void* aclrtStream;
typedef void* aclrtDrvMemHandle;
typedef void* aclrtFuncHandle;
typedef void* rtDrvMemHandle;
typedef void* rtStream_t;
typedef void* rtModel_t;
typedef uint32_t rtMemType_t;
typedef int rtMemInfoType_t;
typedef int aclrtMemMallocPolicy;
typedef int aclrtMemAttr;
typedef struct aclmdlDataset aclmdlDataset;
typedef struct rtArgsEx rtArgsEx_t;
typedef struct rtSmDesc rtSmDesc_t;
typedef struct rtTaskCfgInfo rtTaskCfgInfo_t;
typedef void* aclrtEvent;
typedef void* rtEvent_t;
typedef void* rtFuncHandle;
typedef void* rtLaunchArgsHandle;
typedef void* aclrtArgsHandle;
typedef struct aclrtLaunchKernelCfg aclrtLaunchKernelCfg;
typedef struct aclTensorDesc aclTensorDesc;
typedef struct aclDataBuffer aclDataBuffer;
typedef struct aclopAttr aclopAttr;
typedef int aclopEngineType;
typedef int aclopCompileType;
typedef int aclrtEventRecordedStatus;
enum : int { ACL_EVENT_RECORDED_STATUS_NOT_READY = 0, ACL_EVENT_RECORDED_STATUS_COMPLETE = 1 };

// ---- A.1 error codes
enum : int {
  ACL_SUCCESS = 0,
  ACL_ERROR_INVALID_PARAM = 100000,
  ACL_ERROR_UNINITIALIZE = 100001,
  ACL_ERROR_REPEAT_INITIALIZE = 100002,
  ACL_ERROR_BAD_ALLOC = 200000,
  ACL_ERROR_RT_PARAM_INVALID = 107000,
  ACL_ERROR_RT_INVALID_DEVICEID = 107001,
  ACL_ERROR_RT_MEMORY_ALLOCATION = 207001,
  ACL_ERROR_RT_MEMORY_FREE = 207002,
};

// ---- A.1b enums
enum : int {
  ACL_MEM_MALLOC_HUGE_FIRST = 0,
  ACL_MEM_MALLOC_HUGE_ONLY = 1,
  ACL_MEM_MALLOC_NORMAL_ONLY = 2,
  ACL_MEM_MALLOC_HUGE1G_ONLY = 6,
  ACL_MEM_MALLOC_HUGE1G_ONLY_P2P = 7,
  ACL_MEM_TYPE_HIGH_BAND_WIDTH = 0x1000,
};
enum : int {
  ACL_DDR_MEM = 0,
  ACL_HBM_MEM = 1,
  ACL_DDR_MEM_HUGE = 2,
  ACL_DDR_MEM_NORMAL = 3,
  ACL_HBM_MEM_HUGE = 4,
  ACL_HBM_MEM_NORMAL = 5,
};
enum : int { ACL_MEM_LOCATION_TYPE_HOST = 0, ACL_MEM_LOCATION_TYPE_DEVICE = 1 };
enum : int { ACL_MEM_HANDLE_TYPE_NONE = 0 };
enum : int { ACL_MEM_ALLOCATION_TYPE_PINNED = 0 };

// rtMemType_t bits (A.2c)
enum : uint32_t {
  RT_MEMORY_DEFAULT = 0x0,
  RT_MEMORY_HBM = 0x2,
  RT_MEMORY_DDR = 0x4,
  RT_MEMORY_HOST = 0x81,
  RT_MEMORY_TYPE_MASK = 0x3FF,
  RT_MEMORY_POLICY_HUGE_PAGE_FIRST = 0x400,
  RT_MEMORY_POLICY_HUGE_PAGE_ONLY = 0x800,
  RT_MEMORY_POLICY_DEFAULT_PAGE_ONLY = 0x1000,
  RT_MEMORY_POLICY_HUGE1G_PAGE_ONLY = 0x10000,
};
enum : int { RT_MEMORYINFO_DDR = 0, RT_MEMORYINFO_HBM = 1 };
inline constexpr uint16_t kAclModuleIdApp = 33;

// ---- A.1c layouts
typedef struct aclrtMemLocation {
  uint32_t id;
  int type;  // aclrtMemLocationType
} aclrtMemLocation;
static_assert(sizeof(aclrtMemLocation) == 8);

typedef struct aclrtPhysicalMemProp {
  int handleType;      // aclrtMemHandleType
  int allocationType;  // aclrtMemAllocationType
  int memAttr;         // aclrtMemAttr
  aclrtMemLocation location;
  uint64_t reserve;
} aclrtPhysicalMemProp;
static_assert(sizeof(aclrtPhysicalMemProp) == 32);
static_assert(offsetof(aclrtPhysicalMemProp, location) == 12 && offsetof(aclrtPhysicalMemProp, reserve) == 24);

typedef struct aclrtMallocAttribute {
  int attr;
  union {
    uint8_t rsv[8];
  } value;
} aclrtMallocAttribute;
static_assert(sizeof(aclrtMallocAttribute) == 12);

typedef struct aclrtMallocConfig {
  aclrtMallocAttribute* attrs;
  size_t numAttrs;
} aclrtMallocConfig;
static_assert(sizeof(aclrtMallocConfig) == 16);

typedef struct rtDrvMemProp {
  uint32_t side;
  uint32_t devid;
  uint32_t module_id;
  uint32_t pg_type;
  uint32_t mem_type;
  uint64_t reserve;
} rtDrvMemProp_t;
static_assert(sizeof(rtDrvMemProp_t) == 32 && offsetof(rtDrvMemProp_t, reserve) == 24);

typedef struct aclrtUtilizationInfo {
  int32_t cubeUtilization;
  int32_t vectorUtilization;
  int32_t aicpuUtilization;
  int32_t memoryUtilization;
  void* utilizationExtend;  // must be NULL
} aclrtUtilizationInfo;
static_assert(sizeof(aclrtUtilizationInfo) == 24 && offsetof(aclrtUtilizationInfo, utilizationExtend) == 16);

// ---- A.2 / A.3 / A.4 ACL exports of the fake libascendcl.so
aclError aclInit(const char* configPath);
aclError aclFinalize(void);
aclError aclrtSetDevice(int32_t deviceId);
aclError aclrtGetDevice(int32_t* deviceId);
aclError aclrtResetDevice(int32_t deviceId);
aclError aclrtGetDeviceCount(uint32_t* count);
aclError aclrtGetDeviceUtilizationRate(int32_t deviceId, aclrtUtilizationInfo* utilizationInfo);
aclError aclrtMalloc(void** devPtr, size_t size, aclrtMemMallocPolicy policy);
aclError aclrtMallocAlign32(void** devPtr, size_t size, aclrtMemMallocPolicy policy);
aclError aclrtMallocCached(void** devPtr, size_t size, aclrtMemMallocPolicy policy);
aclError aclrtMallocWithCfg(void** devPtr, size_t size, aclrtMemMallocPolicy policy, aclrtMallocConfig* cfg);
aclError aclrtFree(void* devPtr);
aclError aclrtMallocHost(void** hostPtr, size_t size);
aclError aclrtFreeHost(void* hostPtr);
aclError aclrtGetMemInfo(aclrtMemAttr attr, size_t* free, size_t* total);
aclError aclrtReserveMemAddress(void** virPtr, size_t size, size_t alignment, void* expectPtr, uint64_t flags);
aclError aclrtReleaseMemAddress(void* virPtr);
aclError aclrtMallocPhysical(aclrtDrvMemHandle* handle, size_t size, const aclrtPhysicalMemProp* prop,
                             uint64_t flags);
aclError aclrtFreePhysical(aclrtDrvMemHandle handle);
aclError aclrtMapMem(void* virPtr, size_t size, size_t offset, aclrtDrvMemHandle handle, uint64_t flags);
aclError aclrtUnmapMem(void* virPtr);
aclError aclrtLaunchKernel(aclrtFuncHandle funcHandle, uint32_t blockDim, const void* argsData, size_t argsSize,
                           aclrtStream stream);
aclError aclmdlExecute(uint32_t modelId, const aclmdlDataset* input, aclmdlDataset* output);
aclError aclmdlExecuteAsync(uint32_t modelId, const aclmdlDataset* input, aclmdlDataset* output, aclrtStream stream);
aclError aclrtLaunchKernelWithConfig(aclrtFuncHandle funcHandle, uint32_t numBlocks, aclrtStream stream,
                                     aclrtLaunchKernelCfg* cfg, aclrtArgsHandle argsHandle, void* reserve);
aclError aclopExecute(const char* opType, int numInputs, const aclTensorDesc* const inputDesc[],
                      const aclDataBuffer* const inputs[], int numOutputs, const aclTensorDesc* const outputDesc[],
                      aclDataBuffer* const outputs[], const aclopAttr* attr, aclrtStream stream);
aclError aclopExecuteV2(const char* opType, int numInputs, aclTensorDesc* inputDesc[], aclDataBuffer* inputs[],
                        int numOutputs, aclTensorDesc* outputDesc[], aclDataBuffer* outputs[], aclopAttr* attr,
                        aclrtStream stream);
aclError aclopCompileAndExecute(const char* opType, int numInputs, const aclTensorDesc* const inputDesc[],
                                const aclDataBuffer* const inputs[], int numOutputs,
                                const aclTensorDesc* const outputDesc[], aclDataBuffer* const outputs[],
                                const aclopAttr* attr, aclopEngineType engineType, aclopCompileType compileFlag,
                                const char* opPath, aclrtStream stream);
aclError aclopCompileAndExecuteV2(const char* opType, int numInputs, aclTensorDesc* inputDesc[], aclDataBuffer* inputs[],
                                  int numOutputs, aclTensorDesc* outputDesc[], aclDataBuffer* outputs[],
                                  aclopAttr* attr, aclopEngineType engineType, aclopCompileType compileFlag,
                                  const char* opPath, aclrtStream stream);
aclError aclrtCreateStream(aclrtStream* stream);
aclError aclrtDestroyStream(aclrtStream stream);
aclError aclrtSynchronizeStream(aclrtStream stream);
aclError aclrtCreateEvent(aclrtEvent* event);
aclError aclrtRecordEvent(aclrtEvent event, aclrtStream stream);
aclError aclrtQueryEventStatus(aclrtEvent event, aclrtEventRecordedStatus* status);
aclError aclrtSynchronizeEvent(aclrtEvent event);
aclError aclrtEventElapsedTime(float* ms, aclrtEvent startEvent, aclrtEvent endEvent);
aclError aclrtDestroyEvent(aclrtEvent event);

// ---- A.2c rt exports of the fake libruntime.so
rtError_t rtMalloc(void** devPtr, uint64_t size, rtMemType_t type, const uint16_t moduleId);
rtError_t rtMallocCached(void** devPtr, uint64_t size, rtMemType_t type, const uint16_t moduleId);
rtError_t rtFree(void* devPtr);
rtError_t rtDvppMalloc(void** devPtr, uint64_t size, const uint16_t moduleId);
rtError_t rtDvppFree(void* devPtr);
rtError_t rtMallocHost(void** hostPtr, uint64_t size, const uint16_t moduleId);
rtError_t rtFreeHost(void* hostPtr);
rtError_t rtMemGetInfo(size_t* freeSize, size_t* totalSize);
rtError_t rtMemGetInfoEx(rtMemInfoType_t memInfoType, size_t* freeSize, size_t* totalSize);
rtError_t rtReserveMemAddress(void** devPtr, size_t size, size_t alignment, void* devAddr, uint64_t flags);
rtError_t rtReleaseMemAddress(void* devPtr);
rtError_t rtMallocPhysical(rtDrvMemHandle* handle, size_t size, rtDrvMemProp_t* prop, uint64_t flags);
rtError_t rtFreePhysical(rtDrvMemHandle handle);
rtError_t rtMapMem(void* devPtr, size_t size, size_t offset, rtDrvMemHandle handle, uint64_t flags);
rtError_t rtUnmapMem(void* devPtr);
rtError_t rtSetDevice(int32_t devId);
rtError_t rtGetDevice(int32_t* devId);
rtError_t rtGetDeviceCount(int32_t* cnt);
rtError_t rtDeviceReset(int32_t devId);
rtError_t rtKernelLaunchWithHandleV2(void* hdl, const uint64_t tilingKey, uint32_t numBlocks, rtArgsEx_t* argsInfo,
                                     rtSmDesc_t* smDesc, rtStream_t stm, const rtTaskCfgInfo_t* cfgInfo);
rtError_t rtKernelLaunchWithFlagV2(const void* stubFunc, uint32_t numBlocks, rtArgsEx_t* argsInfo,
                                   rtSmDesc_t* smDesc, rtStream_t stm, uint32_t flags,
                                   const rtTaskCfgInfo_t* cfgInfo);
rtError_t rtModelExecute(rtModel_t mdl, rtStream_t stm, uint32_t flag);
rtError_t rtKernelLaunch(const void* stubFunc, uint32_t numBlocks, void* args, uint32_t argsSize, rtSmDesc_t* smDesc,
                         rtStream_t stm);
rtError_t rtKernelLaunchWithFlag(const void* stubFunc, uint32_t numBlocks, rtArgsEx_t* argsInfo, rtSmDesc_t* smDesc,
                                 rtStream_t stm, uint32_t flags);
rtError_t rtKernelLaunchWithHandle(void* hdl, const uint64_t tilingKey, uint32_t numBlocks, rtArgsEx_t* argsInfo,
                                   rtSmDesc_t* smDesc, rtStream_t stm, const void* kernelInfo);
rtError_t rtLaunchKernelByFuncHandle(rtFuncHandle funcHandle, uint32_t numBlocks, rtLaunchArgsHandle argsHandle,
                                     rtStream_t stm);
rtError_t rtLaunchKernelByFuncHandleV2(rtFuncHandle funcHandle, uint32_t numBlocks, rtLaunchArgsHandle argsHandle,
                                       rtStream_t stm, const rtTaskCfgInfo_t* cfgInfo);
rtError_t rtLaunchKernelByFuncHandleV3(rtFuncHandle funcHandle, uint32_t numBlocks, const rtArgsEx_t* argsInfo,
                                       rtStream_t stm, const rtTaskCfgInfo_t* cfgInfo);
rtError_t rtStreamSynchronize(rtStream_t stm);
rtError_t rtEventRecord(rtEvent_t evt, rtStream_t stm);

// ---- fake-only exports of the fake libruntime.so (the `tsfake_rt_*` ones are what the fake
// libascendcl.so's stream, event and launch calls use; no real rt function is implied)
void tsfake_set_kernel_us(unsigned int us);  // also exported by the fake libascendcl.so
unsigned long long tsfake_last_kernel_start_ns(void);
unsigned long long tsfake_last_kernel_end_ns(void);
int tsfake_busy_ns(unsigned int dev, int pid, unsigned long long from_ns, unsigned long long to_ns,
                   unsigned long long* out);
void tsfake_rt_set_kernel_us(unsigned int us);
rtError_t tsfake_rt_submit(rtStream_t stm);
rtError_t tsfake_rt_stream_create(rtStream_t* stm);
rtError_t tsfake_rt_stream_destroy(rtStream_t stm);
rtError_t tsfake_rt_event_create(rtEvent_t* evt);
rtError_t tsfake_rt_event_destroy(rtEvent_t evt);
rtError_t tsfake_rt_event_status(rtEvent_t evt, int* complete);
rtError_t tsfake_rt_event_synchronize(rtEvent_t evt);
rtError_t tsfake_rt_event_elapsed(float* ms, rtEvent_t start, rtEvent_t end);

}  // extern "C"
