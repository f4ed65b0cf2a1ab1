#include "scheduler/service/cache.h"

#include <algorithm>
#include <set>

#include "common/kube/objects.h"
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
    s.placed_pods += n.pods.size();
  }
  s.assumed_pods = assumed_.size();
  s.pending_pods = pending_.size();
  return s;
}

}  // namespace tideslice::service
