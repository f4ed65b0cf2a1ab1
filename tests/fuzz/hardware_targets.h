// Fuzz entry points for what the node agent reads about the hardware: PCI addresses, CPU lists,
// XID lists (--critical-xids), machine layouts (--mock-config) and DCMI chip identities.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tideslice::fuzz {

void Fuzz_hardware_text(const uint8_t* data, size_t size);

}  // namespace tideslice::fuzz
