// Fuzz entry points for every parser of external input. Each must return normally for any
// bytes: errors are Status values, never crashes, hangs or undefined behaviour.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tideslice::fuzz {

void Fuzz_quantity(const uint8_t* data, size_t size);
void Fuzz_pod_json(const uint8_t* data, size_t size);
void Fuzz_annotations(const uint8_t* data, size_t size);
void Fuzz_trace_csv(const uint8_t* data, size_t size);
void Fuzz_catalog(const uint8_t* data, size_t size);
void Fuzz_prefilter(const uint8_t* data, size_t size);
void Fuzz_extender(const uint8_t* data, size_t size);

}  // namespace tideslice::fuzz
