#include "device-plugin/exporter/allocation_metrics.h"

#include <algorithm>

#include "common/kube/objects.h"

namespace tideslice::deviceplugin {

AllocationMetrics::AllocationMetrics(std::shared_ptr<prometheus::Registry> registry, std::string node_name)
    : node_(std::move(node_name)),
      card_memory_(prometheus::BuildGauge()
                       .Name("tideslice_card_memory_allocated_bytes")
                       .Help("Card memory assigned to containers by the TideSlice scheduler, in bytes (from the "
                             "pods' assignments, not measured; see tideslice_card_memory_used_bytes).")
                       .Register(*registry)),
      card_compute_(prometheus::BuildGauge()
                        .Name("tideslice_card_compute_allocated_ratio")
                        .Help("Share of the card's compute assigned to containers, 0 to 1.")
                        .Register(*registry)),
      card_slices_(prometheus::BuildGauge()
                       .Name("tideslice_card_slices_assigned")
                       .Help("Slices (soft shares, partitions or whole-card grants) the scheduler assigned on the card "
                             "(phase ALLOCATING or ALLOCATED), from the pods' assignments; not a measurement.")
                       .Register(*registry)),
      container_memory_(prometheus::BuildGauge()
                            .Name("tideslice_container_memory_allocated_bytes")
                            .Help("Card memory assigned to the container on this card, in bytes (from its pod's "
                                  "assignment, not measured; see tideslice_container_memory_used_bytes).")
                            .Register(*registry)),
      container_compute_(prometheus::BuildGauge()
                             .Name("tideslice_container_compute_allocated_ratio")
                             .Help("Share of the card's compute assigned to the container, 0 to 1.")
                             .Register(*registry)),
      pod_memory_used_(prometheus::BuildGauge()
                           .Name("tideslice_pod_memory_used_bytes")
                           .Help("Card memory the pod's processes really use, as the driver reports it, in bytes "
                                 "(NVIDIA only; compare with tideslice_container_memory_allocated_bytes).")
                           .Register(*registry)) {}

void AllocationMetrics::Update(const std::vector<DeviceInfo>& cards,
                               const std::vector<ContainerAllocation>& allocations,
                               const std::map<std::pair<std::string, std::string>, int64_t>& used) {
  for (auto& [family, gauge] : series_) family->Remove(gauge);
  series_.clear();
  auto set = [&](prometheus::Family<prometheus::Gauge>& family, const std::map<std::string, std::string>& labels,
                 double value) {
    auto& g = family.Add(labels);
    g.Set(value);
    series_.emplace_back(&family, &g);
  };
  for (const auto& card : cards) {
    double memory = 0, compute = 0;
    int slices = 0;
    const double card_bytes = static_cast<double>(card.memory_mib) * 1024 * 1024;
    std::map<std::string, std::string> card_labels = {{"node", node_},
                                                      {"card", std::to_string(card.index)},
                                                      {"uuid", card.uuid},
                                                      {"vendor", card.vendor},
                                                      {"model", card.model}};
    for (const auto& a : allocations) {
      if (a.card_uuid != card.uuid) continue;
      double m = a.whole ? card_bytes : static_cast<double>(a.memory_mib) * 1024 * 1024;
      double c = a.whole ? 1.0 : a.compute_permille / 1000.0;
      memory += m;
      compute += c;
      ++slices;
      set(container_memory_,
          {{"node", node_}, {"namespace", a.pod_namespace}, {"pod", a.pod}, {"container", a.container},
           {"card", std::to_string(card.index)}, {"uuid", card.uuid}},
          m);
      set(container_compute_,
          {{"node", node_}, {"namespace", a.pod_namespace}, {"pod", a.pod}, {"container", a.container},
           {"card", std::to_string(card.index)}, {"uuid", card.uuid}},
          c);
    }
    // Real use per pod on this card, for the pods TideSlice placed here (others are not ours).
    std::map<std::string, const ContainerAllocation*> pods_here;
    for (const auto& a : allocations)
      if (a.card_uuid == card.uuid && !a.pod_uid.empty()) pods_here[a.pod_uid] = &a;
    for (const auto& [uid, a] : pods_here) {
      auto u = used.find({uid, card.uuid});
      if (u == used.end()) continue;
      set(pod_memory_used_,
          {{"node", node_}, {"namespace", a->pod_namespace}, {"pod", a->pod}, {"card", std::to_string(card.index)},
           {"uuid", card.uuid}},
          static_cast<double>(u->second));
    }
    set(card_memory_, card_labels, std::min(memory, card_bytes));
    set(card_compute_, card_labels, std::min(compute, 1.0));
    set(card_slices_, card_labels, slices);
  }
}

void ReplacePodsByKey(std::map<std::string, nlohmann::json>& by_key, std::vector<nlohmann::json> items) {
  by_key.clear();
  for (auto& p : items) {
    std::string key = kube::PodKey(p);
    by_key[key] = std::move(p);
  }
}

}  // namespace tideslice::deviceplugin
