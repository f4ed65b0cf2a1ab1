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

http::HttpReply SchedulerService::Serve(const std::string& verb, const std::string& body) {
  const auto start = std::chrono::steady_clock::now();
  http::HttpReply reply = ServeTimed(verb, body);
  if (observer_) {
    bool error = AnswersWithError(reply.body);
    observer_(verb, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), error);
  }
  return reply;
}

http::HttpReply SchedulerService::ServeTimed(const std::string& verb, const std::string& body) {
  if (verb == "bind") {
    counters_.bind++;
    auto args = extender::ParseBindingArgs(body);
    if (!args.ok()) {
      counters_.errors++;
      return {200, extender::EncodeBindingResult(args.status().ToString())};
    }
    Status s = Bind(*args);
    if (!s.ok()) counters_.bind_errors++;
    return {200, extender::EncodeBindingResult(s.ok() ? "" : s.ToString())};
  }
  if (verb == "filter") counters_.filter++;
  else if (verb == "prioritize") counters_.prioritize++;
  else if (verb == "preempt") counters_.preempt++;
  auto snapshot = cache_->Snapshot();
  extender::Verbs verbs(catalog_, cache_->PlacementContext(), &memo_, cache_->PlacementScope());
  if (verb == "filter" && !pools_.empty()) {
    // Filter, then close the nodes whose pool's tide does not serve this pod's class now.
    auto args = extender::ParseExtenderArgs(body);
    if (args.ok()) {
      extender::FilterResult r = verbs.Filter(*args, *snapshot);
      auto request = core::PreFilter(args->pod, catalog_);
      if (request.ok() && request->WantsAccelerators()) {
        std::vector<std::string> passed;
        for (const auto& name : r.passed) {
          const core::NodeState* node = snapshot->FindNode(name);
          std::string why = node ? TideBlocks(*node, *request) : "";
          if (why.empty()) passed.push_back(name);
          else r.failed[name] = why;
        }
        r.passed = std::move(passed);
      }
      return {200, extender::EncodeFilterResult(r, *args)};
    }
  }
  http::HttpReply reply = extender::ServeVerb(verbs, [&] { return snapshot; }, verb, body);
  if (AnswersWithError(reply.body)) counters_.errors++;
  return reply;
}

std::string SchedulerService::TideBlocks(const core::NodeState& node, const core::PodRequest& request) const {
  const tidal::PoolSpec* pool = tidal::PoolOfNode(pools_, node.labels);
  if (!pool) return "";
  v1::WorkloadClass cls = request.workload == core::WorkloadClass::kInference  ? v1::WORKLOAD_CLASS_INFERENCE
                          : request.workload == core::WorkloadClass::kTraining ? v1::WORKLOAD_CLASS_TRAINING
                                                                               : v1::WORKLOAD_CLASS_UNSPECIFIED;
  const auto now = now_();
  std::optional<tidal::TideNow> posted = tides_ ? tides_->Get(pool->name) : std::nullopt;
  int cards = 0;
  for (const auto& c : request.containers)
    if (!c.init) cards += c.slice.count;
  tidal::GateVerdict v = tidal::Gate(*pool, cls, posted ? *posted : tidal::ClockTideNow(*pool, now), std::max(1, cards), now);
  return v.allowed ? "" : v.reason;
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
  if (!request->WantsAccelerators()) return binder_->BindPlain(args.pod_namespace, args.pod_name, args.pod_uid, args.node);
  if (!pools_.empty()) {
    auto snapshot = cache_->Snapshot();
    if (const core::NodeState* node = snapshot->FindNode(args.node)) {
      std::string why = TideBlocks(*node, *request);
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
