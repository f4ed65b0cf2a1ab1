// FlagSet: flags into typed options, defaults from the options, errors that name the flag and say
// what to write, a file of flags under the command line.
#include "common/flags.h"

#include <gtest/gtest.h>

namespace tideslice {
namespace {

struct Options {
  uint64_t reserve = 0;
  std::string address = "http://0.0.0.0:10260";
  int threads = 2;
  std::chrono::seconds period{5};
  bool leader_elect = true;
  bool standalone = false;
  std::string mode = "leave";
  std::set<std::string> namespaces = {"kube-system"};
  std::string config;
};

FlagSet Bind(Options* o) {
  FlagSet f("tideslice-test", "a test binary");
  f.String("--address", &o->address, "where to listen", [](const std::string& v) {
     return v.rfind("http", 0) == 0 ? "" : "must start with http:// or https://";
   })
      .Int("--threads", &o->threads, 1, 256, "I/O threads")
      .Seconds("--period", &o->period, 1, 3600, "how often")
      .Bool("--leader-elect", &o->leader_elect, "elect a leader")
      .Switch("--standalone", &o->standalone, "no Kubernetes")
      .Choice("--mode", &o->mode, {"off", "on", "leave"}, "MIG mode")
      .List("--namespaces", &o->namespaces, "left alone")
      .Raw("--config", &o->config, "a file")
      .Bytes("--reserve", &o->reserve, 1ull << 36, "bytes per context");
  return f;
}

Status ParseArgs(FlagSet& f, std::vector<const char*> args) {
  args.insert(args.begin(), "prog");
  return f.Parse(static_cast<int>(args.size()), args.data());
}

TEST(FlagSet, DefaultsStayAndGivenFlagsAreTyped) {
  Options o;
  FlagSet f = Bind(&o);
  ASSERT_TRUE(ParseArgs(f, {"--threads", "8", "--period=30", "--leader-elect", "false", "--standalone", "--mode", "on",
                            "--namespaces", "a,,b", "--reserve", "512Mi"})
                  .ok());
  EXPECT_EQ(o.address, "http://0.0.0.0:10260");
  EXPECT_EQ(o.threads, 8);
  EXPECT_EQ(o.period, std::chrono::seconds(30));
  EXPECT_FALSE(o.leader_elect);
  EXPECT_TRUE(o.standalone);
  EXPECT_EQ(o.mode, "on");
  EXPECT_EQ(o.namespaces, (std::set<std::string>{"a", "b"}));
  EXPECT_EQ(o.reserve, 512ull << 20);
  EXPECT_TRUE(f.given("--threads"));
  EXPECT_FALSE(f.given("--address"));
}

TEST(FlagSet, ErrorsNameTheFlagAndSayWhatToWrite) {
  struct Case {
    std::vector<const char*> args;
    std::string field, says;
  } cases[] = {
      {{"--threads", "0"}, "--threads", "must be a whole number from 1 to 256, got \"0\""},
      {{"--threads", "8x"}, "--threads", "got \"8x\""},
      {{"--period", "5s"}, "--period", "whole seconds from 1 to 3600 (no unit)"},
      {{"--leader-elect", "yes"}, "--leader-elect", "must be true or false"},
      {{"--mode", "auto"}, "--mode", "must be one of off|on|leave"},
      {{"--address", "ftp://x"}, "--address", "must start with http://"},
      {{"--frobnicate", "1"}, "--frobnicate", "unknown flag --frobnicate"},
      {{"--threads"}, "--threads", "needs a value"},
      {{"--reserve", "1.5"}, "--reserve", "whole number of bytes from 0 to 64Gi (a quantity such as 512Mi)"},
      {{"--reserve", "65Gi"}, "--reserve", "from 0 to 64Gi"},
  };
  for (const auto& c : cases) {
    Options o;
    FlagSet f = Bind(&o);
    Status s = ParseArgs(f, c.args);
    ASSERT_FALSE(s.ok()) << c.args[0];
    EXPECT_EQ(s.field(), c.field);
    EXPECT_NE(s.ToString().find(c.says), std::string::npos) << s.ToString();
  }
}

TEST(FlagSet, HelpAppliesNothingAndUsageShowsEveryFlagWithItsDefault) {
  Options o;
  FlagSet f = Bind(&o);
  ASSERT_TRUE(ParseArgs(f, {"--threads", "9", "--help"}).ok());
  EXPECT_TRUE(f.help_requested());
  EXPECT_EQ(o.threads, 2);
  std::string usage = f.Usage();
  EXPECT_NE(usage.find("--threads N"), std::string::npos) << usage;
  EXPECT_NE(usage.find("I/O threads (default 2)"), std::string::npos) << usage;
  EXPECT_NE(usage.find("--mode off|on|leave"), std::string::npos) << usage;
  EXPECT_NE(usage.find("(default kube-system)"), std::string::npos) << usage;
}

TEST(FlagSet, FileFlagsApplyUnderTheCommandLine) {
  Options o;
  FlagSet f = Bind(&o);
  std::vector<const char*> args = {"prog", "--config", "/etc/x.yaml", "--threads", "4"};
  EXPECT_EQ(FlagSet::Peek(5, args.data(), "--config"), "/etc/x.yaml");
  ASSERT_TRUE(f.Parse(5, args.data(), {{"threads", "3"}, {"mode", "off"}, {"standalone", "true"}}, "/etc/x.yaml").ok());
  EXPECT_EQ(o.threads, 4) << "the command line wins";
  EXPECT_EQ(o.mode, "off");
  EXPECT_TRUE(o.standalone);
  Options p;
  FlagSet g = Bind(&p);
  Status bad = g.Parse(1, args.data(), {{"threads", "zero"}}, "/etc/x.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.ToString().find("--threads: (in /etc/x.yaml) must be a whole number"), std::string::npos)
      << bad.ToString();
  EXPECT_FALSE(g.Parse(1, args.data(), {{"colour", "blue"}}, "/etc/x.yaml").ok());
}

}  // namespace
}  // namespace tideslice
