// Shared state of the fake driver libraries (libcuda.so.1, libnvidia-ml.so.1, libruntime.so,
// libascendcl.so built under tests/limiter/fakes) and of the preload-test harnesses.
//
// A fake driver keeps the device memory it has handed out in a small file mapped shared by every
// process of a test (named by env TIDESLICE_FAKE_STATE), so that the harness sees, at any moment,
// how many bytes the "hardware" really holds, whatever the limiter under test believes:
//   - devices[d].outstanding_bytes: bytes the fake currently has allocated on device d (user
//     allocations, context footprints, pool reservations), across all processes;
//   - devices[d].peak_bytes: the highest outstanding_bytes ever seen (CAS loop on every increase);
//   - procs[]: per process, the bytes it holds per device, so that the harness can give back the
//     memory of a process it SIGKILLed, as the real kernel driver does when a process dies
//     (FakeStateReapDeadProcesses).
// Without TIDESLICE_FAKE_STATE a fake uses process-private zeroed state with defaults.
//
// Header-only, C++20, no dependency beyond libc/libstdc++ headers.
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <string>

namespace tideslice::fake {

inline constexpr uint64_t kFakeStateMagic = 0x54534641'4B455354ull;  // "TSFAKEST"
inline constexpr uint32_t kFakeStateVersion = 1;
inline constexpr int kFakeMaxDevices = 8;
inline constexpr int kFakeMaxProcs = 64;
inline constexpr const char* kFakeStateEnv = "TIDESLICE_FAKE_STATE";

// Defaults of the process-private state (no TIDESLICE_FAKE_STATE).
inline constexpr uint32_t kFakeDefaultDevices = 2;
inline constexpr uint64_t kFakeDefaultTotalBytes = 16ull << 30;

struct FakeDevice {
  std::atomic<int64_t> outstanding_bytes;
  std::atomic<int64_t> peak_bytes;
  std::atomic<uint64_t> alloc_count;   // successful charges
  std::atomic<uint64_t> free_count;    // uncharges
  std::atomic<uint64_t> oom_count;     // charges refused because the device was full
  uint64_t total_bytes;
  char uuid[48];                       // "GPU-5a1ce000-0000-4000-8000-00000000000<i>"
};

struct FakeProc {
  std::atomic<int32_t> pid;            // 0 = free, -1 = being reaped
  int32_t reserved0;
  std::atomic<int64_t> bytes[kFakeMaxDevices];
};

struct FakeState {
  uint64_t magic;
  uint32_t version;
  uint32_t device_count;
  uint64_t context_bytes;              // charged per process and device at its first context
  uint64_t reserved0[5];
  FakeDevice devices[kFakeMaxDevices];
  FakeProc procs[kFakeMaxProcs];
};

static_assert(std::atomic<int64_t>::is_always_lock_free && std::atomic<int32_t>::is_always_lock_free);

// The 16 raw bytes of device i's UUID, as cuDeviceGetUuid returns them.
inline void FakeUuidBytes(int i, unsigned char out[16]) {
  static const unsigned char base[16] = {0x5a, 0x1c, 0xe0, 0x00, 0x00, 0x00, 0x40, 0x00,
                                         0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  memcpy(out, base, 16);
  out[15] = static_cast<unsigned char>(i);
}

// "GPU-" + lower-case hex of the 16 bytes grouped 4-2-2-2-6 (CUDA-ABI B.1.2).
inline std::string FormatGpuUuid(const unsigned char b[16]) {
  char s[64];
  snprintf(s, sizeof s,
           "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3],
           b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return s;
}

inline std::string FakeUuid(int i) {
  unsigned char b[16];
  FakeUuidBytes(i, b);
  return FormatGpuUuid(b);
}

inline void FakeStateInit(FakeState* s, uint32_t device_count, uint64_t total_bytes_per_device,
                          uint64_t context_bytes) {
  memset(static_cast<void*>(s), 0, sizeof(FakeState));
  if (device_count > static_cast<uint32_t>(kFakeMaxDevices)) device_count = kFakeMaxDevices;
  s->version = kFakeStateVersion;
  s->device_count = device_count;
  s->context_bytes = context_bytes;
  for (int d = 0; d < kFakeMaxDevices; ++d) {
    s->devices[d].total_bytes = total_bytes_per_device;
    std::string u = FakeUuid(d);
    snprintf(s->devices[d].uuid, sizeof s->devices[d].uuid, "%s", u.c_str());
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
  s->magic = kFakeStateMagic;
}

// Maps an existing state file read-write. nullptr if absent or not a valid state file.
inline FakeState* FakeStateOpen(const char* path) {
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return nullptr;
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size != static_cast<off_t>(sizeof(FakeState))) {
    close(fd);
    return nullptr;
  }
  void* p = mmap(nullptr, sizeof(FakeState), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return nullptr;
  auto* s = static_cast<FakeState*>(p);
  if (s->magic != kFakeStateMagic || s->version != kFakeStateVersion) {
    munmap(p, sizeof(FakeState));
    return nullptr;
  }
  return s;
}

// Creates (or truncates) and initialises the state file; returns it mapped. nullptr on error.
inline FakeState* FakeStateCreate(const char* path, uint32_t device_count, uint64_t total_bytes_per_device,
                                  uint64_t context_bytes) {
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) return nullptr;
  if (ftruncate(fd, sizeof(FakeState)) != 0) {
    close(fd);
    return nullptr;
  }
  void* p = mmap(nullptr, sizeof(FakeState), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return nullptr;
  auto* s = static_cast<FakeState*>(p);
  FakeStateInit(s, device_count, total_bytes_per_device, context_bytes);
  return s;
}

inline void FakeStateClose(FakeState* s) {
  if (s) munmap(static_cast<void*>(s), sizeof(FakeState));
}

inline void FakeUpdatePeak(FakeDevice& d, int64_t value) {
  int64_t peak = d.peak_bytes.load(std::memory_order_relaxed);
  while (value > peak && !d.peak_bytes.compare_exchange_weak(peak, value, std::memory_order_relaxed)) {
  }
}

// Takes `bytes` on device `dev` if they fit under total_bytes; records them in `proc` (may be null).
inline bool FakeCharge(FakeState* s, FakeProc* proc, int dev, int64_t bytes) {
  if (dev < 0 || dev >= static_cast<int>(s->device_count) || bytes < 0) return false;
  FakeDevice& d = s->devices[dev];
  if (bytes == 0) return true;
  int64_t cur = d.outstanding_bytes.load(std::memory_order_relaxed);
  for (;;) {
    if (cur + bytes > static_cast<int64_t>(d.total_bytes)) {
      d.oom_count.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (d.outstanding_bytes.compare_exchange_weak(cur, cur + bytes, std::memory_order_acq_rel)) break;
  }
  if (proc) proc->bytes[dev].fetch_add(bytes, std::memory_order_relaxed);
  FakeUpdatePeak(d, cur + bytes);
  d.alloc_count.fetch_add(1, std::memory_order_relaxed);
  return true;
}

inline void FakeUncharge(FakeState* s, FakeProc* proc, int dev, int64_t bytes) {
  if (dev < 0 || dev >= static_cast<int>(s->device_count) || bytes <= 0) return;
  if (proc) proc->bytes[dev].fetch_sub(bytes, std::memory_order_relaxed);
  s->devices[dev].outstanding_bytes.fetch_sub(bytes, std::memory_order_acq_rel);
  s->devices[dev].free_count.fetch_add(1, std::memory_order_relaxed);
}

// Gives back everything a process entry holds and frees the entry.
inline int64_t FakeReleaseProc(FakeState* s, FakeProc* proc) {
  int64_t total = 0;
  for (int d = 0; d < kFakeMaxDevices; ++d) {
    int64_t b = proc->bytes[d].exchange(0, std::memory_order_acq_rel);
    if (b != 0) {
      s->devices[d].outstanding_bytes.fetch_sub(b, std::memory_order_acq_rel);
      total += b;
    }
  }
  return total;
}

// The entry of the calling process: an entry already carrying this PID belongs to the image
// this process ran before an execve (the real driver frees that memory when the device files
// close on exec), so its bytes are given back first. nullptr if the table is full.
inline FakeProc* FakeClaimProc(FakeState* s) {
  int32_t me = static_cast<int32_t>(getpid());
  for (auto& p : s->procs) {
    int32_t expected = me;
    if (p.pid.load(std::memory_order_acquire) == me && p.pid.compare_exchange_strong(expected, -1)) {
      FakeReleaseProc(s, &p);
      p.pid.store(me, std::memory_order_release);
      return &p;
    }
  }
  for (auto& p : s->procs) {
    int32_t expected = 0;
    if (p.pid.compare_exchange_strong(expected, me)) {
      for (auto& b : p.bytes) b.store(0, std::memory_order_relaxed);
      return &p;
    }
  }
  return nullptr;
}

// Normal process exit: everything still held goes back and the entry is freed.
inline void FakeDropProc(FakeState* s, FakeProc* proc) {
  if (!proc) return;
  FakeReleaseProc(s, proc);
  proc->pid.store(0, std::memory_order_release);
}

// For the harness: the memory of every process that no longer exists (kill(pid,0) == ESRCH)
// goes back to its devices. Reap a SIGKILLed child only after waitpid (a zombie still exists).
// Returns the bytes given back.
inline int64_t FakeStateReapDeadProcesses(FakeState* s) {
  int64_t total = 0;
  for (auto& p : s->procs) {
    int32_t pid = p.pid.load(std::memory_order_acquire);
    if (pid <= 0) continue;
    if (kill(pid, 0) == 0 || errno != ESRCH) continue;
    if (!p.pid.compare_exchange_strong(pid, -1)) continue;
    total += FakeReleaseProc(s, &p);
    p.pid.store(0, std::memory_order_release);
  }
  return total;
}

inline int64_t FakeOutstanding(const FakeState* s, int dev) {
  return s->devices[dev].outstanding_bytes.load(std::memory_order_acquire);
}

inline int64_t FakePeak(const FakeState* s, int dev) {
  return s->devices[dev].peak_bytes.load(std::memory_order_acquire);
}

// The state every fake library of this process uses: the file named by TIDESLICE_FAKE_STATE
// or, without it, a private zeroed state with the defaults above. Never null.
inline FakeState* FakeProcessState() {
  static FakeState* state = [] {
    const char* path = getenv(kFakeStateEnv);
    if (path && *path) {
      if (FakeState* s = FakeStateOpen(path)) return s;
      fprintf(stderr, "fake-driver: cannot map %s=%s; using private defaults\n", kFakeStateEnv, path);
    }
    auto* s = static_cast<FakeState*>(mmap(nullptr, sizeof(FakeState), PROT_READ | PROT_WRITE,
                                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    FakeStateInit(s, kFakeDefaultDevices, kFakeDefaultTotalBytes, 0);
    return s;
  }();
  return state;
}

}  // namespace tideslice::fake
