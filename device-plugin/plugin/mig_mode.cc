#include "device-plugin/plugin/mig_mode.h"

namespace tideslice::deviceplugin {

StatusOr<MigModePolicy> ParseMigModePolicy(std::string_view text) {
  if (text == "off") return MigModePolicy::kOff;
  if (text == "on") return MigModePolicy::kOn;
  if (text == "leave") return MigModePolicy::kLeave;
  return Status::InvalidArgument("--mig-mode", "must be off, on or leave, got \"" + std::string(text) + "\"");
}

const char* MigModePolicyName(MigModePolicy policy) {
  switch (policy) {
    case MigModePolicy::kOff: return "off";
    case MigModePolicy::kOn: return "on";
    case MigModePolicy::kLeave: return "leave";
  }
  return "leave";
}

MigModeStep DecideMigMode(MigModePolicy policy, const DeviceInfo& card, const catalog::AcceleratorModel* model,
                          const std::string& busy_reason) {
  MigModeStep step;
  if (policy == MigModePolicy::kLeave || card.vendor != "nvidia") return step;
  const bool want = policy == MigModePolicy::kOn;
  step.enable = want;
  if (!model || model->partitioning != catalog::Partitioning::kMig) {
    // Off is what a card without MIG already is; "on" cannot be done and is said once.
    if (want) {
      step.kind = MigModeStep::Kind::kNotMig;
      step.why = card.uuid + " (" + card.model + ") has no MIG; it is handed out as whole cards and soft slices";
    }
    return step;
  }
  // The mode after the next reset: the current one, or its opposite while a change is pending.
  const bool after_reset = card.mig_reset_pending ? !card.mig_enabled : card.mig_enabled;
  if (card.mig_enabled == want && after_reset == want) return step;
  if (after_reset == want) {
    step.kind = MigModeStep::Kind::kPendingReset;
    step.why = "MIG mode on " + card.uuid + " becomes " + (want ? "on" : "off") +
               " at the next GPU reset (drain the card, then nvidia-smi -r -i " + std::to_string(card.index) +
               ") or reboot; until then it is handed out with MIG " + (card.mig_enabled ? "on" : "off");
    return step;
  }
  if (!card.healthy) {
    step.kind = MigModeStep::Kind::kUnhealthy;
    step.why = "MIG mode on " + card.uuid + " is left as it is while the card is unhealthy (" + card.health_reason + ")";
    return step;
  }
  if (!busy_reason.empty()) {
    step.kind = MigModeStep::Kind::kBusy;
    step.why = "MIG mode on " + card.uuid + " stays " + (card.mig_enabled ? "on" : "off") + " until the card is empty: " +
               busy_reason;
    return step;
  }
  step.kind = MigModeStep::Kind::kChange;
  step.why = std::string(want ? "enabling" : "disabling") + " MIG mode on " + card.uuid + " (the card is empty)";
  return step;
}

}  // namespace tideslice::deviceplugin
