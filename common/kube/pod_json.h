// Decodes a Kubernetes Pod from its JSON form (as the apiserver serves it, or embedded in the
// extender's ExtenderArgs) into a PodSpec. Never throws; malformed input is a Status that
// names the offending field.
#pragma once

#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "common/kube/pod_spec.h"
#include "common/status.h"

namespace tideslice::kube {

StatusOr<PodSpec> PodSpecFromJson(std::string_view text);
StatusOr<PodSpec> PodSpecFromJson(const nlohmann::json& pod);

}  // namespace tideslice::kube
