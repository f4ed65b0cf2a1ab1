#include "device-plugin/limiter/compute.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#include "device-plugin/limiter/card_coordination.h"
#include "device-plugin/limiter/hook_table.h"
#include "device-plugin/limiter/runtime.h"
#include "device-plugin/limiter/share_governor.h"
#include "device-plugin/limiter/sys.h"

namespace tideslice::limiter::compute {
namespace {

constexpr uint64_t kSamplePeriodNs = 50000000;       // measure the container's device time every 50 ms
constexpr uint64_t kContentionWindowNs = 5000000;    // a peer that launched within this is competing
constexpr int kMaxPids = 256;

// ---- the card coordination files ----

struct CardView {
  bool opened = false;
  const Roster* roster = nullptr;
  CardEntry* own = nullptr;
  const CardEntry* peers[kRosterMaxEntries] = {};
  uint64_t generation = ~0ull;
};

CardView g_views[kConfigMaxCards];
std::atomic<bool> g_view_busy[kConfigMaxCards];

void* MapFile(const char* path, size_t size, bool writable) {
  int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return nullptr;
  off_t actual = lseek(fd, 0, SEEK_END);
  void* p = actual == static_cast<off_t>(size)
                ? mmap(nullptr, size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0)
                : MAP_FAILED;
  close(fd);
  return p == MAP_FAILED ? nullptr : p;
}

// Opens (once) and refreshes (when the agent changed the roster) the coordination files of a card.
CardView* ViewOf(int card) {
  const CardLimit& c = Rt().config.cards[card];
  if (c.coordination_dir[0] == '\0') return nullptr;
  CardView& v = g_views[card];
  if (g_view_busy[card].exchange(true, std::memory_order_acquire)) return v.opened ? &v : nullptr;
  if (!v.opened) {
    v.opened = true;
    char path[400];
    snprintf(path, sizeof path, "%s/%s", c.coordination_dir, kRosterFileName);
    v.roster = static_cast<const Roster*>(MapFile(path, sizeof(Roster), false));
    snprintf(path, sizeof path, "%s/%s%u", c.coordination_dir, kEntryFilePrefix, c.coordination_slot);
    v.own = static_cast<CardEntry*>(MapFile(path, sizeof(CardEntry), true));
    if (v.roster && !RosterHeaderValid(v.roster->header)) v.roster = nullptr;
    if (v.own && !CardEntryValid(*v.own)) v.own = nullptr;
    if (!v.roster || !v.own)
      sys::Log("compute coordination files in %s are missing or invalid: this container does not yield to or "
               "see its card's other containers",
               c.coordination_dir);
  }
  if (v.roster && v.roster->header.generation != v.generation) {
    v.generation = v.roster->header.generation;
    for (uint32_t s = 0; s < kRosterMaxEntries; ++s) {
      if (s == c.coordination_slot || v.roster->slots[s].state != 1) continue;
      if (v.peers[s]) continue;  // mappings stay valid while the file exists; a reused slot is a new file
      char path[400];
      snprintf(path, sizeof path, "%s/%s%u", c.coordination_dir, kEntryFilePrefix, s);
      auto* e = static_cast<const CardEntry*>(MapFile(path, sizeof(CardEntry), false));
      v.peers[s] = e && CardEntryValid(*e) ? e : nullptr;
    }
  }
  g_view_busy[card].store(false, std::memory_order_release);
  return &v;
}

PeerView PeersOf(int card, uint64_t now) {
  PeerView view;
  CardView* v = ViewOf(card);
  if (!v || !v->roster) return view;  // unknown neighbours: assume contention, nobody to yield to
  view.contention = false;
  for (uint32_t s = 0; s < kRosterMaxEntries; ++s) {
    const CardEntry* e = v->peers[s];
    if (!e || v->roster->slots[s].state != 1) continue;
    // Competing = has work queued on the card, or launched a moment ago (its queue estimate
    // does not see the time its kernels wait behind ours): a work-conserving slice fills the
    // gaps its neighbours leave, not the time they are waiting for it.
    uint64_t queued = e->queued_until_ns.load(std::memory_order_relaxed);
    uint64_t last = e->last_launch_ns.load(std::memory_order_relaxed);
    if (queued > now || last + kContentionWindowNs > now) view.contention = true;
    if (v->roster->slots[s].workload_class == kClassInference && queued > now) view.inference_pending = true;
  }
  return view;
}

// ---- measuring the container's device time: NVML per-process utilisation ----

using NvmlInitFn = int (*)();
using NvmlHandleByUuidFn = int (*)(const char*, void**);
struct UtilSample {
  unsigned pid;
  unsigned long long time_stamp;
  unsigned sm, mem, enc, dec;
};
static_assert(sizeof(UtilSample) == 32);
using NvmlProcessUtilizationFn = int (*)(void*, UtilSample*, unsigned*, unsigned long long);

struct Nvml {
  std::atomic<int> state{0};  // 0 = not tried, 1 = loading, 2 = ready, 3 = unavailable
  NvmlProcessUtilizationFn utilization = nullptr;
  void* devices[kConfigMaxCards] = {};
  unsigned long long last_seen[kConfigMaxCards] = {};
};
Nvml g_nvml;

bool NvmlReady() {
  int s = g_nvml.state.load(std::memory_order_acquire);
  if (s == 2) return true;
  if (s == 3 || s == 1) return false;
  int expected = 0;
  if (!g_nvml.state.compare_exchange_strong(expected, 1)) return false;
  void* lib = sys::Dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  auto init = lib ? reinterpret_cast<NvmlInitFn>(sys::RealDlsym(lib, "nvmlInit_v2")) : nullptr;
  auto by_uuid = lib ? reinterpret_cast<NvmlHandleByUuidFn>(sys::RealDlsym(lib, "nvmlDeviceGetHandleByUUID")) : nullptr;
  g_nvml.utilization =
      lib ? reinterpret_cast<NvmlProcessUtilizationFn>(sys::RealDlsym(lib, "nvmlDeviceGetProcessUtilization")) : nullptr;
  bool ok = init && by_uuid && g_nvml.utilization && init() == 0;
  if (ok) {
    const Config& c = Rt().config;
    for (uint32_t i = 0; i < c.card_count; ++i)
      if (by_uuid(c.cards[i].uuid, &g_nvml.devices[i]) != 0) g_nvml.devices[i] = nullptr;
  }
  g_nvml.state.store(ok ? 2 : 3, std::memory_order_release);
  if (!ok)
    sys::Log("NVML per-process utilisation is not available: compute shares follow the limiter's own estimates");
  return ok;
}

// Device time the container's live processes used on `card` over the last `window_ns`; false
// when it cannot be measured (no NVML, no new samples, none of our processes visible).
bool MeasureBusy(int card, uint64_t window_ns, uint64_t* busy_ns) {
  if (Rt().config.vendor != Vendor::kNvidia || !NvmlReady() || !g_nvml.devices[card]) return false;
  UtilSample samples[kMaxPids];
  unsigned count = kMaxPids;
  int r = g_nvml.utilization(g_nvml.devices[card], samples, &count, g_nvml.last_seen[card]);
  if (r == 6 /* NOT_FOUND: no process used the card since */) {
    *busy_ns = 0;
    return true;
  }
  if (r != 0) return false;
  int32_t pids[kMaxPids];
  int n = Rt().ledger.LivePids(pids, kMaxPids);
  uint64_t percent_sum = 0;
  unsigned long long newest = g_nvml.last_seen[card];
  for (unsigned i = 0; i < count && i < kMaxPids; ++i) {
    if (samples[i].time_stamp > newest) newest = samples[i].time_stamp;
    for (int k = 0; k < n; ++k)
      if (static_cast<unsigned>(pids[k]) == samples[i].pid) {
        percent_sum += samples[i].sm > 100 ? 100 : samples[i].sm;
        break;
      }
  }
  g_nvml.last_seen[card] = newest;
  *busy_ns = window_ns * percent_sum / 100;
  return true;
}

// ---- per-card parameters ----

GovernorParams ParamsOf(int card) {
  const Config& c = Rt().config;
  GovernorParams p;
  p.share_permille = c.cards[card].compute_permille;
  p.work_conserving = c.work_conserving;
  p.training = c.workload_class != kClassInference;
  return p;
}

void SleepNs(uint64_t ns) {
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1000000000ull);
  ts.tv_nsec = static_cast<long>(ns % 1000000000ull);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

std::atomic<int> g_enabled{-1};

}  // namespace

bool Enabled() {
  int e = g_enabled.load(std::memory_order_relaxed);
  if (e >= 0) return e == 1;
  Runtime& rt = Rt();
  bool any = false;
  if (rt.mode == Mode::kActive)
    for (uint32_t i = 0; i < rt.config.card_count; ++i)
      any |= rt.config.cards[i].compute_permille > 0 || rt.config.cards[i].coordination_dir[0] != '\0';
  g_enabled.store(any ? 1 : 0, std::memory_order_relaxed);
  return any;
}

void BeforeLaunch(int card) {
  Runtime& rt = Rt();
  if (card < 0 || static_cast<uint32_t>(card) >= rt.config.card_count) return;
  const uint32_t book_index = rt.config.cards[card].region_card;
  const GovernorParams params = ParamsOf(card);
  uint64_t waited_budget = 0, waited_yield = 0;
  bool yielded = false;
  for (;;) {
    const uint64_t now = sys::MonotonicNs();
    CardView* view = ViewOf(card);
    CardEntry* own = view ? view->own : nullptr;
    const PeerView peers = PeersOf(card, now);
    uint64_t queued_until = own ? own->queued_until_ns.load(std::memory_order_relaxed) : 0;
    ComputeBook* book = rt.ledger.LockCompute(book_index);
    if (!book) return;  // no slot in the region: the memory side already refuses and logs
    // Measure every sample period (the first launcher to notice does it for the container).
    bool sample_due = book->sample_ns == 0 || now - book->sample_ns >= kSamplePeriodNs;
    uint64_t window = book->sample_ns ? now - book->sample_ns : 0;
    if (sample_due) book->sample_ns = now;  // claim it; measured outside the lock
    GateDecision d = AdmitLaunch(*book, params, peers, queued_until > now ? queued_until - now : 0, now);
    rt.ledger.UnlockCompute(book_index);
    if (sample_due && window > 0) {
      uint64_t busy = 0;
      if (MeasureBusy(card, window, &busy)) {
        book = rt.ledger.LockCompute(book_index);
        if (book) {
          ApplySample(*book, params, busy, sys::MonotonicNs());
          uint64_t total = book->busy_ns;
          rt.ledger.UnlockCompute(book_index);
          if (own) {
            own->busy_ns.store(total, std::memory_order_relaxed);
            own->window_share_ppm.store(busy * 1000000 / window, std::memory_order_relaxed);
          }
        }
      }
    }
    if (d.gate == Gate::kGo) {
      if (own) {
        own->last_launch_ns.store(now, std::memory_order_relaxed);
        uint64_t base = queued_until > now ? queued_until : now;
        own->queued_until_ns.store(base + d.charge_ns, std::memory_order_relaxed);
        own->launches.fetch_add(1, std::memory_order_relaxed);
        if (waited_budget) own->throttled_ns.fetch_add(waited_budget, std::memory_order_relaxed);
        if (waited_yield) own->yielded_ns.fetch_add(waited_yield, std::memory_order_relaxed);
      }
      return;
    }
    if (d.gate == Gate::kYield) {
      if (!yielded && own) own->yields.fetch_add(1, std::memory_order_relaxed);
      yielded = true;
      waited_yield += d.wait_ns;
    } else {
      waited_budget += d.wait_ns;
    }
    SleepNs(d.wait_ns);
  }
}

int CardOfCurrentAscendDevice() {
  using GetDeviceFn = int (*)(int32_t*);
  static std::atomic<void*> acl{nullptr}, rt{nullptr};
  auto a = reinterpret_cast<GetDeviceFn>(CachedRealByName(acl, Library::kAcl, "aclrtGetDevice"));
  int32_t id = 0;
  if (a && a(&id) == 0) return CardForVisibleIndex(static_cast<uint32_t>(id));
  auto r = reinterpret_cast<GetDeviceFn>(CachedRealByName(rt, Library::kAscendRuntime, "rtGetDevice"));
  if (r && r(&id) == 0) return CardForVisibleIndex(static_cast<uint32_t>(id));
  return CardForVisibleIndex(0);
}

}  // namespace tideslice::limiter::compute
