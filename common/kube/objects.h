// TideSlice's reading of Kubernetes objects (JSON as the API serves them): pod keys and the
// PodAssignment / NodeInventory annotations. Shared by the scheduler and the node agent so both
// sides decode the hand-off the same way.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "tideslice/v1/tideslice.pb.h"

namespace tideslice::kube {

// "namespace/name".
std::string PodKey(const nlohmann::json& pod);
std::string NodeNameOf(const nlohmann::json& pod);  // spec.nodeName, "" if unbound
std::string UidOf(const nlohmann::json& object);    // metadata.uid, "" if absent
// The PodAssignment annotation, nullopt if the pod has none; an error if it is malformed.
StatusOr<std::optional<v1::PodAssignment>> AssignmentOf(const nlohmann::json& pod);
// The NodeInventory annotation, nullopt if the node has none; an error if it is malformed.
StatusOr<std::optional<v1::NodeInventory>> InventoryOf(const nlohmann::json& node);
// Succeeded/Failed pods and pods being deleted hold no devices any more.
bool PodIsFinished(const nlohmann::json& pod);
// Succeeded or Failed: its containers have stopped. A pod being deleted is not terminal until
// then (it may still use its cards through its termination grace period).
bool PodIsTerminal(const nlohmann::json& pod);

}  // namespace tideslice::kube
