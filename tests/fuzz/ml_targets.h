// Fuzz entry points for the parsers behind sizing by model and kubectl-tideslice (kept apart from
// targets.h so that their libraries stay out of the other targets' link). Each must return
// normally for any bytes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tideslice::fuzz {

void Fuzz_model_annotations(const uint8_t* data, size_t size);  // tideslice.io/model-* values ('|'-separated)
void Fuzz_filter_record(const uint8_t* data, size_t size);      // tideslice.io/filter-reasons
void Fuzz_cli_views(const uint8_t* data, size_t size);          // any object kubectl-tideslice reads, rendered

}  // namespace tideslice::fuzz
