// A Node object as the node agent leaves it: `cards` H100-80G cards named "<node>-GPU-<i>" in the
// tideslice.io/inventory annotation, with a heartbeat. Header-only; link tideslice_codec.
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "common/codec/annotations.h"

namespace tideslice::testsupport {

// `dra_driver`: as tideslice-dra-driver leaves it (the inventory names the driver).
inline nlohmann::json InventoryNode(const std::string& name, int cards, std::chrono::system_clock::time_point heartbeat,
                                    bool healthy = true, nlohmann::json labels = nlohmann::json::object(),
                                    const std::string& dra_driver = "") {
  v1::NodeInventory inv;
  inv.set_node_name(name);
  inv.set_dra_driver(dra_driver);
  inv.mutable_heartbeat()->set_seconds(
      std::chrono::duration_cast<std::chrono::seconds>(heartbeat.time_since_epoch()).count());
  for (int i = 0; i < cards; ++i) {
    auto* c = inv.add_cards();
    c->set_uuid(name + "-GPU-" + std::to_string(i));
    c->set_index(i);
    c->set_vendor("nvidia");
    c->set_model("H100-80G");
    c->set_memory_mib(81920);
    c->set_health(healthy ? v1::HEALTH_HEALTHY : v1::HEALTH_UNHEALTHY);
  }
  nlohmann::json node = {
      {"metadata", {{"name", name}, {"annotations", {{std::string(codec::kInventoryAnnotation), codec::EncodeInventory(inv)}}}}}};
  if (!labels.empty()) node["metadata"]["labels"] = std::move(labels);
  return node;
}

}  // namespace tideslice::testsupport
