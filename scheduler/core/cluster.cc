#include "scheduler/core/cluster.h"

#include <algorithm>

namespace tideslice::core {

int64_t PodPlacement::TotalComputePermille() const {
  int64_t total = 0;
  for (const auto& c : containers)
    for (const auto& g : c.cards)
      if (!g.reuses_pod_share) total += g.compute_permille;
  return total;
}

int NodeState::HealthyCards() const {
  return static_cast<int>(std::count_if(cards.begin(), cards.end(), [](const CardState& c) { return c.healthy; }));
}

void ClusterState::RemoveNode(const std::string& name) {
  auto it = index_.find(name);
  if (it == index_.end()) return;
  const size_t pos = it->second;
  for (const auto& [key, placement] : nodes_[pos].pods) pod_to_node_.erase(key);
  nodes_.erase(nodes_.begin() + static_cast<std::ptrdiff_t>(pos));
  ++layout_;
  index_.erase(it);
  for (auto& [n, i] : index_)
    if (i > pos) --i;
}

NodeState& ClusterState::AddNode(NodeState node) {
  for (auto& card : node.cards) {
    if (card.model) card.model_id = ModelId(card.model->name);
  }
  ++layout_;  // a replaced node starts its versions afresh: per-position memos must not match it
  auto it = index_.find(node.name);
  if (it != index_.end()) {
    for (const auto& [key, placement] : nodes_[it->second].pods) pod_to_node_.erase(key);
    nodes_[it->second] = std::move(node);
    return nodes_[it->second];
  }
  index_[node.name] = nodes_.size();
  nodes_.push_back(std::move(node));
  return nodes_.back();
}

size_t ClusterState::IndexOf(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? npos : it->second;
}

NodeState* ClusterState::FindNode(const std::string& name) {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &nodes_[it->second];
}

const NodeState* ClusterState::FindNode(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &nodes_[it->second];
}

int ClusterState::ModelId(const std::string& model_name) {
  auto it = model_index_.find(model_name);
  if (it != model_index_.end()) return it->second;
  int id = static_cast<int>(model_names_.size());
  model_names_.push_back(model_name);
  model_index_[model_name] = id;
  return id;
}

int ClusterState::ModelIdIfKnown(const std::string& model_name) const {
  auto it = model_index_.find(model_name);
  return it == model_index_.end() ? -1 : it->second;
}

const NodeState* ClusterState::NodeOfPod(const std::string& pod_key) const {
  auto it = pod_to_node_.find(pod_key);
  return it == pod_to_node_.end() ? nullptr : FindNode(it->second);
}

}  // namespace tideslice::core
