// Small helpers shared by the preload-test workload programs (cuda_workload, acl_workload):
// command-line parsing and the machine-readable `key=value` output.
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

namespace workload {

// Every line is written with one write(2), so lines of several threads or of a forked child and
// its parent never interleave within a line and nothing is duplicated by stdio buffers at fork.
inline void Out(const char* key, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
inline void Out(const char* key, const char* fmt, ...) {
  char value[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(value, sizeof value, fmt, ap);
  va_end(ap);
  std::string line = std::string(key) + "=" + value + "\n";
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = write(1, line.data() + off, line.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
}

inline void OutI(const std::string& key, long long v) { Out(key.c_str(), "%lld", v); }
inline void OutU(const std::string& key, unsigned long long v) { Out(key.c_str(), "%llu", v); }

[[noreturn]] inline void Die(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] inline void Die(const char* fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  Out("fatal", "%s", msg);
  fprintf(stderr, "workload: %s\n", msg);
  exit(3);
}

// "1073741824", "512MiB", "1GiB", "64M", "4k": binary multiples.
inline uint64_t ParseBytes(const std::string& s) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = strtoull(s.c_str(), &end, 10);
  if (errno != 0 || end == s.c_str()) Die("bad byte count '%s'", s.c_str());
  std::string suffix(end);
  uint64_t mult = 1;
  if (suffix.empty() || suffix == "B") mult = 1;
  else if (suffix == "k" || suffix == "K" || suffix == "KiB") mult = 1ull << 10;
  else if (suffix == "m" || suffix == "M" || suffix == "MiB") mult = 1ull << 20;
  else if (suffix == "g" || suffix == "G" || suffix == "GiB") mult = 1ull << 30;
  else Die("bad byte suffix '%s'", s.c_str());
  return v * mult;
}

// `prog [--opt value | --flag]... subcommand [--opt value | --flag]...`: options anywhere.
struct Args {
  std::string command;
  std::map<std::string, std::string> opts;
  std::vector<std::string> raw;  // argv[1..] as given (for re-exec)

  bool Has(const std::string& k) const { return opts.count(k) != 0; }
  std::string Str(const std::string& k, const std::string& def) const {
    auto it = opts.find(k);
    return it == opts.end() ? def : it->second;
  }
  long long Int(const std::string& k, long long def) const {
    auto it = opts.find(k);
    return it == opts.end() ? def : strtoll(it->second.c_str(), nullptr, 10);
  }
  uint64_t Bytes(const std::string& k, uint64_t def) const {
    auto it = opts.find(k);
    return it == opts.end() ? def : ParseBytes(it->second);
  }
};

// Flags that take no value.
inline bool IsFlag(const std::string& k) {
  static const char* kFlags[] = {"--nvml", "--threads-before-init", "--probe", "--clear-preload", "--no-free"};
  for (const char* f : kFlags)
    if (k == f) return true;
  return false;
}

inline Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string t = argv[i];
    a.raw.push_back(t);
    if (t.rfind("--", 0) == 0) {
      if (IsFlag(t)) {
        a.opts[t.substr(2)] = "1";
      } else {
        if (i + 1 >= argc) Die("option %s needs a value", t.c_str());
        a.opts[t.substr(2)] = argv[++i];
        a.raw.push_back(argv[i]);
      }
    } else if (a.command.empty()) {
      a.command = t;
    } else {
      Die("unexpected argument '%s'", t.c_str());
    }
  }
  return a;
}

// Creates `path` atomically with `content` (write to a temporary name, then rename).
inline void WriteFileAtomically(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Die("cannot create %s: %s", tmp.c_str(), strerror(errno));
  if (write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size())) Die("short write");
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) Die("rename %s: %s", path.c_str(), strerror(errno));
}

// Splitmix64: a tiny deterministic generator per thread.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t Next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t Below(uint64_t n) { return n ? Next() % n : 0; }
};

}  // namespace workload
