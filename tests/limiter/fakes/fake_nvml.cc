// A fake libnvidia-ml.so.1 for the limiter's preload tests (shared/CUDA-ABI.md B.1): device
// handles, UUIDs and memory information read from the shared fake state (fake_state.h):
// used = the fake driver's outstanding bytes on the device, free = total - used, reserved = 0;
// utilisation from the devices' execution timeline (fake_state.h):
//   - nvmlDeviceGetProcessUtilization: one sample per process with device time in the window
//     (lastSeenTimeStamp, now], at most 1 s back, the last 20 ms when lastSeenTimeStamp is 0 or
//     later than that; smUtil = busy / window in percent (rounded), timeStamp = now in
//     microseconds of CLOCK_MONOTONIC (the timeline's clock), the other fields 0. A NULL buffer
//     or a short one: NVML_ERROR_INSUFFICIENT_SIZE with the number of samples in *count (as the
//     real library answers pynvml's size query); no process in the window: NVML_ERROR_NOT_FOUND;
//   - nvmlDeviceGetUtilizationRates: gpu = the device's busy time over the last 100 ms, memory 0.
#include <string.h>

#include <atomic>

#include "tests/limiter/abi/cuda_abi.h"
#include "tests/limiter/fakes/fake_state.h"

#define FAKE_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

using namespace tideslice::fake;

struct NvmlDevice {
  int index;
};

NvmlDevice g_devices[kFakeMaxDevices] = {{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}};
std::atomic<int> g_init_count{0};

FakeState* State() { return FakeProcessState(); }
unsigned Count() { return State()->device_count; }

NvmlDevice* Dev(nvmlDevice_t d) {
  auto* p = reinterpret_cast<NvmlDevice*>(d);
  if (p < &g_devices[0] || p >= &g_devices[0] + Count()) return nullptr;
  return p;
}

bool Ready() { return g_init_count.load() > 0; }

void Memory(int index, unsigned long long* total, unsigned long long* free_bytes, unsigned long long* used) {
  const FakeDevice& d = State()->devices[index];
  int64_t out = d.outstanding_bytes.load();
  if (out < 0) out = 0;
  *total = d.total_bytes;
  *used = static_cast<unsigned long long>(out);
  *free_bytes = *used >= *total ? 0 : *total - *used;
}

}  // namespace

FAKE_EXPORT nvmlReturn_t nvmlInit_v2(void) {
  g_init_count.fetch_add(1);
  return NVML_SUCCESS;
}
FAKE_EXPORT nvmlReturn_t nvmlInit(void) { return nvmlInit_v2(); }
FAKE_EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
  if (flags & ~7u) return NVML_ERROR_INVALID_ARGUMENT;
  return nvmlInit_v2();
}

FAKE_EXPORT nvmlReturn_t nvmlShutdown(void) {
  int c = g_init_count.load();
  while (c > 0 && !g_init_count.compare_exchange_weak(c, c - 1)) {
  }
  return c > 0 ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
}

FAKE_EXPORT const char* nvmlErrorString(nvmlReturn_t r) {
  switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Argument version mismatch";
    default: return "Unknown Error";
  }
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int* count) {
  if (!Ready()) return NVML_ERROR_UNINITIALIZED;
  if (!count) return NVML_ERROR_INVALID_ARGUMENT;
  *count = Count();
  return NVML_SUCCESS;
}
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetCount(unsigned int* count) { return nvmlDeviceGetCount_v2(count); }

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t* device) {
  if (!Ready()) return NVML_ERROR_UNINITIALIZED;
  if (!device || index >= Count()) return NVML_ERROR_INVALID_ARGUMENT;
  *device = reinterpret_cast<nvmlDevice_t>(&g_devices[index]);
  return NVML_SUCCESS;
}
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t* device) {
  return nvmlDeviceGetHandleByIndex_v2(index, device);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetHandleByUUID(const char* uuid, nvmlDevice_t* device) {
  if (!Ready()) return NVML_ERROR_UNINITIALIZED;
  if (!uuid || !device) return NVML_ERROR_INVALID_ARGUMENT;
  for (unsigned i = 0; i < Count(); ++i) {
    if (strcmp(State()->devices[i].uuid, uuid) == 0) {
      *device = reinterpret_cast<nvmlDevice_t>(&g_devices[i]);
      return NVML_SUCCESS;
    }
  }
  return NVML_ERROR_NOT_FOUND;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char* uuid, unsigned int length) {
  if (!Ready()) return NVML_ERROR_UNINITIALIZED;
  NvmlDevice* d = Dev(device);
  if (!d || !uuid) return NVML_ERROR_INVALID_ARGUMENT;
  const char* u = State()->devices[d->index].uuid;
  if (strlen(u) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
  memcpy(uuid, u, strlen(u) + 1);
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char* name, unsigned int length) {
  if (!Ready()) return NVML_ERROR_UNINITIALIZED;
  NvmlDevice* d = Dev(device);
  if (!d || !name) return NVML_ERROR_INVALID_ARGUMENT;
  const char* n = "NVIDIA H100 80GB HBM3";
  if (strlen(n) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
  memcpy(name, n, strlen(n) + 1);
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t* memory) {
  if (!Ready()) return NVML_ERROR_UNINITIALIZED;
  NvmlDevice* d = Dev(device);
  if (!d || !memory) return NVML_ERROR_INVALID_ARGUMENT;
  Memory(d->index, &memory->total, &memory->free, &memory->used);
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t* utilization) {
  if (!Ready()) return NVML_ERROR_UNINITIALIZED;
  NvmlDevice* d = Dev(device);
  if (!d || !utilization) return NVML_ERROR_INVALID_ARGUMENT;
  constexpr int64_t kWindow = 100000000;
  const int64_t now = FakeNowNs();
  uint64_t busy = 0;
  FakeBusyNs(State(), d->index, -1, now - kWindow, now, &busy);
  utilization->gpu = static_cast<unsigned>((busy * 100 + kWindow / 2) / kWindow);
  utilization->memory = 0;
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device, nvmlProcessUtilizationSample_t* utilization,
                                                         unsigned int* processSamplesCount,
                                                         unsigned long long lastSeenTimeStamp) {
  if (!Ready()) return NVML_ERROR_UNINITIALIZED;
  NvmlDevice* d = Dev(device);
  if (!d || !processSamplesCount) return NVML_ERROR_INVALID_ARGUMENT;
  const int64_t now = FakeNowNs();
  FakeUtilSample samples[kFakeMaxProcs];
  int needed = 0;
  int n = FakeProcessUtilization(State(), d->index, lastSeenTimeStamp, now, samples, kFakeMaxProcs, &needed);
  if (needed == 0) {
    *processSamplesCount = 0;
    return NVML_ERROR_NOT_FOUND;
  }
  if (!utilization || *processSamplesCount < static_cast<unsigned>(needed)) {
    *processSamplesCount = static_cast<unsigned>(needed);
    return NVML_ERROR_INSUFFICIENT_SIZE;
  }
  for (int i = 0; i < n; ++i) {
    utilization[i] = nvmlProcessUtilizationSample_t{};
    utilization[i].pid = static_cast<unsigned>(samples[i].pid);
    utilization[i].timeStamp = static_cast<unsigned long long>(now / 1000);
    utilization[i].smUtil = samples[i].sm_percent;
  }
  *processSamplesCount = static_cast<unsigned>(n);
  return NVML_SUCCESS;
}

FAKE_EXPORT int tsfake_busy_ns(unsigned int dev, int pid, unsigned long long from_ns, unsigned long long to_ns,
                               unsigned long long* out) {
  if (!out) return -1;
  uint64_t busy = 0;
  int r = FakeBusyNs(State(), static_cast<int>(dev), pid == 0 ? static_cast<int32_t>(getpid()) : pid,
                     static_cast<int64_t>(from_ns), static_cast<int64_t>(to_ns), &busy);
  *out = busy;
  return r;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t* memory) {
  if (!Ready()) return NVML_ERROR_UNINITIALIZED;
  NvmlDevice* d = Dev(device);
  if (!d || !memory) return NVML_ERROR_INVALID_ARGUMENT;
  if (memory->version != nvmlMemory_v2) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  Memory(d->index, &memory->total, &memory->free, &memory->used);
  memory->reserved = 0;
  return NVML_SUCCESS;
}
