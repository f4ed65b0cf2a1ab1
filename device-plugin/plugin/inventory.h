// The node's card list as the tideslice.v1.NodeInventory the scheduler reads from the node
// annotation tideslice.io/inventory. Pure; the publisher (Kubernetes patch) comes with the API client.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/catalog/catalog.h"
#include "device-plugin/backends/device_backend.h"
#include "tideslice/v1/tideslice.pb.h"

namespace tideslice::deviceplugin {

v1::NodeInventory BuildInventory(const std::string& node_name, const std::string& backend,
                                 const std::vector<DeviceInfo>& cards, const catalog::Catalog& catalog,
                                 std::chrono::system_clock::time_point heartbeat);

}  // namespace tideslice::deviceplugin
