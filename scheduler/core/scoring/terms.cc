// Arithmetic shared by several scorers, and the defaults of Scorer's card ranking.
#include <algorithm>

#include "scheduler/core/placement.h"
#include "scheduler/core/scoring/scorer.h"

namespace tideslice::core {

double Scorer::RankCard(int /*card_index*/, double free_after, const SliceSpec& /*slice*/, const Context& /*ctx*/) const {
  return free_after;  // best fit: the card left with the least room
}

void Scorer::RerankCards(const NodeState& /*node*/, const CardUsage* /*usage*/, const Context& /*ctx*/,
                         std::span<CardCandidate> /*candidates*/) const {}

namespace scoring {

void ApplyToView(FragView& v, const CardGrant& g, bool exclusive_pod) {
  if (g.reuses_pod_share || g.card_index < 0 || g.card_index >= v.cards) return;
  const int i = g.card_index;
  if (g.whole || !g.profile.empty() || exclusive_pod) {  // the card can take no more soft slices
    v.free_permille[i] = 0;
    v.free_memory_mib[i] = 0;
    return;
  }
  v.free_permille[i] = std::max(0, v.free_permille[i] - g.compute_permille);
  v.free_memory_mib[i] = std::max<int64_t>(0, v.free_memory_mib[i] - g.memory_mib);
}

double FragmentationDelta(const ScoreInput& in) {
  const FragView before = MakeFragView(in.node);
  FragView after = before;
  for (const auto& c : in.containers)
    for (const auto& g : c.cards) ApplyToView(after, g, in.exclusive);
  if (after.cpu_tracked) after.cpu_left -= in.request.cpu_milli;
  return in.ctx.workload->Fragmentation(before) - in.ctx.workload->Fragmentation(after);
}

void PackingUtilisation(const ScoreInput& in, double* util, double* cpu_util) {
  const NodeState& node = in.node;
  double cap = 0, used = 0;
  for (const auto& card : node.cards) {
    if (!card.healthy) continue;
    cap += 2.0;
    used += card.usage.used_compute_permille / 1000.0 +
            (card.memory_mib > 0 ? static_cast<double>(card.usage.used_memory_mib) / card.memory_mib : 0.0);
  }
  for (const auto& c : in.containers)
    for (const auto& g : c.cards) {
      if (g.reuses_pod_share) continue;
      const auto& card = node.cards[g.card_index];
      used += g.compute_permille / 1000.0 + (card.memory_mib > 0 ? static_cast<double>(g.memory_mib) / card.memory_mib : 0.0);
    }
  *util = cap > 0 ? used / cap : 0;
  *cpu_util = node.cpu_milli_capacity > 0
                  ? (node.cpu_milli_used + in.request.cpu_milli) / static_cast<double>(node.cpu_milli_capacity)
                  : 0;
}

double NodeOrderKey(std::string_view node_name, uint64_t seed) {
  // FNV-1a over the name, seeded, then splitmix64's finaliser: FNV alone leaves names that
  // differ in their last characters (node-0041, node-0042) next to each other, which would
  // make the "random" order nearly the name order.
  uint64_t h = 1469598103934665603ull ^ (seed * 0x9E3779B97F4A7C15ull);
  for (unsigned char c : node_name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= h >> 30;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 27;
  h *= 0x94D049BB133111EBull;
  h ^= h >> 31;
  return static_cast<double>(h >> 11) / static_cast<double>(1ull << 53);
}

}  // namespace scoring
}  // namespace tideslice::core
