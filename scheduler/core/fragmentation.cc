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

FragView MakeFragView(const NodeState& node, const CardUsage* usage, int64_t extra_cpu) {
  FragView v;
  v.cpu_tracked = node.cpu_milli_capacity > 0;
  v.cpu_left = node.cpu_milli_capacity - node.cpu_milli_used - extra_cpu;
  v.cards = std::min<int>(static_cast<int>(node.cards.size()), kMaxCardsPerNode);
  v.model_id = node.cards.empty() ? -1 : node.cards.front().model_id;
  for (int i = 0; i < v.cards; ++i) {
    const CardState& c = node.cards[i];
    const CardUsage& u = usage ? usage[i] : c.usage;
    bool sliceable = c.healthy && !u.whole_taken && !u.exclusive && u.hard_instances == 0;
    v.free_permille[i] = sliceable ? std::max(0, kWholeCardPermille - u.used_compute_permille) : 0;
    v.memory_mib[i] = c.memory_mib;
    v.free_memory_mib[i] = sliceable ? c.memory_mib - u.used_memory_mib : 0;
  }
  return v;
}

WorkloadModel WorkloadModel::FromTypicalPods(const std::vector<TypicalPod>& pods, double popularity) {
  WorkloadModel model;
  // Distinct shapes with their summed weights.
  using Shape = std::tuple<int64_t, int, int, std::vector<std::string>, int64_t>;  // cpu, per-card, cards, models, memory
  std::map<Shape, double> shapes;
  for (const auto& p : pods) {
    if (p.weight <= 0) continue;
    auto models = p.allowed_models;
    std::sort(models.begin(), models.end());
    int per_card = p.num_cards > 0 ? p.per_card_permille : 0;
    int num = per_card > 0 ? p.num_cards : 0;
    int64_t memory = num > 0 ? std::max<int64_t>(0, p.memory_mib) : 0;
    if (num == 0 && p.num_cards > 0 && p.memory_mib > 0) {  // memory-only slices still need a card
      per_card = 1;
      num = p.num_cards;
      memory = p.memory_mib;
    }
    shapes[{p.cpu_milli, per_card, num, models, memory}] += p.weight;
  }
  std::vector<std::pair<Shape, double>> ranked(shapes.begin(), shapes.end());
  // Most frequent first; ties broken by the larger shape first, deterministically.
  std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    if (a.second != b.second) return a.second > b.second;
    return a.first > b.first;
  });
  double total = 0;
  for (const auto& r : ranked) total += r.second;
  if (total <= 0) return model;
  double kept = 0;
  size_t keep = 0;
  while (keep < ranked.size() && kept < popularity * total - 1e-9) kept += ranked[keep++].second;
  ranked.resize(std::max<size_t>(keep, 1));
  if (kept <= 0) kept = ranked.front().second;
  model.shapes_ = ranked.size();

  std::map<std::tuple<int, int, std::vector<std::string>, int64_t>, std::map<int64_t, double>> grouped;
  for (const auto& [shape, w] : ranked)
    grouped[{std::get<1>(shape), std::get<2>(shape), std::get<3>(shape), std::get<4>(shape)}][std::get<0>(shape)] +=
        w / kept;
  for (auto& [key, by_cpu] : grouped) {
    Group g;
    g.per_card_permille = std::get<0>(key);
    g.num_cards = std::get<1>(key);
    g.allowed_models = std::get<2>(key);
    g.memory_mib = std::get<3>(key);
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
  // Model pressure: demand per card of each model if every shape spread over what it may use.
  const int models = std::min<int>(64, static_cast<int>(cluster.model_names().size()));
  std::vector<double> cards(models, 0);
  for (const auto& n : cluster.nodes())
    for (const auto& c : n.cards)
      if (c.model_id >= 0 && c.model_id < models) cards[c.model_id] += 1;
  double total_cards = 0, total_demand = 0;
  for (double c : cards) total_cards += c;
  pressure_.assign(models, 0.0);
  bool constrained = false;
  for (const auto& g : groups_) {
    if (g.num_cards == 0) continue;
    double usable = 0;
    for (int m = 0; m < models; ++m)
      if ((g.model_mask >> m) & 1ull) usable += cards[m];
    if (usable <= 0) continue;  // its models are not in this cluster: it presses on nothing
    const double demand = g.total_weight * g.num_cards * std::max(1, g.per_card_permille);
    total_demand += demand;
    constrained = constrained || usable < total_cards;
    for (int m = 0; m < models; ++m)
      if ((g.model_mask >> m) & 1ull) pressure_[m] += demand / usable;
  }
  for (auto& p : pressure_)
    p = !constrained || total_demand <= 0 ? 1.0 : p * total_cards / total_demand;
}

double WorkloadModel::Fragmentation(const FragView& v) const {
  std::array<int, kMaxCardsPerNode> idle{};
  int64_t total = 0;
  for (int i = 0; i < v.cards; ++i) {
    idle[i] = v.IdleShare(i);
    total += idle[i];
  }
  if (total == 0) return 0;
  double frag = 0;
  for (const auto& g : groups_) {
    if (g.num_cards == 0) {  // needs no card: every idle card is a fragment to it
      frag += g.total_weight * total;
      continue;
    }
    bool model_ok = g.any_model || (v.model_id >= 0 && v.model_id < 64 && (g.model_mask >> v.model_id) & 1ull);
    if (!model_ok) {
      frag += g.total_weight * total;
      continue;
    }
    // Cards with room for one slice of this shape; the idle share of the others is stranded.
    int fitting_cards = 0;
    int64_t stranded = 0;
    for (int i = 0; i < v.cards; ++i) {
      bool fits = v.free_permille[i] >= g.per_card_permille && v.free_permille[i] > 0 &&
                  (g.memory_mib == 0 || v.memory_mib[i] == 0 || v.free_memory_mib[i] >= g.memory_mib);
      if (fits)
        ++fitting_cards;
      else
        stranded += idle[i];
    }
    if (fitting_cards < g.num_cards) {
      frag += g.total_weight * total;
      continue;
    }
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
