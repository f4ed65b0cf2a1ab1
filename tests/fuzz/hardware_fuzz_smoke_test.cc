// Fuzz_hardware_text on seeds and deterministic mutations of them, on every build (the
// coverage-guided binary is fuzz_hardware_text with -DTIDESLICE_FUZZ=ON and clang).
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/fuzz/hardware_targets.h"

namespace tideslice::fuzz {
namespace {

TEST(FuzzSmoke, HardwareText) {
  const std::vector<std::string> seeds = {
      "00000000:17:00.0", "0000:c1:00.0", "17:00.0", "0-23,48-71", "3", "48,79, 94", "910B4-1", "310P3",
      R"({"machine":{"name":"m","interconnect":"nvswitch","linksPerCard":18,"sources":["x"]},)"
      R"("cards":[{"uuid":"g","model":"H100-80G","pciBusId":"0000:18:00.0","cpuAffinity":"0-55","numaNode":0,"linkDomain":"nvlink-0"}]})"};
  std::mt19937 rng(4242);
  const std::string alphabet = "0123456789abcdefABCDEF:.,-{}[]\" \n";
  for (const auto& seed : seeds) {
    Fuzz_hardware_text(reinterpret_cast<const uint8_t*>(seed.data()), seed.size());
    for (int r = 0; r < 2000; ++r) {
      std::string s = seed;
      for (int e = 0, edits = 1 + static_cast<int>(rng() % 4); e < edits; ++e) {
        size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
        switch (rng() % 4) {
          case 0: s.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
          case 1: if (pos < s.size()) s.erase(pos, 1 + rng() % 8); break;
          case 2: if (pos < s.size()) s[pos] = static_cast<char>(rng() % 256); break;
          case 3: s = s.substr(0, pos); break;
        }
      }
      Fuzz_hardware_text(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    }
  }
}

}  // namespace
}  // namespace tideslice::fuzz
