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
  while (true) {
    auto it = gates_.find(node);
    if (it == gates_.end() || it->second.pod_key.empty() || it->second.pod_key == key) break;
    const auto expires = it->second.since + options_.acknowledge_timeout;
    if (Clock::now() >= expires) {
      std::string holder = it->second.pod_key;
      lock.unlock();
      Status s = ExpireHolder(node, holder);
      lock.lock();
      if (!s.ok()) return s.WithContext("node " + node + " is blocked by pod " + holder);
      auto again = gates_.find(node);
      if (again != gates_.end() && again->second.pod_key == holder) gates_.erase(again);
      continue;
    }
    if (Clock::now() >= deadline)
      return Status::Unavailable("node " + node + " is still handing devices to pod " + it->second.pod_key +
                                 "; the bind of " + key + " will be retried");
    cv_.wait_until(lock, std::min(deadline, expires));
  }
  gates_[node] = {key, Clock::now()};
  lock.unlock();

  assignment.set_phase(v1::ASSIGNMENT_PHASE_ALLOCATING);
  assignment.set_node_name(node);
  if (!uid.empty()) assignment.set_pod_uid(uid);
  auto now = std::chrono::system_clock::now().time_since_epoch();
  assignment.mutable_assigned_at()->set_seconds(std::chrono::duration_cast<std::chrono::seconds>(now).count());
  Status s = client_->Bind(ns, name, uid, node,
                           {{std::string(codec::kAssignmentAnnotation), codec::EncodeAssignment(assignment)}});
  if (!s.ok()) {
    lock.lock();
    auto it = gates_.find(node);
    if (it != gates_.end() && it->second.pod_key == key) gates_.erase(it);
    cv_.notify_all();
  }
  return s;
}

// The agent never acknowledged: mark the assignment FAILED so that no later Allocate can match
// it, then the node is free for the next pod. If the agent acknowledged meanwhile, nothing to do.
Status Binder::ExpireHolder(const std::string& node, const std::string& pod_key) {
  auto slash = pod_key.find('/');
  auto r = client_->ReadModifyWrite(kube::PodPath(pod_key.substr(0, slash), pod_key.substr(slash + 1)),
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
    if (a.ok() && a->has_value() && (*a)->phase() == v1::ASSIGNMENT_PHASE_ALLOCATING && !kube::PodIsFinished(pod))
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
                    type != kube::WatchEventType::kDeleted && !kube::PodIsFinished(pod);
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
