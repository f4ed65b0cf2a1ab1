#include "device-plugin/plugin/inventory.h"

#include <algorithm>

namespace tideslice::deviceplugin {

v1::NodeInventory BuildInventory(const std::string& node_name, const std::string& backend,
                                 const std::vector<DeviceInfo>& cards, const catalog::Catalog& catalog,
                                 std::chrono::system_clock::time_point heartbeat) {
  v1::NodeInventory inv;
  inv.set_node_name(node_name);
  inv.set_backend(backend);
  inv.set_agent_version("0.1.0");
  auto since_epoch = heartbeat.time_since_epoch();
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  inv.mutable_heartbeat()->set_seconds(seconds.count());
  inv.mutable_heartbeat()->set_nanos(
      static_cast<int32_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - seconds).count()));
  for (const auto& c : cards) {
    auto* card = inv.add_cards();
    card->set_uuid(c.uuid);
    card->set_index(c.index);
    card->set_vendor(c.vendor);
    card->set_model(c.model);
    card->set_memory_mib(c.memory_mib);
    card->set_health(c.healthy ? v1::HEALTH_HEALTHY : v1::HEALTH_UNHEALTHY);
    card->set_numa_node(c.numa_node);
    card->set_link_domain(c.link_domain);
    if (const auto* model = catalog.Find(c.model)) {
      card->set_compute_units(model->compute_units);
      // The partitions this card's driver accepts, where the backend knows them better than the
      // catalog model (Ascend boards of one model accept different vNPU templates): the scheduler
      // offers a pod only templates the chip can create.
      for (const auto& p : model->profiles)
        if (c.partition_profiles.empty() ||
            std::find(c.partition_profiles.begin(), c.partition_profiles.end(), p.name) != c.partition_profiles.end())
          card->add_profiles(p.name);
      card->set_mig_enabled(c.mig_enabled);
    }
  }
  return inv;
}

}  // namespace tideslice::deviceplugin
