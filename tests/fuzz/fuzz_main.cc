// libFuzzer driver; TIDESLICE_FUZZ_TARGET names the entry point (see tests/CMakeLists.txt).
#include "tests/fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tideslice::fuzz::TIDESLICE_FUZZ_TARGET(data, size);
  return 0;
}
