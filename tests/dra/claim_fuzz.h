// Fuzz entry point for the DRA driver's ResourceClaim parser (device-plugin/dra/claim.*): run
// deterministically by dra_core_test, coverage-guided by fuzz_dra_claim (-DTIDESLICE_FUZZ=ON).
#pragma once

#include <cstddef>
#include <cstdint>

namespace tideslice::fuzz {
void Fuzz_dra_claim(const uint8_t* data, size_t size);
// The driver's checkpoint file (device-plugin/dra/checkpoint.*).
void Fuzz_dra_checkpoint(const uint8_t* data, size_t size);
}
