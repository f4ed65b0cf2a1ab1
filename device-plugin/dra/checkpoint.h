// The driver's memory of prepared claims, by claim UID: what NodePrepareResources answered and
// what it set up on the host (partitions, limiter directories, CDI file). Unprepare may come to
// another driver process than prepare (restart, rolling update) and after the ResourceClaim is
// gone, so everything needed to undo a claim is here. One JSON file (checkpoint.json in the
// plugin data directory), replaced atomically on every change.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace tideslice::dra {

struct PreparedDevice {
  std::vector<std::string> request_names;
  std::string pool, device, share_id;
  std::vector<std::string> cdi_ids;
  bool operator==(const PreparedDevice&) const = default;
};

struct PreparedPartition {
  std::string card_uuid, partition_id;
  bool operator==(const PreparedPartition&) const = default;
};

struct PreparedClaim {
  std::string ns, name, uid;
  std::vector<PreparedDevice> devices{};
  std::vector<PreparedPartition> partitions{};
  std::vector<std::string> limiter_requests{};  // containers/<uid>/<request> directories
  std::string cdi_file{};                       // empty: none written
  bool operator==(const PreparedClaim&) const = default;
};

using Checkpoint = std::map<std::string, PreparedClaim>;  // by claim UID

// A missing file is an empty checkpoint; a file that does not parse is an error naming it
// (guessing would leak or destroy partitions).
StatusOr<Checkpoint> LoadCheckpoint(const std::string& path);
Status SaveCheckpoint(const std::string& path, const Checkpoint& checkpoint);
// For the fuzz/unit tests: the parser alone.
StatusOr<Checkpoint> ParseCheckpoint(const std::string& text);

}  // namespace tideslice::dra
