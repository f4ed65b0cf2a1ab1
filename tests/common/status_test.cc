#include "common/status.h"

#include <gtest/gtest.h>

namespace tideslice {
namespace {

TEST(Status, OkByDefault) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "ok");
}

TEST(Status, InvalidArgumentNamesTheField) {
  Status s = Status::InvalidArgument("tideslice.io/vnpu-cores", "must be between 1 and 100, got 150");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.field(), "tideslice.io/vnpu-cores");
  EXPECT_EQ(s.ToString(), "invalid argument: tideslice.io/vnpu-cores: must be between 1 and 100, got 150");
}

TEST(Status, WithContextKeepsCodeAndField) {
  Status s = Status::NotFound("no such node").WithContext("reserve p");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "reserve p: no such node");
  EXPECT_TRUE(Status::Ok().WithContext("x").ok());
}

TEST(StatusOr, HoldsValueOrError) {
  StatusOr<int> v = 7;
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 7);
  StatusOr<int> e = Status::Internal("boom");
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.status().message(), "boom");
}

Status Chain(bool fail) {
  TS_RETURN_IF_ERROR(fail ? Status::Unavailable("down") : Status::Ok());
  return Status::AlreadyExists("reached the end");
}

TEST(Status, ReturnIfErrorMacro) {
  EXPECT_EQ(Chain(true).code(), StatusCode::kUnavailable);
  EXPECT_EQ(Chain(false).code(), StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace tideslice

#include "common/flags.h"

namespace tideslice {
namespace {

TEST(Flags, ValuesSwitchesHelpAndErrorsThatNameTheFlag) {
  const char* argv[] = {"bin", "--a", "1", "--b=two", "--on", "-h"};
  auto f = ParseFlags(6, argv, {"--a", "--b"}, {"--on"});
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->values.at("--a"), "1");
  EXPECT_EQ(f->values.at("--b"), "two");
  EXPECT_EQ(f->values.at("--on"), "true");
  EXPECT_TRUE(f->help);
  const char* unknown[] = {"bin", "--frobnicate", "1"};
  EXPECT_EQ(ParseFlags(3, unknown, {"--a"}).status().message(), "unknown flag --frobnicate");
  const char* missing[] = {"bin", "--a"};
  EXPECT_EQ(ParseFlags(2, missing, {"--a"}).status().message(), "needs a value");
  const char* unknown_eq[] = {"bin", "--zzz=1"};
  EXPECT_EQ(ParseFlags(2, unknown_eq, {"--a"}).status().field(), "--zzz");
}

}  // namespace
}  // namespace tideslice
