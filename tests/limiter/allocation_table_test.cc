#include "device-plugin/limiter/allocation_table.h"

#include <map>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace tideslice::limiter {
namespace {

TEST(AllocationTable, InsertFindTakeByKind) {
  AllocationTable t;
  ASSERT_TRUE(t.Insert(HandleKind::kDevicePointer, 0x1000, {1, 64}));
  ASSERT_TRUE(t.Insert(HandleKind::kArray, 0x1000, {2, 128}));  // same key, other kind
  Holding h;
  ASSERT_TRUE(t.Find(HandleKind::kArray, 0x1000, &h));
  EXPECT_EQ(h.card, 2u);
  EXPECT_EQ(h.bytes, 128u);
  ASSERT_TRUE(t.Take(HandleKind::kDevicePointer, 0x1000, &h));
  EXPECT_EQ(h.bytes, 64u);
  EXPECT_FALSE(t.Take(HandleKind::kDevicePointer, 0x1000, &h));
  EXPECT_TRUE(t.Find(HandleKind::kArray, 0x1000, &h));
  EXPECT_EQ(t.size(), 1u);
}

// Against a std::map model, through growth and backward-shift deletions.
TEST(AllocationTable, MatchesAModelThroughGrowthAndDeletion) {
  AllocationTable t;
  std::map<uint64_t, uint64_t> model;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200000; ++i) {
    // Small key space: many collisions and reinsertions.
    uint64_t key = (rng() % 20000) * 256;
    if (rng() % 2) {
      ASSERT_TRUE(t.Insert(HandleKind::kDevicePointer, key, {0, key + 1}));
      model[key] = key + 1;
    } else {
      Holding h;
      bool took = t.Take(HandleKind::kDevicePointer, key, &h);
      ASSERT_EQ(took, model.count(key) == 1) << i;
      if (took) {
        EXPECT_EQ(h.bytes, model[key]);
        model.erase(key);
      }
    }
  }
  EXPECT_EQ(t.size(), model.size());
  for (auto [k, v] : model) {
    Holding h;
    ASSERT_TRUE(t.Find(HandleKind::kDevicePointer, k, &h)) << k;
    EXPECT_EQ(h.bytes, v);
  }
}

TEST(AllocationTable, TakeOwnedByRemovesExactlyOneContextsEntries) {
  AllocationTable t;
  for (uint64_t i = 0; i < 5000; ++i)
    ASSERT_TRUE(t.Insert(HandleKind::kDevicePointer, i * 4096, {0, i, i % 3 == 0 ? uint64_t{0xc0ffee} : uint64_t{0xbeef}}));
  struct Sum {
    uint64_t bytes = 0;
    size_t count = 0;
  } sum;
  size_t taken = t.TakeOwnedBy(
      0xc0ffee,
      [](void* arg, HandleKind, uint64_t key, Holding h) {
        auto* s = static_cast<Sum*>(arg);
        s->bytes += h.bytes;
        ++s->count;
        EXPECT_EQ(key / 4096 % 3, 0u);
      },
      &sum);
  EXPECT_EQ(taken, 1667u);
  EXPECT_EQ(sum.count, 1667u);
  EXPECT_EQ(t.size(), 5000u - 1667u);
  Holding h;
  for (uint64_t i = 0; i < 5000; ++i)
    EXPECT_EQ(t.Find(HandleKind::kDevicePointer, i * 4096, &h), i % 3 != 0) << i;
  EXPECT_EQ(t.TakeOwnedBy(0, [](void*, HandleKind, uint64_t, Holding) {}, nullptr), 0u);
}

TEST(AllocationTable, ThreadsInsertAndTakeTheirOwnKeys) {
  AllocationTable t;
  std::vector<std::thread> threads;
  for (int th = 0; th < 8; ++th)
    threads.emplace_back([&, th] {
      for (uint64_t i = 0; i < 20000; ++i) {
        uint64_t key = (static_cast<uint64_t>(th) << 40) | i;
        t.Insert(HandleKind::kDevicePointer, key, {static_cast<uint32_t>(th), i});
      }
      for (uint64_t i = 0; i < 20000; ++i) {
        Holding h;
        uint64_t key = (static_cast<uint64_t>(th) << 40) | i;
        if (!t.Take(HandleKind::kDevicePointer, key, &h) || h.bytes != i) ADD_FAILURE() << th << " " << i;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(t.size(), 0u);
}

}  // namespace
}  // namespace tideslice::limiter
