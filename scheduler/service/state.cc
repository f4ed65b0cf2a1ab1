#include "scheduler/service/state.h"

#include <set>

namespace tideslice::service {

core::NodeState NodeFromInventory(const v1::NodeInventory& inventory, const std::map<std::string, std::string>& labels,
                                  const catalog::Catalog& catalog, core::ClusterState& cluster) {
  core::NodeState node;
  node.name = inventory.node_name();
  node.labels = labels;
  node.dra = !inventory.dra_driver().empty();
  std::string unknown;
  for (const auto& c : inventory.cards()) {
    core::CardState card;
    card.uuid = c.uuid();
    card.index = c.index();
    card.model = catalog.Find(c.model());
    card.model_id = cluster.ModelId(card.model ? card.model->name : c.model());
    card.memory_mib = c.memory_mib();
    card.healthy = c.health() == v1::HEALTH_HEALTHY && card.model != nullptr;
    card.numa_node = c.numa_node();
    card.link_domain = c.link_domain();
    card.profiles_listed = true;
    card.profiles.assign(c.profiles().begin(), c.profiles().end());
    if (!card.model) unknown = c.model();
    node.cards.push_back(std::move(card));
  }
  if (!unknown.empty() && node.HealthyCards() == 0) {
    node.schedulable = false;
    node.unschedulable_reason = "card model \"" + unknown + "\" is not in the TideSlice catalog (add it with a catalog override)";
  }
  return node;
}

StatusOr<core::PodPlacement> PlacementFromAssignment(const std::string& pod_key, const v1::PodAssignment& assignment,
                                                     const core::NodeState& node) {
  core::PodPlacement p;
  p.pod_key = pod_key;
  p.pod_uid = assignment.pod_uid();
  p.node = node.name;
  p.exclusive = assignment.exclusive();
  std::set<int> app_cards;
  for (const auto& c : assignment.containers())
    if (!c.init_container())
      for (const auto& s : c.slices())
        for (size_t i = 0; i < node.cards.size(); ++i)
          if (node.cards[i].uuid == s.card_uuid()) app_cards.insert(static_cast<int>(i));
  for (const auto& c : assignment.containers()) {
    core::ContainerGrant cg;
    cg.name = c.name();
    cg.init = c.init_container();
    for (const auto& s : c.slices()) {
      core::CardGrant g;
      g.uuid = s.card_uuid();
      for (size_t i = 0; i < node.cards.size(); ++i)
        if (node.cards[i].uuid == s.card_uuid()) g.card_index = static_cast<int>(i);
      if (g.card_index < 0)
        return Status::FailedPrecondition("pod " + pod_key + " holds card " + s.card_uuid() + ", which node " + node.name +
                                          " no longer reports");
      g.memory_mib = s.memory_mib();
      g.compute_permille = s.whole_card() ? core::kWholeCardPermille : s.compute_permille();
      if (s.whole_card() && g.memory_mib == 0) g.memory_mib = node.cards[g.card_index].memory_mib;
      g.whole = s.whole_card();
      g.profile = s.profile();
      g.start_slot = s.profile().empty() ? -1 : s.start_slot();
      const auto* model = node.cards[g.card_index].model;
      if (!g.profile.empty() && model) {
        if (const auto* prof = model->FindProfile(g.profile)) {
          if (model->partitioning == catalog::Partitioning::kMig) {
            g.mig_compute_slices = prof->compute;
          } else {
            g.aicore = prof->compute;
            g.aicpu = prof->aicpu;
          }
          if (g.memory_mib == 0) g.memory_mib = prof->memory_mib;
        }
      }
      g.reuses_pod_share = cg.init && app_cards.count(g.card_index) > 0;
      cg.cards.push_back(std::move(g));
    }
    p.containers.push_back(std::move(cg));
  }
  return p;
}

v1::PodAssignment AssignmentFromPlacement(const core::PodPlacement& placement, const core::NodeState& node) {
  v1::PodAssignment a;
  a.set_pod_uid(placement.pod_uid);
  a.set_node_name(placement.node);
  a.set_exclusive(placement.exclusive);
  for (const auto& c : placement.containers) {
    auto* ca = a.add_containers();
    ca->set_name(c.name);
    ca->set_init_container(c.init);
    for (const auto& g : c.cards) {
      auto* s = ca->add_slices();
      s->set_card_uuid(g.uuid);
      s->set_card_index(g.card_index >= 0 && g.card_index < static_cast<int>(node.cards.size())
                            ? node.cards[g.card_index].index
                            : -1);
      s->set_memory_mib(g.memory_mib);
      s->set_compute_permille(g.compute_permille);
      s->set_profile(g.profile);
      s->set_start_slot(g.profile.empty() ? -1 : g.start_slot);
      s->set_whole_card(g.whole);
    }
  }
  return a;
}

}  // namespace tideslice::service
