#include "scheduler/service/tidal_controller.h"

#include <cmath>

#include "common/http/client.h"
#include "common/log/log.h"

namespace tideslice::service {

using kube::json;
using tidal::TimePoint;

namespace {

std::pair<std::string, std::string> SplitKey(const std::string& key) {
  auto slash = key.find('/');
  return {key.substr(0, slash), key.substr(slash + 1)};
}

}  // namespace

TidalController::TidalController(kube::KubeClient* client, ClusterCache* cache, std::vector<tidal::PoolSpec> pools,
                                 TideBoard* board, TidalControllerOptions options)
    : client_(client), cache_(cache), pools_(std::move(pools)), board_(board), options_(std::move(options)) {
  for (const auto& p : pools_) counters_[p.name] = std::make_unique<PoolCounters>();
}

std::string TidalController::StatePath() const {
  return "/api/v1/namespaces/" + options_.state_namespace + "/configmaps/" + options_.state_name;
}

StatusOr<std::map<std::string, tidal::PoolState>> TidalController::LoadStates() {
  auto cm = client_->Get(StatePath());
  std::map<std::string, tidal::PoolState> out;
  if (!cm.ok()) {
    if (cm.status().code() == StatusCode::kNotFound) return out;  // first start
    return cm.status();
  }
  const json data = cm->value("data", json::object());
  for (const auto& p : pools_) {
    auto it = data.find(p.name);
    if (it == data.end() || !it->is_string()) continue;
    auto state = tidal::ParsePoolState(it->get<std::string>());
    if (!state.ok()) {
      // A hand-edited or foreign record: start the pool afresh rather than stop every pool.
      problems_.Record("state/" + p.name, state.status().ToString(), log::Level::kWarn, "tidal.state_unreadable",
                       "the recorded state of a pool is unreadable; the pool starts afresh",
                       {{"pool", p.name}, {"configmap", options_.state_name}, {"error", state.status().ToString()}},
                       /*log_first=*/true);
      continue;
    }
    out[p.name] = *state;
  }
  return out;
}

Status TidalController::SaveState(const std::string& pool, const tidal::PoolState& state) {
  const std::string text = tidal::FormatPoolState(state);
  auto written = client_->ReadModifyWrite(StatePath(), [&](json& cm, bool* changed) {
    if (!cm["data"].is_object()) cm["data"] = json::object();
    *changed = cm["data"].value(pool, std::string()) != text;
    cm["data"][pool] = text;
    return Status::Ok();
  });
  if (written.ok()) return Status::Ok();
  if (written.status().code() != StatusCode::kNotFound) return written.status();
  json cm = {{"apiVersion", "v1"},
             {"kind", "ConfigMap"},
             {"metadata",
              {{"name", options_.state_name},
               {"namespace", options_.state_namespace},
               {"labels", {{"app.kubernetes.io/managed-by", "tideslice-scheduler"}}}}},
             {"data", {{pool, text}}}};
  auto created = client_->Create("/api/v1/namespaces/" + options_.state_namespace + "/configmaps", cm);
  if (created.ok()) return Status::Ok();
  if (created.status().code() == StatusCode::kAlreadyExists) return SaveState(pool, state);  // raced a peer
  return created.status();
}

json TidalController::StateObject() const {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", options_.state_name}, {"namespace", options_.state_namespace}}}};
}

void TidalController::Event(const json& involved, const std::string& type, const std::string& reason,
                            const std::string& message) {
  Status s = client_->RecordEvent(involved, type, reason, message, options_.component);
  Problem("event", s, "tidal.event_failed", "recording Events", {{"reason", reason}});
}

// A condition that persists across rounds (an API call that keeps failing) is logged when it
// starts, when its error changes and when it clears, not once per round.
void TidalController::Problem(const std::string& key, const Status& s, const std::string& event,
                              const std::string& message, log::Fields fields) {
  if (s.ok()) {
    problems_.Record(key, "ok", log::Level::kInfo, "tidal.recovered", message + " works again", fields);
    return;
  }
  fields.emplace_back("error", s.ToString());
  problems_.Record(key, s.ToString(), log::Level::kWarn, event, message + " fails", fields, /*log_first=*/true);
}

void TidalController::Publish(const tidal::PoolSpec& pool, const tidal::PoolState& state, const tidal::PoolView& view,
                              TimePoint now) {
  const tidal::TideNow t = tidal::TideNowOf(pool, state, view, now);
  board_->Set(pool.name, t);
  PoolCounters& c = *counters_[pool.name];
  c.tide = t.tide == tidal::Tide::kDay ? 0 : 1;
  c.held_by_load = t.held_by_load;
}

void TidalController::Tick(bool leading) {
  const TimePoint now = options_.now();
  auto states = LoadStates();
  if (!states.ok()) {
    // Without the record a leader could repeat a transition: wait for the next round.
    Problem("state", states.status(), "tidal.state_read_failed", "reading the pools' state (retried each round)",
            {{"configmap", options_.state_namespace + "/" + options_.state_name}});
    return;
  }
  Problem("state", Status::Ok(), "tidal.state_read_failed", "reading the pools' state",
          {{"configmap", options_.state_namespace + "/" + options_.state_name}});
  ClusterCache::TidalInputs inputs = cache_->TidalSnapshot(pools_);
  for (const auto& pool : pools_) {
    tidal::PoolView& view = inputs.pools[pool.name];
    // Our own notices the watch has not shown yet.
    std::set<std::string> present;
    for (auto& m : view.members) {
      present.insert(m.key);
      auto w = written_notices_.find(m.key);
      if (w == written_notices_.end()) continue;
      if (m.notice) written_notices_.erase(w);
      else m.notice = w->second;
    }
    for (auto it = written_notices_.begin(); it != written_notices_.end();) {
      bool ours = it->second.pool == pool.name;
      it = ours && !present.count(it->first) ? written_notices_.erase(it) : std::next(it);
    }
    if (!pool.load_trigger.prometheus_query().empty() && options_.demand && leading) {
      auto demand = options_.demand(pool.load_trigger.prometheus_query());
      if (demand.ok()) view.demand = *demand;
      Problem("demand/" + pool.name, demand.ok() ? Status::Ok() : demand.status(), "tidal.demand_query_failed",
              "the pool's demand query (the tide follows the clock while it fails)", {{"pool", pool.name}});
    }
    // Floors are checked against the cards the pool has now (nodes come and go): say so once
    // per change of the card count, the gate keeps applying them.
    const int cards = static_cast<int>(view.cards.size());
    if (auto seen = floor_checked_.find(pool.name); leading && (seen == floor_checked_.end() || seen->second != cards)) {
      floor_checked_[pool.name] = cards;
      Status floor = tidal::ValidateFloor(pool, cards);
      if (!floor.ok() && cards > 0) {
        problems_.Record("floor/" + pool.name, floor.ToString(), log::Level::kWarn, "tidal.floor_unmet",
                         floor.message(), {{"pool", pool.name}}, /*log_first=*/true);
        Event(StateObject(), "Warning", "PoolFloorTooLarge", floor.ToString() + "; the class served first cannot start on pool " + pool.name);
      }
    }
    tidal::PoolState last;
    if (auto it = states->find(pool.name); it != states->end()) last = it->second;
    if (!leading) {
      Publish(pool, last, view, now);
      continue;
    }
    tidal::Decision d = tidal::Decide(pool, last, view, now);
    if (!last.known || tidal::FormatPoolState(d.state) != tidal::FormatPoolState(last)) {
      // Recorded before anything is acted on: a restart finds the transition and resumes it.
      Status s = SaveState(pool.name, d.state);
      Problem("save/" + pool.name, s, "tidal.state_write_failed", "recording a pool's state", {{"pool", pool.name}});
      if (!s.ok()) {
        continue;
      }
    }
    PoolCounters& c = *counters_[pool.name];
    if (d.transition) {
      (d.state.cause == "load" ? c.transitions_load : c.transitions_clock)++;
      Event(StateObject(), "Normal", "TideChanged",
            "pool " + pool.name + " moved from its " + tidal::TideName(d.from) + " tide to its " +
                tidal::TideName(d.state.tide) + " tide: " + d.reason);
    }
    Publish(pool, d.state, view, now);
    Act(pool, d, view, inputs.node_labels[pool.name], now);
  }
}

void TidalController::Act(const tidal::PoolSpec& pool, const tidal::Decision& d, const tidal::PoolView& view,
                          const std::map<std::string, std::map<std::string, std::string>>& node_labels, TimePoint now) {
  PoolCounters& c = *counters_[pool.name];
  for (const auto& key : d.withdraw) {
    Status s = WithdrawNotice(pool, key);
    if (!s.ok())
      log::Warn("tidal.withdraw_failed", "cannot withdraw a notice", {{"pod", key}, {"error", s.ToString()}});
  }
  int noticed = 0;
  for (const auto& m : view.members)
    if (m.notice && std::find(d.withdraw.begin(), d.withdraw.end(), m.key) == d.withdraw.end()) noticed++;
  for (const auto& key : d.notice) {
    Status s = GiveNotice(pool, key, d, now);
    if (s.ok()) noticed++;
    else log::Warn("tidal.notice_failed", "cannot give a pod its notice", {{"pod", key}, {"error", s.ToString()}});
  }
  for (const auto& order : d.evict) EvictPod(pool, order);

  // Forget blocked pods that are gone or no longer under notice.
  std::set<std::string> noticed_keys;
  for (const auto& m : view.members)
    if (m.notice) noticed_keys.insert(m.key);
  int blocked = 0;
  for (auto it = blocked_.begin(); it != blocked_.end();) {
    if (!noticed_keys.count(*it)) {
      it = blocked_.erase(it);
    } else {
      blocked++;
      ++it;
    }
  }
  c.blocked_now = blocked;
  c.noticed_now = noticed;
  c.overdue_now = d.overdue;
  c.cards_needed = d.cards_needed;

  // Node labels show the tide (kubectl get nodes -L tideslice.io/pool,tideslice.io/tide).
  const std::string tide = tidal::TideName(d.state.tide);
  for (const auto& entry : node_labels) {
    const std::string& node = entry.first;
    const auto& labels = entry.second;  // a plain reference: clang 14 cannot capture a structured binding
    auto has = [&](const char* k, const std::string& v) {
      auto it = labels.find(k);
      return it != labels.end() && it->second == v;
    };
    if (has(tidal::kPoolLabel, pool.name) && has(tidal::kTideLabel, tide)) continue;
    auto r = client_->MergePatch(kube::NodePath(node),
                                 {{"metadata", {{"labels", {{tidal::kPoolLabel, pool.name}, {tidal::kTideLabel, tide}}}}}});
    Problem("label/" + node, r.ok() ? Status::Ok() : r.status(), "tidal.label_failed", "labelling a node with its tide",
            {{"node", node}});
  }
}

Status TidalController::GiveNotice(const tidal::PoolSpec& pool, const std::string& key, const tidal::Decision& d,
                                   TimePoint now) {
  auto [ns, name] = SplitKey(key);
  tidal::Notice notice{pool.name, d.state.transition, now, d.deadline};
  bool wrote = false;
  auto pod = client_->ReadModifyWrite(kube::PodPath(ns, name), [&](json& obj, bool* changed) {
    const json ann = obj["metadata"].value("annotations", json::object());
    if (auto it = ann.find(tidal::kNoticeAnnotation); it != ann.end() && it->is_string()) {
      if (auto existing = tidal::ParseNotice(it->get<std::string>()); existing.ok()) {
        notice = *existing;  // given before (a restart, or the watch lagging): keep it as it was
        *changed = false;
        return Status::Ok();
      }
    }
    if (!obj["metadata"]["annotations"].is_object()) obj["metadata"]["annotations"] = json::object();
    obj["metadata"]["annotations"][tidal::kNoticeAnnotation] = tidal::FormatNotice(notice);
    obj["metadata"]["annotations"][tidal::kDeadlineAnnotation] = tidal::FormatTime(notice.deadline);
    wrote = true;
    return Status::Ok();
  });
  if (!pod.ok()) return pod.status();
  written_notices_[key] = notice;
  if (!wrote) return Status::Ok();
  counters_[pool.name]->notices++;
  Event(*pod, "Warning", "CheckpointNotice",
        "pool " + pool.name + " needs this pod's cards for its " + tidal::TideName(d.state.tide) + " tide (" + d.reason +
            "): checkpoint before " + tidal::FormatTime(notice.deadline) + "; the pod is evicted then, or as soon as it sets " +
            tidal::kCheckpointedAnnotation + " to the time of its checkpoint");
  return Status::Ok();
}

Status TidalController::WithdrawNotice(const tidal::PoolSpec& pool, const std::string& key) {
  auto [ns, name] = SplitKey(key);
  bool removed = false;
  auto pod = client_->ReadModifyWrite(kube::PodPath(ns, name), [&](json& obj, bool* changed) {
    json& ann = obj["metadata"]["annotations"];
    *changed = false;
    if (!ann.is_object()) return Status::Ok();
    for (const char* k : {tidal::kNoticeAnnotation, tidal::kDeadlineAnnotation})
      if (ann.erase(k)) *changed = removed = true;
    return Status::Ok();
  });
  written_notices_.erase(key);
  if (!pod.ok()) return pod.status().code() == StatusCode::kNotFound ? Status::Ok() : pod.status();
  if (!removed) return Status::Ok();
  counters_[pool.name]->notices_withdrawn++;
  Event(*pod, "Normal", "CheckpointNoticeWithdrawn",
        "pool " + pool.name + " no longer needs this pod's cards (the tide turned back); it keeps running");
  return Status::Ok();
}

void TidalController::EvictPod(const tidal::PoolSpec& pool, const tidal::EvictOrder& order) {
  auto [ns, name] = SplitKey(order.key);
  PoolCounters& c = *counters_[pool.name];
  std::chrono::milliseconds bound{0};
  if (options_.lease_time_left) {
    bound = options_.lease_time_left();
    if (bound.count() <= 0) return;  // no longer provably leading: the next leader decides
  }
  Status s = client_->Evict(ns, name, order.uid, static_cast<int>(pool.grace.count()), bound);
  json pod = {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", {{"name", name}, {"namespace", ns}, {"uid", order.uid}}}};
  if (s.ok()) {
    (order.acknowledged ? c.evictions_acknowledged : c.evictions_deadline)++;
    blocked_.erase(order.key);
    Event(pod, "Warning", "TidalEviction", "evicted for pool " + pool.name + "'s tide: " + order.why);
    return;
  }
  if (s.code() == StatusCode::kNotFound) return;  // gone already
  if (s.code() == StatusCode::kResourceExhausted) {
    c.evictions_blocked++;
    if (blocked_.insert(order.key).second)
      Event(pod, "Warning", "TidalEvictionBlocked",
            "pool " + pool.name + " cannot evict this pod yet: " + s.message() + " (retried every round)");
    return;
  }
  c.eviction_errors++;
  log::Warn("tidal.eviction_failed", "cannot evict a pod", {{"pod", order.key}, {"error", s.ToString()}});
}

void TidalController::Run(const std::function<bool()>& leading, http::CancelFlag* cancel) {
  do {
    Tick(leading());
  } while (cancel->SleepFor(static_cast<int>(options_.period.count())));
}

StatusOr<double> ParsePrometheusAnswer(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::InvalidArgument("prometheus answer", "is not JSON");
  if (j.value("status", std::string()) != "success" || !j.contains("data") || !j["data"].is_object()) {
    std::string error = j.contains("error") && j["error"].is_string() ? j["error"].get<std::string>() : "no data";
    return Status::InvalidArgument("prometheus answer", "the query failed: " + error);
  }
  const json& data = j["data"];
  const std::string type = data.contains("resultType") && data["resultType"].is_string() ? data["resultType"].get<std::string>() : "";
  auto sample = [](const json& pair) -> StatusOr<double> {
    if (!pair.is_array() || pair.size() != 2 || !pair[1].is_string())
      return Status::InvalidArgument("prometheus answer", "a sample is not [time, \"value\"]");
    const std::string text = pair[1].get<std::string>();
    char* end = nullptr;
    double v = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !std::isfinite(v))
      return Status::InvalidArgument("prometheus answer", "sample value \"" + text + "\" is not a finite number");
    return v;
  };
  if (type == "scalar") return sample(data.value("result", json()));
  if (type != "vector")
    return Status::InvalidArgument("prometheus answer", "resultType \"" + type + "\" is not vector or scalar; "
                                                        "write the query so it returns one number (e.g. sum(...))");
  double sum = 0;
  if (!data.contains("result") || !data["result"].is_array())
    return Status::InvalidArgument("prometheus answer", "a vector answer without a result list");
  for (const auto& series : data["result"]) {
    if (!series.is_object() || !series.contains("value"))
      return Status::InvalidArgument("prometheus answer", "a series without a value");
    auto v = sample(series["value"]);
    if (!v.ok()) return v.status();
    sum += *v;
  }
  return sum;
}

StatusOr<std::function<StatusOr<double>(const std::string&)>> PrometheusDemand(const std::string& base_url) {
  if (base_url.rfind("http://", 0) != 0 && base_url.rfind("https://", 0) != 0)
    return Status::InvalidArgument("--prometheus-url", "must start with http:// or https://, got \"" + base_url + "\"");
  http::ClientOptions options;
  options.server = base_url;
  options.peer = "Prometheus";
  options.request_timeout_s = 10;
  auto made = http::NewCppRestClient(options);
  if (!made.ok()) return Status::InvalidArgument("--prometheus-url", made.status().message());
  std::shared_ptr<http::Client> transport = *made;
  return std::function<StatusOr<double>(const std::string&)>([transport](const std::string& query) -> StatusOr<double> {
    auto reply = transport->Send({"GET", "/api/v1/query?query=" + kube::QueryEscape(query), "", "application/json"});
    if (!reply.ok()) return reply.status();
    if (reply->status != 200 && reply->status != 400 && reply->status != 422)
      return Status::Unavailable("prometheus answered HTTP " + std::to_string(reply->status));
    return ParsePrometheusAnswer(reply->body);
  });
}

}  // namespace tideslice::service
