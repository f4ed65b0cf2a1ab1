#include "device-plugin/limiter/ledger.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "device-plugin/limiter/sys.h"

namespace tideslice::limiter {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

class LedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tideslice-ledger-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/region";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Ledger> Open() {
    auto l = std::make_unique<Ledger>();
    char err[256];
    EXPECT_TRUE(l->Open(path_.c_str(), err, sizeof err)) << err;
    return l;
  }

  // Runs `body` in a child process; returns its exit status.
  template <typename Body>
  static pid_t Spawn(Body body) {
    pid_t pid = fork();
    if (pid == 0) _exit(body());
    return pid;
  }
  static int Wait(pid_t pid) {
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  std::string dir_, path_;
};

TEST_F(LedgerTest, CreatesAValidRegionAndAdmitsUpToTheLimit) {
  auto owned = Open();
  Ledger& l = *owned;
  EXPECT_TRUE(RegionHeaderValid(l.region()->header));
  EXPECT_EQ(std::filesystem::file_size(path_), sizeof(Region));
  EXPECT_EQ(l.Reserve(0, 600 * kMiB, 1024 * kMiB), Ledger::Admit::kOk);
  EXPECT_EQ(l.Reserve(0, 424 * kMiB, 1024 * kMiB), Ledger::Admit::kOk);
  EXPECT_EQ(l.Reserve(0, 1, 1024 * kMiB), Ledger::Admit::kOverLimit);
  EXPECT_EQ(l.region()->cards[0].refused.load(), 1u);
  EXPECT_EQ(l.Used(0), 1024 * kMiB);
  l.Release(0, 424 * kMiB);
  EXPECT_EQ(l.Used(0), 600 * kMiB);
  EXPECT_EQ(l.region()->cards[0].peak_bytes.load(), 1024 * kMiB);
  // A release never frees more than this process holds: it cannot free a sibling's bytes.
  l.Release(0, 10000 * kMiB);
  EXPECT_EQ(l.Used(0), 0u);
  EXPECT_EQ(l.Reserve(0, UINT64_MAX, 1024 * kMiB), Ledger::Admit::kOverLimit);
  EXPECT_EQ(l.Reserve(16, 1, 1024 * kMiB), Ledger::Admit::kOverLimit);
  l.Close();
}

TEST_F(LedgerTest, RefusesRegionsItDoesNotUnderstand) {
  {
    FILE* f = fopen(path_.c_str(), "w");
    fputs("not a region", f);
    fclose(f);
  }
  Ledger l;
  char err[256];
  EXPECT_FALSE(l.Open(path_.c_str(), err, sizeof err));
  EXPECT_NE(std::string(err).find("expected"), std::string::npos) << err;
  std::filesystem::resize_file(path_, sizeof(Region));  // right size, zero header
  EXPECT_FALSE(l.Open(path_.c_str(), err, sizeof err));
  EXPECT_NE(std::string(err).find("unknown header"), std::string::npos) << err;
  EXPECT_FALSE(l.Open((dir_ + "/missing-dir/region").c_str(), err, sizeof err));
  EXPECT_NE(std::string(err).find("cannot create"), std::string::npos) << err;
}

// Many threads of many processes: the books never pass the limit and end at zero.
TEST_F(LedgerTest, ConcurrentProcessesAndThreadsNeverExceedTheLimit) {
  const uint64_t limit = 256 * kMiB;
  { auto first = Open(); }  // creates the file
  std::vector<pid_t> children;
  for (int p = 0; p < 4; ++p)
    children.push_back(Spawn([&, p] {
      Ledger l;
      char err[256];
      if (!l.Open(path_.c_str(), err, sizeof err)) return 2;
      std::atomic<bool> bad{false};
      std::vector<std::thread> threads;
      for (int t = 0; t < 8; ++t)
        threads.emplace_back([&, t] {
          std::mt19937_64 rng(p * 100 + t);
          std::vector<uint64_t> held;
          for (int i = 0; i < 4000; ++i) {
            if (held.empty() || rng() % 3) {
              uint64_t n = (rng() % 16 + 1) * kMiB;
              if (l.Reserve(0, n, limit) == Ledger::Admit::kOk) held.push_back(n);
            } else {
              l.Release(0, held.back());
              held.pop_back();
            }
            if (l.Used(0) > limit) bad = true;
          }
          for (uint64_t n : held) l.Release(0, n);
        });
      for (auto& t : threads) t.join();
      l.Close();
      return bad ? 1 : 0;
    }));
  for (pid_t c : children) EXPECT_EQ(Wait(c), 0);
  auto owned = Open();
  Ledger& l = *owned;
  EXPECT_EQ(l.Used(0), 0u);
  EXPECT_LE(l.region()->cards[0].peak_bytes.load(), limit);
  EXPECT_GT(l.region()->cards[0].peak_bytes.load(), limit / 2);  // there was real contention
  for (uint32_t s = 0; s < kRegionMaxSlots; ++s) EXPECT_EQ(l.region()->slots[s].bytes[0].load(), 0u) << s;
}

TEST_F(LedgerTest, ADeadProcessesBytesComeBackToTheNextAllocation) {
  const uint64_t limit = 1024 * kMiB;
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t holder = Spawn([&] {
    Ledger l;
    char err[256];
    if (!l.Open(path_.c_str(), err, sizeof err)) return 2;
    if (l.Reserve(0, 500 * kMiB, limit) != Ledger::Admit::kOk) return 3;
    char c = 'x';
    if (write(ready[1], &c, 1) != 1) return 4;
    pause();
    return 0;
  });
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  auto owned = Open();
  Ledger& l = *owned;
  EXPECT_EQ(l.Used(0), 500 * kMiB);
  // The holder is alive: its slot is not taken back.
  EXPECT_EQ(l.Reserve(0, 900 * kMiB, limit), Ledger::Admit::kOverLimit);
  kill(holder, SIGKILL);
  Wait(holder);
  EXPECT_EQ(l.Reserve(0, 900 * kMiB, limit), Ledger::Admit::kOk);
  EXPECT_EQ(l.Used(0), 900 * kMiB);
  EXPECT_EQ(l.region()->cards[0].reclaimed_bytes.load(), 500 * kMiB);
  close(ready[0]);
  close(ready[1]);
}

TEST_F(LedgerTest, AProcessKilledInsideTheCriticalSectionDoesNotWedgeTheCard) {
  const uint64_t limit = 1024 * kMiB;
  { auto first = Open(); }
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t holder = Spawn([&] {
    Ledger l;
    char err[256];
    if (!l.Open(path_.c_str(), err, sizeof err)) return 2;
    if (l.Reserve(0, 300 * kMiB, limit) != Ledger::Admit::kOk) return 3;
    // Die holding card 0's lock, after bumping used_bytes but before the slot: the worst moment.
    Region* r = l.region();
    r->cards[0].lock.store(static_cast<uint32_t>(l.slot()) + 1);
    r->cards[0].used_bytes.fetch_add(100 * kMiB);
    char c = 'x';
    if (write(ready[1], &c, 1) != 1) return 4;
    pause();
    return 0;
  });
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  kill(holder, SIGKILL);
  Wait(holder);
  auto owned = Open();
  Ledger& l = *owned;
  EXPECT_EQ(l.Reserve(0, 1000 * kMiB, limit), Ledger::Admit::kOk);  // would hang or refuse if wedged
  EXPECT_EQ(l.Used(0), 1000 * kMiB);
  EXPECT_EQ(l.region()->cards[0].lock.load(), 0u);
  close(ready[0]);
  close(ready[1]);
}

TEST_F(LedgerTest, AForkedChildGetsItsOwnSlotAndNeverFreesItsParents) {
  const uint64_t limit = 1024 * kMiB;
  auto owned = Open();
  Ledger& l = *owned;
  ASSERT_EQ(l.Reserve(0, 400 * kMiB, limit), Ledger::Admit::kOk);
  int parent_slot = l.slot();
  pid_t child = Spawn([&] {
    l.AfterForkInChild();
    // The parent is alive: its slot must not be taken for dead through the inherited descriptor.
    if (l.ReclaimDead() != 0) return 1;
    if (l.Reserve(0, 624 * kMiB, limit) != Ledger::Admit::kOk) return 2;
    if (l.slot() == parent_slot) return 3;
    if (l.Reserve(0, 1, limit) != Ledger::Admit::kOverLimit) return 4;
    l.Close();
    return 0;
  });
  EXPECT_EQ(Wait(child), 0);
  EXPECT_EQ(l.Used(0), 400 * kMiB);
  EXPECT_EQ(l.region()->slots[parent_slot].bytes[0].load(), 400 * kMiB);
}

TEST_F(LedgerTest, AFullRegionIsAnErrorNotUnaccountedMemory) {
  // Fill every slot with a live process (this test process holds them through separate
  // descriptors, each one a distinct owner).
  std::vector<Ledger*> owners;
  for (uint32_t i = 0; i < kRegionMaxSlots; ++i) {
    auto* o = new Ledger;
    char err[256];
    ASSERT_TRUE(o->Open(path_.c_str(), err, sizeof err)) << err;
    ASSERT_TRUE(o->EnsureSlot()) << i;
    owners.push_back(o);
  }
  auto extra_owned = Open();
  Ledger& extra = *extra_owned;
  EXPECT_EQ(extra.Reserve(0, 1, 1024), Ledger::Admit::kNoSlot);
  owners.back()->Close();  // one leaves
  EXPECT_EQ(extra.Reserve(0, 1, 1024), Ledger::Admit::kOk);
  for (Ledger* o : owners) {
    o->Close();
    delete o;
  }
}

TEST_F(LedgerTest, ASlotWhoseOwnerDiedIsReusedWhenNoFreeOneIsLeft) {
  std::vector<Ledger*> owners;
  for (uint32_t i = 0; i < kRegionMaxSlots - 1; ++i) {
    auto* o = new Ledger;
    char err[256];
    ASSERT_TRUE(o->Open(path_.c_str(), err, sizeof err)) << err;
    ASSERT_TRUE(o->EnsureSlot());
    owners.push_back(o);
  }
  pid_t dead = Spawn([&] {
    Ledger l;
    char err[256];
    if (!l.Open(path_.c_str(), err, sizeof err)) return 2;
    return l.Reserve(1, 77 * kMiB, 1024 * kMiB) == Ledger::Admit::kOk ? 0 : 3;  // exits holding it
  });
  ASSERT_EQ(Wait(dead), 0);
  auto late_owned = Open();
  Ledger& late = *late_owned;
  EXPECT_TRUE(late.EnsureSlot());
  EXPECT_EQ(late.Used(1), 0u);  // the dead owner's 77 MiB went back when its slot was reused
  for (Ledger* o : owners) {
    o->Close();
    delete o;
  }
}

}  // namespace
}  // namespace tideslice::limiter
