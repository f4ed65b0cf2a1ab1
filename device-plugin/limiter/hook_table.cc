// Finding the real functions and answering dlsym and cuGetProcAddress with wrappers.
#include "device-plugin/limiter/hook_table.h"

#include <dlfcn.h>
#include <link.h>
#include <string.h>

#include "device-plugin/limiter/sys.h"

#define TS_EXPORT extern "C" __attribute__((visibility("default")))

namespace tideslice::limiter {
namespace {

const char* LibraryFile(Library library) {
  switch (library) {
    case Library::kCuda: return "libcuda.so.1";
    case Library::kNvml: return "libnvidia-ml.so.1";
    case Library::kAcl: return "libascendcl.so";
    case Library::kAscendRuntime: return "libruntime.so";
  }
  return "";
}

// What a wrapper calls when the vendor library has no such function at all: the library's own
// "not supported" code instead of a jump to address zero. Every hooked function returns an int
// status and the callee ignores its arguments, which is sound on the x86-64 and AArch64 ABIs.
int MissingCuda() { return 801; }     // CUDA_ERROR_NOT_SUPPORTED
int MissingNvml() { return 13; }      // NVML_ERROR_FUNCTION_NOT_FOUND
int MissingAscend() { return 200001; }  // ACL_ERROR_API_NOT_SUPPORT

void* MissingFor(Library library) {
  switch (library) {
    case Library::kCuda: return reinterpret_cast<void*>(&MissingCuda);
    case Library::kNvml: return reinterpret_cast<void*>(&MissingNvml);
    case Library::kAcl:
    case Library::kAscendRuntime: return reinterpret_cast<void*>(&MissingAscend);
  }
  return nullptr;
}

bool IsWrapper(void* p) {
  int n = 0;
  for (auto* group : {&CudaHookEntries, &NvmlHookEntries, &AscendHookEntries}) {
    HookEntry* e = (*group)(&n);
    for (int i = 0; i < n; ++i)
      if (e[i].wrapper == p) return true;
  }
  return false;
}

// Cheap first test for dlsym, which every library in the process calls: only exact names of
// interposed driver functions are answered with a wrapper (a loose "cu" prefix would catch
// cudnn*, cublas* and curl_* and has caused infinite recursion in other limiters).
bool MayBeHooked(const char* name) {
  return (name[0] == 'c' && name[1] == 'u') || (name[0] == 'n' && name[1] == 'v') ||
         (name[0] == 'a' && name[1] == 'c') || (name[0] == 'r' && name[1] == 't');
}

}  // namespace

HookEntry* FindHook(const char* name) {
  if (!name || !MayBeHooked(name)) return nullptr;
  int n = 0;
  for (auto* group : {&CudaHookEntries, &NvmlHookEntries, &AscendHookEntries}) {
    HookEntry* e = (*group)(&n);
    for (int i = 0; i < n; ++i)
      if (strcmp(e[i].name, name) == 0) return &e[i];
  }
  return nullptr;
}

void* RealByName(Library library, const char* name) {
  // Direct linking puts the vendor library in the global scope after the preloaded limiter.
  void* p = sys::RealDlsym(RTLD_NEXT, name);
  if (p && !IsWrapper(p)) return p;
  // Frameworks dlopen it RTLD_LOCAL: only a handle finds it (RTLD_NOLOAD: never load it here).
  void* handle = sys::Dlopen(LibraryFile(library), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
  if (!handle) return nullptr;
  p = sys::RealDlsym(handle, name);
  sys::Dlclose(handle);
  return p && !IsWrapper(p) ? p : nullptr;
}

void* RealOf(HookEntry& e) {
  void* p = e.real.load(std::memory_order_acquire);
  if (p) return p;
  p = RealByName(e.library, e.name);
  if (!p) {
    // Not loaded yet, or the driver lacks this export: a direct caller links the library, so
    // it is loaded; anyone else reached us through dlsym/cuGetProcAddress, which filled `real`.
    return MissingFor(e.library);
  }
  void* expected = nullptr;
  if (!e.real.compare_exchange_strong(expected, p, std::memory_order_acq_rel)) p = expected;
  return p;
}

void* InterposeDlsym(const char* name, void* found) {
  if (!found || !name) return found;
  HookEntry* e = FindHook(name);
  if (!e || found == e->wrapper || IsWrapper(found)) return found;
  void* expected = nullptr;
  e->real.compare_exchange_strong(expected, found, std::memory_order_acq_rel);
  return e->wrapper;
}

void* InterposeProcAddress(const char* symbol, void* found, int cuda_version, uint64_t flags) {
  if (!symbol || !found || !MayBeHooked(symbol) || IsWrapper(found)) return found;
  int n = 0;
  HookEntry* entries = CudaHookEntries(&n);
  // Which variant did the driver hand out? First by address (the export of that name), then by
  // the driver's own rule: the largest introduction version not above the caller's, the
  // per-thread twin when asked for one.
  HookEntry* best = nullptr;
  bool any = false;
  for (int i = 0; i < n; ++i) {
    HookEntry& e = entries[i];
    if (strcmp(e.base, symbol) != 0) continue;
    any = true;
    void* exported = RealByName(Library::kCuda, e.name);
    if (exported == found) {
      best = &e;
      break;
    }
  }
  if (!any) return found;
  if (!best) {
    const bool per_thread = (flags & 2) != 0;
    for (int pass = 0; pass < 2 && !best; ++pass)
      for (int i = 0; i < n; ++i) {
        HookEntry& e = entries[i];
        if (strcmp(e.base, symbol) != 0 || e.pfn_version > cuda_version) continue;
        if (e.per_thread != (pass == 0 && per_thread)) continue;
        if (!best || e.pfn_version > best->pfn_version) best = &e;
      }
  }
  if (!best) {
    // A variant older than any we know (pre-3.2 ABIs): refuse to hand out an unlimited path.
    sys::Log("cuGetProcAddress(%s, %d): no interposed variant; the function is reported missing", symbol,
             cuda_version);
    return nullptr;
  }
  void* expected = nullptr;
  best->real.compare_exchange_strong(expected, found, std::memory_order_acq_rel);
  return best->wrapper;
}

}  // namespace tideslice::limiter

using tideslice::limiter::InterposeDlsym;

// dlsym itself: frameworks and the CUDA runtime look driver functions up on the handle they
// dlopen'ed, which never searches the preloaded limiter.
TS_EXPORT void* dlsym(void* handle, const char* name) {
  void* found;
  if (handle == RTLD_NEXT) {
    // "Next after the caller", not after the limiter: walk the link map from the caller's object.
    found = nullptr;
    auto* map = static_cast<struct link_map*>(tideslice::limiter::sys::LinkMapOf(__builtin_return_address(0)));
    for (struct link_map* m = map ? map->l_next : nullptr; m && !found; m = m->l_next) {
      void* h = tideslice::limiter::sys::Dlopen(m->l_name && *m->l_name ? m->l_name : nullptr,
                                                RTLD_LAZY | RTLD_NOLOAD);
      if (!h) continue;
      found = tideslice::limiter::sys::RealDlsym(h, name);
      tideslice::limiter::sys::Dlclose(h);
    }
    if (!map) found = tideslice::limiter::sys::RealDlsym(RTLD_NEXT, name);
  } else {
    found = tideslice::limiter::sys::RealDlsym(handle, name);
  }
  return InterposeDlsym(name, found);
}
