// A fake libcuda.so.1 for the limiter's preload tests: the driver API surface a memory limiter
// interposes (shared/CUDA-ABI.md A.3/A.4), with real byte counts kept in the shared fake state
// (fake_state.h) so that the harness sees what the "hardware" holds. No kernel ever runs, but
// every launch occupies the device's execution timeline (fake_state.h) for its length.
//
// Behaviour that matters to the tests:
//   - cuInit first (else CUDA_ERROR_NOT_INITIALIZED); a child after fork starts uninitialised;
//   - the current context is per thread (a stack, as in the real driver);
//   - the first context (primary or not) on a device in a process charges the state file's
//     context_bytes, the last one to go gives them back; destroying a context frees its memory;
//   - allocations beyond the device's total return CUDA_ERROR_OUT_OF_MEMORY;
//   - the stream-ordered allocator reserves device memory in 2 MiB chunks per pool; a freed
//     block stays reserved until cuMemPoolTrimTo or a synchronisation (stream/context) trims the
//     pool down to its release threshold;
//   - freed device addresses are handed out again (the smallest freed range that is large
//     enough), as the real driver reuses addresses at once: a limiter that confuses a new
//     allocation with an old one at the same address shows up in the books;
//   - an atexit handler gives back whatever the process still holds;
//   - kernels: cuModuleGetFunction(&f, mod, "spin_<micros>") gives a function whose launches last
//     that many microseconds (any other name: 100 us); tsfake_set_kernel_us overrides it for the
//     calling thread. A launch (cuLaunchKernel, cuLaunchKernelEx, cuLaunchCooperativeKernel, their
//     _ptsz twins) is put on the device's engine after the stream's previous work; streams: the
//     legacy stream (NULL in the plain exports) waits for the context's blocking streams and they
//     for it, NULL in a _ptsz export is the thread's per-thread stream, CU_STREAM_NON_BLOCKING
//     streams wait for nobody; cuLaunchHostFunc takes no device time (its function runs on a
//     thread of its own once the stream reaches it);
//   - capture (cuStreamBeginCapture[_v2], explicit streams only) records launches into a graph
//     instead of running them; cuGraphLaunch puts the graph's kernels on the engine in order;
//   - cuStreamSynchronize / cuCtxSynchronize / cuEventSynchronize sleep until the work they wait
//     for has ended; cuStreamQuery / cuEventQuery answer CUDA_ERROR_NOT_READY until then; an
//     event's time is the end of its stream's work at record time (the record time if idle).
#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <new>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/limiter/abi/cuda_abi.h"
#include "tests/limiter/fakes/fake_state.h"

#define FAKE_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

using namespace tideslice::fake;

constexpr int kDriverVersion = 12060;
constexpr uint64_t kPoolChunk = 2ull << 20;
constexpr uint64_t kGranularity = 2ull << 20;

uint64_t RoundUp(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

struct Ctx {
  int device;
  bool primary;
  int64_t legacy_end = 0;  // end of the work queued on the context's legacy stream
  int64_t max_end = 0;     // end of all the work queued in the context
};

struct Pool {
  int device;
  bool is_default;
  uint64_t reserved = 0;
  uint64_t used = 0;
  uint64_t threshold = 0;
  uint64_t reserved_high = 0;
  uint64_t used_high = 0;
  int reuse[4] = {1, 1, 1, 1};
};

enum class Kind { kPlain, kLegacy, kPitch, kManaged, kPool };

struct Alloc {
  uint64_t bytes;
  int device;
  Ctx* ctx;  // null for pool allocations (they belong to their pool)
  Kind kind;
  Pool* pool;
  uint64_t span = 0;  // address range reserved for it (0: legacy range, never reused)
};

struct Node {
  uint64_t duration_ns;  // a kernel (fn == nullptr) or a host function (no device time)
  CUhostFn fn;
  void* user;
};

struct Graph {
  std::vector<Node> nodes;
};

struct GraphExec {
  std::vector<Node> nodes;
};

struct Stream {
  Ctx* ctx;
  unsigned flags = 0;
  int64_t last_end = 0;     // end of the work queued on the stream
  Graph* capture = nullptr;  // capturing into this graph
};

struct Event {
  unsigned flags;
  bool recorded = false;
  int64_t at_ns = 0;
};

struct VmmHandle {
  uint64_t bytes;
  int device;  // -1: host memory, not counted
  int maps = 0;
  bool released = false;
};

struct Mapping {
  uint64_t size;
  CUmemGenericAllocationHandle handle;
};

struct ArrayRec {
  uint64_t bytes;
  int device;
  Ctx* ctx;
  bool mipmapped;
};

struct Proc {
  std::mutex mu;
  std::atomic<bool> initialized{false};
  FakeProc* entry = nullptr;
  Ctx* primary[kFakeMaxDevices] = {};
  int primary_refs[kFakeMaxDevices] = {};
  int live_contexts[kFakeMaxDevices] = {};
  std::set<Ctx*> contexts;  // non-primary, alive
  std::map<CUdeviceptr, Alloc> allocs;
  std::set<Pool*> pools;
  Pool* default_pool[kFakeMaxDevices] = {};
  Pool* current_pool[kFakeMaxDevices] = {};
  std::set<Stream*> streams;
  std::map<CUmemGenericAllocationHandle, VmmHandle> vmm;
  std::map<CUdeviceptr, Mapping> mappings;
  std::map<CUdeviceptr, uint64_t> va_ranges;
  std::map<void*, ArrayRec> arrays;
  std::atomic<uint64_t> next_ptr{0x7f0000000000ull};
  std::multimap<uint64_t, CUdeviceptr> free_spans;  // span -> freed address (under mu)
  uint64_t next_legacy_ptr = 0x10000000u;  // under mu
  std::atomic<uint64_t> next_handle{0x1000};
  std::map<CUfunction, uint64_t> kernel_ns;  // function -> kernel length
  std::set<Graph*> graphs;
  std::set<GraphExec*> execs;
  std::set<Event*> events;
};

Proc* g_proc = new Proc;
thread_local std::vector<Ctx*> t_stack;
thread_local uint64_t t_kernel_override_ns = 0;
thread_local int64_t t_last_start_ns = 0, t_last_end_ns = 0;
thread_local int64_t t_per_thread_end[kFakeMaxDevices] = {};  // the per-thread default streams

FakeState* State() { return FakeProcessState(); }

// The process's entry in the state file, claimed on first use. Caller holds g_proc->mu.
FakeProc* Entry() {
  if (!g_proc->entry) g_proc->entry = FakeClaimProc(State());
  return g_proc->entry;
}

bool Charge(int dev, uint64_t bytes) { return FakeCharge(State(), Entry(), dev, static_cast<int64_t>(bytes)); }
void Uncharge(int dev, uint64_t bytes) { FakeUncharge(State(), Entry(), dev, static_cast<int64_t>(bytes)); }

int DeviceCount() { return static_cast<int>(State()->device_count); }
bool ValidDevice(int d) { return d >= 0 && d < DeviceCount(); }

void AtExit() {
  Proc* p = g_proc;
  std::lock_guard<std::mutex> lock(p->mu);
  if (p->entry) FakeDropProc(State(), p->entry);
  p->entry = nullptr;
  p->initialized = false;
}

void AtForkChild() {
  // The child starts with no CUDA state at all; the parent's bookkeeping (and possibly a held
  // mutex) is abandoned.
  g_proc = new Proc;
  t_stack.clear();
  for (auto& e : t_per_thread_end) e = 0;
  t_last_start_ns = t_last_end_ns = 0;
}

__attribute__((constructor)) void Register() {
  atexit(AtExit);
  pthread_atfork(nullptr, nullptr, AtForkChild);
}

bool Alive(Proc* p, Ctx* c) {
  if (!c) return false;
  if (c->primary) return ValidDevice(c->device) && p->primary[c->device] == c && p->primary_refs[c->device] > 0;
  return p->contexts.count(c) != 0;
}

// Caller holds p->mu.
Ctx* CurrentLocked(Proc* p) {
  if (t_stack.empty()) return nullptr;
  Ctx* c = t_stack.back();
  return Alive(p, c) ? c : nullptr;
}

void GiveAddress(Proc* p, CUdeviceptr ptr, const Alloc& a);

CUresult ContextUp(Proc* p, int dev) {
  if (p->live_contexts[dev] == 0 && State()->context_bytes > 0 && !Charge(dev, State()->context_bytes))
    return CUDA_ERROR_OUT_OF_MEMORY;
  ++p->live_contexts[dev];
  return CUDA_SUCCESS;
}

void ContextDown(Proc* p, Ctx* c) {
  // The context's memory goes with it.
  for (auto it = p->allocs.begin(); it != p->allocs.end();) {
    if (it->second.ctx == c) {
      Uncharge(it->second.device, it->second.bytes);
      GiveAddress(p, it->first, it->second);
      it = p->allocs.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = p->arrays.begin(); it != p->arrays.end();) {
    if (it->second.ctx == c) {
      Uncharge(it->second.device, it->second.bytes);
      it = p->arrays.erase(it);
    } else {
      ++it;
    }
  }
  int dev = c->device;
  if (--p->live_contexts[dev] == 0 && State()->context_bytes > 0) Uncharge(dev, State()->context_bytes);
}

// ---- device addresses. Caller holds p->mu.

CUdeviceptr TakeAddress(Proc* p, uint64_t bytes, uint64_t* span) {
  const uint64_t need = RoundUp(bytes, 4096) + 4096;
  auto it = p->free_spans.lower_bound(need);
  if (it != p->free_spans.end()) {
    *span = it->first;
    CUdeviceptr ptr = it->second;
    p->free_spans.erase(it);
    return ptr;
  }
  *span = need;
  return p->next_ptr.fetch_add(need);
}

void GiveAddress(Proc* p, CUdeviceptr ptr, const Alloc& a) {
  if (a.span) p->free_spans.emplace(a.span, ptr);
}

// ---- pools

void NotePoolHighs(Pool* pool) {
  pool->reserved_high = std::max(pool->reserved_high, pool->reserved);
  pool->used_high = std::max(pool->used_high, pool->used);
}

void TrimPool(Pool* pool, uint64_t keep) {
  if (keep >= pool->reserved) return;  // also keeps RoundUp below from overflowing
  uint64_t target = std::max(RoundUp(pool->used, kPoolChunk), RoundUp(keep, kPoolChunk));
  if (target < pool->reserved) {
    Uncharge(pool->device, pool->reserved - target);
    pool->reserved = target;
  }
}

void TrimDevicePools(Proc* p, int dev) {
  for (Pool* pool : p->pools)
    if (pool->device == dev) TrimPool(pool, pool->threshold);
}

Pool* DefaultPool(Proc* p, int dev) {
  if (!p->default_pool[dev]) {
    auto* pool = new Pool{dev, true};
    p->pools.insert(pool);
    p->default_pool[dev] = pool;
    p->current_pool[dev] = pool;
  }
  return p->default_pool[dev];
}

CUresult PoolAlloc(Proc* p, Pool* pool, CUdeviceptr* dptr, size_t bytes) {
  if (pool->reserved - pool->used < bytes) {
    uint64_t need = RoundUp(pool->used + bytes - pool->reserved, kPoolChunk);
    if (!Charge(pool->device, need)) {
      // Like the real allocator: give back what is cached, then try once more.
      TrimPool(pool, 0);
      need = RoundUp(pool->used + bytes - pool->reserved, kPoolChunk);
      if (!Charge(pool->device, need)) return CUDA_ERROR_OUT_OF_MEMORY;
    }
    pool->reserved += need;
  }
  pool->used += bytes;
  NotePoolHighs(pool);
  uint64_t span = 0;
  CUdeviceptr ptr = TakeAddress(p, bytes, &span);
  p->allocs[ptr] = Alloc{bytes, pool->device, nullptr, Kind::kPool, pool, span};
  *dptr = ptr;
  return CUDA_SUCCESS;
}

// Device of a stream argument (NULL / legacy / per-thread = the current context's). -1 = bad.
int StreamDevice(Proc* p, CUstream s, CUresult* err) {
  if (s == nullptr || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD) {
    Ctx* c = CurrentLocked(p);
    if (!c) {
      *err = CUDA_ERROR_INVALID_CONTEXT;
      return -1;
    }
    return c->device;
  }
  auto* st = reinterpret_cast<Stream*>(s);
  if (!p->streams.count(st) || !Alive(p, st->ctx)) {
    *err = CUDA_ERROR_INVALID_HANDLE;
    return -1;
  }
  return st->ctx->device;
}

// ---- the execution timeline (fake_state.h)

// Where work on a stream goes: its device and context, when the work it must follow ends, and
// where the stream keeps the end of its own work.
struct Lane {
  int device = -1;
  Ctx* ctx = nullptr;
  Stream* stream = nullptr;  // null for the legacy and per-thread streams
  int64_t* end = nullptr;
  int64_t after = 0;
  bool legacy = false;
};

// NULL is the legacy stream, or with `ptsz` (a _ptsz export) the thread's per-thread stream.
// Caller holds p->mu.
CUresult LaneOf(Proc* p, CUstream s, bool ptsz, Lane* lane) {
  if (s == nullptr) s = ptsz ? CU_STREAM_PER_THREAD : CU_STREAM_LEGACY;
  if (s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD) {
    Ctx* c = CurrentLocked(p);
    if (!c) return CUDA_ERROR_INVALID_CONTEXT;
    lane->device = c->device;
    lane->ctx = c;
    if (s == CU_STREAM_LEGACY) {
      // The legacy stream waits for every blocking stream of its context.
      lane->legacy = true;
      lane->end = &c->legacy_end;
      lane->after = c->legacy_end;
      for (Stream* st : p->streams)
        if (st->ctx == c && !(st->flags & CU_STREAM_NON_BLOCKING)) lane->after = std::max(lane->after, st->last_end);
    } else {
      lane->end = &t_per_thread_end[c->device];
      lane->after = std::max(*lane->end, c->legacy_end);
    }
    return CUDA_SUCCESS;
  }
  auto* st = reinterpret_cast<Stream*>(s);
  if (!p->streams.count(st) || !Alive(p, st->ctx)) return CUDA_ERROR_INVALID_HANDLE;
  lane->device = st->ctx->device;
  lane->ctx = st->ctx;
  lane->stream = st;
  lane->end = &st->last_end;
  lane->after = (st->flags & CU_STREAM_NON_BLOCKING) ? st->last_end : std::max(st->last_end, st->ctx->legacy_end);
  return CUDA_SUCCESS;
}

void NoteEnd(Lane& lane, int64_t end) {
  *lane.end = std::max(*lane.end, end);
  lane.ctx->max_end = std::max(lane.ctx->max_end, end);
  lane.after = std::max(lane.after, end);
}

// A host function runs, on a thread of its own, once the stream has reached it.
void RunHostFunction(int64_t at_ns, CUhostFn fn, void* user) {
  std::thread([at_ns, fn, user] {
    FakeSleepUntil(at_ns);
    fn(user);
  }).detach();
}

// Puts `nodes` on the lane in order: runs of kernels on the device's engine, host functions
// when the work before them has ended. Caller holds p->mu.
FakeRun RunNodes(Lane& lane, const std::vector<Node>& nodes) {
  FakeRun whole;
  bool first = true;
  std::vector<uint64_t> kernels;
  auto flush = [&] {
    if (kernels.empty()) return;
    FakeRun run = FakeScheduleKernels(State(), lane.device, kernels.data(), kernels.size(), lane.after);
    if (first) whole.start_ns = run.start_ns;
    first = false;
    whole.end_ns = run.end_ns;
    NoteEnd(lane, run.end_ns);
    kernels.clear();
  };
  for (const Node& n : nodes) {
    if (!n.fn) {
      kernels.push_back(n.duration_ns);
      continue;
    }
    flush();
    int64_t at = std::max(FakeNowNs(), lane.after);
    RunHostFunction(at, n.fn, n.user);
    NoteEnd(lane, at);
  }
  flush();
  return whole;
}

uint64_t KernelNs(Proc* p, CUfunction f) {
  if (t_kernel_override_ns) return t_kernel_override_ns;
  auto it = p->kernel_ns.find(f);
  return it == p->kernel_ns.end() ? kFakeDefaultKernelNs : it->second;
}

// One launch of a kernel (fn == nullptr) or host function on stream `s`.
CUresult LaunchOn(CUstream s, bool ptsz, CUfunction f, CUhostFn fn, void* user) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!f && !fn) return CUDA_ERROR_INVALID_HANDLE;
  std::lock_guard<std::mutex> lock(p->mu);
  Lane lane;
  CUresult err = LaneOf(p, s, ptsz, &lane);
  if (err != CUDA_SUCCESS) return err;
  Node node{fn ? 0 : KernelNs(p, f), fn, user};
  if (lane.stream && lane.stream->capture) {
    lane.stream->capture->nodes.push_back(node);
    return CUDA_SUCCESS;
  }
  FakeRun run = RunNodes(lane, {node});
  if (!fn) {
    t_last_start_ns = run.start_ns;
    t_last_end_ns = run.end_ns;
  }
  return CUDA_SUCCESS;
}

CUresult GraphLaunch(CUgraphExec exec, CUstream s, bool ptsz) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* ge = reinterpret_cast<GraphExec*>(exec);
  if (!p->execs.count(ge)) return CUDA_ERROR_INVALID_HANDLE;
  Lane lane;
  CUresult err = LaneOf(p, s, ptsz, &lane);
  if (err != CUDA_SUCCESS) return err;
  if (lane.stream && lane.stream->capture) {  // captured as a child graph: its nodes, inline
    auto& into = lane.stream->capture->nodes;
    into.insert(into.end(), ge->nodes.begin(), ge->nodes.end());
    return CUDA_SUCCESS;
  }
  FakeRun run = RunNodes(lane, ge->nodes);
  if (run.end_ns) {
    t_last_start_ns = run.start_ns;
    t_last_end_ns = run.end_ns;
  }
  return CUDA_SUCCESS;
}

// When the work a synchronisation on `s` waits for ends; 0 with the error when it cannot.
CUresult StreamReadyAt(CUstream s, bool ptsz, int64_t* at) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  std::lock_guard<std::mutex> lock(p->mu);
  Lane lane;
  CUresult err = LaneOf(p, s, ptsz, &lane);
  if (err != CUDA_SUCCESS) return err;
  if (lane.stream && lane.stream->capture) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  *at = lane.legacy ? lane.after : *lane.end;
  return CUDA_SUCCESS;
}

CUresult SyncStream(CUstream s, bool ptsz) {
  int64_t at = 0;
  CUresult err = StreamReadyAt(s, ptsz, &at);
  if (err != CUDA_SUCCESS) return err;
  FakeSleepUntil(at);
  Proc* p = g_proc;
  std::lock_guard<std::mutex> lock(p->mu);
  Lane lane;
  if (LaneOf(p, s, ptsz, &lane) == CUDA_SUCCESS) TrimDevicePools(p, lane.device);
  return CUDA_SUCCESS;
}

CUresult QueryStream(CUstream s, bool ptsz) {
  int64_t at = 0;
  CUresult err = StreamReadyAt(s, ptsz, &at);
  if (err != CUDA_SUCCESS) return err;
  return FakeNowNs() >= at ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

CUresult BeginCapture(CUstream s, int mode) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (mode < CU_STREAM_CAPTURE_MODE_GLOBAL || mode > CU_STREAM_CAPTURE_MODE_RELAXED) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard<std::mutex> lock(p->mu);
  if (s == nullptr || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  auto* st = reinterpret_cast<Stream*>(s);
  if (!p->streams.count(st) || !Alive(p, st->ctx)) return CUDA_ERROR_INVALID_HANDLE;
  if (st->capture) return CUDA_ERROR_ILLEGAL_STATE;
  st->capture = new Graph;
  return CUDA_SUCCESS;
}

CUresult EndCapture(CUstream s, CUgraph* graph) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!graph) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* st = reinterpret_cast<Stream*>(s);
  if (!p->streams.count(st)) return CUDA_ERROR_INVALID_HANDLE;
  if (!st->capture) return CUDA_ERROR_ILLEGAL_STATE;
  p->graphs.insert(st->capture);
  *graph = reinterpret_cast<CUgraph>(st->capture);
  st->capture = nullptr;
  return CUDA_SUCCESS;
}

CUresult IsCapturing(CUstream s, int* status) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!status) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard<std::mutex> lock(p->mu);
  Lane lane;
  CUresult err = LaneOf(p, s, false, &lane);
  if (err != CUDA_SUCCESS) return err;
  *status = lane.stream && lane.stream->capture ? CU_STREAM_CAPTURE_STATUS_ACTIVE : CU_STREAM_CAPTURE_STATUS_NONE;
  return CUDA_SUCCESS;
}

CUresult Instantiate(CUgraphExec* exec, CUgraph graph) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!exec) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* g = reinterpret_cast<Graph*>(graph);
  if (!p->graphs.count(g)) return CUDA_ERROR_INVALID_VALUE;
  auto* ge = new GraphExec{g->nodes};
  p->execs.insert(ge);
  *exec = reinterpret_cast<CUgraphExec>(ge);
  return CUDA_SUCCESS;
}

CUresult RecordEvent(CUevent ev, CUstream s, bool ptsz) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* e = reinterpret_cast<Event*>(ev);
  if (!p->events.count(e)) return CUDA_ERROR_INVALID_HANDLE;
  Lane lane;
  CUresult err = LaneOf(p, s, ptsz, &lane);
  if (err != CUDA_SUCCESS) return err;
  if (lane.stream && lane.stream->capture) return CUDA_SUCCESS;  // an event node: not modelled
  e->recorded = true;
  e->at_ns = std::max(FakeNowNs(), lane.legacy ? lane.after : *lane.end);
  return CUDA_SUCCESS;
}

// The event's time (0 = never recorded); false for an unknown event.
bool EventTime(CUevent ev, int64_t* at, unsigned* flags) {
  Proc* p = g_proc;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* e = reinterpret_cast<Event*>(ev);
  if (!p->events.count(e)) return false;
  *at = e->recorded ? e->at_ns : 0;
  if (flags) *flags = e->flags;
  return true;
}

CUresult ElapsedTime(float* ms, CUevent start, CUevent end) {
  if (!g_proc->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!ms) return CUDA_ERROR_INVALID_VALUE;
  int64_t a = 0, b = 0;
  unsigned fa = 0, fb = 0;
  if (!EventTime(start, &a, &fa) || !EventTime(end, &b, &fb)) return CUDA_ERROR_INVALID_HANDLE;
  if ((fa | fb) & CU_EVENT_DISABLE_TIMING) return CUDA_ERROR_INVALID_HANDLE;
  if (a == 0 || b == 0) return CUDA_ERROR_INVALID_HANDLE;
  int64_t now = FakeNowNs();
  if (now < a || now < b) return CUDA_ERROR_NOT_READY;
  *ms = static_cast<float>(static_cast<double>(b - a) / 1e6);
  return CUDA_SUCCESS;
}

// "spin_<micros>": a kernel of that many microseconds.
uint64_t KernelNsOfName(const char* name) {
  if (strncmp(name, "spin_", 5) == 0 && name[5] >= '0' && name[5] <= '9') {
    char* end = nullptr;
    unsigned long long us = strtoull(name + 5, &end, 10);
    if (end && *end == '\0') return us * 1000;
  }
  return kFakeDefaultKernelNs;
}

// ---- arrays (A.1.4)

// Bytes of one array level; 0 = unsupported format or empty extent.
uint64_t ArrayBytes(uint64_t w, uint64_t h, uint64_t d, int format, unsigned channels) {
  if (w == 0) return 0;
  uint64_t hh = std::max<uint64_t>(h, 1), dd = std::max<uint64_t>(d, 1);
  uint64_t elem = 0;
  switch (format) {
    case 0x01: case 0x08: elem = 1; break;
    case 0x02: case 0x09: case 0x10: elem = 2; break;
    case 0x03: case 0x0a: case 0x20: elem = 4; break;
    default: break;
  }
  if (elem) {
    if (channels != 1 && channels != 2 && channels != 4) return 0;
    return w * hh * dd * channels * elem;
  }
  uint64_t packed = 0;
  switch (format) {
    case 0xc0: case 0xc6: packed = 1; break;
    case 0xc1: case 0xc7: case 0xc3: case 0xc9: packed = 2; break;
    case 0xc2: case 0xc8: case 0xc4: case 0xca: packed = 4; break;
    case 0xc5: case 0xcb: packed = 8; break;
    default: break;
  }
  if (packed) return w * hh * dd * packed;
  uint64_t block = 0;
  switch (format) {
    case 0x91: case 0x92: case 0x97: case 0x98: block = 8; break;
    case 0x93: case 0x94: case 0x95: case 0x96: case 0x99: case 0x9a: case 0x9b: case 0x9c: case 0x9d: case 0x9e:
      block = 16;
      break;
    default: break;
  }
  if (block) return ((w + 3) / 4) * ((hh + 3) / 4) * dd * block;
  return 0;
}

CUresult CreateArray(void** out, uint64_t bytes, bool mipmapped) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  std::lock_guard<std::mutex> lock(p->mu);
  Ctx* c = CurrentLocked(p);
  if (!c) return CUDA_ERROR_INVALID_CONTEXT;
  if (bytes == 0) return CUDA_ERROR_INVALID_VALUE;
  if (!Charge(c->device, bytes)) return CUDA_ERROR_OUT_OF_MEMORY;
  void* h = reinterpret_cast<void*>(p->next_handle.fetch_add(16) << 4);
  p->arrays[h] = ArrayRec{bytes, c->device, c, mipmapped};
  *out = h;
  return CUDA_SUCCESS;
}

CUresult DestroyArray(void* h, bool mipmapped) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  std::lock_guard<std::mutex> lock(p->mu);
  auto it = p->arrays.find(h);
  if (it == p->arrays.end() || it->second.mipmapped != mipmapped) return CUDA_ERROR_INVALID_HANDLE;
  Uncharge(it->second.device, it->second.bytes);
  p->arrays.erase(it);
  return CUDA_SUCCESS;
}

// ---- plain allocations

CUresult AllocPlain(CUdeviceptr* dptr, uint64_t bytes, Kind kind) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!dptr || bytes == 0) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard<std::mutex> lock(p->mu);
  Ctx* c = CurrentLocked(p);
  if (!c) return CUDA_ERROR_INVALID_CONTEXT;
  if (!Charge(c->device, bytes)) return CUDA_ERROR_OUT_OF_MEMORY;
  CUdeviceptr ptr;
  uint64_t span = 0;
  if (kind == Kind::kLegacy) {
    // 32-bit device pointers (legacy exports) come from their own low range.
    uint64_t step = RoundUp(bytes, 4096) + 4096;
    if (p->next_legacy_ptr + step > 0xFFFFFFFFull) {
      Uncharge(c->device, bytes);
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    ptr = p->next_legacy_ptr;
    p->next_legacy_ptr += step;
  } else {
    ptr = TakeAddress(p, bytes, &span);
  }
  p->allocs[ptr] = Alloc{bytes, c->device, c, kind, nullptr, span};
  *dptr = ptr;
  return CUDA_SUCCESS;
}

CUresult FreeAny(CUdeviceptr ptr) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  std::lock_guard<std::mutex> lock(p->mu);
  auto it = p->allocs.find(ptr);
  if (it == p->allocs.end()) return CUDA_ERROR_INVALID_VALUE;
  if (it->second.kind == Kind::kPool) {
    // cuMemFree on a stream-ordered allocation: freed into its pool, then the pool is trimmed
    // (the call synchronises).
    Pool* pool = it->second.pool;
    pool->used -= it->second.bytes;
    GiveAddress(p, it->first, it->second);
    p->allocs.erase(it);
    TrimPool(pool, pool->threshold);
    return CUDA_SUCCESS;
  }
  Uncharge(it->second.device, it->second.bytes);
  GiveAddress(p, it->first, it->second);
  p->allocs.erase(it);
  return CUDA_SUCCESS;
}

CUresult AllocAsync(CUdeviceptr* dptr, size_t bytes, CUmemoryPool pool_handle, bool from_pool, CUstream s) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!dptr || bytes == 0) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard<std::mutex> lock(p->mu);
  CUresult err = CUDA_SUCCESS;
  int dev = StreamDevice(p, s, &err);
  if (dev < 0) return err;
  Pool* pool;
  if (from_pool) {
    pool = reinterpret_cast<Pool*>(pool_handle);
    if (!p->pools.count(pool)) return CUDA_ERROR_INVALID_VALUE;
  } else {
    DefaultPool(p, dev);
    pool = p->current_pool[dev];
  }
  return PoolAlloc(p, pool, dptr, bytes);
}

CUresult FreeAsync(CUdeviceptr ptr, CUstream s) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  std::lock_guard<std::mutex> lock(p->mu);
  CUresult err = CUDA_SUCCESS;
  if (StreamDevice(p, s, &err) < 0) return err;
  auto it = p->allocs.find(ptr);
  if (it == p->allocs.end()) return CUDA_ERROR_INVALID_VALUE;
  if (it->second.kind != Kind::kPool) {
    // Freeing an ordinary allocation with cuMemFreeAsync is allowed; it goes straight back.
    Uncharge(it->second.device, it->second.bytes);
    GiveAddress(p, it->first, it->second);
    p->allocs.erase(it);
    return CUDA_SUCCESS;
  }
  it->second.pool->used -= it->second.bytes;  // stays reserved in the pool
  GiveAddress(p, it->first, it->second);
  p->allocs.erase(it);
  return CUDA_SUCCESS;
}

CUresult CreateContext(CUcontext* pctx, CUdevice dev) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!pctx) return CUDA_ERROR_INVALID_VALUE;
  if (!ValidDevice(dev)) return CUDA_ERROR_INVALID_DEVICE;
  std::lock_guard<std::mutex> lock(p->mu);
  CUresult r = ContextUp(p, dev);
  if (r != CUDA_SUCCESS) return r;
  auto* c = new Ctx{dev, false};
  p->contexts.insert(c);
  t_stack.push_back(c);
  *pctx = reinterpret_cast<CUcontext>(c);
  return CUDA_SUCCESS;
}

CUresult DestroyContext(CUcontext ctx) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* c = reinterpret_cast<Ctx*>(ctx);
  if (!c || !p->contexts.count(c)) return CUDA_ERROR_INVALID_CONTEXT;
  ContextDown(p, c);
  p->contexts.erase(c);
  if (!t_stack.empty() && t_stack.back() == c) t_stack.pop_back();
  return CUDA_SUCCESS;
}

CUresult ReleasePrimary(CUdevice dev, bool reset) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!ValidDevice(dev)) return CUDA_ERROR_INVALID_DEVICE;
  std::lock_guard<std::mutex> lock(p->mu);
  if (p->primary_refs[dev] == 0) return reset ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
  if (reset || --p->primary_refs[dev] == 0) {
    ContextDown(p, p->primary[dev]);
    p->primary_refs[dev] = 0;
  }
  return CUDA_SUCCESS;
}

CUresult LegacyTotal(unsigned int* out, uint64_t v) {
  *out = static_cast<unsigned int>(std::min<uint64_t>(v, UINT_MAX));
  return CUDA_SUCCESS;
}

const char* ErrorName(CUresult e) {
  switch (e) {
    case 0: return "CUDA_SUCCESS";
    case 1: return "CUDA_ERROR_INVALID_VALUE";
    case 2: return "CUDA_ERROR_OUT_OF_MEMORY";
    case 3: return "CUDA_ERROR_NOT_INITIALIZED";
    case 4: return "CUDA_ERROR_DEINITIALIZED";
    case 100: return "CUDA_ERROR_NO_DEVICE";
    case 101: return "CUDA_ERROR_INVALID_DEVICE";
    case 201: return "CUDA_ERROR_INVALID_CONTEXT";
    case 400: return "CUDA_ERROR_INVALID_HANDLE";
    case 401: return "CUDA_ERROR_ILLEGAL_STATE";
    case 500: return "CUDA_ERROR_NOT_FOUND";
    case 600: return "CUDA_ERROR_NOT_READY";
    case 801: return "CUDA_ERROR_NOT_SUPPORTED";
    case 900: return "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED";
    case 999: return "CUDA_ERROR_UNKNOWN";
    default: return nullptr;
  }
}

const char* ErrorString(CUresult e) {
  switch (e) {
    case 0: return "no error";
    case 1: return "invalid argument";
    case 2: return "out of memory";
    case 3: return "initialization error";
    case 4: return "driver shutting down";
    case 100: return "no CUDA-capable device is detected";
    case 101: return "invalid device ordinal";
    case 201: return "invalid device context";
    case 400: return "invalid resource handle";
    case 401: return "the operation cannot be performed in the present state";
    case 500: return "named symbol not found";
    case 600: return "device not ready";
    case 801: return "operation not supported";
    case 900: return "operation not permitted when stream is capturing";
    case 999: return "unknown error";
    default: return nullptr;
  }
}

}  // namespace

// ================= exports =================

FAKE_EXPORT CUresult cuInit(unsigned int Flags) {
  if (Flags != 0) return CUDA_ERROR_INVALID_VALUE;
  if (DeviceCount() == 0) return CUDA_ERROR_NO_DEVICE;
  g_proc->initialized = true;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuDriverGetVersion(int* v) {
  if (!v) return CUDA_ERROR_INVALID_VALUE;
  *v = kDriverVersion;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuGetErrorString(CUresult e, const char** s) {
  if (!s) return CUDA_ERROR_INVALID_VALUE;
  *s = ErrorString(e);
  return *s ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

FAKE_EXPORT CUresult cuGetErrorName(CUresult e, const char** s) {
  if (!s) return CUDA_ERROR_INVALID_VALUE;
  *s = ErrorName(e);
  return *s ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

FAKE_EXPORT CUresult cuDeviceGet(CUdevice* device, int ordinal) {
  if (!g_proc->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!device) return CUDA_ERROR_INVALID_VALUE;
  if (!ValidDevice(ordinal)) return CUDA_ERROR_INVALID_DEVICE;
  *device = ordinal;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuDeviceGetCount(int* count) {
  if (!g_proc->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!count) return CUDA_ERROR_INVALID_VALUE;
  *count = DeviceCount();
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuDeviceGetName(char* name, int len, CUdevice dev) {
  if (!g_proc->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!name || len <= 0) return CUDA_ERROR_INVALID_VALUE;
  if (!ValidDevice(dev)) return CUDA_ERROR_INVALID_DEVICE;
  snprintf(name, static_cast<size_t>(len), "NVIDIA H100 80GB HBM3 (TideSlice fake %d)", dev);
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuDeviceGetUuid(CUuuid* uuid, CUdevice dev) {
  if (!g_proc->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!uuid) return CUDA_ERROR_INVALID_VALUE;
  if (!ValidDevice(dev)) return CUDA_ERROR_INVALID_DEVICE;
  FakeUuidBytes(dev, reinterpret_cast<unsigned char*>(uuid->bytes));
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuDeviceGetUuid_v2(CUuuid* uuid, CUdevice dev) { return cuDeviceGetUuid(uuid, dev); }

FAKE_EXPORT CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice dev) {
  if (!g_proc->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!bytes) return CUDA_ERROR_INVALID_VALUE;
  if (!ValidDevice(dev)) return CUDA_ERROR_INVALID_DEVICE;
  *bytes = State()->devices[dev].total_bytes;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuDeviceTotalMem(unsigned int* bytes, CUdevice dev) {
  size_t v = 0;
  if (!bytes) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = cuDeviceTotalMem_v2(&v, dev);
  if (r != CUDA_SUCCESS) return r;
  return LegacyTotal(bytes, v);
}

FAKE_EXPORT CUresult cuDeviceGetAttribute(int* pi, int attrib, CUdevice dev) {
  if (!g_proc->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!pi) return CUDA_ERROR_INVALID_VALUE;
  if (!ValidDevice(dev)) return CUDA_ERROR_INVALID_DEVICE;
  if (attrib <= 0 || attrib >= 136) return CUDA_ERROR_INVALID_VALUE;
  switch (attrib) {
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *pi = 132; break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR: *pi = 2048; break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *pi = 1024; break;
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE: *pi = 32; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *pi = 9; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *pi = 0; break;
    case 20: *pi = 0; break;  // COMPUTE_MODE: DEFAULT
    default: *pi = 1; break;  // supported / present
  }
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext* pctx, CUdevice dev) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!pctx) return CUDA_ERROR_INVALID_VALUE;
  if (!ValidDevice(dev)) return CUDA_ERROR_INVALID_DEVICE;
  std::lock_guard<std::mutex> lock(p->mu);
  if (!p->primary[dev]) p->primary[dev] = new Ctx{dev, true};
  if (p->primary_refs[dev] == 0) {
    CUresult r = ContextUp(p, dev);
    if (r != CUDA_SUCCESS) return r;
  }
  ++p->primary_refs[dev];
  *pctx = reinterpret_cast<CUcontext>(p->primary[dev]);
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuDevicePrimaryCtxRelease(CUdevice dev) { return ReleasePrimary(dev, false); }
FAKE_EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) { return ReleasePrimary(dev, false); }
FAKE_EXPORT CUresult cuDevicePrimaryCtxReset(CUdevice dev) { return ReleasePrimary(dev, true); }
FAKE_EXPORT CUresult cuDevicePrimaryCtxReset_v2(CUdevice dev) { return ReleasePrimary(dev, true); }

FAKE_EXPORT CUresult cuCtxCreate_v2(CUcontext* pctx, unsigned int flags, CUdevice dev) {
  if (flags & ~0xFFu) return CUDA_ERROR_INVALID_VALUE;
  return CreateContext(pctx, dev);
}

FAKE_EXPORT CUresult cuCtxCreate_v3(CUcontext* pctx, CUexecAffinityParam* params, int numParams, unsigned int flags,
                                    CUdevice dev) {
  if (numParams < 0 || (numParams > 0 && !params) || (flags & ~0xFFu)) return CUDA_ERROR_INVALID_VALUE;
  return CreateContext(pctx, dev);
}

FAKE_EXPORT CUresult cuCtxCreate_v4(CUcontext* pctx, CUctxCreateParams* params, unsigned int flags, CUdevice dev) {
  if (flags & ~0xFFu) return CUDA_ERROR_INVALID_VALUE;
  if (params && params->numExecAffinityParams > 0 && !params->execAffinityParams) return CUDA_ERROR_INVALID_VALUE;
  return CreateContext(pctx, dev);
}

FAKE_EXPORT CUresult cuCtxDestroy_v2(CUcontext ctx) { return DestroyContext(ctx); }
FAKE_EXPORT CUresult cuCtxDestroy(CUcontext ctx) { return DestroyContext(ctx); }

FAKE_EXPORT CUresult cuCtxSetCurrent(CUcontext ctx) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* c = reinterpret_cast<Ctx*>(ctx);
  if (!c) {
    if (!t_stack.empty()) t_stack.pop_back();
    return CUDA_SUCCESS;
  }
  if (!Alive(p, c)) return CUDA_ERROR_INVALID_CONTEXT;
  if (t_stack.empty())
    t_stack.push_back(c);
  else
    t_stack.back() = c;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuCtxGetCurrent(CUcontext* pctx) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!pctx) return CUDA_ERROR_INVALID_VALUE;
  *pctx = t_stack.empty() ? nullptr : reinterpret_cast<CUcontext>(t_stack.back());
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuCtxPushCurrent_v2(CUcontext ctx) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* c = reinterpret_cast<Ctx*>(ctx);
  if (!Alive(p, c)) return CUDA_ERROR_INVALID_CONTEXT;
  t_stack.push_back(c);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuCtxPushCurrent(CUcontext ctx) { return cuCtxPushCurrent_v2(ctx); }

FAKE_EXPORT CUresult cuCtxPopCurrent_v2(CUcontext* pctx) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (t_stack.empty()) return CUDA_ERROR_INVALID_CONTEXT;
  if (pctx) *pctx = reinterpret_cast<CUcontext>(t_stack.back());
  t_stack.pop_back();
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuCtxPopCurrent(CUcontext* pctx) { return cuCtxPopCurrent_v2(pctx); }

FAKE_EXPORT CUresult cuCtxGetDevice(CUdevice* device) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!device) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard<std::mutex> lock(p->mu);
  Ctx* c = CurrentLocked(p);
  if (!c) return CUDA_ERROR_INVALID_CONTEXT;
  *device = c->device;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuCtxSynchronize(void) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  int64_t at = 0;
  {
    std::lock_guard<std::mutex> lock(p->mu);
    Ctx* c = CurrentLocked(p);
    if (!c) return CUDA_ERROR_INVALID_CONTEXT;
    at = std::max(c->max_end, t_per_thread_end[c->device]);
  }
  FakeSleepUntil(at);
  std::lock_guard<std::mutex> lock(p->mu);
  Ctx* c = CurrentLocked(p);
  if (c) TrimDevicePools(p, c->device);
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemGetInfo_v2(size_t* free_bytes, size_t* total_bytes) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!free_bytes || !total_bytes) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard<std::mutex> lock(p->mu);
  Ctx* c = CurrentLocked(p);
  if (!c) return CUDA_ERROR_INVALID_CONTEXT;
  const FakeDevice& d = State()->devices[c->device];
  int64_t out = d.outstanding_bytes.load();
  uint64_t total = d.total_bytes;
  *total_bytes = total;
  *free_bytes = out >= static_cast<int64_t>(total) ? 0 : total - static_cast<uint64_t>(std::max<int64_t>(out, 0));
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemGetInfo(unsigned int* free_bytes, unsigned int* total_bytes) {
  if (!free_bytes || !total_bytes) return CUDA_ERROR_INVALID_VALUE;
  size_t f = 0, t = 0;
  CUresult r = cuMemGetInfo_v2(&f, &t);
  if (r != CUDA_SUCCESS) return r;
  LegacyTotal(free_bytes, f);
  return LegacyTotal(total_bytes, t);
}

FAKE_EXPORT CUresult cuMemAlloc_v2(CUdeviceptr* dptr, size_t bytesize) { return AllocPlain(dptr, bytesize, Kind::kPlain); }

FAKE_EXPORT CUresult cuMemAlloc(CUdeviceptr_v1* dptr, unsigned int bytesize) {
  if (!dptr) return CUDA_ERROR_INVALID_VALUE;
  CUdeviceptr p = 0;
  CUresult r = AllocPlain(&p, bytesize, Kind::kLegacy);
  if (r == CUDA_SUCCESS) *dptr = static_cast<CUdeviceptr_v1>(p);
  return r;
}

FAKE_EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr* dptr, size_t* pPitch, size_t WidthInBytes, size_t Height,
                                        unsigned int ElementSizeBytes) {
  if (!dptr || !pPitch || WidthInBytes == 0 || Height == 0) return CUDA_ERROR_INVALID_VALUE;
  if (ElementSizeBytes != 4 && ElementSizeBytes != 8 && ElementSizeBytes != 16) return CUDA_ERROR_INVALID_VALUE;
  size_t pitch = RoundUp(WidthInBytes, 512);
  CUresult r = AllocPlain(dptr, pitch * Height, Kind::kPitch);
  if (r == CUDA_SUCCESS) *pPitch = pitch;
  return r;
}

FAKE_EXPORT CUresult cuMemAllocPitch(CUdeviceptr_v1* dptr, unsigned int* pPitch, unsigned int WidthInBytes,
                                     unsigned int Height, unsigned int ElementSizeBytes) {
  if (!dptr || !pPitch || WidthInBytes == 0 || Height == 0) return CUDA_ERROR_INVALID_VALUE;
  if (ElementSizeBytes != 4 && ElementSizeBytes != 8 && ElementSizeBytes != 16) return CUDA_ERROR_INVALID_VALUE;
  uint64_t pitch = RoundUp(WidthInBytes, 512);
  if (pitch * Height > 0xFFFFFFFFull) return CUDA_ERROR_OUT_OF_MEMORY;
  CUdeviceptr p = 0;
  CUresult r = AllocPlain(&p, pitch * Height, Kind::kLegacy);
  if (r == CUDA_SUCCESS) {
    *dptr = static_cast<CUdeviceptr_v1>(p);
    *pPitch = static_cast<unsigned int>(pitch);
  }
  return r;
}

FAKE_EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr) { return FreeAny(dptr); }
FAKE_EXPORT CUresult cuMemFree(CUdeviceptr_v1 dptr) { return FreeAny(dptr); }

FAKE_EXPORT CUresult cuMemGetAddressRange_v2(CUdeviceptr* pbase, size_t* psize, CUdeviceptr dptr) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  std::lock_guard<std::mutex> lock(p->mu);
  auto it = p->allocs.upper_bound(dptr);
  if (it == p->allocs.begin()) return CUDA_ERROR_NOT_FOUND;
  --it;
  if (dptr >= it->first + std::max<uint64_t>(it->second.bytes, 1)) return CUDA_ERROR_NOT_FOUND;
  if (pbase) *pbase = it->first;
  if (psize) *psize = it->second.bytes;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemGetAddressRange(CUdeviceptr_v1* pbase, unsigned int* psize, CUdeviceptr_v1 dptr) {
  CUdeviceptr b = 0;
  size_t s = 0;
  CUresult r = cuMemGetAddressRange_v2(&b, &s, dptr);
  if (r != CUDA_SUCCESS) return r;
  if (pbase) *pbase = static_cast<CUdeviceptr_v1>(b);
  if (psize) *psize = static_cast<unsigned int>(s);
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemAllocManaged(CUdeviceptr* dptr, size_t bytesize, unsigned int flags) {
  if (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST) return CUDA_ERROR_INVALID_VALUE;
  return AllocPlain(dptr, bytesize, Kind::kManaged);
}

FAKE_EXPORT CUresult cuMemAllocHost_v2(void** pp, size_t bytesize) {
  if (!g_proc->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!pp || bytesize == 0) return CUDA_ERROR_INVALID_VALUE;
  void* p = malloc(bytesize);
  if (!p) return CUDA_ERROR_OUT_OF_MEMORY;
  *pp = p;
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuMemAllocHost(void** pp, unsigned int bytesize) { return cuMemAllocHost_v2(pp, bytesize); }

FAKE_EXPORT CUresult cuMemFreeHost(void* p) {
  if (!g_proc->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  free(p);
  return CUDA_SUCCESS;
}

// ---- stream-ordered allocator

FAKE_EXPORT CUresult cuDeviceGetDefaultMemPool(CUmemoryPool* pool_out, CUdevice dev) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!pool_out) return CUDA_ERROR_INVALID_VALUE;
  if (!ValidDevice(dev)) return CUDA_ERROR_INVALID_DEVICE;
  std::lock_guard<std::mutex> lock(p->mu);
  *pool_out = reinterpret_cast<CUmemoryPool>(DefaultPool(p, dev));
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuDeviceGetMemPool(CUmemoryPool* pool_out, CUdevice dev) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!pool_out) return CUDA_ERROR_INVALID_VALUE;
  if (!ValidDevice(dev)) return CUDA_ERROR_INVALID_DEVICE;
  std::lock_guard<std::mutex> lock(p->mu);
  DefaultPool(p, dev);
  *pool_out = reinterpret_cast<CUmemoryPool>(p->current_pool[dev]);
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemPoolCreate(CUmemoryPool* pool, const CUmemPoolProps* props) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!pool || !props) return CUDA_ERROR_INVALID_VALUE;
  if (props->allocType != CU_MEM_ALLOCATION_TYPE_PINNED || props->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
    return CUDA_ERROR_INVALID_VALUE;
  if (!ValidDevice(props->location.id)) return CUDA_ERROR_INVALID_DEVICE;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* np = new Pool{props->location.id, false};
  p->pools.insert(np);
  *pool = reinterpret_cast<CUmemoryPool>(np);
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemPoolDestroy(CUmemoryPool pool_handle) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* pool = reinterpret_cast<Pool*>(pool_handle);
  if (!p->pools.count(pool) || pool->is_default) return CUDA_ERROR_INVALID_VALUE;
  for (auto it = p->allocs.begin(); it != p->allocs.end();) {
    if (it->second.pool == pool) {
      GiveAddress(p, it->first, it->second);
      it = p->allocs.erase(it);
    } else {
      ++it;
    }
  }
  Uncharge(pool->device, pool->reserved);
  if (p->current_pool[pool->device] == pool) p->current_pool[pool->device] = p->default_pool[pool->device];
  p->pools.erase(pool);
  delete pool;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemAllocAsync(CUdeviceptr* dptr, size_t bytesize, CUstream s) {
  return AllocAsync(dptr, bytesize, nullptr, false, s);
}
FAKE_EXPORT CUresult cuMemAllocAsync_ptsz(CUdeviceptr* dptr, size_t bytesize, CUstream s) {
  return AllocAsync(dptr, bytesize, nullptr, false, s);
}
FAKE_EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr* dptr, size_t bytesize, CUmemoryPool pool, CUstream s) {
  return AllocAsync(dptr, bytesize, pool, true, s);
}
FAKE_EXPORT CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr* dptr, size_t bytesize, CUmemoryPool pool,
                                                  CUstream s) {
  return AllocAsync(dptr, bytesize, pool, true, s);
}
FAKE_EXPORT CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream s) { return FreeAsync(dptr, s); }
FAKE_EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream s) { return FreeAsync(dptr, s); }

FAKE_EXPORT CUresult cuMemPoolTrimTo(CUmemoryPool pool_handle, size_t minBytesToKeep) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* pool = reinterpret_cast<Pool*>(pool_handle);
  if (!p->pools.count(pool)) return CUDA_ERROR_INVALID_VALUE;
  TrimPool(pool, minBytesToKeep);
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemPoolGetAttribute(CUmemoryPool pool_handle, int attr, void* value) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!value) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* pool = reinterpret_cast<Pool*>(pool_handle);
  if (!p->pools.count(pool)) return CUDA_ERROR_INVALID_VALUE;
  auto* v64 = static_cast<cuuint64_t*>(value);
  switch (attr) {
    case CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES: *static_cast<int*>(value) = pool->reuse[attr]; break;
    case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD: *v64 = pool->threshold; break;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT: *v64 = pool->reserved; break;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH: *v64 = pool->reserved_high; break;
    case CU_MEMPOOL_ATTR_USED_MEM_CURRENT: *v64 = pool->used; break;
    case CU_MEMPOOL_ATTR_USED_MEM_HIGH: *v64 = pool->used_high; break;
    default: return CUDA_ERROR_INVALID_VALUE;
  }
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemPoolSetAttribute(CUmemoryPool pool_handle, int attr, void* value) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!value) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* pool = reinterpret_cast<Pool*>(pool_handle);
  if (!p->pools.count(pool)) return CUDA_ERROR_INVALID_VALUE;
  auto v64 = *static_cast<cuuint64_t*>(value);
  switch (attr) {
    case CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES: pool->reuse[attr] = *static_cast<int*>(value); break;
    case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD: pool->threshold = v64; break;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH:
      if (v64 != 0) return CUDA_ERROR_INVALID_VALUE;
      pool->reserved_high = pool->reserved;
      break;
    case CU_MEMPOOL_ATTR_USED_MEM_HIGH:
      if (v64 != 0) return CUDA_ERROR_INVALID_VALUE;
      pool->used_high = pool->used;
      break;
    default: return CUDA_ERROR_INVALID_VALUE;
  }
  return CUDA_SUCCESS;
}

// ---- streams

FAKE_EXPORT CUresult cuStreamCreate(CUstream* phStream, unsigned int Flags) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!phStream || Flags > 1) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard<std::mutex> lock(p->mu);
  Ctx* c = CurrentLocked(p);
  if (!c) return CUDA_ERROR_INVALID_CONTEXT;
  auto* s = new Stream{c, Flags};
  p->streams.insert(s);
  *phStream = reinterpret_cast<CUstream>(s);
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuStreamDestroy_v2(CUstream hStream) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* s = reinterpret_cast<Stream*>(hStream);
  if (!p->streams.count(s)) return CUDA_ERROR_INVALID_HANDLE;
  p->streams.erase(s);
  delete s->capture;
  delete s;
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuStreamDestroy(CUstream hStream) { return cuStreamDestroy_v2(hStream); }

FAKE_EXPORT CUresult cuStreamSynchronize(CUstream hStream) { return SyncStream(hStream, false); }
FAKE_EXPORT CUresult cuStreamSynchronize_ptsz(CUstream hStream) { return SyncStream(hStream, true); }
FAKE_EXPORT CUresult cuStreamQuery(CUstream hStream) { return QueryStream(hStream, false); }
FAKE_EXPORT CUresult cuStreamQuery_ptsz(CUstream hStream) { return QueryStream(hStream, true); }

FAKE_EXPORT CUresult cuStreamIsCapturing(CUstream hStream, int* status) { return IsCapturing(hStream, status); }
FAKE_EXPORT CUresult cuStreamIsCapturing_ptsz(CUstream hStream, int* status) {
  return cuStreamIsCapturing(hStream, status);
}

// ---- virtual memory management

FAKE_EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle* handle, size_t size, const CUmemAllocationProp* prop,
                                 unsigned long long flags) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!handle || !prop || flags != 0 || size == 0 || size % kGranularity != 0) return CUDA_ERROR_INVALID_VALUE;
  if (prop->type != CU_MEM_ALLOCATION_TYPE_PINNED) return CUDA_ERROR_INVALID_VALUE;
  int device = -1;
  switch (prop->location.type) {
    case CU_MEM_LOCATION_TYPE_DEVICE:
      if (!ValidDevice(prop->location.id)) return CUDA_ERROR_INVALID_DEVICE;
      device = prop->location.id;
      break;
    case CU_MEM_LOCATION_TYPE_HOST:
    case CU_MEM_LOCATION_TYPE_HOST_NUMA:
    case 4:
      break;
    default: return CUDA_ERROR_INVALID_VALUE;
  }
  std::lock_guard<std::mutex> lock(p->mu);
  if (device >= 0 && !Charge(device, size)) return CUDA_ERROR_OUT_OF_MEMORY;
  CUmemGenericAllocationHandle h = p->next_handle.fetch_add(1);
  p->vmm[h] = VmmHandle{size, device};
  *handle = h;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle handle) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  std::lock_guard<std::mutex> lock(p->mu);
  auto it = p->vmm.find(handle);
  if (it == p->vmm.end() || it->second.released) return CUDA_ERROR_INVALID_VALUE;
  it->second.released = true;
  if (it->second.maps == 0) {
    if (it->second.device >= 0) Uncharge(it->second.device, it->second.bytes);
    p->vmm.erase(it);
  }
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemAddressReserve(CUdeviceptr* ptr, size_t size, size_t alignment, CUdeviceptr addr,
                                         unsigned long long flags) {
  (void)addr;
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!ptr || size == 0 || size % kGranularity != 0 || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  if (alignment != 0 && (alignment & (alignment - 1)) != 0) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard<std::mutex> lock(p->mu);
  uint64_t align = std::max<uint64_t>(alignment, kGranularity);
  CUdeviceptr base = RoundUp(p->next_ptr.fetch_add(size + 2 * align), align);
  p->va_ranges[base] = size;
  *ptr = base;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  std::lock_guard<std::mutex> lock(p->mu);
  auto it = p->va_ranges.find(ptr);
  if (it == p->va_ranges.end() || it->second != size) return CUDA_ERROR_INVALID_VALUE;
  p->va_ranges.erase(it);
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle,
                              unsigned long long flags) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (flags != 0 || size == 0) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard<std::mutex> lock(p->mu);
  auto h = p->vmm.find(handle);
  if (h == p->vmm.end() || h->second.released || offset + size > h->second.bytes) return CUDA_ERROR_INVALID_VALUE;
  auto r = p->va_ranges.upper_bound(ptr);
  if (r == p->va_ranges.begin()) return CUDA_ERROR_INVALID_VALUE;
  --r;
  if (ptr + size > r->first + r->second) return CUDA_ERROR_INVALID_VALUE;
  if (p->mappings.count(ptr)) return CUDA_ERROR_INVALID_VALUE;  // ALREADY_MAPPED, roughly
  p->mappings[ptr] = Mapping{size, handle};
  ++h->second.maps;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemUnmap(CUdeviceptr ptr, size_t size) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  std::lock_guard<std::mutex> lock(p->mu);
  bool any = false;
  for (auto it = p->mappings.lower_bound(ptr); it != p->mappings.end() && it->first < ptr + size;) {
    any = true;
    auto h = p->vmm.find(it->second.handle);
    if (h != p->vmm.end() && --h->second.maps == 0 && h->second.released) {
      if (h->second.device >= 0) Uncharge(h->second.device, h->second.bytes);
      p->vmm.erase(h);
    }
    it = p->mappings.erase(it);
  }
  return any ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

FAKE_EXPORT CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc* desc, size_t count) {
  (void)ptr;
  (void)size;
  if (!g_proc->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!desc || count == 0) return CUDA_ERROR_INVALID_VALUE;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemGetAllocationGranularity(size_t* granularity, const CUmemAllocationProp* prop, int option) {
  if (!g_proc->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!granularity || !prop || (option != 0 && option != 1)) return CUDA_ERROR_INVALID_VALUE;
  *granularity = kGranularity;
  return CUDA_SUCCESS;
}

// ---- arrays

FAKE_EXPORT CUresult cuArrayCreate_v2(CUarray* pHandle, const CUDA_ARRAY_DESCRIPTOR* d) {
  if (!pHandle || !d) return CUDA_ERROR_INVALID_VALUE;
  return CreateArray(reinterpret_cast<void**>(pHandle), ArrayBytes(d->Width, d->Height, 0, d->Format, d->NumChannels),
                     false);
}

FAKE_EXPORT CUresult cuArrayCreate(CUarray* pHandle, const CUDA_ARRAY_DESCRIPTOR_v1* d) {
  if (!pHandle || !d) return CUDA_ERROR_INVALID_VALUE;
  return CreateArray(reinterpret_cast<void**>(pHandle), ArrayBytes(d->Width, d->Height, 0, d->Format, d->NumChannels),
                     false);
}

FAKE_EXPORT CUresult cuArray3DCreate_v2(CUarray* pHandle, const CUDA_ARRAY3D_DESCRIPTOR* d) {
  if (!pHandle || !d) return CUDA_ERROR_INVALID_VALUE;
  return CreateArray(reinterpret_cast<void**>(pHandle),
                     ArrayBytes(d->Width, d->Height, d->Depth, d->Format, d->NumChannels), false);
}

FAKE_EXPORT CUresult cuArray3DCreate(CUarray* pHandle, const CUDA_ARRAY3D_DESCRIPTOR_v1* d) {
  if (!pHandle || !d) return CUDA_ERROR_INVALID_VALUE;
  return CreateArray(reinterpret_cast<void**>(pHandle),
                     ArrayBytes(d->Width, d->Height, d->Depth, d->Format, d->NumChannels), false);
}

FAKE_EXPORT CUresult cuArrayDestroy(CUarray hArray) { return DestroyArray(hArray, false); }

FAKE_EXPORT CUresult cuMipmappedArrayCreate(CUmipmappedArray* pHandle, const CUDA_ARRAY3D_DESCRIPTOR* d,
                                            unsigned int levels) {
  if (!pHandle || !d || levels == 0) return CUDA_ERROR_INVALID_VALUE;
  const bool layered = d->Flags & 0x01, cubemap = d->Flags & 0x04;
  uint64_t w = d->Width, h = d->Height, z = d->Depth, total = 0;
  for (unsigned l = 0; l < levels; ++l) {
    uint64_t b = ArrayBytes(w, h, z, d->Format, d->NumChannels);
    if (b == 0) return CUDA_ERROR_INVALID_VALUE;
    total += b;
    w = std::max<uint64_t>(w / 2, 1);
    if (h) h = std::max<uint64_t>(h / 2, 1);
    if (z && !layered && !cubemap) z = std::max<uint64_t>(z / 2, 1);
  }
  return CreateArray(reinterpret_cast<void**>(pHandle), total, true);
}

FAKE_EXPORT CUresult cuMipmappedArrayDestroy(CUmipmappedArray h) { return DestroyArray(h, true); }

// ---- modules and launches (on the device's timeline)

FAKE_EXPORT CUresult cuModuleLoadData(CUmodule* module, const void* image) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!module || !image) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard<std::mutex> lock(p->mu);
  if (!CurrentLocked(p)) return CUDA_ERROR_INVALID_CONTEXT;
  *module = reinterpret_cast<CUmodule>(p->next_handle.fetch_add(16) << 4);
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuModuleGetFunction(CUfunction* hfunc, CUmodule hmod, const char* name) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!hfunc || !hmod || !name) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard<std::mutex> lock(p->mu);
  auto f = reinterpret_cast<CUfunction>(p->next_handle.fetch_add(16) << 4);
  p->kernel_ns[f] = KernelNsOfName(name);
  *hfunc = f;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned int, unsigned int, unsigned int, unsigned int, unsigned int,
                                    unsigned int, unsigned int, CUstream hStream, void**, void**) {
  return LaunchOn(hStream, false, f, nullptr, nullptr);
}

FAKE_EXPORT CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned int, unsigned int, unsigned int, unsigned int,
                                         unsigned int, unsigned int, unsigned int, CUstream hStream, void**, void**) {
  return LaunchOn(hStream, true, f, nullptr, nullptr);
}

FAKE_EXPORT CUresult cuLaunchKernelEx(const CUlaunchConfig* config, CUfunction f, void**, void**) {
  if (!config) return CUDA_ERROR_INVALID_VALUE;
  return LaunchOn(config->hStream, false, f, nullptr, nullptr);
}

FAKE_EXPORT CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig* config, CUfunction f, void**, void**) {
  if (!config) return CUDA_ERROR_INVALID_VALUE;
  return LaunchOn(config->hStream, true, f, nullptr, nullptr);
}

FAKE_EXPORT CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int, unsigned int, unsigned int, unsigned int,
                                               unsigned int, unsigned int, unsigned int, CUstream hStream, void**) {
  return LaunchOn(hStream, false, f, nullptr, nullptr);
}

FAKE_EXPORT CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned int, unsigned int, unsigned int,
                                                    unsigned int, unsigned int, unsigned int, unsigned int,
                                                    CUstream hStream, void**) {
  return LaunchOn(hStream, true, f, nullptr, nullptr);
}

FAKE_EXPORT CUresult cuLaunchHostFunc(CUstream hStream, CUhostFn fn, void* userData) {
  if (!fn) return CUDA_ERROR_INVALID_VALUE;
  return LaunchOn(hStream, false, nullptr, fn, userData);
}

FAKE_EXPORT CUresult cuLaunchHostFunc_ptsz(CUstream hStream, CUhostFn fn, void* userData) {
  if (!fn) return CUDA_ERROR_INVALID_VALUE;
  return LaunchOn(hStream, true, nullptr, fn, userData);
}

// ---- stream capture and graphs

FAKE_EXPORT CUresult cuStreamBeginCapture(CUstream hStream) { return BeginCapture(hStream, CU_STREAM_CAPTURE_MODE_GLOBAL); }
FAKE_EXPORT CUresult cuStreamBeginCapture_ptsz(CUstream hStream) {
  return BeginCapture(hStream, CU_STREAM_CAPTURE_MODE_GLOBAL);
}
FAKE_EXPORT CUresult cuStreamBeginCapture_v2(CUstream hStream, int mode) { return BeginCapture(hStream, mode); }
FAKE_EXPORT CUresult cuStreamBeginCapture_v2_ptsz(CUstream hStream, int mode) { return BeginCapture(hStream, mode); }
FAKE_EXPORT CUresult cuStreamEndCapture(CUstream hStream, CUgraph* phGraph) { return EndCapture(hStream, phGraph); }
FAKE_EXPORT CUresult cuStreamEndCapture_ptsz(CUstream hStream, CUgraph* phGraph) { return EndCapture(hStream, phGraph); }

FAKE_EXPORT CUresult cuGraphInstantiateWithFlags(CUgraphExec* phGraphExec, CUgraph hGraph, unsigned long long flags) {
  if (flags & ~0xFull) return CUDA_ERROR_INVALID_VALUE;
  return Instantiate(phGraphExec, hGraph);
}

FAKE_EXPORT CUresult cuGraphInstantiate(CUgraphExec* phGraphExec, CUgraph hGraph, CUgraphNode* phErrorNode,
                                        char* logBuffer, size_t bufferSize) {
  if (phErrorNode) *phErrorNode = nullptr;
  if (logBuffer && bufferSize > 0) logBuffer[0] = '\0';
  return Instantiate(phGraphExec, hGraph);
}

FAKE_EXPORT CUresult cuGraphInstantiate_v2(CUgraphExec* phGraphExec, CUgraph hGraph, CUgraphNode* phErrorNode,
                                           char* logBuffer, size_t bufferSize) {
  return cuGraphInstantiate(phGraphExec, hGraph, phErrorNode, logBuffer, bufferSize);
}

FAKE_EXPORT CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream) {
  return GraphLaunch(hGraphExec, hStream, false);
}
FAKE_EXPORT CUresult cuGraphLaunch_ptsz(CUgraphExec hGraphExec, CUstream hStream) {
  return GraphLaunch(hGraphExec, hStream, true);
}

FAKE_EXPORT CUresult cuGraphExecDestroy(CUgraphExec hGraphExec) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* ge = reinterpret_cast<GraphExec*>(hGraphExec);
  if (!p->execs.erase(ge)) return CUDA_ERROR_INVALID_VALUE;
  delete ge;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuGraphDestroy(CUgraph hGraph) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* g = reinterpret_cast<Graph*>(hGraph);
  if (!p->graphs.erase(g)) return CUDA_ERROR_INVALID_VALUE;
  delete g;
  return CUDA_SUCCESS;
}

// ---- events

FAKE_EXPORT CUresult cuEventCreate(CUevent* phEvent, unsigned int Flags) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!phEvent || (Flags & ~0xFu)) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard<std::mutex> lock(p->mu);
  if (!CurrentLocked(p)) return CUDA_ERROR_INVALID_CONTEXT;
  auto* e = new Event{Flags};
  p->events.insert(e);
  *phEvent = reinterpret_cast<CUevent>(e);
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuEventDestroy_v2(CUevent hEvent) {
  Proc* p = g_proc;
  if (!p->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  std::lock_guard<std::mutex> lock(p->mu);
  auto* e = reinterpret_cast<Event*>(hEvent);
  if (!p->events.erase(e)) return CUDA_ERROR_INVALID_HANDLE;
  delete e;
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuEventDestroy(CUevent hEvent) { return cuEventDestroy_v2(hEvent); }

FAKE_EXPORT CUresult cuEventRecord(CUevent hEvent, CUstream hStream) { return RecordEvent(hEvent, hStream, false); }
FAKE_EXPORT CUresult cuEventRecord_ptsz(CUevent hEvent, CUstream hStream) { return RecordEvent(hEvent, hStream, true); }
FAKE_EXPORT CUresult cuEventRecordWithFlags(CUevent hEvent, CUstream hStream, unsigned int flags) {
  if (flags > 1) return CUDA_ERROR_INVALID_VALUE;
  return RecordEvent(hEvent, hStream, false);
}
FAKE_EXPORT CUresult cuEventRecordWithFlags_ptsz(CUevent hEvent, CUstream hStream, unsigned int flags) {
  if (flags > 1) return CUDA_ERROR_INVALID_VALUE;
  return RecordEvent(hEvent, hStream, true);
}

FAKE_EXPORT CUresult cuEventQuery(CUevent hEvent) {
  if (!g_proc->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  int64_t at = 0;
  if (!EventTime(hEvent, &at, nullptr)) return CUDA_ERROR_INVALID_HANDLE;
  return FakeNowNs() >= at ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

FAKE_EXPORT CUresult cuEventSynchronize(CUevent hEvent) {
  if (!g_proc->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  int64_t at = 0;
  if (!EventTime(hEvent, &at, nullptr)) return CUDA_ERROR_INVALID_HANDLE;
  FakeSleepUntil(at);
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuEventElapsedTime(float* pMilliseconds, CUevent hStart, CUevent hEnd) {
  return ElapsedTime(pMilliseconds, hStart, hEnd);
}
FAKE_EXPORT CUresult cuEventElapsedTime_v2(float* pMilliseconds, CUevent hStart, CUevent hEnd) {
  return ElapsedTime(pMilliseconds, hStart, hEnd);
}

// ---- fake-only exports

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

FAKE_EXPORT CUresult cuGetExportTable(const void** ppExportTable, const CUuuid* id) {
  if (!ppExportTable || !id) return CUDA_ERROR_INVALID_VALUE;
  *ppExportTable = nullptr;
  return CUDA_ERROR_NOT_SUPPORTED;
}

// ---- cuGetProcAddress (A.4.2 matching rule over this library's own table)

namespace {

struct ProcEntry {
  const char* base;
  int version;
  void* fn;
  int ptsz_version;  // 0: no per-thread twin
  void* ptsz_fn;
};

#define FN(f) reinterpret_cast<void*>(&f)

const ProcEntry kProcTable[] = {
    {"cuInit", 2000, FN(cuInit), 0, nullptr},
    {"cuDriverGetVersion", 2020, FN(cuDriverGetVersion), 0, nullptr},
    {"cuGetErrorString", 6000, FN(cuGetErrorString), 0, nullptr},
    {"cuGetErrorName", 6000, FN(cuGetErrorName), 0, nullptr},
    {"cuDeviceGet", 2000, FN(cuDeviceGet), 0, nullptr},
    {"cuDeviceGetCount", 2000, FN(cuDeviceGetCount), 0, nullptr},
    {"cuDeviceGetName", 2000, FN(cuDeviceGetName), 0, nullptr},
    {"cuDeviceGetUuid", 9020, FN(cuDeviceGetUuid), 0, nullptr},
    {"cuDeviceGetUuid", 11040, FN(cuDeviceGetUuid_v2), 0, nullptr},
    {"cuDeviceTotalMem", 2000, FN(cuDeviceTotalMem), 0, nullptr},
    {"cuDeviceTotalMem", 3020, FN(cuDeviceTotalMem_v2), 0, nullptr},
    {"cuDeviceGetAttribute", 2000, FN(cuDeviceGetAttribute), 0, nullptr},
    {"cuDevicePrimaryCtxRetain", 7000, FN(cuDevicePrimaryCtxRetain), 0, nullptr},
    {"cuDevicePrimaryCtxRelease", 7000, FN(cuDevicePrimaryCtxRelease), 0, nullptr},
    {"cuDevicePrimaryCtxRelease", 11000, FN(cuDevicePrimaryCtxRelease_v2), 0, nullptr},
    {"cuDevicePrimaryCtxReset", 7000, FN(cuDevicePrimaryCtxReset), 0, nullptr},
    {"cuDevicePrimaryCtxReset", 11000, FN(cuDevicePrimaryCtxReset_v2), 0, nullptr},
    {"cuCtxCreate", 3020, FN(cuCtxCreate_v2), 0, nullptr},
    {"cuCtxCreate", 11040, FN(cuCtxCreate_v3), 0, nullptr},
    {"cuCtxCreate", 12050, FN(cuCtxCreate_v4), 0, nullptr},
    {"cuCtxDestroy", 2000, FN(cuCtxDestroy), 0, nullptr},
    {"cuCtxDestroy", 4000, FN(cuCtxDestroy_v2), 0, nullptr},
    {"cuCtxSetCurrent", 4000, FN(cuCtxSetCurrent), 0, nullptr},
    {"cuCtxGetCurrent", 4000, FN(cuCtxGetCurrent), 0, nullptr},
    {"cuCtxPushCurrent", 2000, FN(cuCtxPushCurrent), 0, nullptr},
    {"cuCtxPushCurrent", 4000, FN(cuCtxPushCurrent_v2), 0, nullptr},
    {"cuCtxPopCurrent", 2000, FN(cuCtxPopCurrent), 0, nullptr},
    {"cuCtxPopCurrent", 4000, FN(cuCtxPopCurrent_v2), 0, nullptr},
    {"cuCtxGetDevice", 2000, FN(cuCtxGetDevice), 0, nullptr},
    {"cuCtxSynchronize", 2000, FN(cuCtxSynchronize), 0, nullptr},
    {"cuMemGetInfo", 2000, FN(cuMemGetInfo), 0, nullptr},
    {"cuMemGetInfo", 3020, FN(cuMemGetInfo_v2), 0, nullptr},
    {"cuMemAlloc", 2000, FN(cuMemAlloc), 0, nullptr},
    {"cuMemAlloc", 3020, FN(cuMemAlloc_v2), 0, nullptr},
    {"cuMemAllocPitch", 2000, FN(cuMemAllocPitch), 0, nullptr},
    {"cuMemAllocPitch", 3020, FN(cuMemAllocPitch_v2), 0, nullptr},
    {"cuMemFree", 2000, FN(cuMemFree), 0, nullptr},
    {"cuMemFree", 3020, FN(cuMemFree_v2), 0, nullptr},
    {"cuMemGetAddressRange", 2000, FN(cuMemGetAddressRange), 0, nullptr},
    {"cuMemGetAddressRange", 3020, FN(cuMemGetAddressRange_v2), 0, nullptr},
    {"cuMemAllocManaged", 6000, FN(cuMemAllocManaged), 0, nullptr},
    {"cuMemAllocHost", 2000, FN(cuMemAllocHost), 0, nullptr},
    {"cuMemAllocHost", 3020, FN(cuMemAllocHost_v2), 0, nullptr},
    {"cuMemFreeHost", 2000, FN(cuMemFreeHost), 0, nullptr},
    {"cuDeviceGetDefaultMemPool", 11020, FN(cuDeviceGetDefaultMemPool), 0, nullptr},
    {"cuDeviceGetMemPool", 11020, FN(cuDeviceGetMemPool), 0, nullptr},
    {"cuMemPoolCreate", 11020, FN(cuMemPoolCreate), 0, nullptr},
    {"cuMemPoolDestroy", 11020, FN(cuMemPoolDestroy), 0, nullptr},
    {"cuMemAllocAsync", 11020, FN(cuMemAllocAsync), 11020, FN(cuMemAllocAsync_ptsz)},
    {"cuMemAllocFromPoolAsync", 11020, FN(cuMemAllocFromPoolAsync), 11020, FN(cuMemAllocFromPoolAsync_ptsz)},
    {"cuMemFreeAsync", 11020, FN(cuMemFreeAsync), 11020, FN(cuMemFreeAsync_ptsz)},
    {"cuMemPoolTrimTo", 11020, FN(cuMemPoolTrimTo), 0, nullptr},
    {"cuMemPoolGetAttribute", 11020, FN(cuMemPoolGetAttribute), 0, nullptr},
    {"cuMemPoolSetAttribute", 11020, FN(cuMemPoolSetAttribute), 0, nullptr},
    {"cuStreamCreate", 2000, FN(cuStreamCreate), 0, nullptr},
    {"cuStreamDestroy", 2000, FN(cuStreamDestroy), 0, nullptr},
    {"cuStreamDestroy", 4000, FN(cuStreamDestroy_v2), 0, nullptr},
    {"cuStreamSynchronize", 2000, FN(cuStreamSynchronize), 7000, FN(cuStreamSynchronize_ptsz)},
    {"cuStreamQuery", 2000, FN(cuStreamQuery), 7000, FN(cuStreamQuery_ptsz)},
    {"cuStreamIsCapturing", 10000, FN(cuStreamIsCapturing), 10000, FN(cuStreamIsCapturing_ptsz)},
    {"cuStreamBeginCapture", 10000, FN(cuStreamBeginCapture), 10000, FN(cuStreamBeginCapture_ptsz)},
    {"cuStreamBeginCapture", 10010, FN(cuStreamBeginCapture_v2), 10010, FN(cuStreamBeginCapture_v2_ptsz)},
    {"cuStreamEndCapture", 10000, FN(cuStreamEndCapture), 10000, FN(cuStreamEndCapture_ptsz)},
    {"cuGraphInstantiate", 10000, FN(cuGraphInstantiate), 0, nullptr},
    {"cuGraphInstantiate", 11000, FN(cuGraphInstantiate_v2), 0, nullptr},
    // CUDA-ABI A.4.2 [U]: at 11040 and later the base name answers with cuGraphInstantiateWithFlags.
    {"cuGraphInstantiate", 11040, FN(cuGraphInstantiateWithFlags), 0, nullptr},
    {"cuGraphInstantiateWithFlags", 11040, FN(cuGraphInstantiateWithFlags), 0, nullptr},
    {"cuGraphLaunch", 10000, FN(cuGraphLaunch), 10000, FN(cuGraphLaunch_ptsz)},
    {"cuGraphExecDestroy", 10000, FN(cuGraphExecDestroy), 0, nullptr},
    {"cuGraphDestroy", 10000, FN(cuGraphDestroy), 0, nullptr},
    {"cuEventCreate", 2000, FN(cuEventCreate), 0, nullptr},
    {"cuEventDestroy", 2000, FN(cuEventDestroy), 0, nullptr},
    {"cuEventDestroy", 4000, FN(cuEventDestroy_v2), 0, nullptr},
    {"cuEventRecord", 2000, FN(cuEventRecord), 7000, FN(cuEventRecord_ptsz)},
    {"cuEventRecordWithFlags", 11010, FN(cuEventRecordWithFlags), 11010, FN(cuEventRecordWithFlags_ptsz)},
    {"cuEventQuery", 2000, FN(cuEventQuery), 0, nullptr},
    {"cuEventSynchronize", 2000, FN(cuEventSynchronize), 0, nullptr},
    {"cuEventElapsedTime", 2000, FN(cuEventElapsedTime), 0, nullptr},
    {"cuEventElapsedTime", 12080, FN(cuEventElapsedTime_v2), 0, nullptr},
    {"cuMemCreate", 10020, FN(cuMemCreate), 0, nullptr},
    {"cuMemRelease", 10020, FN(cuMemRelease), 0, nullptr},
    {"cuMemMap", 10020, FN(cuMemMap), 0, nullptr},
    {"cuMemUnmap", 10020, FN(cuMemUnmap), 0, nullptr},
    {"cuMemAddressReserve", 10020, FN(cuMemAddressReserve), 0, nullptr},
    {"cuMemAddressFree", 10020, FN(cuMemAddressFree), 0, nullptr},
    {"cuMemSetAccess", 10020, FN(cuMemSetAccess), 0, nullptr},
    {"cuMemGetAllocationGranularity", 10020, FN(cuMemGetAllocationGranularity), 0, nullptr},
    {"cuArrayCreate", 2000, FN(cuArrayCreate), 0, nullptr},
    {"cuArrayCreate", 3020, FN(cuArrayCreate_v2), 0, nullptr},
    {"cuArray3DCreate", 2000, FN(cuArray3DCreate), 0, nullptr},
    {"cuArray3DCreate", 3020, FN(cuArray3DCreate_v2), 0, nullptr},
    {"cuArrayDestroy", 2000, FN(cuArrayDestroy), 0, nullptr},
    {"cuMipmappedArrayCreate", 5000, FN(cuMipmappedArrayCreate), 0, nullptr},
    {"cuMipmappedArrayDestroy", 5000, FN(cuMipmappedArrayDestroy), 0, nullptr},
    {"cuModuleLoadData", 2000, FN(cuModuleLoadData), 0, nullptr},
    {"cuModuleGetFunction", 2000, FN(cuModuleGetFunction), 0, nullptr},
    {"cuLaunchKernel", 4000, FN(cuLaunchKernel), 7000, FN(cuLaunchKernel_ptsz)},
    {"cuLaunchKernelEx", 11060, FN(cuLaunchKernelEx), 11060, FN(cuLaunchKernelEx_ptsz)},
    {"cuLaunchCooperativeKernel", 9000, FN(cuLaunchCooperativeKernel), 9000, FN(cuLaunchCooperativeKernel_ptsz)},
    {"cuLaunchHostFunc", 10000, FN(cuLaunchHostFunc), 10000, FN(cuLaunchHostFunc_ptsz)},
    {"cuGetProcAddress", 11030, FN(cuGetProcAddress), 0, nullptr},
    {"cuGetProcAddress", 12000, FN(cuGetProcAddress_v2), 0, nullptr},
    {"cuGetExportTable", 3000, FN(cuGetExportTable), 0, nullptr},
};

#undef FN

CUresult Lookup(const char* symbol, void** pfn, int cudaVersion, cuuint64_t flags, int* status) {
  if (!symbol || !pfn) return CUDA_ERROR_INVALID_VALUE;
  *pfn = nullptr;
  const ProcEntry* best = nullptr;
  bool known = false;
  for (const ProcEntry& e : kProcTable) {
    if (strcmp(e.base, symbol) != 0) continue;
    known = true;
    if (e.version <= cudaVersion && (!best || e.version > best->version)) best = &e;
  }
  if (!best) {
    *status = known ? CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    return CUDA_SUCCESS;
  }
  void* fn = best->fn;
  if ((flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) && best->ptsz_fn && best->ptsz_version <= cudaVersion)
    fn = best->ptsz_fn;
  *pfn = fn;
  *status = CU_GET_PROC_ADDRESS_SUCCESS;
  return CUDA_SUCCESS;
}

}  // namespace

FAKE_EXPORT CUresult cuGetProcAddress(const char* symbol, void** pfn, int cudaVersion, cuuint64_t flags) {
  int status = 0;
  return Lookup(symbol, pfn, cudaVersion, flags, &status);
}

FAKE_EXPORT CUresult cuGetProcAddress_v2(const char* symbol, void** pfn, int cudaVersion, cuuint64_t flags,
                                         CUdriverProcAddressQueryResult* symbolStatus) {
  int status = 0;
  CUresult r = Lookup(symbol, pfn, cudaVersion, flags, &status);
  if (symbolStatus && r == CUDA_SUCCESS) *symbolStatus = status;
  return r;
}
