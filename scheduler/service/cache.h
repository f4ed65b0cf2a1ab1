// The scheduler's view of the cluster, kept from two watches: nodes (their TideSlice inventory
// annotation) and pods (their assignment annotation). It owns the placement core's
// ClusterState and keeps it incrementally: a node's cards change only when its inventory does
// (not on every heartbeat), a pod holds slices from the moment the binder reserved them
// ("assumed") until it finishes or is deleted.
//
// DRA nodes (inventory published by tideslice-dra-driver, with its driver name) are in the same
// state: a third watch, of ResourceClaims, accounts each allocated claim's devices on its node as
// a holder of its own (key ClaimHolderKey(uid)) until the claim is deallocated or deleted; a
// fourth, of ResourceClaimTemplates, with the claims' specs, tells what slices a DRA pod asks for
// (dra_claims.h). Watch caches rather than GETs: filter runs once per pod and cycle, and the
// objects change far less often than they are read.
//
// Readers (filter, prioritize, preempt) get a snapshot pointer that holds a shared lock for as
// long as it lives, so verbs never see a half-applied change and never copy the cluster.
// Nodes whose heartbeat is older than stale_after stay in the state but are not schedulable,
// with a reason that kubectl describe shows.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "common/catalog/catalog.h"
#include "common/kube/client.h"
#include "common/kube/reflector.h"
#include "common/trust/assignment_seal.h"
#include "scheduler/core/fragmentation.h"
#include "scheduler/core/placement.h"
#include "scheduler/service/dra_claims.h"
#include "scheduler/tidal/decide.h"
#include "tideslice/v1/tideslice.pb.h"

namespace tideslice::service {

struct CacheOptions {
  std::chrono::seconds stale_after{90};       // 3 missed heartbeats at the agent's default 30 s
  std::chrono::seconds assume_ttl{120};       // a reservation the watch never confirmed expires
  std::function<std::chrono::system_clock::time_point()> now = [] { return std::chrono::system_clock::now(); };
  // Pending pods are kept (for bind) only when they name this scheduler.
  std::string scheduler_name = "tideslice-scheduler";
  core::Policy policy = core::Policy::kFragAware;
  // Assignments are adopted only when signed by the scheduler's key (null: signatures are not
  // checked, only that the assignment names the pod's UID and node; local runs and tests).
  std::shared_ptr<const trust::AssignmentVerifier> verifier;
  // The DRA driver name whose DeviceClasses (<driver>, -shared, -mig, -vnpu) DRA pods' claims
  // are read for (the chart's dra.driverName). Allocated devices are matched by the driver name
  // each node's inventory carries.
  std::string dra_driver = "tideslice.io";
};

// A pod whose assignment the cache refused to account: forged (unsigned, wrong signature, another
// pod's UID or node) or in conflict with what other pods already hold (a bind from a deposed
// leader that landed late). Reported once as an Event and a log line; an ALLOCATING one is marked
// FAILED by the leader so that no Allocate can match it.
struct RefusedAssignment {
  std::string pod_key, pod_uid, node;
  std::string reason;      // "ForgedAssignment" or "AssignmentConflict"
  std::string message;
  bool allocating = false;
  kube::json involved;     // apiVersion/kind/metadata of the pod, for the Event
};

// An ALLOCATING assignment the cache accounts, with the lease term it was sealed in.
struct AllocatingAssignment {
  std::string pod_key, pod_uid;
  int64_t lease_term = -1;
  std::string lease_holder;
  v1::PodAssignment assignment;  // as the cache checked it (signature, owner, fit)
};

struct PlannedBind {
  core::PodPlacement placement;
  v1::PodAssignment assignment;
};

class ClusterCache {
 public:
  explicit ClusterCache(const catalog::Catalog& catalog, CacheOptions options = {})
      : catalog_(catalog), options_(std::move(options)) {}

  kube::Reflector::Handler NodeHandler();
  kube::Reflector::Handler PodHandler();
  void ReplaceNodes(const std::vector<kube::json>& nodes);
  void OnNode(kube::WatchEventType type, const kube::json& node);
  void ReplacePods(const std::vector<kube::json>& pods);
  void OnPod(kube::WatchEventType type, const kube::json& pod);
  // resource.k8s.io/v1 ResourceClaims and ResourceClaimTemplates. A malformed object is ignored
  // with one log line (it holds nothing, asks for nothing).
  kube::Reflector::Handler ClaimHandler();
  kube::Reflector::Handler ClaimTemplateHandler();
  void ReplaceClaims(const std::vector<kube::json>& claims);
  void OnClaim(kube::WatchEventType type, const kube::json& claim);
  void ReplaceClaimTemplates(const std::vector<kube::json>& templates);
  void OnClaimTemplate(kube::WatchEventType type, const kube::json& claim_template);

  // The slices `pod` asks for through its spec.resourceClaims (claims by name, or the templates
  // they are made from) of TideSlice's device classes; claims or templates the watches have not
  // seen ask for nothing (kube-scheduler's DRA plugin still judges them).
  std::vector<core::ContainerRequest> ClaimedSlices(const kube::PodSpec& pod) const;
  // Whether `node` serves its cards through DRA (its inventory names a DRA driver).
  bool IsDraNode(const std::string& node) const;

  // A read-locked view; keep it only for the duration of one verb.
  std::shared_ptr<const core::ClusterState> Snapshot() const;

  // The pod object of a pending (unbound) pod, if the watch has seen it.
  std::optional<kube::json> PendingPod(const std::string& pod_key) const;
  // Replaces the keys assignments are verified with (the scheduler's own and those published
  // before it). Pods already refused are checked again on their next event or list.
  void set_verifier(std::shared_ptr<const trust::AssignmentVerifier> verifier);
  // A node's labels, nullopt when the watch has not seen the node.
  std::optional<std::map<std::string, std::string>> NodeLabels(const std::string& name) const;

  // Refused assignments not yet reported (each is handed out once), and the ALLOCATING
  // assignments held now (for the leader's fencing of other terms).
  std::vector<RefusedAssignment> TakeRefused();
  std::vector<AllocatingAssignment> Allocating() const;

  // Plans `request` on `node` with the core's Filter and reserves the plan, atomically with
  // respect to every other reader and writer; the reservation lasts until the pod's watch event
  // shows its assignment (or ForgetAssumed, or assume_ttl).
  StatusOr<PlannedBind> PlanAndAssume(const core::PodRequest& request, const std::string& pod_key,
                                      const std::string& pod_uid, const std::string& node, const core::Context& ctx);
  void ForgetAssumed(const std::string& pod_key);

  // Re-evaluates heartbeats, expires old reservations and re-learns the workload model (the
  // shapes of the pods placed so far, which fragmentation-aware scoring protects); call every
  // few seconds.
  void Refresh();

  // The placement context (policy, workload model). Valid while a Snapshot is held.
  core::Context PlacementContext() const;
  // Changes whenever PlacementContext() would score differently (policy, workload model): the
  // scope of memoised verdicts. Read while a Snapshot is held.
  std::string PlacementScope() const;

  // What the tidal controller decides on, per pool (by name): the pool's healthy cards, the pods
  // holding them (with class, priority, notice and checkpoint), and the pending pods the pool
  // could serve. Node names and their labels come along for the tide labels.
  struct TidalInputs {
    std::map<std::string, tidal::PoolView> pools;
    std::map<std::string, std::map<std::string, std::map<std::string, std::string>>> node_labels;  // pool -> node -> labels
  };
  TidalInputs TidalSnapshot(const std::vector<tidal::PoolSpec>& pools) const;

  struct Stats {
    size_t nodes = 0, stale_nodes = 0, placed_pods = 0, assumed_pods = 0, pending_pods = 0;
  };
  Stats stats() const;

 private:
  struct NodeRecord {
    kube::json labels;
    std::string inventory_text;               // annotation as last applied ("" = none)
    std::chrono::system_clock::time_point heartbeat{};
    bool in_state = false;
    std::string problem;                      // malformed inventory, for the filter reason
    std::string dra_driver;                   // the inventory's DRA driver name ("" = device plugin)
  };
  struct ClaimRecord {                        // an allocated ResourceClaim
    ClaimAllocation allocation;
    std::string node;                         // where it is accounted now ("" = nowhere)
  };
  struct PodRecord {
    std::string node;
    v1::PodAssignment assignment;             // phase ALLOCATING or ALLOCATED: it holds slices
    tidal::Member facts;                      // class, priority, notice (cards and node filled on demand)
  };
  struct Assumed {                            // reserved by a bind, not yet seen on the watch
    std::string node;
    v1::PodAssignment assignment;
    std::chrono::system_clock::time_point since;
  };

  void ApplyNode(const kube::json& node);   // mu_ held exclusively
  void DropNode(const std::string& name);
  void ApplyPod(const kube::json& pod);
  void DropPod(const std::string& key);
  Status Place(const std::string& key, const std::string& node, const v1::PodAssignment& assignment);
  // Stops accounting `key` and records why, for TakeRefused.
  void Refuse(const std::string& key, const std::string& pod_uid, const std::string& node,
              const v1::PodAssignment& assignment, const std::string& reason, const std::string& message);
  void RebuildNode(const std::string& name, const v1::NodeInventory& inventory, const kube::json& labels);
  void UpdateSchedulable(const std::string& name);
  void ApplyClaim(const kube::json& claim);
  void DropClaim(const std::string& uid);
  // Accounts the claim on the one node of the cache whose DRA driver and pool its results name.
  void PlaceClaim(const std::string& uid, ClaimRecord& rec);
  void ApplyClaimSpec(std::map<std::string, std::vector<core::ContainerRequest>>& into, const kube::json& obj,
                      bool from_template);

  const catalog::Catalog& catalog_;
  CacheOptions options_;
  mutable std::shared_mutex mu_;
  core::ClusterState state_;
  std::map<std::string, NodeRecord> nodes_;
  std::map<std::string, PodRecord> pods_;
  std::map<std::string, kube::json> pending_;   // unbound pods that ask for this scheduler
  std::map<std::string, Assumed> assumed_;
  std::map<std::string, ClaimRecord> claims_;                                // by claim uid
  std::map<std::string, std::vector<core::ContainerRequest>> claim_slices_;  // by claim namespace/name
  std::map<std::string, std::vector<core::ContainerRequest>> template_slices_;  // by template namespace/name
  std::map<std::string, RefusedAssignment> refused_;   // by pod key; `reported` below
  std::set<std::string> refused_reported_;             // key + "#" + message already handed out
  std::unique_ptr<core::WorkloadModel> workload_;
  std::string workload_fingerprint_;
  uint64_t workload_generation_ = 0;
  // Node versions must never repeat (verdicts are memoised by version): every rebuild starts a
  // fresh range, and the core's own increments stay inside it.
  uint64_t rebuild_seq_ = 0;
};

}  // namespace tideslice::service
