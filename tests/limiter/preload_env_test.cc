// A pod's own environment cannot raise or switch off its limit: the mounted configuration wins
// over TIDESLICE_LIMITER_CONFIG and over look-alike variables other limiters honour, and with
// the library injected through /etc/ld.so.preload (as the device plugin mounts it) a process that
// clears LD_PRELOAD and execs itself stays limited.
//
// The test twin of the library (tideslice-limiter-testpaths) reads its "mounted" configuration
// from TS_LIMITER_MOUNTED_CONFIG in the build tree; every test that writes that file holds an
// exclusive flock on "<that file>.lock" so that parallel ctest runs never see each other's file.
// The real /etc case needs root and a private mount namespace (unshare --mount).
#include <sys/file.h>

#include <string>
#include <vector>

#include "tests/limiter/preload_harness.h"

namespace limtest {
namespace {

constexpr uint64_t kLimit = 1 * kGiB;

const std::vector<std::string> kTamperEnv = {
    "CUDA_DEVICE_MEMORY_LIMIT=100g",      // HAMi-core's variables
    "CUDA_DEVICE_MEMORY_LIMIT_0=100g",
    "CUDA_DEVICE_MEMORY_SHARED_CACHE=/tmp/other.cache",
    "TIDESLICE_LIMITER_DISABLE=1",
    "TIDESLICE_LIMITER_LIMIT_BYTES=107374182400",
    "ASCEND_DEVICE_MEMORY_LIMIT=100g",
};

std::string Dirname(const std::string& p) { return p.substr(0, p.rfind('/')); }

// Owns the test twin's mounted configuration file for the life of a test.
class MountedConfig {
 public:
  MountedConfig() {
    const std::string path = TS_LIMITER_MOUNTED_CONFIG;
    mkdir(Dirname(Dirname(path)).c_str(), 0755);
    mkdir(Dirname(path).c_str(), 0755);
    lock_fd_ = open((path + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ >= 0) flock(lock_fd_, LOCK_EX);
  }
  ~MountedConfig() {
    unlink(TS_LIMITER_MOUNTED_CONFIG);
    if (lock_fd_ >= 0) close(lock_fd_);  // releases the flock
  }
  bool ok() const { return lock_fd_ >= 0; }
  bool Write(const std::string& json) const { return WriteFile(TS_LIMITER_MOUNTED_CONFIG, json); }
  void Remove() const { unlink(TS_LIMITER_MOUNTED_CONFIG); }

 private:
  int lock_fd_ = -1;
};

class LimiterEnvPreload : public PreloadTest {
 protected:
  void SetUp() override {
    PreloadTest::SetUp();
    ASSERT_TRUE(mounted_.ok()) << "cannot lock " << TS_LIMITER_MOUNTED_CONFIG << ".lock";
    generous_config_ = dir_ / "generous.json";
  }

  void WriteMountedCuda(uint64_t limit) {
    ASSERT_TRUE(mounted_.Write(ConfigJson("nvidia", region_path_, {{tideslice::fake::FakeUuid(0), 0, limit, 0}})));
  }
  void WriteMountedAscend(uint64_t limit) {
    ASSERT_TRUE(mounted_.Write(ConfigJson("huawei", region_path_, {{"0", 0, limit, 0}})));
  }
  // A configuration the pod might write itself: 100 GiB, its own region.
  void WriteGenerous(const std::string& vendor, const std::string& uuid) {
    ASSERT_TRUE(WriteFile(generous_config_, ConfigJson(vendor, dir_ / "pod-region", {{uuid, 0, 100 * kGiB, 0}})));
  }
  std::vector<std::string> TamperEnv() const {
    std::vector<std::string> env = kTamperEnv;
    env.push_back("TIDESLICE_LIMITER_CONFIG=" + generous_config_);
    return env;
  }

  MountedConfig mounted_;
  std::string generous_config_;
};

TEST_F(LimiterEnvPreload, TheMountedConfigurationWinsOverTheEnvironmentCuda) {
  WriteMountedCuda(kLimit);
  WriteGenerous("nvidia", tideslice::fake::FakeUuid(0));
  for (const char* path : {"dlopen", "procaddress_v2", "linked"}) {
    SCOPED_TRACE(path);
    Result r = RunCuda(path, {"fill", "--chunk", "256MiB"}, Lib::kTestPaths, false, TamperEnv());
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_EQ(r.Int("fill_successes"), 4) << r.Describe();
    EXPECT_EQ(r.Int("fill_result"), 2);
    EXPECT_EQ(r.U64("total"), kLimit);
  }
  EXPECT_LE(Peak(), static_cast<int64_t>(kLimit));
  EXPECT_FALSE(FileExists(dir_ / "pod-region")) << "the pod's own configuration was read";
}

TEST_F(LimiterEnvPreload, TheMountedConfigurationWinsOverTheEnvironmentAscend) {
  WriteMountedAscend(kLimit);
  WriteGenerous("huawei", "0");
  for (const char* path : {"dlopen", "linked"}) {
    SCOPED_TRACE(path);
    Result r = RunAcl(path, {"fill", "--chunk", "256MiB", "--api", "align32"}, Lib::kTestPaths, false, TamperEnv());
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_EQ(r.Int("fill_successes"), 4) << r.Describe();
    EXPECT_EQ(r.Int("fill_result"), 207001);
    EXPECT_EQ(r.U64("total"), kLimit);
  }
  EXPECT_LE(Peak(), static_cast<int64_t>(kLimit));
  EXPECT_FALSE(FileExists(dir_ / "pod-region")) << "the pod's own configuration was read";
}

TEST_F(LimiterEnvPreload, TheEnvironmentIsReadOnlyWithoutAMountedConfiguration) {
  mounted_.Remove();
  WriteCudaConfig({kLimit});
  Result r = RunCuda("dlopen", {"fill", "--chunk", "256MiB"}, Lib::kTestPaths, true);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.Int("fill_successes"), 4) << r.Describe();
  EXPECT_EQ(r.U64("total"), kLimit);
}

TEST_F(LimiterEnvPreload, AnExecutedChildWithTheSameEnvironmentStaysLimited) {
  WriteMountedCuda(kLimit);
  WriteGenerous("nvidia", tideslice::fake::FakeUuid(0));
  Result r = RunCuda("dlopen", {"exec-child", "--bytes", "512MiB", "--then-alloc", "768MiB"}, Lib::kTestPaths, false,
                     TamperEnv());
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.Int("exec_parent_alloc"), 0) << r.Describe();
  EXPECT_EQ(r.Int("alloc_result"), 0) << r.Describe();
  EXPECT_EQ(r.U64("cuda_total"), kLimit);
  EXPECT_EQ(r.U64("cuda_free"), kLimit - 768 * kMiB);
}

// ------------------------------------------------------------------ the real /etc, as in a pod

bool CanUnshareMounts() {
  if (geteuid() != 0) return false;
  Result r = RunProcess({"/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/true"}, {"PATH=/usr/bin:/bin"}, 30);
  return r.exit_code == 0;
}

// Runs `argv` in a private mount namespace whose /etc carries the shipped library in
// /etc/ld.so.preload and `config` at /etc/tideslice/limiter/config.json (both bind-mounted, as
// the device plugin mounts them into a container); LD_PRELOAD is not set.
Result RunInPodMounts(const TempDir& dir, const std::string& config_file, const std::vector<std::string>& env,
                      const std::vector<std::string>& argv) {
  const std::string script = dir / "pod.sh";
  WriteFile(dir / "ld.so.preload", std::string(TS_LIMITER_LIB) + "\n");
  mkdir((dir / "oldetc").c_str(), 0755);
  std::string s =
      "set -e\n"
      "D=\"$1\"; shift\n"
      "mount --bind /etc \"$D/oldetc\"\n"
      "mount -t tmpfs tmpfs /etc\n"
      "for e in \"$D\"/oldetc/* \"$D\"/oldetc/.[!.]*; do\n"
      "  if [ -e \"$e\" ] || [ -L \"$e\" ]; then ln -s \"$e\" \"/etc/${e##*/}\"; fi\n"
      "done\n"
      "mkdir -p /etc/tideslice/limiter\n"
      ": > /etc/tideslice/limiter/config.json\n"
      "mount --bind \"" + config_file + "\" /etc/tideslice/limiter/config.json\n"
      ": > /etc/ld.so.preload\n"
      "mount --bind \"$D/ld.so.preload\" /etc/ld.so.preload\n"
      "exec /usr/bin/env -i";
  for (const auto& e : env) s += " '" + e + "'";
  s += " \"$@\"\n";
  WriteFile(script, s);
  std::vector<std::string> full = {"/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", script,
                                   dir.path()};
  full.insert(full.end(), argv.begin(), argv.end());
  return RunProcess(full, {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, 120);
}

TEST_F(LimiterEnvPreload, WithEtcLdSoPreloadClearingLdPreloadChangesNothing) {
  if (!CanUnshareMounts()) GTEST_SKIP() << "needs root and unshare --mount";
  mounted_.Remove();  // this case uses the shipped library and the real /etc path
  const std::string pod_config = dir_ / "pod-config.json";
  ASSERT_TRUE(WriteFile(pod_config, ConfigJson("nvidia", region_path_, {{tideslice::fake::FakeUuid(0), 0, kLimit, 0}})));
  WriteGenerous("nvidia", tideslice::fake::FakeUuid(0));
  std::vector<std::string> env = {"PATH=/usr/bin:/bin", std::string("LD_LIBRARY_PATH=") + TS_FAKES_DIR,
                                  "TIDESLICE_FAKE_STATE=" + state_path_};
  for (const auto& e : TamperEnv()) env.push_back(e);

  Result fill = RunInPodMounts(dir_, pod_config, env, CudaArgv("procaddress_v2", {"fill", "--chunk", "256MiB"}));
  ASSERT_EQ(fill.exit_code, 0) << fill.Describe();
  EXPECT_EQ(fill.Int("fill_successes"), 4) << "not limited through /etc/ld.so.preload\n" << fill.Describe();
  EXPECT_EQ(fill.U64("total"), kLimit);

  // The workload unsets LD_PRELOAD (never set here anyway) and execs itself holding 512 MiB.
  Result exec = RunInPodMounts(
      dir_, pod_config, env,
      CudaArgv("dlopen", {"exec-child", "--bytes", "512MiB", "--then-alloc", "768MiB", "--clear-preload"}));
  ASSERT_EQ(exec.exit_code, 0) << exec.Describe();
  EXPECT_EQ(exec.Int("exec_parent_alloc"), 0) << exec.Describe();
  EXPECT_EQ(exec.Int("alloc_result"), 0) << exec.Describe();
  EXPECT_EQ(exec.U64("cuda_total"), kLimit) << "the executed image escaped the limit";

  EXPECT_LE(Peak(), static_cast<int64_t>(kLimit));
  EXPECT_EQ(Outstanding(), 0);
  EXPECT_FALSE(FileExists(dir_ / "pod-region")) << "the pod's own configuration was read";
}

}  // namespace
}  // namespace limtest
