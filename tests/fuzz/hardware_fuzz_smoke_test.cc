// Fuzz_hardware_text on seeds and deterministic mutations of them, on every build (the
// coverage-guided binary is fuzz_hardware_text with -DTIDESLICE_FUZZ=ON and clang).
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/fuzz/hardware_targets.h"
#include "tests/fuzz/mutate.h"

namespace tideslice::fuzz {
namespace {

TEST(FuzzSmoke, HardwareText) {
  const std::vector<std::string> seeds = {
      "00000000:17:00.0", "0000:c1:00.0", "17:00.0", "0-23,48-71", "3", "48,79, 94", "910B4-1", "310P3",
      R"({"machine":{"name":"m","interconnect":"nvswitch","linksPerCard":18,"sources":["x"]},)"
      R"("cards":[{"uuid":"g","model":"H100-80G","pciBusId":"0000:18:00.0","cpuAffinity":"0-55","numaNode":0,"linkDomain":"nvlink-0"}]})"};
  RunMutations(Fuzz_hardware_text, seeds, 2000, "0123456789abcdefABCDEF:.,-{}[]\" \n", 4242);
}

}  // namespace
}  // namespace tideslice::fuzz
