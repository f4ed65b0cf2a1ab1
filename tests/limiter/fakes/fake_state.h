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
//     (FakeStateReapDeadProcesses);
//   - engines[d] / timelines[]: the execution timeline of each device (compute): one execution
//     engine per device runs kernels one at a time in launch order (FIFO across every process
//     and stream): a kernel of duration D launched at time `now` on a stream whose previous work
//     ends at `after` starts at max(now, engine free, after) and ends D later. Every kernel is
//     kept in the device's ring, and every process's kernels in its own ring (adjacent intervals
//     of one process merged), with cumulative busy time, so the busy time of a process or of the
//     whole device over any recent window is known exactly (FakeBusyNs). All of it changes under
//     one lock in the file (timeline_lock, owned by a thread id, taken over from a dead owner).
// Without TIDESLICE_FAKE_STATE a fake uses process-private zeroed state with defaults.
// Times are CLOCK_MONOTONIC nanoseconds (host-wide, like the limiter's coordination files).
//
// Header-only, C++20, no dependency beyond libc/libstdc++ headers.
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <string>

namespace tideslice::fake {

inline constexpr uint64_t kFakeStateMagic = 0x54534641'4B455354ull;  // "TSFAKEST"
inline constexpr uint32_t kFakeStateVersion = 2;
inline constexpr int kFakeMaxDevices = 8;
inline constexpr int kFakeMaxProcs = 64;
inline constexpr const char* kFakeStateEnv = "TIDESLICE_FAKE_STATE";
inline constexpr int kFakeDeviceRing = 8192;  // kernels kept per device
inline constexpr int kFakeProcRing = 8192;    // (merged) intervals kept per process
inline constexpr uint64_t kFakeDefaultKernelNs = 100000;  // a kernel of unknown length: 100 us

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

// One kernel on a device's engine: [start_ns, end_ns), launched by `pid`.
struct FakeKernel {
  int64_t start_ns;
  int64_t end_ns;
  int32_t pid;
  uint32_t reserved;
};

// One busy interval of a process on `device` (adjacent kernels of the process merged).
struct FakeSpan {
  int64_t start_ns;
  int64_t end_ns;
  int32_t device;
  uint32_t reserved;
};

// A device's execution engine. Written under FakeState::timeline_lock.
struct FakeEngine {
  std::atomic<int64_t> engine_free_at_ns;  // when the last kernel queued on the engine ends
  int64_t busy_ns;                         // sum of every kernel's duration, cumulative
  int64_t first_start_ns;                  // 0 = no kernel yet
  uint64_t kernels;                        // kernels run (zero-length ones included)
  uint64_t ring_count;                     // kernels ever put in the ring (kernel_ring)
  uint64_t reserved[3];
};

// A process's use of the devices. Kept after the process exits (so that its busy time can be
// read afterwards) until the slot is needed for another process. Written under the lock.
struct FakeTimeline {
  std::atomic<int32_t> pid;                // 0 = never used
  int32_t reserved0;
  int64_t last_activity_ns;
  int64_t busy_ns[kFakeMaxDevices];        // cumulative
  int64_t first_start_ns[kFakeMaxDevices]; // 0 = none
  int64_t last_end_ns[kFakeMaxDevices];
  uint64_t kernels[kFakeMaxDevices];
  uint64_t ring_count;                     // spans ever appended to span_ring
};

struct FakeState {
  uint64_t magic;
  uint32_t version;
  uint32_t device_count;
  uint64_t context_bytes;              // charged per process and device at its first context
  uint64_t reserved0[5];
  FakeDevice devices[kFakeMaxDevices];
  FakeProc procs[kFakeMaxProcs];
  // ---- the execution timeline
  std::atomic<int32_t> timeline_lock;      // 0 = free, else the owning thread's id
  int32_t reserved1[15];
  FakeEngine engines[kFakeMaxDevices];
  FakeTimeline timelines[kFakeMaxProcs];
  // The rings (large; left untouched, i.e. unallocated in the file, until used).
  FakeKernel kernel_ring[kFakeMaxDevices][kFakeDeviceRing];
  FakeSpan span_ring[kFakeMaxProcs][kFakeProcRing];
};

static_assert(std::atomic<int64_t>::is_always_lock_free && std::atomic<int32_t>::is_always_lock_free);
static_assert(sizeof(FakeKernel) == 24 && sizeof(FakeSpan) == 24);

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

// `s` must be zero-filled already (a fresh file or anonymous mapping): only what precedes the
// rings is written, so that the rings take no space until they are used.
inline void FakeStateInit(FakeState* s, uint32_t device_count, uint64_t total_bytes_per_device,
                          uint64_t context_bytes) {
  memset(static_cast<void*>(s), 0, offsetof(FakeState, kernel_ring));
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


// ================================================================ the execution timeline

inline int64_t FakeNowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Sleeps until CLOCK_MONOTONIC reaches `t_ns` (returns at once if it has).
inline void FakeSleepUntil(int64_t t_ns) {
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(t_ns / 1000000000);
  ts.tv_nsec = static_cast<long>(t_ns % 1000000000);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

inline int32_t FakeThreadId() { return static_cast<int32_t>(syscall(SYS_gettid)); }

// The timeline lock: a spin lock owned by a thread id. A holder that died inside (SIGKILL) is
// noticed by its waiters (kill(tid, 0) fails with ESRCH once it has been reaped) and replaced.
inline void FakeTimelineLock(FakeState* s) {
  const int32_t me = FakeThreadId();
  for (unsigned spins = 0;; ++spins) {
    int32_t owner = 0;
    if (s->timeline_lock.compare_exchange_weak(owner, me, std::memory_order_acquire)) return;
    if (spins < 64) continue;
    sched_yield();
    if (spins % 4096 == 0 && owner != 0 && kill(owner, 0) != 0 && errno == ESRCH)
      s->timeline_lock.compare_exchange_strong(owner, me, std::memory_order_acquire);
    if (s->timeline_lock.load(std::memory_order_relaxed) == me) return;
  }
}

inline void FakeTimelineUnlock(FakeState* s) { s->timeline_lock.store(0, std::memory_order_release); }

struct FakeTimelineGuard {
  explicit FakeTimelineGuard(FakeState* st) : s(st) { FakeTimelineLock(s); }
  ~FakeTimelineGuard() { FakeTimelineUnlock(s); }
  FakeTimelineGuard(const FakeTimelineGuard&) = delete;
  FakeTimelineGuard& operator=(const FakeTimelineGuard&) = delete;
  FakeState* s;
};

inline bool FakeProcessExists(int32_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH); }

// The timeline slot of `pid`; with `claim`, a new one if it has none: a never-used slot, else
// the least recently active slot of a process that no longer exists. Caller holds the lock.
inline FakeTimeline* FakeTimelineOf(FakeState* s, int32_t pid, bool claim) {
  for (auto& t : s->timelines)
    if (t.pid.load(std::memory_order_relaxed) == pid) return &t;
  if (!claim) return nullptr;
  FakeTimeline* slot = nullptr;
  for (auto& t : s->timelines)
    if (t.pid.load(std::memory_order_relaxed) == 0) {
      slot = &t;
      break;
    }
  if (!slot)
    for (auto& t : s->timelines)
      if (!FakeProcessExists(t.pid.load(std::memory_order_relaxed)) &&
          (!slot || t.last_activity_ns < slot->last_activity_ns))
        slot = &t;
  if (!slot) return nullptr;
  for (int d = 0; d < kFakeMaxDevices; ++d)
    slot->busy_ns[d] = slot->first_start_ns[d] = slot->last_end_ns[d] = 0, slot->kernels[d] = 0;
  slot->ring_count = 0;
  slot->last_activity_ns = 0;
  slot->pid.store(pid, std::memory_order_relaxed);
  return slot;
}

inline FakeSpan* FakeSpanRing(FakeState* s, const FakeTimeline* t) { return s->span_ring[t - s->timelines]; }

// Records one kernel [start, end) of the calling process on device `dev`. Caller holds the lock.
inline void FakeRecordKernel(FakeState* s, int dev, FakeTimeline* t, int32_t pid, int64_t start, int64_t end) {
  FakeEngine& e = s->engines[dev];
  ++e.kernels;
  if (t) {
    ++t->kernels[dev];
    t->last_activity_ns = end;
  }
  if (end <= start) return;
  e.busy_ns += end - start;
  if (e.first_start_ns == 0) e.first_start_ns = start;
  s->kernel_ring[dev][e.ring_count % kFakeDeviceRing] = FakeKernel{start, end, pid, 0};
  ++e.ring_count;
  if (!t) return;
  t->busy_ns[dev] += end - start;
  if (t->first_start_ns[dev] == 0) t->first_start_ns[dev] = start;
  t->last_end_ns[dev] = end;
  FakeSpan* ring = FakeSpanRing(s, t);
  if (t->ring_count > 0) {
    FakeSpan& last = ring[(t->ring_count - 1) % kFakeProcRing];
    if (last.device == dev && last.end_ns == start) {
      last.end_ns = end;
      return;
    }
  }
  ring[t->ring_count % kFakeProcRing] = FakeSpan{start, end, dev, 0};
  ++t->ring_count;
}

struct FakeRun {
  int64_t start_ns = 0;  // the first kernel's start
  int64_t end_ns = 0;    // the last kernel's end
};

// Puts `n` kernels (durations in ns, in order) of the calling process on device `dev`'s engine,
// none starting before `after_ns` (the end of the stream's previous work): each starts at
// max(now, engine free, previous end). n == 0 gives {max(now, after), same}.
inline FakeRun FakeScheduleKernels(FakeState* s, int dev, const uint64_t* durations_ns, size_t n, int64_t after_ns) {
  FakeRun run;
  if (dev < 0 || dev >= static_cast<int>(s->device_count)) return run;
  const int32_t pid = static_cast<int32_t>(getpid());
  FakeTimelineGuard guard(s);
  const int64_t now = FakeNowNs();
  FakeEngine& e = s->engines[dev];
  int64_t t = now > after_ns ? now : after_ns;
  if (n == 0) {
    run.start_ns = run.end_ns = t;
    return run;
  }
  int64_t free_at = e.engine_free_at_ns.load(std::memory_order_relaxed);
  if (free_at > t) t = free_at;
  FakeTimeline* tl = FakeTimelineOf(s, pid, true);
  run.start_ns = t;
  for (size_t i = 0; i < n; ++i) {
    int64_t end = t + static_cast<int64_t>(durations_ns[i]);
    FakeRecordKernel(s, dev, tl, pid, t, end);
    t = end;
  }
  // Under the lock nobody else moves it, but keep it a CAS like a lock-free engine would.
  while (free_at < t && !e.engine_free_at_ns.compare_exchange_weak(free_at, t, std::memory_order_release)) {
  }
  run.end_ns = t;
  return run;
}

inline FakeRun FakeScheduleKernel(FakeState* s, int dev, uint64_t duration_ns, int64_t after_ns) {
  return FakeScheduleKernels(s, dev, &duration_ns, 1, after_ns);
}

// Busy time up to `t` of a ring of ordered, non-overlapping intervals (newest last) with
// cumulative total `cum`: cum minus what lies after t. False when the ring no longer reaches
// back far enough (the result is then an upper bound).
template <typename Entry, typename Match>
inline bool FakeBusyUpTo(const Entry* ring, int ring_size, uint64_t count, int64_t cum, int64_t first_start,
                         Match match, int64_t t, int64_t* out) {
  if (first_start == 0 || t <= first_start) {
    *out = 0;
    return true;
  }
  int64_t after = 0;
  const uint64_t stored = count < static_cast<uint64_t>(ring_size) ? count : static_cast<uint64_t>(ring_size);
  for (uint64_t i = 0; i < stored; ++i) {
    const Entry& e = ring[(count - 1 - i) % static_cast<uint64_t>(ring_size)];
    if (!match(e)) continue;
    if (e.end_ns <= t) {
      *out = cum - after;
      return true;
    }
    after += e.end_ns - (e.start_ns > t ? e.start_ns : t);
  }
  *out = cum - after > 0 ? cum - after : 0;
  return count <= static_cast<uint64_t>(ring_size);
}

// Device time on device `dev` inside [from_ns, to_ns) of process `pid` (-1: every process; a
// process the timeline does not know used none). Caller holds the lock. Returns 0 when exact,
// 1 when the rings no longer reach back to `from_ns` (*out is then a lower bound), -1 on bad
// arguments.
inline int FakeBusyLocked(FakeState* s, int dev, int32_t pid, int64_t from_ns, int64_t to_ns, uint64_t* out) {
  *out = 0;
  if (dev < 0 || dev >= static_cast<int>(s->device_count) || to_ns < from_ns) return -1;
  int64_t a = 0, b = 0;
  bool exact_a, exact_b;
  if (pid < 0) {
    const FakeEngine& e = s->engines[dev];
    auto all = [](const FakeKernel&) { return true; };
    exact_a = FakeBusyUpTo(s->kernel_ring[dev], kFakeDeviceRing, e.ring_count, e.busy_ns, e.first_start_ns, all, to_ns, &a);
    exact_b = FakeBusyUpTo(s->kernel_ring[dev], kFakeDeviceRing, e.ring_count, e.busy_ns, e.first_start_ns, all, from_ns, &b);
  } else {
    const FakeTimeline* t = pid == 0 ? nullptr : FakeTimelineOf(s, pid, false);
    if (!t) return 0;
    const FakeSpan* ring = s->span_ring[t - s->timelines];
    auto on_dev = [dev](const FakeSpan& sp) { return sp.device == dev; };
    exact_a = FakeBusyUpTo(ring, kFakeProcRing, t->ring_count, t->busy_ns[dev], t->first_start_ns[dev], on_dev, to_ns, &a);
    exact_b = FakeBusyUpTo(ring, kFakeProcRing, t->ring_count, t->busy_ns[dev], t->first_start_ns[dev], on_dev, from_ns, &b);
  }
  *out = a > b ? static_cast<uint64_t>(a - b) : 0;
  return exact_a && exact_b ? 0 : 1;
}

inline int FakeBusyNs(FakeState* s, int dev, int32_t pid, int64_t from_ns, int64_t to_ns, uint64_t* out) {
  FakeTimelineGuard guard(s);
  return FakeBusyLocked(s, dev, pid, from_ns, to_ns, out);
}

// The per-process samples of NVML's process utilisation (CUDA-ABI B.1.4) for device `dev` at
// `now_ns`: every process with device time in the window, its share of the window in percent
// (rounded). The window is (last_seen, now] but at most 1 s back, and the last 20 ms when
// last_seen is 0 or later than that. Returns the number of samples written (at most `max`);
// *needed receives how many there are.
struct FakeUtilSample {
  int32_t pid;
  uint32_t sm_percent;
};
inline int FakeProcessUtilization(FakeState* s, int dev, uint64_t last_seen_us, int64_t now_ns, FakeUtilSample* out,
                                  int max, int* needed) {
  int64_t from = static_cast<int64_t>(last_seen_us) * 1000;
  if (from < now_ns - 1000000000) from = now_ns - 1000000000;
  if (last_seen_us == 0 || from > now_ns - 20000000) from = now_ns - 20000000;
  const int64_t window = now_ns - from;
  int n = 0, written = 0;
  FakeTimelineGuard guard(s);
  for (auto& t : s->timelines) {
    int32_t pid = t.pid.load(std::memory_order_relaxed);
    if (pid <= 0 || t.first_start_ns[dev] == 0 || t.last_end_ns[dev] <= from) continue;
    uint64_t busy = 0;
    FakeBusyLocked(s, dev, pid, from, now_ns, &busy);
    if (busy == 0) continue;
    ++n;
    if (written < max) out[written++] = FakeUtilSample{pid, static_cast<uint32_t>((busy * 100 + window / 2) / window)};
  }
  *needed = n;
  return written;
}

}  // namespace tideslice::fake
