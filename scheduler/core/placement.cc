#include "scheduler/core/placement.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>
#include <sstream>

namespace tideslice::core {
namespace {

// A slice request resolved against one card's model.
struct ResolvedSlice {
  int64_t memory_mib = 0;
  int compute_permille = 0;
  bool whole = false;
  const catalog::PartitionProfile* profile = nullptr;
  catalog::Partitioning kind = catalog::Partitioning::kNone;
};

bool ModelAllowed(const CardState& card, const PodRequest& req) {
  if (req.type_include.empty() && req.type_exclude.empty()) return true;  // most pods: no lookups
  static const std::string kNoModel;
  const std::string& name = card.model ? card.model->name : kNoModel;
  if (!req.type_include.empty() && !req.type_include.count(name)) return false;
  if (!req.type_exclude.empty() && req.type_exclude.count(name)) return false;
  return true;
}

// Static checks: things no amount of waiting or preemption changes.
bool CardEligible(const CardState& card, const PodRequest& req, const SliceSpec& s) {
  if (!card.healthy) return false;
  if (!ModelAllowed(card, req)) return false;
  if (!req.uuid_include.empty() && !req.uuid_include.count(card.uuid)) return false;
  if (!req.uuid_exclude.empty() && req.uuid_exclude.count(card.uuid)) return false;
  if (s.tflops > 0 && (!card.model || card.model->fp16_tflops < s.tflops)) return false;
  if (!s.profile.empty() && (!card.model || !card.model->FindProfile(s.profile) || !card.OffersProfile(s.profile)))
    return false;
  if (s.memory_mib > card.memory_mib) return false;
  return true;
}

ResolvedSlice Resolve(const CardState& card, const SliceSpec& s) {
  ResolvedSlice r;
  if (s.whole) {
    r.whole = true;
    r.memory_mib = card.memory_mib;
    r.compute_permille = kWholeCardPermille;
    return r;
  }
  if (!s.profile.empty()) {
    r.profile = card.model->FindProfile(s.profile);
    r.kind = card.model->partitioning;
    r.memory_mib = r.profile->memory_mib;
    int units = r.kind == catalog::Partitioning::kMig ? card.model->mig_compute_slices : card.model->compute_units;
    // Floor, so that partitions which exactly fill a card never add up to more than 1000.
    r.compute_permille = units > 0 ? r.profile->compute * 1000 / units : 0;
    return r;
  }
  int compute = s.compute_permille;
  if (s.tflops > 0 && card.model && card.model->fp16_tflops > 0)
    compute = std::max(compute, static_cast<int>(std::ceil(s.tflops / card.model->fp16_tflops * 1000.0)));
  r.compute_permille = std::min(compute, kWholeCardPermille);
  if (s.memory_mib > 0) {
    r.memory_mib = s.memory_mib;
  } else if (s.memory_percent > 0) {
    r.memory_mib = (card.memory_mib * s.memory_percent + 99) / 100;
  } else if (s.memory_proportional) {
    r.memory_mib = (card.memory_mib * r.compute_permille + 999) / 1000;
  }
  return r;
}

// First MIG start slot where the profile fits the free memory slices, or -1.
int FindMigSlot(const CardState& card, const CardUsage& u, const catalog::PartitionProfile& p) {
  if (u.mig_compute_used + p.compute > card.model->mig_compute_slices) return -1;
  for (int start : p.start_slots) {
    uint32_t mask = ((1u << p.slot_size) - 1u) << start;
    if ((u.mig_slot_mask & mask) == 0) return start;
  }
  return -1;
}

// Can this usage take the slice? Fills the grant's placement details on success.
bool Fits(const CardState& card, const CardUsage& u, const ResolvedSlice& r, bool exclusive_pod, CardGrant* grant) {
  if (u.exclusive) return false;
  if (exclusive_pod && u.pods > 0) return false;
  if (u.whole_taken) return false;
  grant->memory_mib = r.memory_mib;
  grant->compute_permille = r.compute_permille;
  grant->whole = r.whole;
  if (r.whole) return u.Idle() && u.hard_instances == 0;
  if (r.profile) {
    if (u.soft_slices > 0) return false;  // hard partitions and soft slices never share a card
    if (card.memory_mib - u.used_memory_mib < r.memory_mib) return false;
    grant->profile = r.profile->name;
    if (r.kind == catalog::Partitioning::kMig) {
      int slot = FindMigSlot(card, u, *r.profile);
      if (slot < 0) return false;
      grant->start_slot = slot;
      grant->mig_compute_slices = r.profile->compute;
      return true;
    }
    // Ascend vNPU template: AI Core, AI CPU and memory budgets.
    if (u.used_aicore + r.profile->compute > card.model->compute_units) return false;
    if (card.model->aicpu_units > 0 && u.used_aicpu + r.profile->aicpu > card.model->aicpu_units) return false;
    grant->aicore = r.profile->compute;
    grant->aicpu = r.profile->aicpu;
    return true;
  }
  if (u.hard_instances > 0) return false;
  if (card.memory_mib - u.used_memory_mib < r.memory_mib) return false;
  if (kWholeCardPermille - u.used_compute_permille < r.compute_permille) return false;
  return true;
}

void ApplyGrant(CardUsage& u, const CardGrant& g, int sign) {
  if (g.reuses_pod_share) return;
  u.used_memory_mib += sign * g.memory_mib;
  u.used_compute_permille += sign * g.compute_permille;
  if (g.whole) {
    u.whole_taken = sign > 0;
  } else if (!g.profile.empty()) {
    u.hard_instances += sign;  // the MIG slot mask is kept by the caller, which knows the model
    u.mig_compute_used += sign * g.mig_compute_slices;
    u.used_aicore += sign * g.aicore;
    u.used_aicpu += sign * g.aicpu;
  } else {
    u.soft_slices += sign;
  }
}

uint32_t MigMask(const CardState& card, const CardGrant& g) {
  if (g.start_slot < 0 || !card.model) return 0;
  const auto* p = card.model->FindProfile(g.profile);
  if (!p) return 0;
  return ((1u << p->slot_size) - 1u) << g.start_slot;
}

// Applies or removes a whole pod placement on a usage vector (pods counted once per card).
void ApplyPlacement(const NodeState& node, std::vector<CardUsage>& usage, const PodPlacement& plan, int sign) {
  std::set<int> touched;
  for (const auto& c : plan.containers) {
    for (const auto& g : c.cards) {
      if (g.card_index < 0 || g.card_index >= static_cast<int>(usage.size())) continue;
      auto& u = usage[g.card_index];
      ApplyGrant(u, g, sign);
      if (!g.reuses_pod_share) {
        uint32_t mask = MigMask(node.cards[g.card_index], g);
        if (sign > 0)
          u.mig_slot_mask |= mask;
        else
          u.mig_slot_mask &= ~mask;
      }
      touched.insert(g.card_index);
    }
  }
  for (int idx : touched) {
    usage[idx].pods += sign;
    if (plan.exclusive) usage[idx].exclusive = sign > 0;
  }
}

// The scorer of the policy that applies to this pod: its own placement annotation, else the
// scheduler's.
const Scorer& EffectiveScorer(const PodRequest& req, const Context& ctx) {
  if (req.placement == PlacementPolicy::kBinpack) return ScorerFor(Policy::kBinpack);
  if (req.placement == PlacementPolicy::kSpread) return ScorerFor(Policy::kSpread);
  return ScorerFor(ctx.policy);
}

using Candidate = CardCandidate;

// Chooses `count` (> 1) distinct cards among candidates: one link domain if possible, else one
// NUMA node, else the best overall. Candidates must be sorted by rank.
std::vector<Candidate> ChooseCards(const NodeState& node, const std::vector<Candidate>& cands, int count) {
  if (static_cast<int>(cands.size()) < count) return {};
  auto best_group = [&](auto key_of) -> std::vector<Candidate> {
    std::map<std::string, std::vector<Candidate>> groups;
    for (const auto& c : cands) {
      std::string key = key_of(node.cards[c.index]);
      if (!key.empty()) groups[key].push_back(c);
    }
    std::vector<Candidate> best;
    double best_cost = std::numeric_limits<double>::infinity();
    for (auto& [key, members] : groups) {
      if (static_cast<int>(members.size()) < count) continue;
      double cost = 0;
      for (int i = 0; i < count; ++i) cost += members[i].rank;
      if (cost < best_cost) {
        best_cost = cost;
        best.assign(members.begin(), members.begin() + count);
      }
    }
    return best;
  };
  auto by_link = best_group([](const CardState& c) { return c.link_domain; });
  if (!by_link.empty()) return by_link;
  auto by_numa = best_group([](const CardState& c) { return c.numa_node >= 0 ? std::to_string(c.numa_node) : std::string(); });
  if (!by_numa.empty()) return by_numa;
  return std::vector<Candidate>(cands.begin(), cands.begin() + count);
}

// Per-thread working memory of one node's fit: reused from node to node so that Filter
// allocates nothing on the common path (the grants keep their capacity between nodes).
struct FitScratch {
  std::vector<CardUsage> usage;
  std::vector<Candidate> cands;
  std::vector<ContainerGrant> containers;  // [0, used) hold this node's grants
  size_t used = 0;
  ContainerGrant& Next() {
    if (used == containers.size()) containers.emplace_back();
    ContainerGrant& g = containers[used++];
    g.cards.clear();
    return g;
  }
};

FitScratch& ThreadScratch() {
  thread_local FitScratch scratch;
  return scratch;
}

FitFailure Failure(FitFailure::Code code, int container = -1, int count = 0) {
  FitFailure f;
  f.code = code;
  f.container = container;
  f.count = count;
  return f;
}

// Places container `ci` of the request on the scratch usage. On failure `why` says what is
// short. The grants' uuids are left empty (filled when a plan is built).
bool PlaceContainer(const NodeState& node, FitScratch& scratch, const PodRequest& req, int ci, const Context& ctx,
                    ContainerGrant* out, FitFailure* why) {
  const ContainerRequest& c = req.containers[ci];
  const SliceSpec& s = c.slice;
  const Scorer& scorer = EffectiveScorer(req, ctx);
  std::vector<CardUsage>& usage = scratch.usage;
  std::vector<Candidate>& cands = scratch.cands;
  cands.clear();
  for (size_t i = 0; i < node.cards.size(); ++i) {
    const CardState& card = node.cards[i];
    if (!CardEligible(card, req, s)) continue;
    ResolvedSlice r = Resolve(card, s);
    // Built in place: a candidate's grant is never moved or copied until it is taken.
    Candidate& cand = cands.emplace_back();
    CardGrant& g = cand.grant;
    if (!Fits(card, usage[i], r, req.exclusive, &g)) {
      cands.pop_back();
      continue;
    }
    g.card_index = static_cast<int>(i);
    const CardUsage& u = usage[i];
    double free_after = (kWholeCardPermille - u.used_compute_permille - g.compute_permille) +
                        (card.memory_mib > 0 ? 1000.0 * (card.memory_mib - u.used_memory_mib - g.memory_mib) /
                                                   static_cast<double>(card.memory_mib)
                                             : 0.0) * 1e-3;
    double rank = scorer.RankCard(static_cast<int>(i), free_after, s, ctx);
    if (s.whole) rank = static_cast<double>(i);  // all free cards are alike; lowest index, as the baselines do
    cand.index = static_cast<int>(i);
    cand.rank = rank;
  }
  if (static_cast<int>(cands.size()) < s.count) {
    *why = Failure(FitFailure::Code::kInsufficientCards, ci, static_cast<int>(cands.size()));
    return false;
  }
  // Policies that look at the whole node (fragmentation) may re-rank a single shared slice.
  if (s.count == 1 && !s.whole && cands.size() > 1) scorer.RerankCards(node, usage.data(), ctx, cands);
  out->name = c.name;
  out->init = c.init;
  auto take = [&](const Candidate& ch) {
    out->cards.push_back(ch.grant);
    CardGrant& g = out->cards.back();
    ApplyGrant(usage[ch.index], g, +1);
    if (!g.profile.empty() && g.start_slot >= 0) usage[ch.index].mig_slot_mask |= MigMask(node.cards[ch.index], g);
  };
  if (s.count <= 1) {
    // The first candidate of lowest rank: what a stable sort would put first, without sorting.
    const Candidate* best = &cands.front();
    for (const auto& cand : cands)
      if (cand.rank < best->rank) best = &cand;
    take(*best);
    return true;
  }
  std::stable_sort(cands.begin(), cands.end(), [](const Candidate& a, const Candidate& b) { return a.rank < b.rank; });
  auto chosen = ChooseCards(node, cands, s.count);
  if (static_cast<int>(chosen.size()) < s.count) {
    *why = Failure(FitFailure::Code::kCannotChooseCards, ci);
    return false;
  }
  for (const auto& ch : chosen) take(ch);
  std::sort(out->cards.begin(), out->cards.end(), [](const CardGrant& a, const CardGrant& b) { return a.card_index < b.card_index; });
  return true;
}

// An init container runs before the app containers start, so it may reuse what the pod's app
// containers hold (`apps`); only when that is not enough does it take more.
bool PlaceInitContainer(const NodeState& node, FitScratch& scratch, const PodRequest& req, int ci,
                        std::span<const ContainerGrant> apps, const Context& ctx, ContainerGrant* out,
                        FitFailure* why) {
  const ContainerRequest& c = req.containers[ci];
  const SliceSpec& s = c.slice;
  std::map<int, std::pair<int64_t, int>> held;  // card -> (memory, compute) the pod's apps hold
  std::map<int, std::set<std::string>> held_profiles;
  std::set<int> held_whole;
  for (const auto& app : apps) {
    if (app.init) continue;
    for (const auto& g : app.cards) {
      held[g.card_index].first += g.memory_mib;
      held[g.card_index].second += g.compute_permille;
      if (g.whole) held_whole.insert(g.card_index);
      if (!g.profile.empty()) held_profiles[g.card_index].insert(g.profile);
    }
  }
  std::vector<CardGrant> reuse;
  for (const auto& [idx, amount] : held) {
    const CardState& card = node.cards[idx];
    if (!CardEligible(card, req, s)) continue;
    ResolvedSlice r = Resolve(card, s);
    bool ok = held_whole.count(idx) ||
              (r.profile ? held_profiles[idx].count(r.profile->name) > 0
                         : (!r.whole && amount.first >= r.memory_mib && amount.second >= r.compute_permille));
    if (!ok) continue;
    CardGrant g;
    g.card_index = idx;
    g.memory_mib = r.memory_mib;
    g.compute_permille = r.compute_permille;
    g.whole = r.whole;
    g.profile = r.profile ? r.profile->name : "";
    g.reuses_pod_share = true;
    reuse.push_back(g);
    if (static_cast<int>(reuse.size()) == s.count) break;
  }
  if (static_cast<int>(reuse.size()) == s.count) {
    out->name = c.name;
    out->init = true;
    out->cards = std::move(reuse);
    return true;
  }
  return PlaceContainer(node, scratch, req, ci, ctx, out, why);
}

// Filter's work on one node into the scratch: the verdict, why not, and (when it fits) the
// grants in scratch.containers[0, used), app containers first.
FitFailure FitNode(const NodeState& node, const PodRequest& req, const Context& ctx, FitScratch& scratch,
                   VerdictKind* kind) {
  *kind = VerdictKind::kNoFit;
  scratch.used = 0;
  if (!node.schedulable) {
    *kind = VerdictKind::kNeverFits;
    return Failure(FitFailure::Code::kUnschedulable);
  }
  // Static: enough eligible cards for the largest container? No preemption changes that.
  for (size_t ci = 0; ci < req.containers.size(); ++ci) {
    const auto& c = req.containers[ci];
    if (c.slice.count == 0) continue;
    int eligible = 0;
    for (const auto& card : node.cards) eligible += CardEligible(card, req, c.slice) ? 1 : 0;
    if (eligible < c.slice.count) {
      *kind = VerdictKind::kNeverFits;
      return Failure(FitFailure::Code::kTooFewEligibleCards, static_cast<int>(ci), eligible);
    }
  }
  if (node.cpu_milli_capacity > 0 && node.cpu_milli_used + req.cpu_milli > node.cpu_milli_capacity)
    return Failure(FitFailure::Code::kInsufficientCpu);
  if (node.memory_mib_capacity > 0 && node.memory_mib_used + req.memory_mib > node.memory_mib_capacity)
    return Failure(FitFailure::Code::kInsufficientMemory);
  scratch.usage.resize(node.cards.size());
  for (size_t i = 0; i < node.cards.size(); ++i) scratch.usage[i] = node.cards[i].usage;
  FitFailure why;
  for (size_t ci = 0; ci < req.containers.size(); ++ci) {
    const auto& c = req.containers[ci];
    if (c.init || c.slice.count == 0) continue;
    if (!PlaceContainer(node, scratch, req, static_cast<int>(ci), ctx, &scratch.Next(), &why)) return why;
  }
  const size_t apps = scratch.used;
  for (size_t ci = 0; ci < req.containers.size(); ++ci) {
    const auto& c = req.containers[ci];
    if (!c.init || c.slice.count == 0) continue;
    ContainerGrant& out = scratch.Next();
    std::span<const ContainerGrant> app_grants(scratch.containers.data(), apps);
    if (!PlaceInitContainer(node, scratch, req, static_cast<int>(ci), app_grants, ctx, &out, &why)) return why;
  }
  *kind = VerdictKind::kFits;
  return why;
}

// The plan of a node that fits, from the scratch FitNode left.
PodPlacement PlanFromScratch(const NodeState& node, const PodRequest& req, const FitScratch& scratch) {
  PodPlacement plan;
  plan.pod_key = req.pod_key;
  plan.pod_uid = req.pod_uid;
  plan.node = node.name;
  plan.priority = req.priority;
  plan.exclusive = req.exclusive;
  plan.cpu_milli = req.cpu_milli;
  plan.memory_mib = req.memory_mib;
  plan.containers.assign(scratch.containers.begin(), scratch.containers.begin() + static_cast<std::ptrdiff_t>(scratch.used));
  for (auto& c : plan.containers)
    for (auto& g : c.cards) g.uuid = node.cards[g.card_index].uuid;
  return plan;
}

std::vector<CardUsage> UsageOf(const NodeState& node) {
  std::vector<CardUsage> usage;
  usage.reserve(node.cards.size());
  for (const auto& c : node.cards) usage.push_back(c.usage);
  return usage;
}

// Adds (sign +1) or removes (sign -1) a pod's holdings on a node: card usage and host resources.
void ApplyToNode(NodeState& node, const PodPlacement& plan, int sign) {
  std::vector<CardUsage> usage = UsageOf(node);
  ApplyPlacement(node, usage, plan, sign);
  for (size_t i = 0; i < node.cards.size(); ++i) node.cards[i].usage = usage[i];
  node.cpu_milli_used += sign * plan.cpu_milli;
  node.memory_mib_used += sign * plan.memory_mib;
}

// Reserve's re-check of one planned grant against the current usage, with Filter's rules: the
// same Fits(), except that a MIG grant must get exactly its planned slot.
bool StillFits(const CardState& card, const CardUsage& u, const CardGrant& g, bool exclusive_pod) {
  ResolvedSlice r;
  r.memory_mib = g.memory_mib;
  r.compute_permille = g.compute_permille;
  r.whole = g.whole;
  if (!g.profile.empty()) {
    if (!card.model || !(r.profile = card.model->FindProfile(g.profile)) || !card.OffersProfile(g.profile)) return false;
    r.kind = card.model->partitioning;
  }
  CardGrant probe;
  if (!Fits(card, u, r, exclusive_pod, &probe)) {
    // Fits() looks for the first free MIG slot; a later free slot is just as good.
    if (r.kind != catalog::Partitioning::kMig || u.whole_taken || u.soft_slices > 0 || u.exclusive) return false;
  }
  if (r.kind == catalog::Partitioning::kMig) {
    if (u.mig_compute_used + r.profile->compute > card.model->mig_compute_slices) return false;
    if (card.memory_mib - u.used_memory_mib < r.memory_mib) return false;
    return (u.mig_slot_mask & MigMask(card, g)) == 0;
  }
  return true;
}

// The aggregates several scorers share, computed once per node.
ScoreInput MakeScoreInput(const NodeState& node, const PodRequest& req, std::span<const ContainerGrant> containers,
                          bool exclusive, const Context& ctx) {
  ScoreInput in{node, req, containers, exclusive, ctx};
  for (const auto& c : containers)
    for (const auto& g : c.cards)
      if (!g.reuses_pod_share) in.gpu_req += g.compute_permille;
  for (const auto& card : node.cards) in.gpu_left += SliceableFreePermille(card);
  in.cpu_left = node.cpu_milli_capacity > 0 ? node.cpu_milli_capacity - node.cpu_milli_used : 0;
  in.cpu_req = node.cpu_milli_capacity > 0 ? req.cpu_milli : 0;
  return in;
}

}  // namespace

StatusOr<Policy> ParsePolicy(std::string_view name) {
  std::string known;
  const auto scorers = AllScorers();
  for (size_t i = 0; i < scorers.size(); ++i) {
    if (name == scorers[i]->name()) return scorers[i]->policy();
    known += i == 0 ? "" : i + 1 == scorers.size() ? " or " : ", ";
    known += scorers[i]->name();
  }
  return Status::InvalidArgument("policy", "unknown policy \"" + std::string(name) + "\"; use " + known);
}

const char* PolicyName(Policy p) { return ScorerFor(p).name(); }

std::vector<Policy> AllPolicies() {
  std::vector<Policy> out;
  for (const Scorer* s : AllScorers()) out.push_back(s->policy());
  return out;
}

std::string DescribeFailure(const FitFailure& f, const NodeState& node, const PodRequest& req) {
  const ContainerRequest* c = f.container >= 0 && f.container < static_cast<int>(req.containers.size())
                                  ? &req.containers[f.container]
                                  : nullptr;
  switch (f.code) {
    case FitFailure::Code::kNone: return "";
    case FitFailure::Code::kUnschedulable:
      return node.unschedulable_reason.empty() ? "node inventory is stale" : node.unschedulable_reason;
    case FitFailure::Code::kInsufficientCpu: return "insufficient cpu";
    case FitFailure::Code::kInsufficientMemory: return "insufficient memory";
    default: break;
  }
  if (!c) return "does not fit";
  const SliceSpec& s = c->slice;
  std::string out;
  switch (f.code) {
    case FitFailure::Code::kTooFewEligibleCards:
      out = "node has " + std::to_string(f.count) + " eligible card" + (f.count == 1 ? "" : "s") +
            " (model, health, uuid, " + (s.profile.empty() ? std::string("memory") : "profile " + s.profile) +
            "); container " + c->name + " needs " + std::to_string(s.count);
      break;
    case FitFailure::Code::kInsufficientCards:
      out = std::string("insufficient ") +
            (s.whole ? std::string("free whole cards") : !s.profile.empty() ? "room for profile " + s.profile : "card share") +
            " for container " + c->name + " (" + std::to_string(f.count) + " of " + std::to_string(s.count) +
            " cards available)";
      break;
    case FitFailure::Code::kCannotChooseCards: out = "insufficient cards for container " + c->name; break;
    default: break;
  }
  return out;
}

NodeVerdict Filter(const NodeState& node, const PodRequest& req, const Context& ctx) {
  NodeVerdict v;
  FitScratch& scratch = ThreadScratch();
  FitFailure why = FitNode(node, req, ctx, scratch, &v.kind);
  if (v.kind == VerdictKind::kFits) v.plan = PlanFromScratch(node, req, scratch);
  else v.reason = DescribeFailure(why, node, req);
  return v;
}

FitVerdict FilterAndScore(const NodeState& node, const PodRequest& req, const Context& ctx) {
  FitVerdict v;
  FitScratch& scratch = ThreadScratch();
  v.failure = FitNode(node, req, ctx, scratch, &v.kind);
  if (v.kind == VerdictKind::kFits)
    v.score = EffectiveScorer(req, ctx).Score(
        MakeScoreInput(node, req, std::span<const ContainerGrant>(scratch.containers.data(), scratch.used),
                       req.exclusive, ctx),
        nullptr);
  return v;
}

NodeScore Score(const NodeState& node, const PodRequest& req, const PodPlacement& plan, const Context& ctx,
                ScoreTerms* terms) {
  return EffectiveScorer(req, ctx).Score(MakeScoreInput(node, req, plan.containers, plan.exclusive, ctx), terms);
}

std::vector<int64_t> NormalizeScores(const std::vector<NodeScore>& scores, int64_t max_score) {
  std::vector<int64_t> out(scores.size(), 0);
  if (scores.empty()) return out;
  auto key = [](const NodeScore& s) { return s.primary + s.tiebreak * 1e-9; };
  double lo = key(scores[0]), hi = key(scores[0]);
  for (const auto& s : scores) {
    lo = std::min(lo, key(s));
    hi = std::max(hi, key(s));
  }
  for (size_t i = 0; i < scores.size(); ++i) {
    out[i] = hi > lo ? static_cast<int64_t>(std::llround((key(scores[i]) - lo) / (hi - lo) * max_score)) : max_score;
  }
  return out;
}

Status Reserve(ClusterState& cluster, const PodPlacement& plan) {
  NodeState* node = cluster.FindNode(plan.node);
  if (!node) return Status::NotFound("node " + plan.node + " is not in the cluster state");
  if (const NodeState* holder = cluster.NodeOfPod(plan.pod_key))
    return Status::AlreadyExists("pod " + plan.pod_key + " is already placed on " + holder->name);
  // Re-check every grant against the current usage: the state may have moved since Filter.
  std::vector<CardUsage> usage = UsageOf(*node);
  for (const auto& c : plan.containers) {
    std::set<int> cards_of_container;
    for (const auto& g : c.cards) {
      if (g.card_index < 0 || g.card_index >= static_cast<int>(node->cards.size()) ||
          node->cards[g.card_index].uuid != g.uuid)
        return Status::FailedPrecondition("plan names card " + g.uuid + " that node " + node->name + " does not have");
      if (!cards_of_container.insert(g.card_index).second)
        return Status::FailedPrecondition("plan gives container " + c.name + " two slices of one card");
      if (g.reuses_pod_share) continue;
      const CardState& card = node->cards[g.card_index];
      const CardUsage& u = usage[g.card_index];
      if (!StillFits(card, u, g, plan.exclusive))
        return Status::FailedPrecondition("card " + g.uuid + " on " + node->name +
                                          " no longer has room for the planned slice");
      CardUsage& mu = usage[g.card_index];
      ApplyGrant(mu, g, +1);
      mu.mig_slot_mask |= MigMask(card, g);
    }
  }
  if (node->cpu_milli_capacity > 0 && node->cpu_milli_used + plan.cpu_milli > node->cpu_milli_capacity)
    return Status::FailedPrecondition("node " + node->name + " no longer has the cpu");
  if (node->memory_mib_capacity > 0 && node->memory_mib_used + plan.memory_mib > node->memory_mib_capacity)
    return Status::FailedPrecondition("node " + node->name + " no longer has the memory");
  // Commit from the original usage so pod counts are applied exactly once.
  ApplyToNode(*node, plan, +1);
  node->pods[plan.pod_key] = plan;
  node->version++;
  cluster.RecordPod(plan.pod_key, plan.node);
  return Status::Ok();
}

Status Adopt(ClusterState& cluster, const PodPlacement& placement) {
  NodeState* node = cluster.FindNode(placement.node);
  if (!node) return Status::NotFound("node " + placement.node + " is not in the cluster state");
  if (const NodeState* holder = cluster.NodeOfPod(placement.pod_key))
    return Status::AlreadyExists("pod " + placement.pod_key + " is already placed on " + holder->name);
  for (const auto& c : placement.containers)
    for (const auto& g : c.cards)
      if (g.card_index < 0 || g.card_index >= static_cast<int>(node->cards.size()) ||
          node->cards[g.card_index].uuid != g.uuid)
        return Status::FailedPrecondition("placement names card " + g.uuid + " that node " + node->name + " does not have");
  ApplyToNode(*node, placement, +1);
  node->pods[placement.pod_key] = placement;
  node->version++;
  cluster.RecordPod(placement.pod_key, placement.node);
  return Status::Ok();
}

void Unreserve(ClusterState& cluster, const std::string& pod_key) {
  const NodeState* holder = cluster.NodeOfPod(pod_key);
  if (!holder) return;
  NodeState* node = cluster.FindNode(holder->name);
  auto it = node->pods.find(pod_key);
  if (it != node->pods.end()) {
    ApplyToNode(*node, it->second, -1);
    node->pods.erase(it);
    node->version++;
  }
  cluster.ForgetPod(pod_key);
}

StatusOr<std::vector<std::string>> SelectVictims(const NodeState& node, const PodRequest& req, const Context& ctx,
                                                 const std::set<std::string>* allowed_uids) {
  NodeVerdict now = Filter(node, req, ctx);
  if (now.kind == VerdictKind::kFits) return std::vector<std::string>{};
  if (now.kind == VerdictKind::kNeverFits) return std::vector<std::string>{};
  std::vector<const PodPlacement*> candidates;
  for (const auto& [key, p] : node.pods)
    if (p.priority < req.priority && (!allowed_uids || allowed_uids->count(p.pod_uid))) candidates.push_back(&p);
  // Lowest priority first; among equals the pod holding most, so fewer pods go.
  std::sort(candidates.begin(), candidates.end(), [](const PodPlacement* a, const PodPlacement* b) {
    if (a->priority != b->priority) return a->priority < b->priority;
    if (a->TotalComputePermille() != b->TotalComputePermille())
      return a->TotalComputePermille() > b->TotalComputePermille();
    return a->pod_key < b->pod_key;
  });
  NodeState trial = node;
  auto remove = [&](const PodPlacement& p) { ApplyToNode(trial, p, -1); };
  auto add = [&](const PodPlacement& p) { ApplyToNode(trial, p, +1); };
  std::vector<const PodPlacement*> removed;
  bool fits = false;
  for (const auto* p : candidates) {
    remove(*p);
    removed.push_back(p);
    if (Filter(trial, req, ctx).kind == VerdictKind::kFits) {
      fits = true;
      break;
    }
  }
  if (!fits) return std::vector<std::string>{};
  // Reprieve: give back every victim (most important first) that is not needed after all.
  std::vector<std::string> victims;
  for (auto it = removed.rbegin(); it != removed.rend(); ++it) {
    add(**it);
    if (Filter(trial, req, ctx).kind == VerdictKind::kFits) continue;  // not needed
    remove(**it);
    victims.push_back((*it)->pod_key);
  }
  std::sort(victims.begin(), victims.end());
  return victims;
}

std::vector<FilterScoreCache::Entry>& FilterScoreCache::ForShape(uint64_t shape_key, size_t nodes) {
  auto& v = by_shape_[shape_key];
  if (v.size() != nodes) v.assign(nodes, Entry{});
  return v;
}

std::string Decision::Summary() const {
  std::ostringstream out;
  int total = feasible_nodes;
  for (const auto& [r, n] : reasons) total += n;
  out << feasible_nodes << "/" << total << " nodes fit";
  for (const auto& [r, n] : reasons) out << "; " << n << " node" << (n == 1 ? "" : "s") << ": " << r;
  return out.str();
}

Decision Schedule(const ClusterState& cluster, const PodRequest& req, const Context& ctx, FilterScoreCache* cache,
                  uint64_t shape_key) {
  Decision d;
  const auto& nodes = cluster.nodes();
  std::vector<FilterScoreCache::Entry>* entries = cache ? &cache->ForShape(shape_key, nodes.size()) : nullptr;
  FitScratch& scratch = ThreadScratch();
  const Scorer& scorer = EffectiveScorer(req, ctx);
  int best = -1;
  NodeScore best_score;
  PodPlacement best_plan;
  int ties = 0;
  bool all_never = true;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const NodeState& node = nodes[i];
    bool fits;
    NodeScore score;
    bool have_plan = false;  // the scratch holds this node's grants
    if (entries && (*entries)[i].version == node.version) {
      fits = (*entries)[i].fits;
      score = (*entries)[i].score;
      if (!fits) {
        d.reasons["does not fit (cached)"]++;
        all_never = false;
      }
    } else {
      VerdictKind kind;
      FitFailure why = FitNode(node, req, ctx, scratch, &kind);
      fits = kind == VerdictKind::kFits;
      if (!fits) {
        d.reasons[DescribeFailure(why, node, req)]++;
        if (kind != VerdictKind::kNeverFits) all_never = false;
      } else {
        score = scorer.Score(MakeScoreInput(node, req, std::span<const ContainerGrant>(scratch.containers.data(), scratch.used),
                                            req.exclusive, ctx),
                             nullptr);
        have_plan = true;
      }
      if (entries) (*entries)[i] = {node.version, fits, score};
    }
    if (!fits) continue;
    all_never = false;
    d.feasible_nodes++;
    bool better = best < 0 || score.primary > best_score.primary ||
                  (score.primary == best_score.primary && score.tiebreak > best_score.tiebreak);
    bool equal = best >= 0 && score.primary == best_score.primary && score.tiebreak == best_score.tiebreak;
    if (better) {
      best = static_cast<int>(i);
      best_score = score;
      ties = 1;
      best_plan = have_plan ? PlanFromScratch(node, req, scratch) : PodPlacement{};
    } else if (equal && ctx.rng) {
      // Reservoir sampling among equal best nodes, as kube-scheduler's selectHost does.
      ++ties;
      if (std::uniform_int_distribution<int>(0, ties - 1)(*ctx.rng) == 0) {
        best = static_cast<int>(i);
        best_plan = have_plan ? PlanFromScratch(node, req, scratch) : PodPlacement{};
      }
    }
  }
  if (best < 0) {
    d.never_fits = all_never && !nodes.empty();
    return d;
  }
  if (best_plan.node.empty()) {
    NodeVerdict v = Filter(nodes[best], req, ctx);
    best_plan = std::move(v.plan);
  }
  d.scheduled = true;
  d.placement = std::move(best_plan);
  return d;
}

Status ValidateAgainstCluster(const PodRequest& req, const ClusterState& cluster) {
  for (const auto& c : req.containers) {
    if (c.slice.count == 0) continue;
    int best = 0;
    for (const auto& node : cluster.nodes()) {
      int allowed = 0;
      for (const auto& card : node.cards) allowed += ModelAllowed(card, req) ? 1 : 0;
      best = std::max(best, allowed);
      if (best >= c.slice.count) break;  // one node that could hold it is enough
    }
    if (c.slice.count > best) {
      return Status::InvalidArgument(
          std::string(c.init ? "initContainer \"" : "container \"") + c.name + "\" " + names::kVnpu,
          "asks for " + std::to_string(c.slice.count) + " slices on distinct cards, but the largest node has " +
              std::to_string(best) + " card" + (best == 1 ? "" : "s") + " of an allowed type; ask for at most " +
              std::to_string(best) + " per container");
    }
  }
  return Status::Ok();
}

double ClusterFragmentationPercent(const ClusterState& cluster, const WorkloadModel& workload) {
  double frag = 0, capacity = 0;
  for (const auto& node : cluster.nodes()) {
    frag += workload.Fragmentation(MakeFragView(node));
    capacity += 1000.0 * node.cards.size();
  }
  return capacity > 0 ? 100.0 * frag / capacity : 0;
}

}  // namespace tideslice::core
