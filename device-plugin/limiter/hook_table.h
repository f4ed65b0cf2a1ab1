// The interposed entry points by export name, for the three ways a caller reaches a driver
// function: a direct call (the exported wrapper), dlsym on the driver's handle (the interposed
// dlsym answers with the wrapper) and cuGetProcAddress (the wrapper of the variant the driver
// returned). Each entry remembers the real function the wrapper forwards to.
#pragma once

#include <stdint.h>

#include <atomic>

namespace tideslice::limiter {

enum class Library : uint8_t { kCuda, kNvml, kAcl, kAscendRuntime };

struct HookEntry {
  const char* name;  // exported symbol
  const char* base;  // cuGetProcAddress base name (CUDA only; nullptr otherwise)
  int pfn_version;   // CUDA version that introduced this ABI variant
  bool per_thread;   // a _ptsz/_ptds variant
  Library library;
  void* wrapper;
  std::atomic<void*> real;
};

// Each vendor's entries (defined beside its hooks); `count` receives their number.
HookEntry* CudaHookEntries(int* count);
HookEntry* NvmlHookEntries(int* count);
HookEntry* AscendHookEntries(int* count);
// The entry exported as `name`, or nullptr.
HookEntry* FindHook(const char* name);

// The real function for entry `e`: cached, else looked up after the limiter in the global scope
// (direct linking), else in the vendor library if it is loaded (dlopen'ed RTLD_LOCAL).
void* RealOf(HookEntry& e);
// The real function `name` of `library`, not through a hook entry (helpers the hooks call).
void* RealByName(Library library, const char* name);

// RealByName remembered in `slot` once found (hot paths call helpers on every allocation).
inline void* CachedRealByName(std::atomic<void*>& slot, Library library, const char* name) {
  void* p = slot.load(std::memory_order_acquire);
  if (p) return p;
  p = RealByName(library, name);
  if (p) slot.store(p, std::memory_order_release);
  return p;
}

// dlsym's answer for `name` when the loader found `found`: a wrapper, or `found` itself.
void* InterposeDlsym(const char* name, void* found);
// cuGetProcAddress's answer for base name `symbol` when the driver returned `found`.
void* InterposeProcAddress(const char* symbol, void* found, int cuda_version, uint64_t flags);

}  // namespace tideslice::limiter
