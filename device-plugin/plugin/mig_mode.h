// MIG mode per node group: the admin's setting (off | on | leave) and the pure decision, per card,
// of what the agent does about it. The agent applies it only to empty cards; a change the driver
// can only make at the next GPU reset is reported as pending, not retried.
#pragma once

#include <string>
#include <string_view>

#include "common/catalog/catalog.h"
#include "common/status.h"
#include "device-plugin/backends/device_backend.h"

namespace tideslice::deviceplugin {

enum class MigModePolicy { kLeave, kOff, kOn };
StatusOr<MigModePolicy> ParseMigModePolicy(std::string_view text);  // "off" | "on" | "leave"
const char* MigModePolicyName(MigModePolicy policy);

struct MigModeStep {
  enum class Kind {
    kNothing,       // leave, or the card already is (and stays) in the wanted mode
    kNotMig,        // the card's model has no MIG
    kUnhealthy,     // not touched while unhealthy
    kPendingReset,  // the driver holds the wanted mode for the next reset
    kBusy,          // work runs on the card: wait until it is empty
    kChange,        // ask the driver now
  };
  Kind kind = Kind::kNothing;
  bool enable = false;  // the mode wanted (kChange, kPendingReset)
  std::string why;      // for people
};

// `busy_reason` is empty when nothing runs on the card (no processes, no partitions, nothing
// allocated); otherwise it says what does. `model` may be null (unknown to the catalog).
MigModeStep DecideMigMode(MigModePolicy policy, const DeviceInfo& card, const catalog::AcceleratorModel* model,
                          const std::string& busy_reason);

}  // namespace tideslice::deviceplugin
