#include "scheduler/extender/verbs.h"

#include <algorithm>
#include <set>

namespace tideslice::extender {

size_t NodeReasonCap(size_t nodes) {
  return std::clamp(nodes ? kNodeReasonBudgetBytes / nodes : kMaxReasonBytes, kMinNodeReasonBytes, kMaxReasonBytes);
}

namespace {

// The snapshot's nodes for the names kube-scheduler sent (null where TideSlice has none).
std::vector<const core::NodeState*> NamedNodes(const std::vector<std::string>& names, const core::ClusterState& cluster) {
  std::vector<const core::NodeState*> nodes;
  nodes.reserve(names.size());
  const core::NodeState* first = cluster.nodes().data();
  for (const auto& name : names) {
    const size_t at = cluster.IndexOf(name);
    nodes.push_back(at == core::ClusterState::npos ? nullptr : first + at);
  }
  return nodes;
}

}  // namespace

bool DraDropsNode(const core::NodeOutcome& outcome, const core::PodRequest& request) {
  if (outcome.kind == core::VerdictKind::kFits || outcome.gate) return false;
  switch (outcome.failure.code) {
    case core::FitFailure::Code::kTooFewEligibleCards: return true;
    case core::FitFailure::Code::kInsufficientCards: {
      const int at = outcome.failure.container;
      if (at < 0 || at >= static_cast<int>(request.containers.size())) return false;
      const core::SliceSpec& s = request.containers[at].slice;
      return s.whole || !s.profile.empty() || !s.partition_class;
    }
    default: return false;  // stale inventory, host CPU/memory, card choice: the DRA allocator decides
  }
}

FilterResult Verbs::Filter(const ExtenderArgs& args, const core::ClusterState& cluster, bool* judged_nodes) const {
  FilterResult r;
  if (judged_nodes) *judged_nodes = false;
  auto req = Request(pipeline_, args.pod, cluster);
  const size_t cap = NodeReasonCap(args.node_names.size());
  if (!req.ok()) {
    // The same words on every node: kube-scheduler's FailedScheduling event prints identical
    // reasons once with their count ("0/1000 nodes are available: 1000 TideSlice rejects ..."),
    // and the pod waits as unschedulable (an Error would be retried as a scheduler failure).
    const Status& invalid = req.status();
    const std::string why = BoundedText(
        "TideSlice rejects the request: " +
            (invalid.field().empty() ? invalid.message() : invalid.field() + ": " + invalid.message()),
        cap);
    for (const auto& n : args.node_names) r.unresolvable[n] = why;
    return r;
  }
  if (!req->WantsAccelerators()) {
    r.passed = args.node_names;
    return r;
  }
  const std::vector<const core::NodeState*> nodes = NamedNodes(args.node_names, cluster);
  const std::vector<core::NodeOutcome> outcomes = pipeline_.Run(*req, cluster, nodes);
  if (judged_nodes) *judged_nodes = true;
  r.passed.reserve(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    const std::string& name = args.node_names[i];
    if (!nodes[i]) {
      r.unresolvable[name] = "no TideSlice inventory for this node (is the node agent running there?)";
      continue;
    }
    const core::NodeOutcome& o = outcomes[i];
    if (nodes[i]->dra && o.kind != core::VerdictKind::kFits && !DraDropsNode(o, *req)) {
      r.passed.push_back(name);
      continue;
    }
    switch (o.kind) {
      case core::VerdictKind::kFits: r.passed.push_back(name); break;
      case core::VerdictKind::kNoFit:
        // A gate's words are TideSlice's own (no request content): whole.
        r.failed[name] = o.gate ? o.gate_reason : BoundedText(pipeline_.Reason(o, *nodes[i], *req), cap);
        break;
      case core::VerdictKind::kNeverFits:
        r.unresolvable[name] = BoundedText(pipeline_.Reason(o, *nodes[i], *req), cap);
        break;
    }
  }
  return r;
}

std::vector<HostPriority> Verbs::Prioritize(const ExtenderArgs& args, const core::ClusterState& cluster) const {
  std::vector<HostPriority> out;
  auto req = Request(scoring_, args.pod, cluster);
  if (!req.ok() || !req->WantsAccelerators()) {
    out.reserve(args.node_names.size());
    for (const auto& name : args.node_names) out.push_back({name, 0});
    return out;
  }
  const std::vector<const core::NodeState*> nodes = NamedNodes(args.node_names, cluster);
  const std::vector<core::NodeOutcome> outcomes = scoring_.Run(*req, cluster, nodes);
  std::vector<core::NodeScore> scores;
  std::vector<const std::string*> scored;
  scores.reserve(nodes.size());
  scored.reserve(nodes.size());
  out.reserve(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i] && outcomes[i].kind == core::VerdictKind::kFits) {
      scores.push_back(outcomes[i].score);
      scored.push_back(&args.node_names[i]);
    } else {
      out.push_back({args.node_names[i], 0});
    }
  }
  auto normalized = core::NormalizeScores(scores, 10);
  for (size_t i = 0; i < scored.size(); ++i) out.push_back({*scored[i], normalized[i]});
  return out;
}

StatusOr<std::map<std::string, MetaVictims>> Verbs::Preempt(const PreemptionArgs& args,
                                                           const core::ClusterState& cluster) const {
  auto req = Request(pipeline_, args.pod, cluster);
  if (!req.ok()) return req.status();
  const core::Context& ctx = pipeline_.context();
  std::map<std::string, MetaVictims> out;
  for (const auto& [name, proposed] : args.node_to_victims) {
    const core::NodeState* node = cluster.FindNode(name);
    if (!node) continue;
    if (node->dra) {
      out[name] = proposed;
      continue;
    }
    std::set<std::string> allowed(proposed.pod_uids.begin(), proposed.pod_uids.end());
    auto victims = core::SelectVictims(*node, *req, ctx, &allowed);
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
