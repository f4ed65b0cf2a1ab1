#include "scheduler/extender/verbs.h"

#include <set>

namespace tideslice::extender {

FilterResult Verbs::Filter(const ExtenderArgs& args, const core::ClusterState& cluster) const {
  FilterResult r;
  auto req = core::PreFilter(args.pod, catalog_);
  Status invalid = req.ok() ? core::ValidateAgainstCluster(*req, cluster) : req.status();
  if (!invalid.ok()) {
    std::string why = "TideSlice rejects the request: " +
                      (invalid.field().empty() ? invalid.message() : invalid.field() + ": " + invalid.message());
    for (const auto& n : args.node_names) r.unresolvable[n] = why;
    return r;
  }
  if (!req->WantsAccelerators()) {
    r.passed = args.node_names;
    return r;
  }
  for (const auto& name : args.node_names) {
    const core::NodeState* node = cluster.FindNode(name);
    if (!node) {
      r.unresolvable[name] = "no TideSlice inventory for this node (is the node agent running there?)";
      continue;
    }
    core::NodeVerdict v = core::Filter(*node, *req, ctx_);
    switch (v.kind) {
      case core::VerdictKind::kFits: r.passed.push_back(name); break;
      case core::VerdictKind::kNoFit: r.failed[name] = v.reason; break;
      case core::VerdictKind::kNeverFits: r.unresolvable[name] = v.reason; break;
    }
  }
  return r;
}

std::vector<HostPriority> Verbs::Prioritize(const ExtenderArgs& args, const core::ClusterState& cluster) const {
  std::vector<HostPriority> out;
  auto req = core::PreFilter(args.pod, catalog_);
  std::vector<core::NodeScore> scores;
  std::vector<std::string> scored;
  for (const auto& name : args.node_names) {
    const core::NodeState* node = req.ok() && req->WantsAccelerators() ? cluster.FindNode(name) : nullptr;
    core::NodeVerdict v;
    if (node) v = core::Filter(*node, *req, ctx_);
    if (node && v.kind == core::VerdictKind::kFits) {
      scores.push_back(core::Score(*node, *req, v.plan, ctx_));
      scored.push_back(name);
    } else {
      out.push_back({name, 0});
    }
  }
  auto normalized = core::NormalizeScores(scores, 10);
  for (size_t i = 0; i < scored.size(); ++i) out.push_back({scored[i], normalized[i]});
  return out;
}

StatusOr<std::map<std::string, MetaVictims>> Verbs::Preempt(const PreemptionArgs& args,
                                                           const core::ClusterState& cluster) const {
  auto req = core::PreFilter(args.pod, catalog_);
  if (!req.ok()) return req.status();
  std::map<std::string, MetaVictims> out;
  for (const auto& [name, proposed] : args.node_to_victims) {
    const core::NodeState* node = cluster.FindNode(name);
    if (!node) continue;
    std::set<std::string> allowed(proposed.pod_uids.begin(), proposed.pod_uids.end());
    auto victims = core::SelectVictims(*node, *req, ctx_, &allowed);
    if (!victims.ok()) return victims.status();
    if (victims->empty()) continue;  // every returned node needs at least one victim
    MetaVictims mv;
    for (const auto& key : *victims) mv.pod_uids.push_back(node->pods.at(key).pod_uid);
    mv.num_pdb_violations = std::min<int64_t>(proposed.num_pdb_violations, static_cast<int64_t>(mv.pod_uids.size()));
    out[name] = std::move(mv);
  }
  return out;
}

}  // namespace tideslice::extender
