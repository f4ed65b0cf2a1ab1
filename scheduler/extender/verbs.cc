#include "scheduler/extender/verbs.h"

#include <algorithm>
#include <optional>
#include <thread>
#include <set>

namespace tideslice::extender {

size_t NodeReasonCap(size_t nodes) {
  return std::clamp(nodes ? kNodeReasonBudgetBytes / nodes : kMaxReasonBytes, kMinNodeReasonBytes, kMaxReasonBytes);
}

std::string RequestShape(const core::PodRequest& r) {
  std::string k;
  auto add = [&k](const auto& v) {
    k += std::to_string(v);
    k += ',';
  };
  for (const auto& c : r.containers) {
    add(c.init);
    add(c.slice.count);
    add(c.slice.whole);
    add(c.slice.memory_mib);
    add(c.slice.memory_percent);
    add(c.slice.compute_permille);
    add(c.slice.memory_proportional);
    add(c.slice.tflops);
    k += c.slice.profile + ';';
  }
  add(r.cpu_milli);
  add(r.memory_mib);
  for (const auto* set : {&r.type_include, &r.type_exclude, &r.uuid_include, &r.uuid_exclude}) {
    for (const auto& s : *set) k += s + ',';
    k += '|';
  }
  add(r.placement ? static_cast<int>(*r.placement) + 1 : 0);
  add(r.exclusive);
  add(static_cast<int>(r.workload));
  return k;
}

VerdictMemo::Session VerdictMemo::Open(const std::string& shape) {
  std::unique_lock<std::mutex> lock(mu_);
  if (by_shape_.size() >= kMaxShapes && !by_shape_.count(shape)) by_shape_.clear();
  return Session(std::move(lock), &by_shape_[shape]);
}

size_t VerdictMemo::shapes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return by_shape_.size();
}

std::vector<VerdictMemo::Entry> Verbs::EvaluateAll(const std::vector<const core::NodeState*>& nodes,
                                                    const core::PodRequest& request,
                                                    VerdictMemo::Session* session) const {
  std::vector<VerdictMemo::Entry> out(nodes.size());
  std::vector<size_t> misses;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (!nodes[i]) continue;
    const VerdictMemo::Entry* hit = session ? session->Get(nodes[i]->name, nodes[i]->version) : nullptr;
    if (hit) out[i] = *hit;
    else misses.push_back(i);
  }
  // A new shape on many nodes: split the work over two threads (the scheduling cycle waits for
  // this answer; the snapshot is read-only and the core keeps no shared scratch state).
  auto run = [&](size_t from, size_t to) {
    for (size_t k = from; k < to; ++k) {
      const core::NodeState& node = *nodes[misses[k]];
      core::NodeVerdict v = core::Filter(node, request, ctx_);
      VerdictMemo::Entry& e = out[misses[k]];
      e.version = node.version;
      e.kind = v.kind;
      e.reason = std::move(v.reason);
      if (v.kind == core::VerdictKind::kFits) e.score = core::Score(node, request, v.plan, ctx_);
    }
  };
  if (misses.size() >= 256 && !ctx_.rng) {
    const size_t half = misses.size() / 2;
    std::thread helper(run, half, misses.size());
    run(0, half);
    helper.join();
  } else {
    run(0, misses.size());
  }
  if (session)
    for (size_t k : misses) session->Put(nodes[k]->name, out[k]);
  return out;
}

FilterResult Verbs::Filter(const ExtenderArgs& args, const core::ClusterState& cluster) const {
  FilterResult r;
  auto req = core::PreFilter(args.pod, catalog_);
  Status invalid = req.ok() ? core::ValidateAgainstCluster(*req, cluster) : req.status();
  const size_t cap = NodeReasonCap(args.node_names.size());
  if (!invalid.ok()) {
    // The same words on every node: kube-scheduler's FailedScheduling event prints identical
    // reasons once with their count ("0/1000 nodes are available: 1000 TideSlice rejects ..."),
    // and the pod waits as unschedulable (an Error would be retried as a scheduler failure).
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
  std::optional<VerdictMemo::Session> session;
  if (memo_) session.emplace(memo_->Open(memo_scope_ + RequestShape(*req)));
  std::vector<const core::NodeState*> nodes;
  nodes.reserve(args.node_names.size());
  for (const auto& name : args.node_names) nodes.push_back(cluster.FindNode(name));
  std::vector<VerdictMemo::Entry> verdicts = EvaluateAll(nodes, *req, session ? &*session : nullptr);
  for (size_t i = 0; i < nodes.size(); ++i) {
    const std::string& name = args.node_names[i];
    if (!nodes[i]) {
      r.unresolvable[name] = "no TideSlice inventory for this node (is the node agent running there?)";
      continue;
    }
    VerdictMemo::Entry& v = verdicts[i];
    switch (v.kind) {
      case core::VerdictKind::kFits: r.passed.push_back(name); break;
      case core::VerdictKind::kNoFit: r.failed[name] = BoundedText(v.reason, cap); break;
      case core::VerdictKind::kNeverFits: r.unresolvable[name] = BoundedText(v.reason, cap); break;
    }
  }
  return r;
}

std::vector<HostPriority> Verbs::Prioritize(const ExtenderArgs& args, const core::ClusterState& cluster) const {
  std::vector<HostPriority> out;
  auto req = core::PreFilter(args.pod, catalog_);
  std::vector<core::NodeScore> scores;
  std::vector<std::string> scored;
  std::optional<VerdictMemo::Session> session;
  if (memo_ && req.ok() && req->WantsAccelerators()) session.emplace(memo_->Open(memo_scope_ + RequestShape(*req)));
  std::vector<const core::NodeState*> nodes;
  const bool wants = req.ok() && req->WantsAccelerators();
  for (const auto& name : args.node_names) nodes.push_back(wants ? cluster.FindNode(name) : nullptr);
  std::vector<VerdictMemo::Entry> verdicts;
  if (wants) verdicts = EvaluateAll(nodes, *req, session ? &*session : nullptr);
  for (size_t i = 0; i < nodes.size(); ++i) {
    const std::string& name = args.node_names[i];
    const core::NodeState* node = nodes[i];
    VerdictMemo::Entry v;
    if (node) v = verdicts[i];
    if (node && v.kind == core::VerdictKind::kFits) {
      scores.push_back(v.score);
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
