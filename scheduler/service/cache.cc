#include "scheduler/service/cache.h"

#include <algorithm>
#include <set>

#include "common/kube/objects.h"
#include "common/log/log.h"
#include "common/trust/assignment_seal.h"
#include "common/kube/pod_json.h"
#include "scheduler/core/request.h"
#include "scheduler/service/state.h"

namespace tideslice::service {

using kube::json;

namespace {

std::map<std::string, std::string> LabelMap(const json& labels) {
  std::map<std::string, std::string> out;
  if (labels.is_object())
    for (const auto& [k, v] : labels.items())
      if (v.is_string()) out[k] = v.get<std::string>();
  return out;
}

std::string Name(const json& obj) {
  const auto& meta = obj.value("metadata", json::object());
  return meta.value("name", std::string());
}

bool Holds(const v1::PodAssignment& a) {
  return a.phase() == v1::ASSIGNMENT_PHASE_ALLOCATING || a.phase() == v1::ASSIGNMENT_PHASE_ALLOCATED;
}

v1::WorkloadClass ToV1(core::WorkloadClass c) {
  return c == core::WorkloadClass::kInference  ? v1::WORKLOAD_CLASS_INFERENCE
         : c == core::WorkloadClass::kTraining ? v1::WORKLOAD_CLASS_TRAINING
                                               : v1::WORKLOAD_CLASS_UNSPECIFIED;
}

// The few facts of a pod the tidal controller needs. Malformed notice or checkpoint annotations
// count as absent (the controller rewrites its own notice; a bad checkpoint time acknowledges
// nothing).
tidal::Member FactsOf(const json& pod) {
  tidal::Member m;
  m.key = kube::PodKey(pod);
  auto spec = kube::PodSpecFromJson(pod);
  if (!spec.ok()) return m;
  m.uid = spec->uid;
  m.priority = spec->priority;
  m.deleting = spec->deleting;
  m.cls = ToV1(core::WorkloadOf(*spec));
  if (auto it = spec->annotations.find(tidal::kNoticeAnnotation); it != spec->annotations.end())
    if (auto n = tidal::ParseNotice(it->second); n.ok()) m.notice = *n;
  if (auto it = spec->annotations.find(tidal::kCheckpointedAnnotation); it != spec->annotations.end())
    if (auto t = tidal::ParseTime(tidal::kCheckpointedAnnotation, it->second); t.ok()) m.checkpointed_at = *t;
  return m;
}

tidal::TimePoint TimeOf(const google::protobuf::Timestamp& t) {
  return tidal::TimePoint(std::chrono::duration_cast<std::chrono::system_clock::duration>(
      std::chrono::seconds(t.seconds()) + std::chrono::nanoseconds(t.nanos())));
}

// The order in which bound pods are adopted when the cache (re)learns them, which decides who
// keeps a card if two assignments claim it: acknowledged ones (the agent handed the card out)
// before pending ones; among pending ones the newer lease term first (a deposed leader's late
// bind was stamped before its call hung, so its time would make it look older), then the older
// bind.
int AdoptionRank(const v1::PodAssignment& a) { return a.phase() == v1::ASSIGNMENT_PHASE_ALLOCATED ? 0 : 1; }
bool AdoptsBefore(const v1::PodAssignment& x, const v1::PodAssignment& y) {
  if (AdoptionRank(x) != AdoptionRank(y)) return AdoptionRank(x) < AdoptionRank(y);
  if (x.lease_term() != y.lease_term()) return x.lease_term() > y.lease_term();
  return x.assigned_at().seconds() < y.assigned_at().seconds();
}

std::vector<const json*> AdoptionOrder(const std::vector<json>& pods) {
  struct Item {
    const json* pod;
    bool has;
    v1::PodAssignment a;
  };
  std::vector<Item> items;
  items.reserve(pods.size());
  for (const auto& p : pods) {
    auto a = kube::AssignmentOf(p);
    if (a.ok() && a->has_value()) items.push_back({&p, true, std::move(**a)});
    else items.push_back({&p, false, {}});
  }
  std::stable_sort(items.begin(), items.end(), [](const Item& x, const Item& y) {
    if (x.has != y.has) return x.has;
    return x.has && AdoptsBefore(x.a, y.a);
  });
  std::vector<const json*> out;
  out.reserve(items.size());
  for (const auto& i : items) out.push_back(i.pod);
  return out;
}

}  // namespace

kube::Reflector::Handler ClusterCache::NodeHandler() {
  return {[this](std::vector<json> items) { ReplaceNodes(items); },
          [this](kube::WatchEventType t, const json& obj) { OnNode(t, obj); }};
}

kube::Reflector::Handler ClusterCache::PodHandler() {
  return {[this](std::vector<json> items) { ReplacePods(items); },
          [this](kube::WatchEventType t, const json& obj) { OnPod(t, obj); }};
}

kube::Reflector::Handler ClusterCache::ClaimHandler() {
  return {[this](std::vector<json> items) { ReplaceClaims(items); },
          [this](kube::WatchEventType t, const json& obj) { OnClaim(t, obj); }};
}

kube::Reflector::Handler ClusterCache::ClaimTemplateHandler() {
  return {[this](std::vector<json> items) { ReplaceClaimTemplates(items); },
          [this](kube::WatchEventType t, const json& obj) { OnClaimTemplate(t, obj); }};
}

std::shared_ptr<const core::ClusterState> ClusterCache::Snapshot() const {
  auto lock = std::make_shared<std::shared_lock<std::shared_mutex>>(mu_);
  // Aliasing constructor: the pointer shows the state, its control block owns the read lock.
  return std::shared_ptr<const core::ClusterState>(lock, &state_);
}

std::optional<std::map<std::string, std::string>> ClusterCache::NodeLabels(const std::string& name) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto it = nodes_.find(name);
  if (it == nodes_.end()) return std::nullopt;
  return LabelMap(it->second.labels);
}

void ClusterCache::set_verifier(std::shared_ptr<const trust::AssignmentVerifier> verifier) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  options_.verifier = std::move(verifier);
}

std::vector<RefusedAssignment> ClusterCache::TakeRefused() {
  std::unique_lock<std::shared_mutex> lock(mu_);
  std::vector<RefusedAssignment> out;
  for (const auto& [key, r] : refused_)
    if (refused_reported_.insert(key + "#" + r.pod_uid + "#" + r.message).second) out.push_back(r);
  return out;
}

std::vector<AllocatingAssignment> ClusterCache::Allocating() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  std::vector<AllocatingAssignment> out;
  for (const auto& [key, rec] : pods_)
    if (rec.assignment.phase() == v1::ASSIGNMENT_PHASE_ALLOCATING)
      out.push_back({key, rec.assignment.pod_uid(), rec.assignment.lease_term(), rec.assignment.lease_holder(),
                     rec.assignment});
  return out;
}

std::optional<json> ClusterCache::PendingPod(const std::string& pod_key) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto it = pending_.find(pod_key);
  if (it == pending_.end()) return std::nullopt;
  return it->second;
}

void ClusterCache::ReplaceNodes(const std::vector<json>& nodes) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  std::set<std::string> seen;
  for (const auto& n : nodes) seen.insert(Name(n));
  std::vector<std::string> gone;
  for (const auto& [name, rec] : nodes_)
    if (!seen.count(name)) gone.push_back(name);
  for (const auto& name : gone) DropNode(name);
  for (const auto& n : nodes) ApplyNode(n);
}

void ClusterCache::OnNode(kube::WatchEventType type, const json& node) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (type == kube::WatchEventType::kDeleted) DropNode(Name(node));
  else ApplyNode(node);
}

void ClusterCache::ReplacePods(const std::vector<json>& pods) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  std::set<std::string> seen;
  for (const auto& p : pods) seen.insert(kube::PodKey(p));
  std::set<std::string> known;
  for (const auto& [k, r] : pods_) known.insert(k);
  for (const auto& [k, r] : pending_) known.insert(k);
  for (const auto& [k, r] : assumed_) known.insert(k);
  for (const auto& k : known)
    if (!seen.count(k)) DropPod(k);
  for (const auto* p : AdoptionOrder(pods)) ApplyPod(*p);
}

void ClusterCache::OnPod(kube::WatchEventType type, const json& pod) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (type == kube::WatchEventType::kDeleted) DropPod(kube::PodKey(pod));
  else ApplyPod(pod);
}

void ClusterCache::ApplyNode(const json& node) {
  const std::string name = Name(node);
  if (name.empty()) return;
  NodeRecord& rec = nodes_[name];
  const json labels = node.value("metadata", json::object()).value("labels", json::object());
  auto inv = kube::InventoryOf(node);
  if (!inv.ok() || !inv->has_value()) {
    // No (valid) inventory: TideSlice cannot place here. A malformed one is kept as the reason.
    rec.labels = labels;
    if (rec.in_state) state_.RemoveNode(name);
    rec.in_state = false;
    rec.inventory_text.clear();
    rec.problem = inv.ok() ? "" : inv.status().message();
    return;
  }
  v1::NodeInventory& inventory = **inv;
  rec.dra_driver = inventory.dra_driver();
  rec.heartbeat = std::chrono::system_clock::time_point(std::chrono::seconds(inventory.heartbeat().seconds()) +
                                                        std::chrono::nanoseconds(inventory.heartbeat().nanos()));
  // Only what placement depends on decides whether the node is rebuilt; heartbeats are not it.
  v1::NodeInventory placement_part = inventory;
  placement_part.clear_heartbeat();
  std::string text = placement_part.SerializeAsString() + labels.dump();
  if (!rec.in_state || text != rec.inventory_text) {
    rec.labels = labels;
    RebuildNode(name, inventory, labels);
    rec.inventory_text = text;
    rec.in_state = true;
  }
  UpdateSchedulable(name);
}

void ClusterCache::RebuildNode(const std::string& name, const v1::NodeInventory& inventory, const json& labels) {
  core::NodeState fresh = NodeFromInventory(inventory, LabelMap(labels), catalog_, state_);
  fresh.name = name;
  nodes_[name].problem = fresh.schedulable ? "" : fresh.unschedulable_reason;
  fresh.version = (++rebuild_seq_) << 32;
  state_.AddNode(std::move(fresh));
  // Allocated claims first: on a DRA node the allocator's word is final, whatever the pods say.
  for (auto& [uid, claim] : claims_) {
    bool here = claim.node == name;
    for (const auto& r : claim.allocation.results) here = here || r.pool == name;
    if (here) PlaceClaim(uid, claim);
  }
  std::vector<std::pair<const std::string*, const PodRecord*>> on_node;
  for (const auto& [key, rec] : pods_)
    if (rec.node == name) on_node.emplace_back(&key, &rec);
  std::stable_sort(on_node.begin(), on_node.end(),
                   [](const auto& x, const auto& y) { return AdoptsBefore(x.second->assignment, y.second->assignment); });
  // A pod that no longer fits the rebuilt node (its inventory shrank, or two claims collide) is
  // reported, not silently over-committed; the others keep their cards.
  std::vector<std::string> conflicting;
  for (const auto& [key, rec] : on_node)
    if (!Place(*key, name, rec->assignment).ok()) conflicting.push_back(*key);
  for (const auto& key : conflicting) {
    const v1::PodAssignment assignment = pods_.at(key).assignment;  // Refuse erases the record
    Refuse(key, assignment.pod_uid(), name, assignment, "AssignmentConflict",
           "its cards on " + name + " are held by other pods or no longer exist; TideSlice does not account it");
  }
  for (const auto& [key, a] : assumed_)
    if (a.node == name && !pods_.count(key)) (void)Place(key, name, a.assignment);
}

void ClusterCache::UpdateSchedulable(const std::string& name) {
  core::NodeState* node = state_.FindNode(name);
  auto rec = nodes_.find(name);
  if (!node || rec == nodes_.end()) return;
  bool schedulable = true;
  std::string reason;
  auto age = std::chrono::duration_cast<std::chrono::seconds>(options_.now() - rec->second.heartbeat);
  if (!rec->second.problem.empty()) {
    schedulable = false;
    reason = rec->second.problem;
  } else if (age > options_.stale_after) {
    schedulable = false;
    reason = "TideSlice inventory is stale: last heartbeat " + std::to_string(age.count()) +
             " s ago (is the node agent running and able to reach the API server?)";
  }
  if (node->schedulable != schedulable || node->unschedulable_reason != reason) {
    node->schedulable = schedulable;
    node->unschedulable_reason = reason;
    node->version++;
  }
}

void ClusterCache::DropNode(const std::string& name) {
  state_.RemoveNode(name);
  nodes_.erase(name);
  for (auto& [uid, claim] : claims_)
    if (claim.node == name) claim.node.clear();  // placed again if the node comes back
}

namespace {

// metadata.<field> of an object from a watch, "" when absent or not a string (the object may be
// anything: it is ignored later with a log line, never a crash).
std::string MetaField(const json& obj, const char* field) {
  if (!obj.is_object()) return "";
  auto meta = obj.find("metadata");
  if (meta == obj.end() || !meta->is_object()) return "";
  auto v = meta->find(field);
  return v != meta->end() && v->is_string() ? v->get<std::string>() : "";
}

std::string ObjectKey(const json& obj) { return MetaField(obj, "namespace") + "/" + MetaField(obj, "name"); }

std::string UidOfObject(const json& obj) { return MetaField(obj, "uid"); }

}  // namespace

void ClusterCache::ReplaceClaims(const std::vector<json>& claims) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  std::set<std::string> seen_uids, seen_keys;
  for (const auto& c : claims) {
    seen_uids.insert(UidOfObject(c));
    seen_keys.insert(ObjectKey(c));
  }
  std::vector<std::string> gone;
  for (const auto& [uid, rec] : claims_)
    if (!seen_uids.count(uid)) gone.push_back(uid);
  for (const auto& uid : gone) DropClaim(uid);
  for (auto it = claim_slices_.begin(); it != claim_slices_.end();)
    it = seen_keys.count(it->first) ? std::next(it) : claim_slices_.erase(it);
  for (const auto& c : claims) {
    ApplyClaim(c);
    ApplyClaimSpec(claim_slices_, c, /*from_template=*/false);
  }
}

void ClusterCache::OnClaim(kube::WatchEventType type, const json& claim) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (type == kube::WatchEventType::kDeleted) {
    DropClaim(UidOfObject(claim));
    claim_slices_.erase(ObjectKey(claim));
    return;
  }
  ApplyClaim(claim);
  ApplyClaimSpec(claim_slices_, claim, /*from_template=*/false);
}

void ClusterCache::ReplaceClaimTemplates(const std::vector<json>& templates) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  template_slices_.clear();
  for (const auto& t : templates) ApplyClaimSpec(template_slices_, t, /*from_template=*/true);
}

void ClusterCache::OnClaimTemplate(kube::WatchEventType type, const json& claim_template) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (type == kube::WatchEventType::kDeleted) template_slices_.erase(ObjectKey(claim_template));
  else ApplyClaimSpec(template_slices_, claim_template, /*from_template=*/true);
}

void ClusterCache::ApplyClaimSpec(std::map<std::string, std::vector<core::ContainerRequest>>& into, const json& obj,
                                  bool from_template) {
  const std::string key = ObjectKey(obj);
  into.erase(key);
  const json* spec = obj.is_object() && obj.contains("spec") ? &obj["spec"] : nullptr;
  if (spec && from_template) spec = spec->is_object() && spec->contains("spec") ? &(*spec)["spec"] : nullptr;
  if (!spec) return;
  const std::string name = MetaField(obj, "name");
  auto slices = service::ClaimedSlices(*spec, name, DraClasses::ForDriver(options_.dra_driver));
  if (!slices.ok()) {
    log::Warn("cache.claim_spec_ignored",
              std::string(from_template ? "ResourceClaimTemplate" : "ResourceClaim") +
                  " is malformed; TideSlice scores its pods as asking for nothing from it",
              {{"object", key}, {"error", slices.status().ToString()}});
    return;
  }
  if (!slices->empty()) into[key] = std::move(*slices);
}

void ClusterCache::ApplyClaim(const json& claim) {
  auto allocation = ClaimAllocationOf(claim);
  const std::string uid = UidOfObject(claim);
  if (!allocation.ok()) {
    if (!uid.empty()) DropClaim(uid);
    log::Warn("cache.claim_ignored", "ResourceClaim is malformed; TideSlice does not account it",
              {{"claim", ObjectKey(claim)}, {"error", allocation.status().ToString()}});
    return;
  }
  if (!allocation->has_value()) {  // pending, or deallocated: it holds nothing now
    DropClaim(uid);
    return;
  }
  ClaimRecord& rec = claims_[uid];
  rec.allocation = std::move(**allocation);
  PlaceClaim(uid, rec);
}

void ClusterCache::DropClaim(const std::string& uid) {
  if (uid.empty()) return;
  claims_.erase(uid);
  if (state_.NodeOfPod(ClaimHolderKey(uid))) core::Unreserve(state_, ClaimHolderKey(uid));
}

void ClusterCache::PlaceClaim(const std::string& uid, ClaimRecord& rec) {
  const std::string key = ClaimHolderKey(uid);
  if (state_.NodeOfPod(key)) core::Unreserve(state_, key);
  rec.node.clear();
  std::set<std::string> pools;  // the DRA nodes of this cache that hold its devices
  for (const auto& r : rec.allocation.results) {
    auto n = nodes_.find(r.pool);
    if (n != nodes_.end() && !n->second.dra_driver.empty() && n->second.dra_driver == r.driver && state_.FindNode(r.pool))
      pools.insert(r.pool);
  }
  if (pools.empty()) return;  // not TideSlice's devices, or its node has no inventory (yet)
  if (pools.size() > 1) {
    log::Warn("cache.claim_ignored", "ResourceClaim holds TideSlice devices on several nodes; TideSlice does not account it",
              {{"claim", rec.allocation.key}});
    return;
  }
  const std::string& node_name = *pools.begin();
  const core::NodeState* node = state_.FindNode(node_name);
  if (!node) return;
  auto placement = PlacementFromClaim(rec.allocation, nodes_.at(node_name).dra_driver, *node);
  if (!placement.ok()) {
    log::Warn("cache.claim_ignored", "ResourceClaim names a device TideSlice cannot place; it is not accounted",
              {{"claim", rec.allocation.key}, {"error", placement.status().ToString()}});
    return;
  }
  // Adopt, not Reserve: kube-scheduler's DRA allocator made this allocation, and the accounting
  // must show it whatever the extender's own view says.
  if (core::Adopt(state_, *placement).ok()) rec.node = node_name;
}

std::vector<core::ContainerRequest> ClusterCache::ClaimedSlices(const kube::PodSpec& pod) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  std::vector<core::ContainerRequest> out;
  for (const auto& c : pod.resource_claims) {
    const auto& from = c.claim_name.empty() ? template_slices_ : claim_slices_;
    const std::string& name = c.claim_name.empty() ? c.template_name : c.claim_name;
    auto it = from.find(pod.namespace_name + "/" + name);
    if (name.empty() || it == from.end()) continue;
    for (auto slice : it->second) {
      // Named after the pod's claim entry: a template's claims are generated per pod.
      slice.name = c.name + slice.name.substr(slice.name.find('/'));
      out.push_back(std::move(slice));
    }
  }
  return out;
}

bool ClusterCache::IsDraNode(const std::string& node) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto it = nodes_.find(node);
  return it != nodes_.end() && !it->second.dra_driver.empty();
}

Status ClusterCache::Place(const std::string& key, const std::string& node_name, const v1::PodAssignment& assignment) {
  if (state_.NodeOfPod(key)) core::Unreserve(state_, key);
  const core::NodeState* node = state_.FindNode(node_name);
  if (!node) return Status::Ok();  // the node comes back (or never had an inventory): placed when it does
  auto placement = PlacementFromAssignment(key, assignment, *node);
  if (!placement.ok()) return Status::Ok();  // its card left the node; nothing left to account for
  // Reserve, not Adopt: an assignment is accounted only if it fits beside what the others hold.
  // Two claims on one card (a forged record, a bind from a deposed leader) never both count.
  return core::Reserve(state_, *placement);
}

void ClusterCache::Refuse(const std::string& key, const std::string& pod_uid, const std::string& node,
                          const v1::PodAssignment& assignment, const std::string& reason, const std::string& message) {
  RefusedAssignment r;
  r.pod_key = key;
  r.pod_uid = pod_uid;
  r.node = node;
  r.reason = reason;
  r.message = message;
  r.allocating = assignment.phase() == v1::ASSIGNMENT_PHASE_ALLOCATING;
  auto slash = key.find('/');
  r.involved = {{"apiVersion", "v1"}, {"kind", "Pod"},
                {"metadata", {{"namespace", key.substr(0, slash)}, {"name", key.substr(slash + 1)}, {"uid", r.pod_uid}}}};
  refused_[key] = std::move(r);
  pods_.erase(key);
  if (!assumed_.count(key) && state_.NodeOfPod(key)) core::Unreserve(state_, key);
}

void ClusterCache::ApplyPod(const json& pod) {
  const std::string key = kube::PodKey(pod);
  const std::string node = kube::NodeNameOf(pod);
  // A bound pod being deleted keeps its cards until its containers stop (terminal phase) or the
  // object is gone: an evicted training pod may use its grace period to finish a checkpoint,
  // and nothing else should be placed on its cards meanwhile.
  if (kube::PodIsTerminal(pod) || (node.empty() && kube::PodIsFinished(pod))) {
    DropPod(key);
    return;
  }
  if (node.empty()) {
    const auto spec = pod.value("spec", json::object());
    if (spec.value("schedulerName", std::string()) == options_.scheduler_name) pending_[key] = pod;
    return;
  }
  pending_.erase(key);
  auto a = kube::AssignmentOf(pod);
  if (a.ok() && a->has_value() && Holds(**a)) {
    // Only the scheduler decides who holds a card: the record must be signed by its key and name
    // this very pod (UID, node); anything else is forged and accounted as nothing.
    Status trusted = trust::CheckAssignmentOwner(options_.verifier.get(), pod, **a);
    if (!trusted.ok()) {
      assumed_.erase(key);
      Refuse(key, kube::UidOf(pod), node, **a, "ForgedAssignment",
             "TideSlice ignores this pod's tideslice.io/assignment: " + trusted.message());
      return;
    }
    auto known = pods_.find(key);
    bool same = known != pods_.end() && known->second.node == node &&
                known->second.assignment.SerializeAsString() == (*a)->SerializeAsString() &&
                state_.NodeOfPod(key) != nullptr;
    if (!same) {
      // Drop the bind's own reservation first: the record replaces it and must fit in its place.
      const bool was_assumed = assumed_.erase(key) > 0;
      if (was_assumed && state_.NodeOfPod(key)) core::Unreserve(state_, key);
      Status placed = Place(key, node, **a);
      if (!placed.ok()) {
        Refuse(key, kube::UidOf(pod), node, **a, "AssignmentConflict",
               "TideSlice does not account this pod's assignment: " + placed.message() +
                   " (another pod holds those cards; a bind that landed after a change of leader is refused)");
        return;
      }
    }
    PodRecord& rec = pods_[key];
    rec.node = node;
    rec.assignment = **a;
    rec.facts = FactsOf(pod);
    assumed_.erase(key);
    refused_.erase(key);
    return;
  }
  refused_.erase(key);
  // Bound without a live assignment (not ours, or FAILED): it holds nothing.
  if (a.ok() && a->has_value()) assumed_.erase(key);
  pods_.erase(key);
  if (!assumed_.count(key) && state_.NodeOfPod(key)) core::Unreserve(state_, key);
}

void ClusterCache::DropPod(const std::string& key) {
  pending_.erase(key);
  refused_.erase(key);
  // Reports are remembered per pod while it exists, so the set does not grow with churn.
  for (auto it = refused_reported_.lower_bound(key + "#"); it != refused_reported_.end() && it->rfind(key + "#", 0) == 0;)
    it = refused_reported_.erase(it);
  assumed_.erase(key);
  pods_.erase(key);
  if (state_.NodeOfPod(key)) core::Unreserve(state_, key);
}

StatusOr<PlannedBind> ClusterCache::PlanAndAssume(const core::PodRequest& request, const std::string& pod_key,
                                                  const std::string& pod_uid, const std::string& node_name,
                                                  const core::Context& ctx) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  core::NodeState* node = state_.FindNode(node_name);
  if (!node) return Status::NotFound("node " + node_name + " has no TideSlice inventory");
  if (const core::NodeState* holder = state_.NodeOfPod(pod_key))
    return Status::AlreadyExists("pod " + pod_key + " already holds slices on " + holder->name);
  core::Context placement_ctx = ctx;
  if (!placement_ctx.workload) placement_ctx = PlacementContext();
  core::NodeVerdict v = core::Filter(*node, request, placement_ctx);
  if (v.kind != core::VerdictKind::kFits)
    return Status::FailedPrecondition("pod " + pod_key + " no longer fits on " + node_name + ": " + v.reason);
  core::PodPlacement plan = std::move(v.plan);
  plan.pod_key = pod_key;
  plan.pod_uid = pod_uid;
  plan.node = node_name;
  TS_RETURN_IF_ERROR(core::Reserve(state_, plan));
  PlannedBind out{plan, AssignmentFromPlacement(plan, *state_.FindNode(node_name))};
  assumed_[pod_key] = {node_name, out.assignment, options_.now()};
  return out;
}

void ClusterCache::ForgetAssumed(const std::string& pod_key) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (!assumed_.erase(pod_key)) return;
  if (!pods_.count(pod_key) && state_.NodeOfPod(pod_key)) core::Unreserve(state_, pod_key);
}

std::string ClusterCache::PlacementScope() const {
  return std::string(core::PolicyName(options_.policy)) + "#" + std::to_string(workload_generation_) + "#";
}

core::Context ClusterCache::PlacementContext() const {
  core::Context ctx;
  ctx.policy = options_.policy;
  ctx.workload = workload_ && !workload_->empty() ? workload_.get() : nullptr;
  return ctx;
}

void ClusterCache::Refresh() {
  std::unique_lock<std::shared_mutex> lock(mu_);
  std::vector<core::TypicalPod> typical;
  for (const auto& [key, rec] : pods_)
    for (const auto& c : rec.assignment.containers()) {
      if (c.init_container() || c.slices_size() == 0) continue;
      const auto& s = c.slices(0);
      core::TypicalPod t;
      t.num_cards = c.slices_size();
      bool idle_card = s.whole_card() || !s.profile().empty() || rec.assignment.exclusive();
      t.per_card_permille = idle_card ? 1000 : std::max(1, s.compute_permille());
      t.memory_mib = idle_card ? 0 : s.memory_mib();
      typical.push_back(std::move(t));
    }
  // Re-learn only when the mix of shapes changed: a new model invalidates memoised scores.
  std::vector<std::string> keys;
  for (const auto& t : typical)
    keys.push_back(std::to_string(t.num_cards) + "/" + std::to_string(t.per_card_permille) + "/" + std::to_string(t.memory_mib));
  std::sort(keys.begin(), keys.end());
  std::string fingerprint;
  for (const auto& k : keys) fingerprint += k + ",";
  fingerprint += "|" + std::to_string(state_.model_names().size());
  if (!typical.empty() && fingerprint != workload_fingerprint_) {
    workload_ = std::make_unique<core::WorkloadModel>(core::WorkloadModel::FromTypicalPods(typical));
    workload_->Bind(state_);
    workload_fingerprint_ = fingerprint;
    workload_generation_++;
  }
  for (const auto& [name, rec] : nodes_)
    if (rec.in_state) UpdateSchedulable(name);
  const auto now = options_.now();
  for (auto it = assumed_.begin(); it != assumed_.end();) {
    if (now - it->second.since > options_.assume_ttl) {
      if (!pods_.count(it->first) && state_.NodeOfPod(it->first)) core::Unreserve(state_, it->first);
      it = assumed_.erase(it);
    } else {
      ++it;
    }
  }
}

ClusterCache::TidalInputs ClusterCache::TidalSnapshot(const std::vector<tidal::PoolSpec>& pools) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  TidalInputs in;
  std::map<std::string, std::set<std::string>> pool_models;  // pool -> card models it has
  for (const auto& p : pools) in.pools[p.name];
  for (const auto& node : state_.nodes()) {
    const tidal::PoolSpec* pool = tidal::PoolOfNode(pools, node.labels);
    if (!pool) continue;
    in.node_labels[pool->name][node.name] = node.labels;
    tidal::PoolView& view = in.pools[pool->name];
    for (const auto& card : node.cards)
      if (card.healthy && node.schedulable) {
        view.cards.push_back(card.uuid);
        if (card.model) pool_models[pool->name].insert(card.model->name);
      }
    for (const auto& [key, placement] : node.pods) {
      if (IsClaimHolder(key)) continue;  // DRA claims: tidal pools do not reach the DRA path
      tidal::Member m;
      auto rec = pods_.find(key);
      if (rec != pods_.end()) {
        m = rec->second.facts;
        const auto& a = rec->second.assignment;
        m.started = TimeOf(a.has_allocated_at() ? a.allocated_at() : a.assigned_at());
      } else {
        m.key = key;  // reserved by a bind in flight: its class is not known here yet
        m.uid = placement.pod_uid;
        m.started = options_.now();
      }
      m.key = key;
      m.node = node.name;
      std::set<std::string> cards;
      for (const auto& c : placement.containers)
        for (const auto& g : c.cards) cards.insert(g.uuid);
      m.cards.assign(cards.begin(), cards.end());
      view.members.push_back(std::move(m));
    }
  }
  // Pending pods: those a pool could serve (no nodeSelector key contradicts the pool's, and a
  // card model of the pool is allowed to them).
  for (const auto& [key, pod] : pending_) {
    auto spec = kube::PodSpecFromJson(pod);
    if (!spec.ok() || spec->deleting) continue;
    auto request = core::PreFilter(*spec, catalog_);
    if (!request.ok() || !request->WantsAccelerators()) continue;
    const v1::WorkloadClass cls = ToV1(request->workload);
    if (cls == v1::WORKLOAD_CLASS_UNSPECIFIED) continue;
    std::map<std::string, std::string> selector;
    if (auto s = pod.find("spec"); s != pod.end() && s->is_object())
      if (auto ns = s->find("nodeSelector"); ns != s->end()) selector = LabelMap(*ns);
    std::set<std::string> allowed;
    for (const auto* m : core::AllowedModels(*request, catalog_)) allowed.insert(m->name);
    tidal::TimePoint created = options_.now();
    if (auto meta = pod.find("metadata"); meta != pod.end() && meta->is_object())
      if (auto c = meta->find("creationTimestamp"); c != meta->end() && c->is_string())
        if (auto t = tidal::ParseTime("creationTimestamp", c->get<std::string>()); t.ok()) created = *t;
    int cards = 0;
    for (const auto& c : request->containers)
      if (!c.init) cards += c.slice.count;
    for (const auto& p : pools) {
      bool fits = true;
      for (const auto& [k, v] : p.node_selector)
        if (auto it = selector.find(k); it != selector.end() && it->second != v) fits = false;
      bool model = false;
      for (const auto& m : pool_models[p.name]) model = model || allowed.count(m);
      if (fits && model) in.pools[p.name].waiting.push_back({key, cls, created, std::max(1, cards)});
    }
  }
  return in;
}

ClusterCache::Stats ClusterCache::stats() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  Stats s;
  s.nodes = state_.nodes().size();
  for (const auto& n : state_.nodes()) {
    if (!n.schedulable) s.stale_nodes++;
    for (const auto& [key, p] : n.pods) s.placed_pods += IsClaimHolder(key) ? 0 : 1;
  }
  s.assumed_pods = assumed_.size();
  s.pending_pods = pending_.size();
  return s;
}

}  // namespace tideslice::service
