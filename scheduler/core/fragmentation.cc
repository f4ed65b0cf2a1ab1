#include "scheduler/core/fragmentation.h"

#include <algorithm>
#include <map>
#include <tuple>

namespace tideslice::core {

int SliceableFreePermille(const CardState& card) {
  const auto& u = card.usage;
  if (!card.healthy || u.whole_taken || u.exclusive || u.hard_instances > 0) return 0;
  return std::max(0, card.FreeComputePermille());
}

FragView MakeFragView(const NodeState& node) {
  FragView v;
  v.cpu_tracked = node.cpu_milli_capacity > 0;
  v.cpu_left = node.cpu_milli_capacity - node.cpu_milli_used;
  v.cards = std::min<int>(static_cast<int>(node.cards.size()), kMaxCardsPerNode);
  v.model_id = node.cards.empty() ? -1 : node.cards.front().model_id;
  for (int i = 0; i < v.cards; ++i) v.free_permille[i] = SliceableFreePermille(node.cards[i]);
  return v;
}

WorkloadModel WorkloadModel::FromTypicalPods(const std::vector<TypicalPod>& pods) {
  WorkloadModel model;
  double total = 0;
  for (const auto& p : pods) total += std::max(0.0, p.weight);
  if (total <= 0) return model;
  using Key = std::tuple<int, int, std::vector<std::string>>;
  std::map<Key, std::map<int64_t, double>> grouped;  // shape -> cpu -> weight
  std::map<std::tuple<int64_t, int, int, std::vector<std::string>>, bool> distinct;
  for (const auto& p : pods) {
    if (p.weight <= 0) continue;
    auto models = p.allowed_models;
    std::sort(models.begin(), models.end());
    int per_card = p.num_cards > 0 ? p.per_card_permille : 0;
    int num = per_card > 0 ? p.num_cards : 0;
    grouped[{per_card, num, models}][p.cpu_milli] += p.weight / total;
    distinct[{p.cpu_milli, per_card, num, models}] = true;
  }
  model.shapes_ = distinct.size();
  for (auto& [key, by_cpu] : grouped) {
    Group g;
    g.per_card_permille = std::get<0>(key);
    g.num_cards = std::get<1>(key);
    g.allowed_models = std::get<2>(key);
    g.any_model = g.allowed_models.empty();
    g.weight_prefix.push_back(0);
    for (const auto& [cpu, w] : by_cpu) {
      g.cpu_sorted.push_back(cpu);
      g.total_weight += w;
      g.weight_prefix.push_back(g.total_weight);
    }
    model.groups_.push_back(std::move(g));
  }
  return model;
}

void WorkloadModel::Bind(const ClusterState& cluster) {
  for (auto& g : groups_) {
    if (g.any_model) {
      g.model_mask = ~0ull;
      continue;
    }
    g.model_mask = 0;
    for (const auto& name : g.allowed_models) {
      int id = cluster.ModelIdIfKnown(name);
      if (id >= 0 && id < 64) g.model_mask |= (1ull << id);
    }
  }
}

double WorkloadModel::Fragmentation(const FragView& v) const {
  const int64_t total = v.TotalFree();
  if (total == 0) return 0;
  std::array<int, kMaxCardsPerNode> sorted = v.free_permille;
  std::sort(sorted.begin(), sorted.begin() + v.cards);
  double frag = 0;
  for (const auto& g : groups_) {
    if (g.per_card_permille == 0) {  // needs no card: every idle card is a fragment to it
      frag += g.total_weight * total;
      continue;
    }
    bool model_ok = g.any_model || (v.model_id >= 0 && v.model_id < 64 && (g.model_mask >> v.model_id) & 1ull);
    if (!model_ok) {
      frag += g.total_weight * total;
      continue;
    }
    // Cards with room for one slice of this shape, and the free share on cards without room.
    int first_fit = static_cast<int>(std::lower_bound(sorted.begin(), sorted.begin() + v.cards, g.per_card_permille) -
                                     sorted.begin());
    int fitting_cards = v.cards - first_fit;
    if (fitting_cards < g.num_cards) {
      frag += g.total_weight * total;
      continue;
    }
    int64_t stranded = 0;
    for (int i = 0; i < first_fit; ++i) stranded += sorted[i];
    double hostable = g.total_weight;
    if (v.cpu_tracked) {
      size_t le = std::upper_bound(g.cpu_sorted.begin(), g.cpu_sorted.end(), v.cpu_left) - g.cpu_sorted.begin();
      hostable = g.weight_prefix[le];
    }
    frag += hostable * stranded + (g.total_weight - hostable) * total;
  }
  return frag;
}

}  // namespace tideslice::core
