#include "scheduler/service/scheduler_service.h"

#include "common/kube/objects.h"
#include "common/kube/pod_json.h"
#include "scheduler/core/request.h"
#include "scheduler/extender/service.h"
#include "scheduler/extender/verbs.h"

namespace tideslice::service {

// True when an extender answer carries a non-empty Error ("Error":"" is the success form).
bool AnswersWithError(const std::string& body) {
  static const std::string key = "\"Error\":\"";
  auto pos = body.find(key);
  return pos != std::string::npos && pos + key.size() < body.size() && body[pos + key.size()] != '"';
}

// The tidal filter stage: a pod of the class a pool's tide does not serve first stays off that
// pool's nodes, with the time it may start (unless the tide lets it borrow). Fed plain data
// taken once per request: the pools, each pool's posted tide, the time.
class TideGate final : public core::NodeGate {
 public:
  TideGate(const std::vector<tidal::PoolSpec>& pools, const TideBoard* tides, std::chrono::system_clock::time_point now)
      : pools_(pools), now_(now) {
    for (const auto& pool : pools) {
      std::optional<tidal::TideNow> posted = tides ? tides->Get(pool.name) : std::nullopt;
      tides_.emplace(pool.name, posted ? *posted : tidal::ClockTideNow(pool, now));
    }
  }
  const char* name() const override { return "tide"; }
  std::string Blocks(const core::NodeState& node, const core::PodRequest& request) const override {
    const tidal::PoolSpec* pool = tidal::PoolOfNode(pools_, node.labels);
    if (!pool) return "";
    v1::WorkloadClass cls = request.workload == core::WorkloadClass::kInference  ? v1::WORKLOAD_CLASS_INFERENCE
                            : request.workload == core::WorkloadClass::kTraining ? v1::WORKLOAD_CLASS_TRAINING
                                                                                 : v1::WORKLOAD_CLASS_UNSPECIFIED;
    int cards = 0;
    for (const auto& c : request.containers)
      if (!c.init) cards += c.slice.count;
    tidal::GateVerdict v = tidal::Gate(*pool, cls, tides_.at(pool->name), std::max(1, cards), now_);
    return v.allowed ? "" : v.reason;
  }

 private:
  const std::vector<tidal::PoolSpec>& pools_;
  std::map<std::string, tidal::TideNow> tides_;
  std::chrono::system_clock::time_point now_;
};

http::HttpReply SchedulerService::Serve(const std::string& verb, const std::string& body) {
  const auto start = std::chrono::steady_clock::now();
  extender::Dispatched d = extender::Dispatch(*this, verb, body);
  switch (d.verb) {
    case extender::Verb::kFilter: counters_.filter++; break;
    case extender::Verb::kPrioritize: counters_.prioritize++; break;
    case extender::Verb::kPreempt: counters_.preempt++; break;
    case extender::Verb::kBind: counters_.bind++; break;
    case extender::Verb::kUnknown: break;
  }
  // The dispatcher knows whether its answer carries an Error: no scan of a reply naming
  // thousands of nodes.
  if (d.verb == extender::Verb::kBind) {
    if (d.undecodable) counters_.errors++;
    else if (d.failed) counters_.bind_errors++;
  } else if (d.failed) {
    counters_.errors++;
  }
  if (observer_) {
    bool error = d.failed;
    observer_(verb, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), error);
  }
  return std::move(d.reply);
}

extender::FilterResult SchedulerService::Filter(const extender::ExtenderArgs& args) {
  auto snapshot = cache_->Snapshot();
  extender::Verbs verbs(catalog_, cache_->PlacementContext(), &memo_, cache_->PlacementScope());
  verbs.CountInto(&stages_);
  if (!args.pod.resource_claims.empty()) verbs.AddClaimedSlices(cache_->ClaimedSlices(args.pod));
  std::optional<TideGate> tide;
  if (!pools_.empty()) verbs.AddGate(&tide.emplace(pools_, tides_, now_()));
  bool judged = false;
  extender::FilterResult r = verbs.Filter(args, *snapshot, &judged);
  // Record why a pod for accelerators fits no node at all (off the filter's path).
  if (recorder_ && judged && r.passed.empty() && r.error.empty() && (!r.failed.empty() || !r.unresolvable.empty())) {
    std::map<std::string, std::string> reasons = r.failed;
    reasons.insert(r.unresolvable.begin(), r.unresolvable.end());
    recorder_->Record(args.pod.namespace_name, args.pod.name, args.pod.uid, std::move(reasons));
  }
  return r;
}

std::vector<extender::HostPriority> SchedulerService::Prioritize(const extender::ExtenderArgs& args) {
  auto snapshot = cache_->Snapshot();
  extender::Verbs verbs(catalog_, cache_->PlacementContext(), &memo_, cache_->PlacementScope());
  verbs.CountInto(&stages_);
  if (!args.pod.resource_claims.empty()) verbs.AddClaimedSlices(cache_->ClaimedSlices(args.pod));
  return verbs.Prioritize(args, *snapshot);
}

StatusOr<std::map<std::string, extender::MetaVictims>> SchedulerService::Preempt(const extender::PreemptionArgs& args) {
  auto snapshot = cache_->Snapshot();
  extender::Verbs verbs(catalog_, cache_->PlacementContext(), &memo_, cache_->PlacementScope());
  verbs.CountInto(&stages_);
  if (!args.pod.resource_claims.empty()) verbs.AddClaimedSlices(cache_->ClaimedSlices(args.pod));
  return verbs.Preempt(args, *snapshot);
}

Status SchedulerService::Bind(const extender::BindingArgs& args) {
  if (!is_leader_())
    return Status::Unavailable("this tideslice-scheduler replica is not the leader; kube-scheduler will retry");
  const std::string key = args.pod_namespace + "/" + args.pod_name;
  std::optional<kube::json> pod = cache_->PendingPod(key);
  if (!pod) {
    auto fetched = client_->Get(kube::PodPath(args.pod_namespace, args.pod_name));
    if (!fetched.ok()) return fetched.status();
    pod = std::move(*fetched);
  }
  auto spec = kube::PodSpecFromJson(*pod);
  if (!spec.ok()) return spec.status();
  const std::string& uid = spec->uid;
  if (!args.pod_uid.empty() && !uid.empty() && uid != args.pod_uid)
    return Status::Aborted("pod " + key + " was re-created (uid " + uid + ", kube-scheduler asked for " + args.pod_uid + ")");
  // The bind verb is reachable by anyone who can reach the listener: it binds only what our own
  // kube-scheduler profile would, a pending pod that names this scheduler, to a node that exists
  // and that the pod's nodeSelector allows.
  if (spec->scheduler_name != scheduler_name_)
    return Status::PermissionDenied("pod " + key + " is for scheduler \"" + spec->scheduler_name.substr(0, 253) +
                                    "\", not \"" + scheduler_name_ + "\"; TideSlice binds only its own pods");
  if (!spec->node_name.empty())
    return Status::FailedPrecondition("pod " + key + " is already bound to " + spec->node_name);
  auto labels = cache_->NodeLabels(args.node);
  if (!labels) return Status::NotFound("node \"" + args.node.substr(0, 253) + "\" does not exist");
  const kube::json* selector = nullptr;
  if (auto s = pod->find("spec"); s != pod->end() && s->is_object())
    if (auto ns = s->find("nodeSelector"); ns != s->end() && ns->is_object()) selector = &*ns;
  if (selector)
    for (const auto& [k, v] : selector->items()) {
      auto have = labels->find(k);
      if (!v.is_string() || have == labels->end() || have->second != v.get<std::string>())
        return Status::FailedPrecondition("node " + args.node + " does not match the pod's nodeSelector " + k.substr(0, 253));
    }
  auto request = core::PreFilter(*spec, catalog_);
  if (!request.ok()) return request.status();
  // On a DRA node kube-scheduler's DRA allocator has written the claims' allocation and the DRA
  // driver prepares it: no assignment, no hand-off with a node agent, a plain Binding.
  if (!request->WantsAccelerators() || cache_->IsDraNode(args.node))
    return binder_->BindPlain(args.pod_namespace, args.pod_name, args.pod_uid, args.node);
  if (!pools_.empty()) {
    auto snapshot = cache_->Snapshot();
    if (const core::NodeState* node = snapshot->FindNode(args.node)) {
      std::string why = TideGate(pools_, tides_, now_()).Blocks(*node, *request);
      if (!why.empty()) return Status::FailedPrecondition(why);
    }
  }
  auto planned = cache_->PlanAndAssume(*request, key, args.pod_uid.empty() ? uid : args.pod_uid, args.node, {});
  if (!planned.ok()) return planned.status();
  Status s = binder_->Bind(args.pod_namespace, args.pod_name, args.pod_uid.empty() ? uid : args.pod_uid, args.node,
                           planned->assignment);
  if (!s.ok()) cache_->ForgetAssumed(key);
  return s;
}

}  // namespace tideslice::service
