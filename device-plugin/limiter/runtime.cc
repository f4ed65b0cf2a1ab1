#include "device-plugin/limiter/runtime.h"

#include <errno.h>
#include <new>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "device-plugin/limiter/sys.h"

namespace tideslice::limiter {
namespace {

// Storage for the one Runtime, constructed on first use and never destroyed: hooks can still
// be called by other threads while the process runs its exit handlers.
alignas(Runtime) unsigned char g_storage[sizeof(Runtime)];
Runtime* g_runtime = nullptr;
std::atomic<int> g_init_state{0};  // 0 = not started, 1 = in progress, 2 = done
std::atomic<ReconcileFn> g_reconcile{nullptr};
std::atomic<bool> g_logged_no_card{false};
std::atomic<bool> g_logged_no_slot{false};

constexpr int kMaxForkHandlers = 8;
std::atomic<ForkChildFn> g_fork_handlers[kMaxForkHandlers];

__thread int t_depth __attribute__((tls_model("initial-exec"))) = 0;

void ChildAfterFork() {
  if (!g_runtime) return;
  g_runtime->table.ResetAfterFork();
  g_runtime->ledger.AfterForkInChild();
  for (auto& h : g_fork_handlers)
    if (ForkChildFn fn = h.load(std::memory_order_acquire)) fn();
}

uint64_t LimitIn(const Config& c, int card) {
  if (card < 0 || static_cast<uint32_t>(card) >= c.card_count) return 0;
  uint64_t limit = c.cards[card].memory_limit_bytes;
  return limit == 0 ? UINT64_MAX : limit;
}

void Describe(const Config& c, char* out, size_t n) {
  snprintf(out, n, "%s/%s container %s", c.pod_namespace[0] ? c.pod_namespace : "?",
           c.pod_name[0] ? c.pod_name : "?", c.container[0] ? c.container : "?");
}

void Initialise(Runtime& rt) {
  // The mounted file is the only source in production; the environment variable is honoured
  // only where no file is mounted (development and tests), so a pod spec cannot replace it.
  static char text[kConfigMaxBytes + 1];
  const char* source = TIDESLICE_LIMITER_MOUNTED_CONFIG;
  ssize_t n = sys::ReadSmallFile(source, text, kConfigMaxBytes);
  if (n == -ENOENT) {
    const char* env = sys::SecureGetenv("TIDESLICE_LIMITER_CONFIG");
    if (!env || !*env) {
      rt.mode = Mode::kInactive;
      return;
    }
    source = env;
    n = sys::ReadSmallFile(source, text, kConfigMaxBytes);
  }
  if (n < 0) {
    rt.mode = Mode::kBroken;
    sys::Log("cannot read the limiter configuration %s (%s): every accelerator memory allocation of this "
             "process will be refused",
             source, n == -EFBIG ? "larger than 64 KiB" : strerror(static_cast<int>(-n)));
    return;
  }
  char error[256];
  if (!ParseConfig(text, static_cast<size_t>(n), &rt.config, error, sizeof error)) {
    rt.mode = Mode::kBroken;
    sys::Log("invalid limiter configuration %s: %s; every accelerator memory allocation of this process will "
             "be refused",
             source, error);
    return;
  }
  if (!rt.ledger.Open(rt.config.region_path, error, sizeof error)) {
    rt.mode = Mode::kBroken;
    char who[400];
    Describe(rt.config, who, sizeof who);
    sys::Log("%s (%s); every accelerator memory allocation of this process will be refused", error, who);
    return;
  }
  for (uint32_t i = 0; i < rt.config.card_count; ++i)
    rt.ledger.PublishLimit(rt.config.cards[i].region_card, LimitIn(rt.config, static_cast<int>(i)));
  rt.mode = Mode::kActive;
}

// At exit the driver frees everything this process holds: give the slot back so siblings and
// the exporter see it at once (a killed process's slot is folded back by whoever looks next).
// The limiter's destructors run last (it is loaded first), after the application's exit handlers.
__attribute__((destructor)) void ReleaseAtExit() {
  if (g_init_state.load(std::memory_order_acquire) != 2 || !g_runtime || g_runtime->mode != Mode::kActive) return;
  g_runtime->ledger.ReleaseSlot();
}

}  // namespace

Runtime& Rt() {
  if (g_init_state.load(std::memory_order_acquire) == 2) return *g_runtime;
  int expected = 0;
  if (g_init_state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
    Runtime* rt = new (g_storage) Runtime();
    Initialise(*rt);
    if (rt->mode != Mode::kInactive) pthread_atfork(nullptr, nullptr, ChildAfterFork);
    g_runtime = rt;
    g_init_state.store(2, std::memory_order_release);
    return *rt;
  }
  while (g_init_state.load(std::memory_order_acquire) != 2) sys::Yield();
  return *g_runtime;
}

int CardForVisibleIndex(uint32_t visible_index) {
  const Config& c = Rt().config;
  for (uint32_t i = 0; i < c.card_count; ++i)
    if (c.cards[i].visible_index == visible_index) return static_cast<int>(i);
  return kNoCard;
}

int CardForUuid(const char* uuid) {
  const Config& c = Rt().config;
  for (uint32_t i = 0; i < c.card_count; ++i) {
    const char* a = c.cards[i].uuid;
    const char* b = uuid;
    while (*a && *b) {
      char x = *a >= 'A' && *a <= 'Z' ? static_cast<char>(*a + 32) : *a;
      char y = *b >= 'A' && *b <= 'Z' ? static_cast<char>(*b + 32) : *b;
      if (x != y) break;
      ++a, ++b;
    }
    if (*a == '\0' && *b == '\0') return static_cast<int>(i);
  }
  return kNoCard;
}

uint64_t LimitOf(int card) { return LimitIn(Rt().config, card); }

uint64_t UsedOn(int card) {
  Runtime& rt = Rt();
  if (rt.mode != Mode::kActive || card < 0 || static_cast<uint32_t>(card) >= rt.config.card_count) return 0;
  // A memory query must not report what dead processes held (the driver freed it): fold them
  // back first, at most every 20 ms (each live sibling costs one fcntl).
  static std::atomic<uint64_t> last_reclaim_ns{0};
  uint64_t now = sys::MonotonicNs();
  uint64_t last = last_reclaim_ns.load(std::memory_order_relaxed);
  if (now - last > 20000000ull && last_reclaim_ns.compare_exchange_strong(last, now) && rt.ledger.EnsureSlot())
    rt.ledger.ReclaimDead();
  return rt.ledger.Used(rt.config.cards[card].region_card);
}

void ClampToSlice(int card, uint64_t* free_bytes, uint64_t* total_bytes) {
  if (card == kNoCard) {
    *free_bytes = 0;
    return;
  }
  uint64_t limit = LimitOf(card);
  if (limit == UINT64_MAX) return;
  uint64_t total = limit < *total_bytes ? limit : *total_bytes;
  uint64_t used = UsedOn(card);
  uint64_t left = total > used ? total - used : 0;
  *total_bytes = total;
  if (left < *free_bytes) *free_bytes = left;
}

Decision Reserve(int card, uint64_t bytes, const char* api) {
  Runtime& rt = Rt();
  if (rt.mode == Mode::kInactive) return Decision::kAllow;
  if (rt.mode == Mode::kBroken) return Decision::kRefuse;  // the one log line was written at start
  if (card < 0 || static_cast<uint32_t>(card) >= rt.config.card_count) {
    if (!g_logged_no_card.exchange(true))
      sys::Log("refusing %s on a device that is not among this container's slices", api);
    return Decision::kRefuse;
  }
  const uint32_t book = rt.config.cards[card].region_card;
  for (int attempt = 0; attempt < 2; ++attempt) {
    switch (rt.ledger.Reserve(book, bytes, LimitOf(card))) {
      case Ledger::Admit::kOk:
        return Decision::kAllow;
      case Ledger::Admit::kNoSlot:
        if (!g_logged_no_slot.exchange(true))
          sys::Log("refusing %s: the accounting region has no free process slot (%u live processes in this "
                   "container)",
                   api, kRegionMaxSlots);
        return Decision::kRefuse;
      case Ledger::Admit::kOverLimit: {
        ReconcileFn fn = g_reconcile.load(std::memory_order_acquire);
        if (attempt == 0 && fn && fn(card)) continue;  // memory the books still counted was freed
        return Decision::kRefuse;
      }
    }
  }
  return Decision::kRefuse;
}

void Release(int card, uint64_t bytes) {
  Runtime& rt = Rt();
  if (rt.mode != Mode::kActive || card < 0 || static_cast<uint32_t>(card) >= rt.config.card_count) return;
  rt.ledger.Release(rt.config.cards[card].region_card, bytes);
}

TakenHandle TakeHandle(HandleKind kind, uint64_t key) {
  TakenHandle t;
  t.kind = kind;
  t.key = key;
  t.taken = Rt().table.Take(kind, key, &t.holding);
  return t;
}

void SettleHandle(const TakenHandle& handle, bool freed) {
  if (!handle.taken) return;
  if (!freed) {
    Rt().table.Insert(handle.kind, handle.key, handle.holding);
    return;
  }
  if (handle.kind != HandleKind::kPoolPointer && handle.kind != HandleKind::kContext)
    Release(static_cast<int>(handle.holding.card), handle.holding.bytes);
}

void ChargeAfterTheFact(int card, uint64_t bytes) {
  Runtime& rt = Rt();
  if (rt.mode != Mode::kActive || card < 0 || static_cast<uint32_t>(card) >= rt.config.card_count) return;
  rt.ledger.Charge(rt.config.cards[card].region_card, bytes);
}

void SetReconciler(ReconcileFn fn) { g_reconcile.store(fn, std::memory_order_release); }

NestGuard::NestGuard() : outermost_(t_depth == 0) { ++t_depth; }
NestGuard::~NestGuard() { --t_depth; }

void AddForkChildHandler(ForkChildFn fn) {
  for (auto& h : g_fork_handlers) {
    ForkChildFn expected = nullptr;
    if (h.load() == fn) return;
    if (h.compare_exchange_strong(expected, fn)) return;
  }
}

}  // namespace tideslice::limiter
