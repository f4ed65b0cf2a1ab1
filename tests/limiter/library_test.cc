// The built libtideslice-limiter.so itself: it must load in images as old as glibc 2.17 without
// a C++ runtime of theirs, and export nothing but the functions it interposes.
#include <cstdio>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace {

std::string Shell(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

TEST(LimiterLibrary, NeedsNoGlibcNewerThan217AndNoCxxRuntime) {
  std::string symbols = Shell(std::string("objdump -T ") + TIDESLICE_LIMITER_SO);
  ASSERT_FALSE(symbols.empty()) << "objdump failed";
  std::regex version(R"(GLIBC_(\d+)\.(\d+))");
  int checked = 0;
  for (auto it = std::sregex_iterator(symbols.begin(), symbols.end(), version); it != std::sregex_iterator(); ++it) {
    int major = std::stoi((*it)[1]), minor = std::stoi((*it)[2]);
    EXPECT_TRUE(major < 2 || (major == 2 && minor <= 17)) << "needs " << it->str() << ":\n" << symbols;
    ++checked;
  }
  EXPECT_GT(checked, 5);
  EXPECT_EQ(symbols.find("GLIBCXX"), std::string::npos) << symbols;
  EXPECT_EQ(symbols.find("CXXABI"), std::string::npos) << symbols;
  EXPECT_EQ(symbols.find("_Znwm"), std::string::npos) << "operator new is referenced";
  EXPECT_EQ(symbols.find("__cxa_guard"), std::string::npos) << "thread-safe statics need libstdc++";

  std::string dynamic = Shell(std::string("readelf -d ") + TIDESLICE_LIMITER_SO);
  std::set<std::string> needed;
  std::regex lib(R"(Shared library: \[([^\]]+)\])");
  for (auto it = std::sregex_iterator(dynamic.begin(), dynamic.end(), lib); it != std::sregex_iterator(); ++it)
    needed.insert((*it)[1]);
  EXPECT_EQ(needed, (std::set<std::string>{"libc.so.6", "libdl.so.2"})) << dynamic;
}

TEST(LimiterLibrary, ExportsExactlyTheInterposedFunctions) {
  std::ifstream map_file(TIDESLICE_LIMITER_EXPORTS_MAP);
  std::stringstream ss;
  ss << map_file.rdbuf();
  std::string map = ss.str();
  map = std::regex_replace(map, std::regex(R"(/\*[\s\S]*?\*/)"), "");
  map = map.substr(map.find("global:") + 7);
  map = map.substr(0, map.find("local:"));
  std::set<std::string> listed;
  std::regex name(R"([A-Za-z_][A-Za-z0-9_]*)");
  for (auto it = std::sregex_iterator(map.begin(), map.end(), name); it != std::sregex_iterator(); ++it)
    listed.insert(it->str());

  std::string symbols = Shell(std::string("nm -D --defined-only ") + TIDESLICE_LIMITER_SO);
  std::set<std::string> exported;
  std::istringstream lines(symbols);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string address, type, symbol;
    fields >> address >> type >> symbol;
    if (type == "T" || type == "W" || type == "D" || type == "B" || type == "i") exported.insert(symbol);
  }
  EXPECT_EQ(exported, listed);
  EXPECT_GT(exported.size(), 50u);
}

}  // namespace
