// What kubectl-tideslice shows, computed from the Kubernetes objects where each fact lives:
//   node annotation tideslice.io/inventory   cards, models, memory, health (the node agent)
//   node labels tideslice.io/pool, /tide     the pool and the tide it is in (tidal controller)
//   pod annotation tideslice.io/assignment   node, card and slice of each container (scheduler,
//                                            acknowledged by the node agent)
//   pod annotation tideslice.io/filter-reasons  why a pending pod fits no node (scheduler)
//   pod annotations checkpoint-notice/-deadline, checkpointed-at  (tidal controller, workload)
//   ConfigMap tideslice-tides                each pool's tide, since when and why
//   ConfigMap <release>-scheduler            the pools' schedules (scheduler-config.json)
//   Events FailedScheduling                  kube-scheduler's own summary
// Pure: JSON objects in, plain structs out; no I/O and no clock (`now` is given). Every object
// is external input: a malformed one becomes a row that says what is wrong, never a crash.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tideslice::cli {

using Time = std::chrono::system_clock::time_point;
using nlohmann::json;

struct CardRow {
  int index = 0;
  std::string uuid, model, vendor, health;  // health: "Healthy", "Unhealthy", "Unknown"
  int64_t memory_total_mib = 0;
  int64_t memory_allocated_mib = 0;         // by the slices assigned on it (whole cards: all)
  int compute_granted_permille = 0;         // shares granted, 1000 = one card
  int slices = 0;
};

struct NodeRow {
  std::string name, pool, tide;
  std::string error;                        // the inventory could not be read: why
  std::optional<Time> heartbeat;
  std::vector<CardRow> cards;
};

// Nodes that carry an inventory, by name, with what the pods' assignments hold on each card.
std::vector<NodeRow> NodesView(const std::vector<json>& nodes, const std::vector<json>& pods);

struct SliceRow {
  std::string container;
  bool init = false;
  int card_index = 0;
  std::string card_uuid, profile;
  int64_t memory_mib = 0;                   // 0 with whole_card: the whole card
  int compute_permille = 0;
  bool whole_card = false;
};

struct PodRow {
  std::string ns, name, status, node;       // status: the pod's phase, or "Terminating"
  std::string assignment;                   // "Allocating", "Allocated", "Failed", "" (none yet)
  std::string message;                      // the assignment's failure message, or why it is unreadable
  std::string sized_by;                     // tideslice.io/sized-by, when the webhook sized it
  std::vector<SliceRow> slices;
};

// TideSlice's pods (an assignment, or spec.schedulerName `scheduler_name`), by namespace and name.
std::vector<PodRow> PodsView(const std::vector<json>& pods, const std::string& scheduler_name);

struct NodeReason {
  std::string node, reason;
};

struct WhyView {
  std::string ns, name, status, node;
  bool pending = false;
  bool has_record = false;
  std::string record_error;                 // the annotation is there but unreadable
  Time since{};                             // the reasons are unchanged since then
  std::vector<NodeReason> reasons;
  int omitted = 0;
  std::string scheduler_event;              // the newest FailedScheduling event's message
  std::optional<Time> event_time;
};

// `events` are the pod's events (any order).
WhyView Why(const json& pod, const std::vector<json>& events);

struct NoticeRow {
  std::string ns, pod, node, pool;
  Time deadline{};
  std::optional<Time> checkpointed;
};

struct PoolRow {
  std::string name, tide, cause;            // tide "" when neither recorded nor known by the clock
  std::optional<Time> since;
  std::optional<Time> next_switch;          // the clock's next switch, when the schedule is known
  std::string next_tide;
  std::string error;                        // the recorded state could not be read: why
  int nodes = 0;
  std::vector<NoticeRow> notices;
};

// Pools from the tidal controller's ConfigMap (`tides`, may be null) and the scheduler's config
// ConfigMap (`config`, may be null: no schedules), with their nodes and the pods under notice.
// `schedule_error` is set when `config` is there but unusable.
std::vector<PoolRow> TideView(const json* tides, const json* config, const std::vector<json>& nodes,
                              const std::vector<json>& pods, Time now, std::string* schedule_error);

}  // namespace tideslice::cli
