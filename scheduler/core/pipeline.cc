#include "scheduler/core/pipeline.h"

#include <algorithm>
#include <optional>
#include <thread>

namespace tideslice::core {

std::string RequestShape(const PodRequest& r) {
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
    add(c.slice.partition_class);
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

VerdictMemo::Session VerdictMemo::Open(const std::string& shape, const ClusterState& cluster) {
  std::unique_lock<std::mutex> lock(mu_);
  const size_t n = cluster.nodes().size();
  auto it = by_shape_.find(shape);
  if (it == by_shape_.end()) {
    if (by_shape_.size() >= kMaxShapes || entries_ + n > kMaxEntries) {
      by_shape_.clear();
      entries_ = 0;
    }
    it = by_shape_.emplace(shape, Table{}).first;
  }
  Table& t = it->second;
  if (t.layout != cluster.layout() || t.entries.size() != n) {
    entries_ = entries_ - t.entries.size() + n;
    t.entries.assign(n, Entry{});
    t.layout = cluster.layout();
  }
  return Session(std::move(lock), &t.entries);
}

size_t VerdictMemo::shapes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return by_shape_.size();
}

std::vector<std::string> Pipeline::StageNames() const {
  std::vector<std::string> names = {"validity", "cluster", "fit"};
  for (const NodeGate* g : gates_) names.push_back(g->name());
  names.push_back(std::string("score:") + PolicyName(ctx_.policy));
  return names;
}

StatusOr<PodRequest> Pipeline::PreFilter(const kube::PodSpec& pod, const ClusterState& cluster,
                                         std::span<const ContainerRequest> claimed) const {
  if (counts_) counts_->validity++;
  auto request = core::PreFilter(pod, catalog_);
  if (!request.ok()) return request.status();
  if (!claimed.empty()) {
    // App containers come first, then init containers: the claimed slices go after the last app one.
    auto first_init = std::find_if(request->containers.begin(), request->containers.end(),
                                   [](const ContainerRequest& c) { return c.init; });
    request->containers.insert(first_init, claimed.begin(), claimed.end());
  }
  if (counts_) counts_->cluster++;
  TS_RETURN_IF_ERROR(ValidateAgainstCluster(*request, cluster));
  return request;
}

std::vector<NodeOutcome> Pipeline::Run(const PodRequest& request, const ClusterState& cluster,
                                       std::span<const NodeState* const> nodes) const {
  if (counts_) counts_->fit_requests++;
  std::vector<NodeOutcome> out(nodes.size());
  std::optional<VerdictMemo::Session> session;
  if (memo_) session.emplace(memo_->Open(memo_scope_ + RequestShape(request), cluster));
  const NodeState* const first = cluster.nodes().data();
  const size_t count = cluster.nodes().size();
  auto position = [&](const NodeState* node) {
    const size_t at = static_cast<size_t>(node - first);
    return node >= first && at < count ? at : ClusterState::npos;
  };
  std::vector<size_t> misses;
  size_t hits = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (!nodes[i]) {
      out[i].kind = VerdictKind::kNeverFits;
      continue;
    }
    const size_t at = session ? position(nodes[i]) : ClusterState::npos;
    const VerdictMemo::Entry* hit = at != ClusterState::npos ? session->Get(at, nodes[i]->version) : nullptr;
    if (hit) {
      out[i].kind = hit->verdict.kind;
      out[i].failure = hit->verdict.failure;
      out[i].score = hit->verdict.score;
      ++hits;
    } else {
      misses.push_back(i);
    }
  }
  // Many misses (a new shape): split them over two threads. The core keeps no shared scratch
  // state (each thread has its own), and the snapshot does not change while the caller holds it.
  auto evaluate = [&](size_t from, size_t to) {
    for (size_t k = from; k < to; ++k) {
      const size_t i = misses[k];
      FitVerdict v = FilterAndScore(*nodes[i], request, ctx_);
      out[i].kind = v.kind;
      out[i].failure = v.failure;
      out[i].score = v.score;
    }
  };
  if (misses.size() >= 256 && !ctx_.rng) {
    const size_t half = misses.size() / 2;
    std::thread helper(evaluate, half, misses.size());
    evaluate(0, half);
    helper.join();
  } else {
    evaluate(0, misses.size());
  }
  if (session)
    for (size_t i : misses)
      if (const size_t at = position(nodes[i]); at != ClusterState::npos)
        session->Put(at, nodes[i]->version, {out[i].kind, out[i].failure, out[i].score});
  session.reset();
  if (counts_) {
    counts_->fit_nodes += misses.size();
    counts_->fit_memo_hits += hits;
  }
  if (gates_.empty()) return out;
  uint64_t gated = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (out[i].kind != VerdictKind::kFits) continue;
    ++gated;
    for (const NodeGate* gate : gates_) {
      std::string why = gate->Blocks(*nodes[i], request);
      if (why.empty()) continue;
      out[i].kind = VerdictKind::kNoFit;
      out[i].gate = gate;
      out[i].gate_reason = std::move(why);
      break;
    }
  }
  if (counts_) counts_->gate_nodes += gated;
  return out;
}

std::string Pipeline::Reason(const NodeOutcome& outcome, const NodeState& node, const PodRequest& request) const {
  if (outcome.gate) return outcome.gate_reason;
  return DescribeFailure(outcome.failure, node, request);
}

Decision Pipeline::Schedule(const ClusterState& cluster, const PodRequest& request, FilterScoreCache* cache,
                            uint64_t shape_key) const {
  if (gates_.empty()) {
    if (counts_) counts_->fit_requests++;
    return core::Schedule(cluster, request, ctx_, cache, shape_key);
  }
  // With gates: the node stages over every node, then the best (first of equals, or one at
  // random among them with a random source), then the winner's plan.
  std::vector<const NodeState*> nodes;
  nodes.reserve(cluster.nodes().size());
  for (const auto& n : cluster.nodes()) nodes.push_back(&n);
  std::vector<NodeOutcome> outcomes = Run(request, cluster, nodes);
  Decision d;
  int best = -1, ties = 0;
  bool all_never = true;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const NodeOutcome& o = outcomes[i];
    if (o.kind != VerdictKind::kFits) {
      d.reasons[Reason(o, *nodes[i], request)]++;
      if (o.kind != VerdictKind::kNeverFits) all_never = false;
      continue;
    }
    all_never = false;
    d.feasible_nodes++;
    const NodeScore& s = o.score;
    const NodeScore* b = best >= 0 ? &outcomes[best].score : nullptr;
    if (!b || s.primary > b->primary || (s.primary == b->primary && s.tiebreak > b->tiebreak)) {
      best = static_cast<int>(i);
      ties = 1;
    } else if (s.primary == b->primary && s.tiebreak == b->tiebreak && ctx_.rng) {
      ++ties;
      if (std::uniform_int_distribution<int>(0, ties - 1)(*ctx_.rng) == 0) best = static_cast<int>(i);
    }
  }
  if (best < 0) {
    d.never_fits = all_never && !nodes.empty();
    return d;
  }
  NodeVerdict v = Filter(*nodes[best], request, ctx_);
  d.scheduled = v.kind == VerdictKind::kFits;
  d.placement = std::move(v.plan);
  return d;
}

}  // namespace tideslice::core
