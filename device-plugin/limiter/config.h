// The limiter's configuration: message tideslice.v1.LimiterConfig (proto/tideslice/v1) in its
// proto3 JSON form, parsed without the C++ library (the limiter may not depend on the image's
// libstdc++). The parser accepts what protobuf's JSON printer writes — lowerCamelCase or proto
// field names, 64-bit integers as decimal strings or numbers — ignores fields it does not know
// (a newer agent may add some; `version` marks incompatible changes), and refuses everything
// else with a message that names the field.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "device-plugin/limiter/region_layout.h"

namespace tideslice::limiter {

inline constexpr uint32_t kConfigVersion = 1;
inline constexpr size_t kConfigMaxBytes = 64 * 1024;
inline constexpr uint32_t kConfigMaxCards = kRegionMaxCards;

enum class Vendor : uint8_t { kNvidia, kHuawei };

struct CardLimit {
  char uuid[96];
  uint32_t visible_index;
  uint64_t memory_limit_bytes;  // 0 = not limited
  uint32_t compute_permille;
  uint32_t region_card;
  char coordination_dir[256];  // the card's coordination directory (card_coordination.h), or ""
  uint32_t coordination_slot;
};

struct Config {
  uint32_t version;
  char pod_namespace[64];
  char pod_name[256];
  char pod_uid[64];
  char container[64];
  Vendor vendor;
  char region_path[512];
  uint64_t context_reserve_bytes;
  uint32_t workload_class;  // WorkloadClassCode (card_coordination.h)
  bool work_conserving;
  uint32_t card_count;
  CardLimit cards[kConfigMaxCards];
};

// Parses and validates; on failure writes a one-line reason into `error` and returns false.
bool ParseConfig(const char* text, size_t length, Config* out, char* error, size_t error_size);

}  // namespace tideslice::limiter
