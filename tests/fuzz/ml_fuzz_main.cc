// libFuzzer driver for tests/fuzz/ml_targets.h; TIDESLICE_FUZZ_TARGET names the entry point
// (see tests/cli/cli.cmake).
#include "tests/fuzz/ml_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tideslice::fuzz::TIDESLICE_FUZZ_TARGET(data, size);
  return 0;
}
