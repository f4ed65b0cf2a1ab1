// Conversions between what the API server holds (NodeInventory and PodAssignment annotations)
// and what the placement core works on (NodeState, PodPlacement). Pure; no I/O.
#pragma once

#include <map>
#include <string>

#include "common/catalog/catalog.h"
#include "common/status.h"
#include "scheduler/core/cluster.h"
#include "tideslice/v1/tideslice.pb.h"

namespace tideslice::service {

// A node's cards from its inventory. Models unknown to the catalog are kept (so the node shows
// up with a reason) but their cards are unhealthy for placement. `cluster` hands out model ids.
core::NodeState NodeFromInventory(const v1::NodeInventory& inventory, const std::map<std::string, std::string>& labels,
                                  const catalog::Catalog& catalog, core::ClusterState& cluster);

// A bound pod's assignment as the core's placement on `node` (card indexes resolved by uuid,
// partition budgets from the catalog profile). Init-container grants on cards an app container
// also holds reuse the pod's share, as the core plans them.
StatusOr<core::PodPlacement> PlacementFromAssignment(const std::string& pod_key, const v1::PodAssignment& assignment,
                                                     const core::NodeState& node);

// The assignment the binder writes for a planned placement on `node` (phase left unset; the binder
// sets it). Memory and compute are written as the core accounts them, so that reading the
// assignment back (PlacementFromAssignment) restores exactly the same accounting.
v1::PodAssignment AssignmentFromPlacement(const core::PodPlacement& placement, const core::NodeState& node);

}  // namespace tideslice::service
