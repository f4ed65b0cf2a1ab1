// The few operating-system services the limiter uses, reached without the C++ library and bound
// to symbol versions that every glibc since 2.17 provides (docs/isolation.md, "Loading in real
// images"). Everything here is async-signal-tolerant where it can be and never throws.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

namespace tideslice::limiter::sys {

// The loader's own dlsym/dlopen, never the limiter's interposed dlsym.
void* RealDlsym(void* handle, const char* name);
void* Dlopen(const char* file, int flags);
int Dlclose(void* handle);
// The link map entry of the object that contains `address` (for RTLD_NEXT on behalf of a caller).
void* LinkMapOf(const void* address);

// One line "tideslice-limiter: <message>" on stderr, written with a single write(2).
void Log(const char* format, ...) __attribute__((format(printf, 1, 2)));

// The whole of a small file (at most `cap` bytes; larger files are an error). -errno on failure.
ssize_t ReadSmallFile(const char* path, char* buffer, size_t cap);

// open-file-description locks on one byte: 0 on success, -errno otherwise (-EAGAIN: held).
int TryLockByte(int fd, off_t offset);
int UnlockByte(int fd, off_t offset);
// 1 if some other open file description holds a lock on the byte, 0 if not, -errno on error.
int ByteLockedElsewhere(int fd, off_t offset);

uint64_t RealtimeNs();
uint64_t MonotonicNs();
void Yield();
const char* SecureGetenv(const char* name);

}  // namespace tideslice::limiter::sys
