#include "device-plugin/limiter/sys.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

// Bind the loader functions to their oldest versions: a plain reference to dlsym made with
// glibc 2.34 or later asks for dlsym@GLIBC_2.34, which images older than 2021 do not have. The
// old versions live in libdl.so.2 before 2.34 and as compatibility symbols in libc.so.6 since
// (the library keeps a DT_NEEDED on libdl.so.2 for the former).
#if defined(__x86_64__)
#define TS_GLIBC_BASE "GLIBC_2.2.5"
#define TS_GLIBC_DLADDR1 "GLIBC_2.3.3"
#elif defined(__aarch64__)
#define TS_GLIBC_BASE "GLIBC_2.17"
#define TS_GLIBC_DLADDR1 "GLIBC_2.17"
#else
#error "the limiter pins glibc symbol versions for x86_64 and aarch64 only"
#endif

extern "C" {
void* ts_compat_dlvsym(void* handle, const char* name, const char* version);
void* ts_compat_dlopen(const char* file, int flags);
int ts_compat_dlclose(void* handle);
int ts_compat_dladdr1(const void* address, Dl_info* info, void** extra, int flags);
}
__asm__(".symver ts_compat_dlvsym, dlvsym@" TS_GLIBC_BASE);
__asm__(".symver ts_compat_dlopen, dlopen@" TS_GLIBC_BASE);
__asm__(".symver ts_compat_dlclose, dlclose@" TS_GLIBC_BASE);
__asm__(".symver ts_compat_dladdr1, dladdr1@" TS_GLIBC_DLADDR1);

namespace tideslice::limiter::sys {
namespace {

using DlsymFn = void* (*)(void*, const char*);

DlsymFn LoaderDlsym() {
  // Resolved on every first use by each thread racing here; the result is the same pointer.
  static DlsymFn cached = nullptr;
  DlsymFn fn = __atomic_load_n(&cached, __ATOMIC_ACQUIRE);
  if (fn) return fn;
  fn = reinterpret_cast<DlsymFn>(ts_compat_dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34"));
  if (!fn) fn = reinterpret_cast<DlsymFn>(ts_compat_dlvsym(RTLD_NEXT, "dlsym", TS_GLIBC_BASE));
  __atomic_store_n(&cached, fn, __ATOMIC_RELEASE);
  return fn;
}

int Fcntl(int fd, int cmd, struct flock* fl) {
  // Straight to the kernel: glibc 2.28 renamed fcntl for large-file builds (fcntl64), and the
  // OFD commands need no translation.
  long r = syscall(SYS_fcntl, fd, cmd, fl);
  return r < 0 ? -errno : static_cast<int>(r);
}

}  // namespace

void* RealDlsym(void* handle, const char* name) {
  DlsymFn fn = LoaderDlsym();
  return fn ? fn(handle, name) : nullptr;
}

void* Dlopen(const char* file, int flags) { return ts_compat_dlopen(file, flags); }
int Dlclose(void* handle) { return ts_compat_dlclose(handle); }

void* LinkMapOf(const void* address) {
  Dl_info info;
  void* map = nullptr;
  if (ts_compat_dladdr1(address, &info, &map, RTLD_DL_LINKMAP) == 0) return nullptr;
  return map;
}

void Log(const char* format, ...) {
  char line[512];
  int n = snprintf(line, sizeof line, "tideslice-limiter: ");
  va_list args;
  va_start(args, format);
  int m = vsnprintf(line + n, sizeof line - static_cast<size_t>(n) - 1, format, args);
  va_end(args);
  size_t len = static_cast<size_t>(n) + (m < 0 ? 0 : static_cast<size_t>(m));
  if (len > sizeof line - 2) len = sizeof line - 2;
  line[len++] = '\n';
  ssize_t ignored = write(2, line, len);
  (void)ignored;
}

ssize_t ReadSmallFile(const char* path, char* buffer, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return -errno;
  size_t have = 0;
  for (;;) {
    if (have == cap) {
      char extra;
      ssize_t r = read(fd, &extra, 1);
      close(fd);
      return r == 0 ? static_cast<ssize_t>(have) : -EFBIG;
    }
    ssize_t r = read(fd, buffer + have, cap - have);
    if (r < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      return -e;
    }
    if (r == 0) break;
    have += static_cast<size_t>(r);
  }
  close(fd);
  return static_cast<ssize_t>(have);
}

namespace {
// One byte of the file, for the OFD lock commands.
struct flock ByteRange(short type, off_t offset) {
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = offset;
  fl.l_len = 1;
  return fl;
}
}  // namespace

int TryLockByte(int fd, off_t offset) {
  struct flock fl = ByteRange(F_WRLCK, offset);
  int r = Fcntl(fd, F_OFD_SETLK, &fl);
  if (r == -EACCES) r = -EAGAIN;
  return r < 0 ? r : 0;
}

int UnlockByte(int fd, off_t offset) {
  struct flock fl = ByteRange(F_UNLCK, offset);
  int r = Fcntl(fd, F_OFD_SETLK, &fl);
  return r < 0 ? r : 0;
}

int ByteLockedElsewhere(int fd, off_t offset) {
  struct flock fl = ByteRange(F_WRLCK, offset);
  int r = Fcntl(fd, F_OFD_GETLK, &fl);
  if (r < 0) return r;
  return fl.l_type == F_UNLCK ? 0 : 1;
}

uint64_t RealtimeNs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t MonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

void Yield() { sched_yield(); }

const char* SecureGetenv(const char* name) { return secure_getenv(name); }

}  // namespace tideslice::limiter::sys
