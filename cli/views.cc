#include "cli/views.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <map>
#include <set>

#include "common/catalog/catalog.h"
#include "common/codec/annotations.h"
#include "common/codec/bounded_json.h"
#include "common/kube/client.h"
#include "common/kube/json_fields.h"
#include "common/kube/objects.h"
#include "common/sizing/model_sizing.h"
#include "scheduler/service/filter_record.h"
#include "scheduler/tidal/decide.h"
#include "scheduler/tidal/pool.h"
#include "tideslice/v1/tideslice.pb.h"

namespace tideslice::cli {

using kube::Child;
using kube::StringOr;

namespace {

const json* Annotations(const json& obj) { return Child(Child(&obj, "metadata"), "annotations"); }
const json* Labels(const json& obj) { return Child(Child(&obj, "metadata"), "labels"); }
std::string NameOf(const json& obj) { return StringOr(Child(&obj, "metadata"), "name"); }
std::string NamespaceOf(const json& obj) { return StringOr(Child(&obj, "metadata"), "namespace"); }

// Annotation text that is nested JSON from anyone who may write the object: refused before the
// unbounded parsers see it.
bool SafeToParse(const std::string& text) { return text.size() <= 256 * 1024 && codec::JsonDepth(text, 64) < 64; }

std::string Health(v1::Health h) {
  switch (h) {
    case v1::HEALTH_HEALTHY: return "Healthy";
    case v1::HEALTH_UNHEALTHY: return "Unhealthy";
    default: return "Unknown";
  }
}

std::string AssignmentPhase(v1::AssignmentPhase p) {
  switch (p) {
    case v1::ASSIGNMENT_PHASE_ALLOCATING: return "Allocating";
    case v1::ASSIGNMENT_PHASE_ALLOCATED: return "Allocated";
    case v1::ASSIGNMENT_PHASE_FAILED: return "Failed";
    default: return "Unknown";
  }
}

std::string PodStatus(const json& pod) {
  if (Child(Child(&pod, "metadata"), "deletionTimestamp")) return "Terminating";
  std::string phase = StringOr(Child(&pod, "status"), "phase");
  return phase.empty() ? "Unknown" : phase;
}

std::optional<Time> TimeOf(const json* obj, const char* key) {
  const std::string text = StringOr(obj, key);
  if (text.empty()) return std::nullopt;
  auto t = kube::ParseRfc3339(key, text);
  if (!t.ok()) return std::nullopt;
  return *t;
}

}  // namespace

std::vector<NodeRow> NodesView(const std::vector<json>& nodes, const std::vector<json>& pods) {
  // What the pods' assignments hold, per node and card uuid.
  struct Held {
    int64_t memory = 0;
    int compute = 0;
    int slices = 0;
    bool whole = false;
  };
  std::map<std::string, std::map<std::string, Held>> held;
  // Hard partitions whose memory the assignment leaves to the profile: resolved with the card's
  // model below (node -> card uuid -> profiles).
  std::map<std::string, std::map<std::string, std::vector<std::string>>> profile_slices;
  for (const auto& pod : pods) {
    if (kube::PodIsTerminal(pod)) continue;
    const std::string node = kube::NodeNameOf(pod);
    if (node.empty()) continue;
    auto a = kube::AssignmentOf(pod);
    if (!a.ok() || !a->has_value()) continue;
    const v1::PodAssignment& as = **a;
    if (as.phase() == v1::ASSIGNMENT_PHASE_FAILED) continue;
    if (!as.node_name().empty() && as.node_name() != node) continue;  // not for this binding
    // As the scheduler accounts (service/state.cc): an init container on a card the pod's app
    // containers also use runs before them and reuses their share.
    std::set<std::string> app_cards;
    for (const auto& c : as.containers())
      if (!c.init_container())
        for (const auto& s : c.slices()) app_cards.insert(s.card_uuid());
    for (const auto& c : as.containers())
      for (const auto& s : c.slices()) {
        if (c.init_container() && app_cards.count(s.card_uuid())) continue;
        Held& h = held[node][s.card_uuid()];
        h.slices++;
        if (s.whole_card()) h.whole = true;
        int64_t memory = s.memory_mib();
        if (memory == 0 && !s.profile().empty()) profile_slices[node][s.card_uuid()].push_back(s.profile());
        h.memory += memory;
        h.compute += s.whole_card() ? 1000 : s.compute_permille();
      }
  }
  std::vector<NodeRow> out;
  for (const auto& node : nodes) {
    const json* annotations = Annotations(node);
    if (!Child(annotations, "tideslice.io/inventory")) continue;  // not a TideSlice node
    NodeRow row;
    row.name = NameOf(node);
    row.pool = StringOr(Labels(node), tidal::kPoolLabel);
    row.tide = StringOr(Labels(node), tidal::kTideLabel);
    auto inv = kube::InventoryOf(node);
    if (!inv.ok() || !inv->has_value()) {
      row.error = inv.ok() ? "no inventory" : inv.status().ToString();
      out.push_back(std::move(row));
      continue;
    }
    const v1::NodeInventory& inventory = **inv;
    if (inventory.has_heartbeat())
      row.heartbeat = Time(std::chrono::seconds(inventory.heartbeat().seconds()));
    for (const auto& card : inventory.cards()) {
      CardRow c;
      c.index = card.index();
      c.uuid = card.uuid();
      c.model = card.model();
      c.vendor = card.vendor();
      c.health = Health(card.health());
      c.memory_total_mib = card.memory_mib();
      auto node_it = held.find(row.name);
      if (node_it != held.end()) {
        if (auto it = node_it->second.find(card.uuid()); it != node_it->second.end()) {
          c.memory_allocated_mib = it->second.whole ? card.memory_mib() : it->second.memory;
          if (const auto* model = catalog::Catalog::Builtin().Find(card.model()); model && !it->second.whole)
            for (const auto& profile : profile_slices[row.name][card.uuid()])
              if (const auto* p = model->FindProfile(profile)) c.memory_allocated_mib += p->memory_mib;
          c.compute_granted_permille = it->second.compute;
          c.slices = it->second.slices;
        }
      }
      row.cards.push_back(std::move(c));
    }
    std::sort(row.cards.begin(), row.cards.end(), [](const CardRow& a, const CardRow& b) { return a.index < b.index; });
    out.push_back(std::move(row));
  }
  std::sort(out.begin(), out.end(), [](const NodeRow& a, const NodeRow& b) { return a.name < b.name; });
  return out;
}

std::vector<PodRow> PodsView(const std::vector<json>& pods, const std::string& scheduler_name) {
  std::vector<PodRow> out;
  for (const auto& pod : pods) {
    const json* annotations = Annotations(pod);
    const bool has_assignment = Child(annotations, "tideslice.io/assignment") != nullptr;
    if (!has_assignment && StringOr(Child(&pod, "spec"), "schedulerName") != scheduler_name) continue;
    PodRow row;
    row.ns = NamespaceOf(pod);
    row.name = NameOf(pod);
    row.status = PodStatus(pod);
    row.node = kube::NodeNameOf(pod);
    row.sized_by = StringOr(annotations, sizing::kSizedByAnnotation);
    auto a = kube::AssignmentOf(pod);
    if (!a.ok()) {
      row.assignment = "Unreadable";
      row.message = a.status().ToString();
    } else if (a->has_value()) {
      const v1::PodAssignment& as = **a;
      row.assignment = AssignmentPhase(as.phase());
      row.message = as.message();
      for (const auto& c : as.containers())
        for (const auto& s : c.slices()) {
          SliceRow r;
          r.container = c.name();
          r.init = c.init_container();
          r.card_index = s.card_index();
          r.card_uuid = s.card_uuid();
          r.profile = s.profile();
          r.memory_mib = s.memory_mib();
          if (r.memory_mib == 0 && !r.profile.empty())  // the profile fixes it
            for (const auto& model : catalog::Catalog::Builtin().models())
              if (const auto* p = model.FindProfile(r.profile)) {
                r.memory_mib = p->memory_mib;
                break;
              }
          r.compute_permille = s.whole_card() ? 1000 : s.compute_permille();
          r.whole_card = s.whole_card();
          row.slices.push_back(std::move(r));
        }
    }
    out.push_back(std::move(row));
  }
  std::sort(out.begin(), out.end(),
            [](const PodRow& a, const PodRow& b) { return a.ns != b.ns ? a.ns < b.ns : a.name < b.name; });
  return out;
}

WhyView Why(const json& pod, const std::vector<json>& events) {
  WhyView v;
  v.ns = NamespaceOf(pod);
  v.name = NameOf(pod);
  v.status = PodStatus(pod);
  v.node = kube::NodeNameOf(pod);
  v.pending = v.node.empty() && (v.status == "Pending" || v.status == "Unknown");
  const std::string text = StringOr(Annotations(pod), service::kFilterReasonsAnnotation);
  if (!text.empty()) {
    v.has_record = true;
    auto record = service::ParseFilterRecord(text);
    if (!record.ok()) {
      v.record_error = record.status().ToString();
    } else {
      v.since = record->since;
      for (const auto& [node, reason] : record->nodes) v.reasons.push_back({node, reason});
      v.omitted = record->omitted;
    }
  }
  // The newest FailedScheduling event (series and aggregated events carry lastTimestamp or
  // eventTime; metadata.creationTimestamp is the last resort).
  for (const auto& e : events) {
    if (StringOr(&e, "reason") != "FailedScheduling") continue;
    std::optional<Time> t = TimeOf(&e, "lastTimestamp");
    if (!t) t = TimeOf(&e, "eventTime");
    if (!t) t = TimeOf(Child(&e, "metadata"), "creationTimestamp");
    if (!v.event_time || (t && *t > *v.event_time)) {
      v.event_time = t;
      v.scheduler_event = StringOr(&e, "message").substr(0, 2000);
    }
  }
  return v;
}

std::vector<PoolRow> TideView(const json* tides, const json* config, const std::vector<json>& nodes,
                              const std::vector<json>& pods, Time now, std::string* schedule_error) {
  std::map<std::string, PoolRow> pools;
  std::vector<tidal::PoolSpec> specs;
  if (config) {
    const std::string text = StringOr(Child(config, "data"), "scheduler-config.json");
    auto decoded = text.empty() ? StatusOr<v1::SchedulerConfig>(Status::NotFound("it has no key scheduler-config.json"))
                                : codec::DecodeSchedulerConfig(text);
    if (!decoded.ok()) {
      *schedule_error = decoded.status().ToString();
    } else {
      auto valid = tidal::ValidatePools(*decoded);
      if (!valid.ok()) *schedule_error = valid.status().ToString();
      else specs = std::move(*valid);
    }
  }
  for (const auto& spec : specs) {
    PoolRow& row = pools[spec.name];
    row.name = spec.name;
    row.tide = tidal::TideName(tidal::ClockTide(spec, now));
    row.cause = "clock";  // until the controller's record says otherwise
    const Time next = tidal::NextSwitch(spec, now);
    if (next != Time::max()) {
      row.next_switch = next;
      row.next_tide = tidal::TideName(tidal::ClockTide(spec, next));
    }
  }
  if (const json* data = Child(tides, "data"); data && data->is_object()) {
    for (const auto& [name, value] : data->items()) {
      PoolRow& row = pools[name];
      row.name = name;
      if (!value.is_string() || !SafeToParse(value.get<std::string>())) {
        row.error = "the recorded state is not a pool state";
        continue;
      }
      auto state = tidal::ParsePoolState(value.get<std::string>());
      if (!state.ok()) {
        row.error = state.status().ToString();
        continue;
      }
      row.tide = tidal::TideName(state->tide);
      row.since = state->since;
      row.cause = state->cause;
    }
  }
  for (const auto& node : nodes) {
    const std::string pool = StringOr(Labels(node), tidal::kPoolLabel);
    if (auto it = pools.find(pool); !pool.empty() && it != pools.end()) it->second.nodes++;
  }
  for (const auto& pod : pods) {
    if (kube::PodIsTerminal(pod)) continue;
    const std::string text = StringOr(Annotations(pod), tidal::kNoticeAnnotation);
    if (text.empty() || !SafeToParse(text)) continue;
    auto notice = tidal::ParseNotice(text);
    if (!notice.ok()) continue;
    auto it = pools.find(notice->pool);
    if (it == pools.end()) continue;
    NoticeRow n;
    n.ns = NamespaceOf(pod);
    n.pod = NameOf(pod);
    n.node = kube::NodeNameOf(pod);
    n.pool = notice->pool;
    n.deadline = notice->deadline;
    const std::string at = StringOr(Annotations(pod), tidal::kCheckpointedAnnotation);
    if (!at.empty())
      if (auto t = tidal::ParseTime(tidal::kCheckpointedAnnotation, at); t.ok()) n.checkpointed = *t;
    it->second.notices.push_back(std::move(n));
  }
  std::vector<PoolRow> out;
  for (auto& [name, row] : pools) {
    std::sort(row.notices.begin(), row.notices.end(), [](const NoticeRow& a, const NoticeRow& b) {
      return a.deadline != b.deadline ? a.deadline < b.deadline : a.ns + "/" + a.pod < b.ns + "/" + b.pod;
    });
    out.push_back(std::move(row));
  }
  return out;
}

}  // namespace tideslice::cli
