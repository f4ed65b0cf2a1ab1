// The structured logger (one JSON object per line, persistent conditions once per change) and the
// bounded JSON parse (depth and size refused before nlohmann recurses).
#include "common/log/log.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/codec/bounded_json.h"

namespace tideslice {
namespace {

struct Captured {
  std::vector<std::string> lines;
};

void Capture(const std::string& line, void* user) { static_cast<Captured*>(user)->lines.push_back(line); }

TEST(Log, OneJsonObjectPerLineWithHostileTextEscaped) {
  Captured c;
  log::SetSink(&Capture, &c);
  log::Warn("api.unreachable", "cannot list \"pods\"\n", {{"path", "/api/v1/pods"}, {"ctl", std::string("a\x01" "b")}});
  log::SetSink(nullptr, nullptr);
  ASSERT_EQ(c.lines.size(), 1u);
  ASSERT_EQ(c.lines[0].back(), '\n');
  auto j = nlohmann::json::parse(c.lines[0]);
  EXPECT_EQ(j["level"], "warn");
  EXPECT_EQ(j["component"], "api") << "the component is the event's first dotted part";
  EXPECT_EQ(j["event"], "api.unreachable");
  EXPECT_EQ(j["msg"], "cannot list \"pods\"\n");
  EXPECT_EQ(j["ctl"], std::string("a\x01" "b"));
  EXPECT_EQ(c.lines[0].find('\n'), c.lines[0].size() - 1) << "a message never splits the line";
}

TEST(Log, ChangeLogWritesOncePerChangeNotPerRetry) {
  Captured c;
  log::SetSink(&Capture, &c);
  log::ChangeLog changes;
  EXPECT_FALSE(changes.Record("api", "ok", log::Level::kInfo, "api.ok", "fine"));  // first state, quiet
  for (int i = 0; i < 50; ++i) changes.Record("api", "down", log::Level::kWarn, "api.down", "down");
  EXPECT_TRUE(changes.Record("api", "ok", log::Level::kInfo, "api.ok", "back"));
  EXPECT_TRUE(changes.Record("lease", "lost", log::Level::kWarn, "lease.lost", "lost", {}, /*log_first=*/true));
  log::SetSink(nullptr, nullptr);
  EXPECT_EQ(c.lines.size(), 3u);
}

TEST(BoundedJson, DeepAndLargeInputIsRefusedBeforeParsing) {
  std::string deep(100000, '[');
  auto r = codec::BoundedParse(deep, "request body");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().field(), "request body");
  EXPECT_NE(r.status().message().find("deeper"), std::string::npos);
  // Brackets inside strings are text, not nesting.
  std::string in_string = "{\"a\":\"" + std::string(1000, '[') + "\"}";
  EXPECT_TRUE(codec::BoundedParse(in_string, "x").ok());
  std::string escaped = R"({"a":"\"[[[[","b":[1]})";
  EXPECT_EQ(codec::JsonDepth(escaped, 100), 2);
  EXPECT_FALSE(codec::BoundedParse(std::string(100, ' '), "x", {.max_bytes = 10}).ok());
  EXPECT_FALSE(codec::BoundedParse("{not json", "x").ok());
  EXPECT_TRUE(codec::BoundedParse(std::string(64, '[') + std::string(64, ']'), "x").ok());
  EXPECT_FALSE(codec::BoundedParse(std::string(65, '[') + std::string(65, ']'), "x").ok());
}

}  // namespace
}  // namespace tideslice
