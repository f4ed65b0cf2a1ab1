#include "common/quantity.h"

#include <gtest/gtest.h>

namespace tideslice {
namespace {

TEST(Quantity, BinaryAndDecimalSuffixes) {
  EXPECT_DOUBLE_EQ(static_cast<double>(*ParseQuantity("8Gi")), 8.0 * 1024 * 1024 * 1024);
  EXPECT_DOUBLE_EQ(static_cast<double>(*ParseQuantity("500M")), 500e6);
  EXPECT_DOUBLE_EQ(static_cast<double>(*ParseQuantity("100m")), 0.1);
  EXPECT_DOUBLE_EQ(static_cast<double>(*ParseQuantity("1.5")), 1.5);
  EXPECT_DOUBLE_EQ(static_cast<double>(*ParseQuantity("2e3")), 2000);
  EXPECT_DOUBLE_EQ(static_cast<double>(*ParseQuantity("1922788Ki")), 1922788.0 * 1024);
  EXPECT_DOUBLE_EQ(static_cast<double>(*ParseQuantity("-1")), -1);
}

TEST(Quantity, RejectsGarbageWithAClearMessage) {
  for (const char* bad : {"", "Gi", "8GB", "8 Gi", "1..2", "e3", "8e", "1e1234", "abc", "0x10"}) {
    auto q = ParseQuantity(bad);
    EXPECT_FALSE(q.ok()) << bad;
    EXPECT_NE(q.status().message().find("not a valid quantity"), std::string::npos) << bad;
  }
}

TEST(Quantity, MemoryMiB) {
  EXPECT_EQ(*ParseMemoryMiB("8Gi"), 8192);
  EXPECT_EQ(*ParseMemoryMiB("8192Mi"), 8192);
  EXPECT_EQ(*ParseMemoryMiB("8192"), 8192);  // bare number = MiB
  EXPECT_EQ(*ParseMemoryMiB("500M"), 477);   // 476.84 MiB rounded up, never under-reserve
  EXPECT_EQ(*ParseMemoryMiB("1Ki"), 1);
  EXPECT_FALSE(ParseMemoryMiB("0").ok());
  EXPECT_FALSE(ParseMemoryMiB("-8Gi").ok());
}

TEST(Quantity, Counts) {
  EXPECT_EQ(*ParseCount("1"), 1);
  EXPECT_EQ(*ParseCount("8"), 8);
  EXPECT_FALSE(ParseCount("1.5").ok());
  EXPECT_FALSE(ParseCount("-1").ok());
  EXPECT_FALSE(ParseCount("500m").ok());
}

TEST(Quantity, MilliCpu) {
  EXPECT_EQ(*ParseMilliCpu("500m"), 500);
  EXPECT_EQ(*ParseMilliCpu("2"), 2000);
  EXPECT_EQ(*ParseMilliCpu("0.1"), 100);
  EXPECT_FALSE(ParseMilliCpu("-1").ok());
}

}  // namespace
}  // namespace tideslice
