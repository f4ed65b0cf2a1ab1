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

constexpr uint64_t kRosterRefreshNs = 100000000;  // re-read the roster at most every 100 ms
constexpr uint64_t kRetireAfterNs = 1000000000;   // unmap a replaced peer entry this much later
constexpr int kGraveyard = 2 * kRosterMaxEntries;

struct CardView {
  bool opened = false;
  CardEntry* own = nullptr;
  // The roster as last read (the agent replaces the file by rename, so it is re-read with pread
  // rather than mapped). Readers use the copy's plain fields; a torn read of one small field
  // between two refreshes is harmless (it decides one launch).
  Roster roster = {};
  bool roster_ok = false;
  uint64_t next_refresh_ns = 0;
  const CardEntry* peers[kRosterMaxEntries] = {};
  char peer_uid[kRosterMaxEntries][sizeof(RosterSlot::pod_uid)] = {};
  uint64_t peer_charged_at_sample[kRosterMaxEntries] = {};  // peers' charged_ns at our last sample
  // Mappings of entries whose slot was freed or changed hands: unmapped a second later, when no
  // reader can still hold them (readers hold a pointer for one PeersOf call).
  const void* retired[kGraveyard] = {};
  uint64_t retired_at[kGraveyard] = {};
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

bool ReadRoster(const char* dir, Roster* out) {
  char path[400];
  snprintf(path, sizeof path, "%s/%s", dir, kRosterFileName);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  ssize_t n = pread(fd, out, sizeof(Roster), 0);
  close(fd);
  return n == static_cast<ssize_t>(sizeof(Roster)) && RosterHeaderValid(out->header);
}

void Retire(CardView& v, const CardEntry* e, uint64_t now) {
  if (!e) return;
  for (int i = 0; i < kGraveyard; ++i)
    if (!v.retired[i]) {
      v.retired[i] = e;
      v.retired_at[i] = now;
      return;
    }
  // Graveyard full (a very busy card): keep the mapping rather than risk a reader's pointer.
}

void Refresh(int card, CardView& v, uint64_t now) {
  const CardLimit& c = Rt().config.cards[card];
  for (int i = 0; i < kGraveyard; ++i)
    if (v.retired[i] && now - v.retired_at[i] > kRetireAfterNs) {
      munmap(const_cast<void*>(v.retired[i]), sizeof(CardEntry));
      v.retired[i] = nullptr;
    }
  Roster fresh;
  if (!ReadRoster(c.coordination_dir, &fresh)) {
    v.roster_ok = false;
    return;
  }
  const bool changed = !v.roster_ok || fresh.header.generation != v.roster.header.generation;
  if (!changed) return;
  for (uint32_t s = 0; s < kRosterMaxEntries; ++s) {
    const RosterSlot& slot = fresh.slots[s];
    const bool taken = slot.state == 1 && s != c.coordination_slot;
    const bool same_owner = taken && v.peers[s] && strncmp(v.peer_uid[s], slot.pod_uid, sizeof v.peer_uid[s]) == 0;
    if (same_owner) continue;
    // Freed or handed to another container: its entry is a new file.
    Retire(v, v.peers[s], now);
    v.peers[s] = nullptr;
    v.peer_uid[s][0] = '\0';
    if (!taken) continue;
    char path[400];
    snprintf(path, sizeof path, "%s/%s%u", c.coordination_dir, kEntryFilePrefix, s);
    auto* e = static_cast<const CardEntry*>(MapFile(path, sizeof(CardEntry), false));
    if (e && !CardEntryValid(*e)) {
      munmap(const_cast<CardEntry*>(e), sizeof(CardEntry));
      e = nullptr;
    }
    v.peers[s] = e;
    memcpy(v.peer_uid[s], slot.pod_uid, sizeof v.peer_uid[s]);
    v.peer_uid[s][sizeof v.peer_uid[s] - 1] = '\0';
  }
  v.roster = fresh;
  v.roster_ok = true;
}

// Opens (once) this container's entry and keeps the roster and the peers' entries current.
CardView* ViewOf(int card, uint64_t now) {
  const CardLimit& c = Rt().config.cards[card];
  if (c.coordination_dir[0] == '\0') return nullptr;
  CardView& v = g_views[card];
  if (g_view_busy[card].exchange(true, std::memory_order_acquire)) return v.opened ? &v : nullptr;
  if (!v.opened) {
    v.opened = true;
    char path[400];
    snprintf(path, sizeof path, "%s/%s%u", c.coordination_dir, kEntryFilePrefix, c.coordination_slot);
    v.own = static_cast<CardEntry*>(MapFile(path, sizeof(CardEntry), true));
    if (v.own && !CardEntryValid(*v.own)) v.own = nullptr;
    Refresh(card, v, now);
    v.next_refresh_ns = now + kRosterRefreshNs;
    if (!v.roster_ok || !v.own)
      sys::Log("compute coordination files in %s are missing or invalid: this container does not yield to or "
               "see its card's other containers",
               c.coordination_dir);
  } else if (now >= v.next_refresh_ns) {
    Refresh(card, v, now);
    v.next_refresh_ns = now + kRosterRefreshNs;
  }
  g_view_busy[card].store(false, std::memory_order_release);
  return &v;
}

PeerView PeersOf(int card, uint64_t now) {
  PeerView view;
  CardView* v = ViewOf(card, now);
  if (!v || !v->roster_ok) return view;  // unknown neighbours: assume contention, nobody to yield to
  view.contention = false;
  for (uint32_t s = 0; s < kRosterMaxEntries; ++s) {
    const CardEntry* e = v->peers[s];
    if (!e || v->roster.slots[s].state != 1) continue;
    // Competing = has work queued on the card, or launched a moment ago (its queue estimate
    // does not see the time its kernels wait behind ours): a work-conserving slice fills the
    // gaps its neighbours leave, not the time they are waiting for it.
    uint64_t queued = e->queued_until_ns.load(std::memory_order_relaxed);
    uint64_t last = e->last_launch_ns.load(std::memory_order_relaxed);
    if (queued > now || last + kContentionWindowNs > now) view.contention = true;
    if (queued > view.queued_until_ns) view.queued_until_ns = queued;
    if (v->roster.slots[s].workload_class == kClassInference) {
      view.inference_present = true;
      if (queued > now) view.inference_pending = true;
    }
  }
  return view;
}

// Device time the card's other containers were charged since our last sample (for splitting a
// device-wide measurement); updates the reference points.
uint64_t PeersChargedSinceSample(int card) {
  CardView& v = g_views[card];
  if (!v.roster_ok) return 0;
  uint64_t sum = 0;
  for (uint32_t s = 0; s < kRosterMaxEntries; ++s) {
    const CardEntry* e = v.peers[s];
    if (!e) continue;
    uint64_t now = e->charged_ns.load(std::memory_order_relaxed);
    uint64_t before = v.peer_charged_at_sample[s];
    if (now >= before) sum += now - before;
    v.peer_charged_at_sample[s] = now;
  }
  return sum;
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
  void* utilization_rates = nullptr;  // nvmlDeviceGetUtilizationRates (device-wide), may be absent
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
  g_nvml.utilization_rates = lib ? sys::RealDlsym(lib, "nvmlDeviceGetUtilizationRates") : nullptr;
  bool ok = init && by_uuid && g_nvml.utilization && init() == 0;
  if (ok) {
    const Config& c = Rt().config;
    for (uint32_t i = 0; i < c.card_count; ++i)
      if (by_uuid(c.cards[i].uuid, &g_nvml.devices[i]) != 0) g_nvml.devices[i] = nullptr;
  }
  g_nvml.state.store(ok ? 2 : 3, std::memory_order_release);
  if (!ok)
    sys::Log("NVML is not available: compute shares follow the card's utilisation where the driver reports it, "
             "else the limiter's own estimates");
  return ok;
}

// Device time the container's live processes used on `card` over the last `window_ns`, from
// NVML's per-process utilisation; false when it cannot be measured that way (no NVML, a driver
// error, or none of the container's PIDs among the samples while the card was busy).
bool MeasureBusyPerProcess(int card, uint64_t window_ns, uint64_t* busy_ns) {
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
  bool matched = false;
  unsigned long long newest = g_nvml.last_seen[card];
  for (unsigned i = 0; i < count && i < kMaxPids; ++i) {
    if (samples[i].time_stamp > newest) newest = samples[i].time_stamp;
    for (int k = 0; k < n; ++k)
      if (static_cast<unsigned>(pids[k]) == samples[i].pid) {
        percent_sum += samples[i].sm > 100 ? 100 : samples[i].sm;
        matched = true;
        break;
      }
  }
  g_nvml.last_seen[card] = newest;
  if (!matched && count > 0) return false;  // the driver names processes we cannot recognise
  *busy_ns = window_ns * percent_sum / 100;
  return true;
}

// The card's busy fraction (0..100) over the recent past, device-wide.
using NvmlUtilizationRatesFn = int (*)(void*, unsigned*);
using AclUtilizationFn = int (*)(int32_t, void*);
struct AclUtilization {
  int32_t cube, vector, aicpu, memory;
  void* extend;
};
static_assert(sizeof(AclUtilization) == 24);

bool DeviceBusyPercent(int card, uint64_t* percent) {
  const Config& c = Rt().config;
  if (c.vendor == Vendor::kNvidia) {
    if (!NvmlReady() || !g_nvml.devices[card]) return false;
    auto f = reinterpret_cast<NvmlUtilizationRatesFn>(g_nvml.utilization_rates);
    unsigned rates[2] = {0, 0};
    if (!f || f(g_nvml.devices[card], rates) != 0) return false;
    *percent = rates[0] > 100 ? 100 : rates[0];
    return true;
  }
  static std::atomic<void*> fn{nullptr};
  auto f = reinterpret_cast<AclUtilizationFn>(
      CachedRealByName(fn, Library::kAcl, "aclrtGetDeviceUtilizationRate"));
  AclUtilization u = {};
  if (!f || f(static_cast<int32_t>(c.cards[card].visible_index), &u) != 0) return false;
  int32_t best = u.cube > u.vector ? u.cube : u.vector;
  if (best < 0) return false;  // -1: not supported on this chip
  *percent = best > 100 ? 100 : static_cast<uint64_t>(best);
  return true;
}

// The container's device time over the window: per process where the driver reports it, else
// the card's busy time split by what each container on it was charged (exact while the
// containers' per-launch expectations are right, which the loop itself keeps them).
bool MeasureBusy(int card, uint64_t window_ns, uint64_t mine_charged, uint64_t* busy_ns, bool* exact) {
  const uint64_t others = PeersChargedSinceSample(card);
  *exact = true;
  if (MeasureBusyPerProcess(card, window_ns, busy_ns)) return true;
  *exact = others == 0;  // alone on the card: the device's busy time is ours
  uint64_t percent = 0;
  if (!DeviceBusyPercent(card, &percent)) return false;
  const uint64_t device_busy = window_ns * percent / 100;
  const uint64_t total = mine_charged + others;
  *busy_ns = total ? device_busy * mine_charged / total : 0;
  return true;
}

// ---- completion events: how many of this process's launches on a card have not run yet ----

constexpr int kEventRing = 128;
struct EventRing {
  void* free_events[kEventRing] = {};
  int free_count = 0;
  void* pending[kEventRing] = {};
  int head = 0, count = 0;
  bool broken = false;  // events do not work here (another context, old driver): not used
};
EventRing g_rings[kConfigMaxCards];
std::atomic<bool> g_ring_busy[kConfigMaxCards];

// The vendor's event calls: CUDA cuEventCreate/cuEventRecord/cuEventQuery, ACL
// aclrtCreateEvent/aclrtRecordEvent/aclrtQueryEventStatus.
std::atomic<void*> g_event_create{nullptr}, g_event_record{nullptr}, g_event_query{nullptr};

bool Nvidia() { return Rt().config.vendor == Vendor::kNvidia; }

// 1 = completed, 0 = not yet, -1 = error.
int EventDone(void* e) {
  if (Nvidia()) {
    auto q = reinterpret_cast<int (*)(void*)>(CachedRealByName(g_event_query, Library::kCuda, "cuEventQuery"));
    if (!q) return -1;
    int r = q(e);
    return r == 0 ? 1 : r == 600 /* NOT_READY */ ? 0 : -1;
  }
  auto q = reinterpret_cast<int (*)(void*, int*)>(
      CachedRealByName(g_event_query, Library::kAcl, "aclrtQueryEventStatus"));
  int status = 0;
  if (!q || q(e, &status) != 0) return -1;
  return status == 1 /* ACL_EVENT_RECORDED_STATUS_COMPLETE */ ? 1 : 0;
}

void* EventCreate() {
  void* e = nullptr;
  if (Nvidia()) {
    auto f = reinterpret_cast<int (*)(void**, unsigned)>(
        CachedRealByName(g_event_create, Library::kCuda, "cuEventCreate"));
    return f && f(&e, 2 /* DISABLE_TIMING */) == 0 ? e : nullptr;
  }
  auto f = reinterpret_cast<int (*)(void**)>(CachedRealByName(g_event_create, Library::kAcl, "aclrtCreateEvent"));
  return f && f(&e) == 0 ? e : nullptr;
}

bool EventRecord(void* e, void* stream) {
  auto f = reinterpret_cast<int (*)(void*, void*)>(
      CachedRealByName(g_event_record, Nvidia() ? Library::kCuda : Library::kAcl,
                       Nvidia() ? "cuEventRecord" : "aclrtRecordEvent"));
  return f && f(e, stream) == 0;
}

void PollRing(EventRing& r) {
  while (r.count > 0) {
    void* e = r.pending[r.head];
    if (EventDone(e) == 0) break;  // completed or broken: either way no longer pending
    r.head = (r.head + 1) % kEventRing;
    --r.count;
    if (r.free_count < kEventRing) r.free_events[r.free_count++] = e;
  }
}

}  // namespace

bool PendingLaunches(int card, uint64_t* pending) {
  if (card < 0 || card >= static_cast<int>(kConfigMaxCards)) return false;
  if (g_ring_busy[card].exchange(true, std::memory_order_acquire)) return false;
  EventRing& r = g_rings[card];
  bool ok = !r.broken;
  if (ok) {
    PollRing(r);
    *pending = static_cast<uint64_t>(r.count);
  }
  g_ring_busy[card].store(false, std::memory_order_release);
  return ok;
}

void AfterLaunch(int card, void* stream) {
  if (card < 0 || card >= static_cast<int>(kConfigMaxCards)) return;
  if (Rt().config.workload_class == kClassInference) return;  // only training bounds its own queue
  if (g_ring_busy[card].exchange(true, std::memory_order_acquire)) return;
  EventRing& r = g_rings[card];
  if (!r.broken) {
    PollRing(r);
    void* e = r.free_count > 0 ? r.free_events[--r.free_count] : EventCreate();
    if (!e) {
      r.broken = true;
    } else if (r.count == kEventRing) {
      r.free_events[r.free_count++] = e;  // 128 launches queued: the bound will hold it anyway
    } else if (!EventRecord(e, stream)) {
      r.free_events[r.free_count++] = e;
      r.broken = true;  // e.g. a stream of another context: fall back to the estimate
    } else {
      r.pending[(r.head + r.count) % kEventRing] = e;
      ++r.count;
    }
  }
  g_ring_busy[card].store(false, std::memory_order_release);
}

namespace {

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
    CardView* view = ViewOf(card, now);
    CardEntry* own = view ? view->own : nullptr;
    const PeerView peers = PeersOf(card, now);
    uint64_t queued_until = own ? own->queued_until_ns.load(std::memory_order_relaxed) : 0;
    // This process's own queue: launches not yet completed (exact, from completion events),
    // else the expectation-based estimate.
    uint64_t own_queued = queued_until > now ? queued_until - now : 0;
    uint64_t pending = 0;
    const bool counted = params.training && peers.inference_present && PendingLaunches(card, &pending);
    ComputeBook* book = rt.ledger.LockCompute(book_index);
    if (!book) return;  // no slot in the region: the memory side already refuses and logs
    if (counted) own_queued = pending * (book->estimate_ns ? book->estimate_ns : params.default_estimate_ns);
    // Measure every sample period (the first launcher to notice does it for the container).
    bool sample_due = book->sample_ns == 0 || now - book->sample_ns >= kSamplePeriodNs;
    uint64_t window = book->sample_ns ? now - book->sample_ns : 0;
    uint64_t mine_charged = book->charged_since_sample;
    if (sample_due) book->sample_ns = now;  // claim it; measured outside the lock
    GateDecision d = AdmitLaunch(*book, params, peers, own_queued, now);
    rt.ledger.UnlockCompute(book_index);
    if (sample_due && window > 0) {
      uint64_t busy = 0;
      bool exact = true;
      if (!MeasureBusy(card, window, mine_charged, &busy, &exact)) {
        book = rt.ledger.LockCompute(book_index);
        if (book) {
          SkipSample(*book);
          rt.ledger.UnlockCompute(book_index);
        }
      } else {
        book = rt.ledger.LockCompute(book_index);
        if (book) {
          ApplySample(*book, params, busy, sys::MonotonicNs(), exact);
          uint64_t total = book->busy_ns;
          rt.ledger.UnlockCompute(book_index);
          if (own) {
            own->busy_ns.store(total, std::memory_order_relaxed);
            own->window_share_ppm.store(busy * 1000000 / window, std::memory_order_relaxed);
            // The queue estimate adds expectations; re-anchor it to what really ran, or a small
            // bias in the expectation (1 % is 10 ms a second at 1000 launches/s) piles up into
            // a queue that an inference burst would have to wait behind.
            const uint64_t at = sys::MonotonicNs();
            uint64_t q = own->queued_until_ns.load(std::memory_order_relaxed);
            if (q > at) {
              int64_t drift = static_cast<int64_t>(busy) - static_cast<int64_t>(mine_charged);
              int64_t corrected = static_cast<int64_t>(q) + drift;
              own->queued_until_ns.store(corrected > static_cast<int64_t>(at) ? static_cast<uint64_t>(corrected) : at,
                                         std::memory_order_relaxed);
            }
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
        own->charged_ns.fetch_add(d.charge_ns, std::memory_order_relaxed);
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
  return CardForVisibleIndex(0);  // no device set yet: ACL uses device 0
}

}  // namespace tideslice::limiter::compute
