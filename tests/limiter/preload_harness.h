// Harness for the limiter's preload tests: temporary directories, fake-driver state, limiter
// configurations, the accounting region (read-only view), and running the workload programs
// with LD_PRELOAD=<limiter> against the fake driver libraries.
//
// Compile definitions (tests/limiter/preload.cmake): TS_LIMITER_LIB, TS_LIMITER_TESTPATHS_LIB,
// TS_LIMITER_MOUNTED_CONFIG, TS_FAKES_DIR, TS_CUDA_WORKLOAD(_LINKED), TS_ACL_WORKLOAD(_LINKED).
#pragma once

#include <fcntl.h>
#include <ftw.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "device-plugin/limiter/region_layout.h"
#include "tests/limiter/fakes/fake_state.h"

namespace limtest {

inline constexpr uint64_t kMiB = 1ull << 20;
inline constexpr uint64_t kGiB = 1ull << 30;

// ---------------------------------------------------------------- files

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/tideslice-limiter-XXXXXX";
    char* p = mkdtemp(tmpl);
    if (p) path_ = p;
  }
  ~TempDir() {
    if (!path_.empty())
      nftw(
          path_.c_str(), [](const char* f, const struct stat*, int, struct FTW*) { return remove(f); }, 16,
          FTW_DEPTH | FTW_PHYS);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline bool WriteFile(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
  return static_cast<bool>(f);
}

inline bool FileExists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

// ---------------------------------------------------------------- limiter configuration

struct CardSpec {
  std::string uuid;
  uint32_t visible_index = 0;
  uint64_t limit = 0;
  uint32_t region_card = 0;
};

inline std::string ConfigJson(const std::string& vendor, const std::string& region_path,
                              const std::vector<CardSpec>& cards, uint64_t context_reserve = 0) {
  std::ostringstream o;
  o << "{\"version\":1,\"podNamespace\":\"ns\",\"podName\":\"p\",\"podUid\":\"u-1\",\"container\":\"c\","
    << "\"vendor\":\"" << vendor << "\",\"regionPath\":\"" << region_path << "\","
    << "\"contextReserveBytes\":\"" << context_reserve << "\",\"cards\":[";
  for (size_t i = 0; i < cards.size(); ++i) {
    if (i) o << ",";
    o << "{\"uuid\":\"" << cards[i].uuid << "\",\"visibleIndex\":" << cards[i].visible_index
      << ",\"memoryLimitBytes\":\"" << cards[i].limit << "\",\"regionCard\":" << cards[i].region_card << "}";
  }
  o << "]}";
  return o.str();
}

// ---------------------------------------------------------------- the accounting region

class RegionView {
 public:
  explicit RegionView(const std::string& path) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st {};
    if (fstat(fd, &st) == 0 && st.st_size == static_cast<off_t>(sizeof(tideslice::limiter::Region))) {
      void* p = mmap(nullptr, sizeof(tideslice::limiter::Region), PROT_READ, MAP_SHARED, fd, 0);
      if (p != MAP_FAILED) region_ = static_cast<const tideslice::limiter::Region*>(p);
    }
    close(fd);
  }
  ~RegionView() {
    if (region_) munmap(const_cast<tideslice::limiter::Region*>(region_), sizeof(tideslice::limiter::Region));
  }
  RegionView(const RegionView&) = delete;
  RegionView& operator=(const RegionView&) = delete;
  bool ok() const { return region_ != nullptr && tideslice::limiter::RegionHeaderValid(region_->header); }
  uint64_t used(int card) const { return region_->cards[card].used_bytes.load(); }
  uint64_t peak(int card) const { return region_->cards[card].peak_bytes.load(); }
  uint64_t refused(int card) const { return region_->cards[card].refused.load(); }
  uint64_t reclaimed(int card) const { return region_->cards[card].reclaimed_bytes.load(); }
  uint64_t limit(int card) const { return region_->cards[card].limit_bytes.load(); }
  int live_slots() const {
    int n = 0;
    for (const auto& s : region_->slots) n += s.state.load() == tideslice::limiter::kSlotLive;
    return n;
  }

 private:
  const tideslice::limiter::Region* region_ = nullptr;
};

// ---------------------------------------------------------------- processes

using KeyValues = std::map<std::string, std::string>;

inline KeyValues ParseKeyValues(const std::string& text) {
  KeyValues kv;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    kv[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return kv;
}

struct Result {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  bool timed_out = false;
  std::string out, err;
  KeyValues kv;

  bool Has(const std::string& k) const { return kv.count(k) != 0; }
  std::string Str(const std::string& k) const {
    auto it = kv.find(k);
    return it == kv.end() ? std::string("<missing>") : it->second;
  }
  long long Int(const std::string& k) const {
    auto it = kv.find(k);
    return it == kv.end() ? -999999 : strtoll(it->second.c_str(), nullptr, 10);
  }
  uint64_t U64(const std::string& k) const {
    auto it = kv.find(k);
    return it == kv.end() ? ~0ull : strtoull(it->second.c_str(), nullptr, 10);
  }
  // Lines of stderr that start with `prefix`.
  int CountErrLines(const std::string& prefix) const {
    int n = 0;
    std::istringstream in(err);
    std::string line;
    while (std::getline(in, line)) n += line.rfind(prefix, 0) == 0;
    return n;
  }
  std::string Describe() const {
    std::ostringstream o;
    o << "exit=" << exit_code << " signal=" << signal << (timed_out ? " TIMED OUT" : "") << "\n--- stdout\n"
      << out << "--- stderr\n"
      << err << "---";
    return o.str();
  }
};

class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  Child(Child&& o) noexcept { *this = std::move(o); }
  Child& operator=(Child&& o) noexcept {
    std::swap(pid_, o.pid_);
    std::swap(out_fd_, o.out_fd_);
    std::swap(err_fd_, o.err_fd_);
    return *this;
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      Wait(10);
    }
    CloseFds();
  }

  // argv[0] is the executable path; env is the complete environment.
  static Child Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
    Child c;
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) return c;
    std::vector<char*> av, ev;
    for (auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
    av.push_back(nullptr);
    for (auto& e : env) ev.push_back(const_cast<char*>(e.c_str()));
    ev.push_back(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
      dup2(out[1], 1);
      dup2(err[1], 2);
      int devnull = open("/dev/null", O_RDONLY);
      if (devnull >= 0) dup2(devnull, 0);
      execve(av[0], av.data(), ev.data());
      _exit(127);
    }
    close(out[1]);
    close(err[1]);
    c.pid_ = pid;
    c.out_fd_ = out[0];
    c.err_fd_ = err[0];
    return c;
  }

  pid_t pid() const { return pid_; }

  // Reads everything the child writes, then reaps it. A child still running after
  // `timeout_s` is killed (timed_out).
  Result Wait(int timeout_s = 120) {
    Result r;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    while (out_fd_ >= 0 || err_fd_ >= 0) {
      pollfd fds[2];
      int n = 0;
      if (out_fd_ >= 0) fds[n++] = {out_fd_, POLLIN, 0};
      if (err_fd_ >= 0) fds[n++] = {err_fd_, POLLIN, 0};
      int ms = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count());
      if (ms <= 0) {
        r.timed_out = true;
        if (pid_ > 0) kill(pid_, SIGKILL);
        deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        ms = 5000;
      }
      int pr = poll(fds, static_cast<nfds_t>(n), ms);
      if (pr < 0 && errno == EINTR) continue;
      if (pr <= 0) continue;
      for (int i = 0; i < n; ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char buf[8192];
        ssize_t k = read(fds[i].fd, buf, sizeof buf);
        std::string& dst = fds[i].fd == out_fd_ ? r.out : r.err;
        if (k > 0) {
          dst.append(buf, static_cast<size_t>(k));
        } else if (k == 0 || errno != EINTR) {
          if (fds[i].fd == out_fd_) {
            close(out_fd_);
            out_fd_ = -1;
          } else {
            close(err_fd_);
            err_fd_ = -1;
          }
        }
      }
    }
    if (pid_ > 0) {
      int status = 0;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
      if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
      pid_ = -1;
    }
    r.kv = ParseKeyValues(r.out);
    return r;
  }

  // SIGKILL and reap (the process's memory is then the reaper's business).
  Result Kill() {
    if (pid_ > 0) kill(pid_, SIGKILL);
    return Wait(30);
  }

 private:
  void CloseFds() {
    if (out_fd_ >= 0) close(out_fd_);
    if (err_fd_ >= 0) close(err_fd_);
    out_fd_ = err_fd_ = -1;
  }
  pid_t pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1;
};

inline Result RunProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env, int timeout_s = 120) {
  return Child::Spawn(argv, env).Wait(timeout_s);
}

// Waits until `path` exists (a workload's ready file) or the process exits / time runs out.
inline bool WaitForFile(const std::string& path, int timeout_s = 60) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (FileExists(path)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

// Samples the fake driver's outstanding bytes (and the region's used bytes) of one device
// roughly every millisecond on a thread of its own, keeping the maxima.
class Sampler {
 public:
  Sampler(const tideslice::fake::FakeState* state, int device, const RegionView* region, int card)
      : state_(state), device_(device), region_(region), card_(card) {
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        Sample();
        timespec ts{0, 1000000};
        nanosleep(&ts, nullptr);
      }
      Sample();
    });
  }
  ~Sampler() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int64_t max_outstanding() const { return max_outstanding_; }
  uint64_t max_region_used() const { return max_region_used_; }
  long samples() const { return samples_; }

 private:
  void Sample() {
    int64_t o = tideslice::fake::FakeOutstanding(state_, device_);
    if (o > max_outstanding_) max_outstanding_ = o;
    if (region_ && region_->ok()) {
      uint64_t u = region_->used(card_);
      if (u > max_region_used_) max_region_used_ = u;
    }
    ++samples_;
  }
  const tideslice::fake::FakeState* state_;
  int device_;
  const RegionView* region_;
  int card_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> max_outstanding_{0};
  std::atomic<uint64_t> max_region_used_{0};
  std::atomic<long> samples_{0};
  std::thread thread_;
};

// ---------------------------------------------------------------- the common fixture

enum class Lib { kNone, kShipped, kTestPaths };

class PreloadTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kDevices = 2;
  static constexpr uint64_t kPhysical = 4 * kGiB;

  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty()) << "mkdtemp failed";
    state_path_ = dir_ / "fake-state";
    region_path_ = dir_ / "region";
    config_path_ = dir_ / "config.json";
    MakeState(kDevices, kPhysical, 0);
  }

  void TearDown() override {
    if (state_) tideslice::fake::FakeStateClose(state_);
    state_ = nullptr;
  }

  void MakeState(uint32_t devices, uint64_t total, uint64_t context_bytes) {
    if (state_) tideslice::fake::FakeStateClose(state_);
    state_ = tideslice::fake::FakeStateCreate(state_path_.c_str(), devices, total, context_bytes);
    ASSERT_NE(state_, nullptr) << "cannot create " << state_path_;
  }

  // The environment of a workload: nothing from the test's own environment but PATH.
  std::vector<std::string> Env(Lib lib, bool with_config_env, const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp",
                                    std::string("LD_LIBRARY_PATH=") + TS_FAKES_DIR,
                                    "TIDESLICE_FAKE_STATE=" + state_path_};
    if (lib == Lib::kShipped) env.push_back(std::string("LD_PRELOAD=") + TS_LIMITER_LIB);
    if (lib == Lib::kTestPaths) env.push_back(std::string("LD_PRELOAD=") + TS_LIMITER_TESTPATHS_LIB);
    if (with_config_env) env.push_back("TIDESLICE_LIMITER_CONFIG=" + config_path_);
    env.insert(env.end(), extra.begin(), extra.end());
    return env;
  }

  void WriteCudaConfig(const std::vector<uint64_t>& limits, uint64_t context_reserve = 0) {
    std::vector<CardSpec> cards;
    for (size_t i = 0; i < limits.size(); ++i)
      cards.push_back({tideslice::fake::FakeUuid(static_cast<int>(i)), static_cast<uint32_t>(i), limits[i],
                       static_cast<uint32_t>(i)});
    ASSERT_TRUE(WriteFile(config_path_, ConfigJson("nvidia", region_path_, cards, context_reserve)));
  }

  void WriteAscendConfig(const std::vector<uint64_t>& limits, uint64_t context_reserve = 0) {
    std::vector<CardSpec> cards;
    for (size_t i = 0; i < limits.size(); ++i)
      cards.push_back({std::to_string(i), static_cast<uint32_t>(i), limits[i], static_cast<uint32_t>(i)});
    ASSERT_TRUE(WriteFile(config_path_, ConfigJson("huawei", region_path_, cards, context_reserve)));
  }

  static std::string CudaBinary(const std::string& path) {
    return path == "linked" ? TS_CUDA_WORKLOAD_LINKED : TS_CUDA_WORKLOAD;
  }
  static std::string AclBinary(const std::string& path) {
    return path == "linked" ? TS_ACL_WORKLOAD_LINKED : TS_ACL_WORKLOAD;
  }

  static std::vector<std::string> CudaArgv(const std::string& path, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {CudaBinary(path), "--path", path};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  static std::vector<std::string> AclArgv(const std::string& path, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {AclBinary(path), "--path", path};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  Result RunCuda(const std::string& path, const std::vector<std::string>& args, Lib lib = Lib::kShipped,
                 bool config_env = true, const std::vector<std::string>& extra_env = {}) {
    return RunProcess(CudaArgv(path, args), Env(lib, config_env, extra_env));
  }
  Result RunAcl(const std::string& path, const std::vector<std::string>& args, Lib lib = Lib::kShipped,
                bool config_env = true, const std::vector<std::string>& extra_env = {}) {
    return RunProcess(AclArgv(path, args), Env(lib, config_env, extra_env));
  }

  int64_t Outstanding(int dev = 0) const { return tideslice::fake::FakeOutstanding(state_, dev); }
  int64_t Peak(int dev = 0) const { return tideslice::fake::FakePeak(state_, dev); }

  TempDir dir_;
  std::string state_path_, region_path_, config_path_;
  tideslice::fake::FakeState* state_ = nullptr;
};

inline std::string Bytes(uint64_t b) { return std::to_string(b); }

}  // namespace limtest
