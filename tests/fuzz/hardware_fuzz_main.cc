// libFuzzer driver for Fuzz_hardware_text (tests/device-plugin/hardware.cmake).
#include "tests/fuzz/hardware_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tideslice::fuzz::Fuzz_hardware_text(data, size);
  return 0;
}
