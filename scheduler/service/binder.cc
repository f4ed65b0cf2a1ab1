#include "scheduler/service/binder.h"

#include "common/codec/annotations.h"
#include "common/kube/objects.h"

namespace tideslice::service {

using Clock = std::chrono::steady_clock;

std::string Binder::Holder(const std::string& node) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = gates_.find(node);
  return it == gates_.end() ? "" : it->second.pod_key;
}

Status Binder::Bind(const std::string& ns, const std::string& name, const std::string& uid, const std::string& node,
                    v1::PodAssignment assignment) {
  const std::string key = ns + "/" + name;
  std::unique_lock<std::mutex> lock(mu_);
  const auto deadline = Clock::now() + options_.max_wait;
  bool counted = false;
  auto uncount = [&] {
    if (!counted) return;
    counted = false;
    if (--waiting_[node] <= 0) waiting_.erase(node);
    --waiting_total_;
  };
  while (true) {
    auto it = gates_.find(node);
    if (it == gates_.end() || it->second.pod_key.empty() || it->second.pod_key == key) break;
    const auto expires = it->second.since + options_.acknowledge_timeout;
    if (Clock::now() >= expires) {
      std::string holder = it->second.pod_key;
      lock.unlock();
      Status s = ExpireHolder(node, holder);
      if (s.ok())
        log::Warn("binder.holder_expired",
                  "a pod held its node's device hand-off past the acknowledge timeout; its gate was released",
                  {{"node", node}, {"pod", holder}});
      lock.lock();
      if (!s.ok()) {
        uncount();
        return s.WithContext("node " + node + " is blocked by pod " + holder);
      }
      auto again = gates_.find(node);
      if (again != gates_.end() && again->second.pod_key == holder) gates_.erase(again);
      continue;
    }
    if (!counted) {
      if (waiting_[node] >= options_.max_waiters_per_node || waiting_total_ >= options_.max_waiters) {
        const bool node_full = waiting_[node] >= options_.max_waiters_per_node;
        if (waiting_[node] == 0) waiting_.erase(node);
        return Status::Unavailable("node " + node + " is still handing devices to pod " + it->second.pod_key +
                                   (node_full ? " and other binds already wait for it"
                                              : " and " + std::to_string(waiting_total_) +
                                                    " binds already wait for busy nodes") +
                                   "; the bind of " + key + " will be retried");
      }
      ++waiting_[node];
      ++waiting_total_;
      counted = true;
    }
    if (Clock::now() >= deadline) {
      uncount();
      return Status::Unavailable("node " + node + " is still handing devices to pod " + it->second.pod_key +
                                 "; the bind of " + key + " will be retried");
    }
    cv_.wait_until(lock, std::min(deadline, expires));
  }
  uncount();
  // The fence is read after the wait: a bind that waited must not act on a lease it lost meanwhile.
  auto term = Fence();
  if (!term.ok()) return term.status();
  gates_[node] = {key, Clock::now()};
  lock.unlock();

  assignment.set_phase(v1::ASSIGNMENT_PHASE_ALLOCATING);
  assignment.set_node_name(node);
  if (!uid.empty()) assignment.set_pod_uid(uid);
  auto now = std::chrono::system_clock::now().time_since_epoch();
  assignment.mutable_assigned_at()->set_seconds(std::chrono::duration_cast<std::chrono::seconds>(now).count());
  Status s;
  if (*term) {
    assignment.set_lease_holder((*term)->holder);
    assignment.set_lease_term((*term)->term);
  }
  if (options_.signer) s = options_.signer->Sign(&assignment);
  if (s.ok())
    s = client_->Bind(ns, name, uid, node, {{std::string(codec::kAssignmentAnnotation), codec::EncodeAssignment(assignment)}},
                      CallBound(*term));
  RecordApiOutcome(s);
  if (!s.ok()) {
    lock.lock();
    auto it = gates_.find(node);
    if (it != gates_.end() && it->second.pod_key == key) gates_.erase(it);
    cv_.notify_all();
  }
  return s;
}

Status Binder::BindPlain(const std::string& ns, const std::string& name, const std::string& uid,
                         const std::string& node) {
  auto term = Fence();
  if (!term.ok()) return term.status();
  Status s = client_->Bind(ns, name, uid, node, {}, CallBound(*term));
  RecordApiOutcome(s);
  return s;
}

// An API outage fails every bind until it ends: logged when it starts and when it ends, not per
// pod. Refusals that concern one pod (gone, conflict) are the pod's, answered to kube-scheduler.
void Binder::RecordApiOutcome(const Status& s) const {
  if (s.ok()) {
    log_.Record("api", "ok", log::Level::kInfo, "binder.api_recovered", "binding through the Kubernetes API works again");
  } else if (s.code() == StatusCode::kUnavailable) {
    log_.Record("api", "failing", log::Level::kWarn, "binder.api_failing",
                "binding through the Kubernetes API fails; kube-scheduler retries the pods", {{"error", s.ToString()}},
                /*log_first=*/true);
  }
}

StatusOr<std::optional<LeaseTerm>> Binder::Fence() const {
  if (!options_.fence) return std::optional<LeaseTerm>();
  std::optional<LeaseTerm> term = options_.fence();
  if (!term) {
    log_.Record("fence", "lost", log::Level::kWarn, "binder.not_leading",
                "refusing binds: this replica cannot prove it still leads", {}, /*log_first=*/true);
    return Status::Unavailable("this tideslice-scheduler replica cannot prove it still leads; kube-scheduler will retry");
  }
  log_.Record("fence", "held", log::Level::kInfo, "binder.leading", "binding again: this replica leads");
  return term;
}

// Bounded by what is left of the lease: past it another replica may lead, and a bind that lands
// later still carries this term, which the agent and the next leader refuse. 0 = no fencing.
std::chrono::milliseconds Binder::CallBound(const std::optional<LeaseTerm>& term) {
  return term ? std::max(std::chrono::milliseconds(1), term->time_left) : std::chrono::milliseconds(0);
}

namespace {
std::string PodPathOfKey(const std::string& pod_key) {
  auto slash = pod_key.find('/');
  return kube::PodPath(pod_key.substr(0, slash), slash == std::string::npos ? "" : pod_key.substr(slash + 1));
}
}  // namespace

Status Binder::Reseal(const std::string& pod_key, const v1::PodAssignment& checked, const LeaseTerm& term) {
  auto decision = [](v1::PodAssignment a) {
    a.clear_lease_holder();
    a.clear_lease_term();
    return trust::SealedBytes(a);
  };
  const std::string expected = decision(checked);
  auto r = client_->ReadModifyWrite(PodPathOfKey(pod_key), [&](kube::json& pod, bool* changed) -> Status {
    auto a = kube::AssignmentOf(pod);
    if (kube::UidOf(pod) != checked.pod_uid() || !a.ok() || !a->has_value() ||
        (*a)->phase() != v1::ASSIGNMENT_PHASE_ALLOCATING || (*a)->lease_term() != checked.lease_term() ||
        !trust::CheckAssignmentOwner(options_.verifier.get(), pod, **a).ok() || decision(**a) != expected) {
      *changed = false;
      return Status::Ok();
    }
    (*a)->set_lease_holder(term.holder);
    (*a)->set_lease_term(term.term);
    if (options_.signer) TS_RETURN_IF_ERROR(options_.signer->Sign(&**a));
    pod["metadata"]["annotations"][std::string(codec::kAssignmentAnnotation)] = codec::EncodeAssignment(**a);
    return Status::Ok();
  });
  if (!r.ok() && r.status().code() == StatusCode::kNotFound) return Status::Ok();
  return r.status();
}

Status Binder::Refuse(const std::string& pod_key, const std::string& pod_uid, const std::string& why) {
  auto r = client_->ReadModifyWrite(PodPathOfKey(pod_key), [&](kube::json& pod, bool* changed) -> Status {
    auto a = kube::AssignmentOf(pod);
    if (kube::UidOf(pod) != pod_uid || !a.ok() || !a->has_value() || (*a)->phase() != v1::ASSIGNMENT_PHASE_ALLOCATING) {
      *changed = false;
      return Status::Ok();
    }
    (*a)->set_phase(v1::ASSIGNMENT_PHASE_FAILED);
    (*a)->set_message(why.substr(0, 512));
    pod["metadata"]["annotations"][std::string(codec::kAssignmentAnnotation)] = codec::EncodeAssignment(**a);
    return Status::Ok();
  });
  if (!r.ok() && r.status().code() == StatusCode::kNotFound) return Status::Ok();
  return r.status();
}

// The agent never acknowledged: mark the assignment FAILED so that no later Allocate can match
// it, then the node is free for the next pod. If the agent acknowledged meanwhile, nothing to do.
Status Binder::ExpireHolder(const std::string& node, const std::string& pod_key) {
  auto r = client_->ReadModifyWrite(PodPathOfKey(pod_key),
                                    [&](kube::json& pod, bool* changed) -> Status {
                                      auto a = kube::AssignmentOf(pod);
                                      if (!a.ok() || !a->has_value() ||
                                          (*a)->phase() != v1::ASSIGNMENT_PHASE_ALLOCATING) {
                                        *changed = false;
                                        return Status::Ok();
                                      }
                                      (*a)->set_phase(v1::ASSIGNMENT_PHASE_FAILED);
                                      (*a)->set_message("the node agent on " + node +
                                                        " did not acknowledge the devices in time");
                                      pod["metadata"]["annotations"][std::string(codec::kAssignmentAnnotation)] =
                                          codec::EncodeAssignment(**a);
                                      return Status::Ok();
                                    });
  if (!r.ok() && r.status().code() == StatusCode::kNotFound) return Status::Ok();  // gone: free anyway
  return r.status();
}

void Binder::Replace(const std::vector<kube::json>& pods) {
  std::lock_guard<std::mutex> lock(mu_);
  // Keep gates whose holder is still allocating (keeping their start time); drop the others;
  // adopt allocating pods we did not know about (bound by a previous leader).
  std::map<std::string, std::string> allocating;  // node -> pod
  for (const auto& pod : pods) {
    auto a = kube::AssignmentOf(pod);
    if (a.ok() && a->has_value() && (*a)->phase() == v1::ASSIGNMENT_PHASE_ALLOCATING && !kube::PodIsFinished(pod) &&
        trust::CheckAssignmentOwner(options_.verifier.get(), pod, **a).ok())
      allocating.emplace(kube::NodeNameOf(pod), kube::PodKey(pod));
  }
  for (auto it = gates_.begin(); it != gates_.end();) {
    auto found = allocating.find(it->first);
    bool binding_now = Clock::now() - it->second.since < std::chrono::seconds(5);  // our Bind may not be visible yet
    if ((found == allocating.end() || found->second != it->second.pod_key) && !binding_now) it = gates_.erase(it);
    else ++it;
  }
  for (const auto& [node, key] : allocating)
    if (!gates_.count(node)) gates_[node] = {key, Clock::now()};
  cv_.notify_all();
}

void Binder::Observe(kube::WatchEventType type, const kube::json& pod) {
  std::lock_guard<std::mutex> lock(mu_);
  ObserveLocked(type, pod);
}

void Binder::ObserveLocked(kube::WatchEventType type, const kube::json& pod) {
  const std::string node = kube::NodeNameOf(pod);
  if (node.empty()) return;
  const std::string key = kube::PodKey(pod);
  auto a = kube::AssignmentOf(pod);
  bool allocating = a.ok() && a->has_value() && (*a)->phase() == v1::ASSIGNMENT_PHASE_ALLOCATING &&
                    type != kube::WatchEventType::kDeleted && !kube::PodIsFinished(pod) &&
                    trust::CheckAssignmentOwner(options_.verifier.get(), pod, **a).ok();
  auto it = gates_.find(node);
  if (allocating) {
    if (it == gates_.end()) gates_[node] = {key, Clock::now()};
    return;
  }
  if (it != gates_.end() && it->second.pod_key == key) {
    gates_.erase(it);
    cv_.notify_all();
  }
}

}  // namespace tideslice::service
