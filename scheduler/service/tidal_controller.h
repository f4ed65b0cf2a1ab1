// The tidal controller: every few seconds, per pool, it reads what the cache knows (cards, the
// pods on them, pods waiting), asks tidal::Decide what the tide is and who must make room, and
// carries that out against the API server:
//   - the pool's state (tide, since, cause, load hold) in one ConfigMap, so that a restart or a
//     new leader resumes a transition instead of starting another;
//   - checkpoint notices as pod annotations (a JSON notice and the bare deadline, which a
//     downward-API volume shows inside the container) plus a Warning Event;
//   - evictions through the Eviction API once the deadline passed or the pod acknowledged its
//     checkpoint; a PodDisruptionBudget refusal (429) is retried every round and counted;
//   - notices withdrawn when the tide turns back before their deadline;
//   - node labels tideslice.io/pool and tideslice.io/tide on the pool's nodes;
//   - an Event on the ConfigMap for every transition, and counters for all of it.
// Only the leader writes. Followers read the recorded state so their filter answers agree.
// Every write is idempotent and re-checked against a fresh read, so a round that races the
// watch, or repeats after a restart, never notices a pod twice.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/kube/client.h"
#include "common/log/log.h"
#include "scheduler/service/cache.h"
#include "scheduler/tidal/decide.h"

namespace tideslice::service {

// The tide each pool is in, as the filter and bind gates apply it. Written by the controller,
// read by every verb; a pool the controller has not reported yet follows its clock.
class TideBoard {
 public:
  void Set(const std::string& pool, const tidal::TideNow& tide) {
    std::lock_guard<std::mutex> lock(mu_);
    tides_[pool] = tide;
  }
  std::optional<tidal::TideNow> Get(const std::string& pool) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tides_.find(pool);
    if (it == tides_.end()) return std::nullopt;
    return it->second;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, tidal::TideNow> tides_;
};

struct PoolCounters {
  std::atomic<uint64_t> transitions_clock{0}, transitions_load{0};
  std::atomic<uint64_t> notices{0}, notices_withdrawn{0};
  std::atomic<uint64_t> evictions_deadline{0}, evictions_acknowledged{0};
  std::atomic<uint64_t> evictions_blocked{0};   // refusals by a PodDisruptionBudget (429)
  std::atomic<uint64_t> eviction_errors{0};
  std::atomic<int> blocked_now{0};              // pods whose last eviction attempt was refused
  std::atomic<int> overdue_now{0};              // noticed pods past deadline + grace, still there
  std::atomic<int> noticed_now{0};              // pods under notice now
  std::atomic<int> cards_needed{0};             // cards the tide's first class is short of
  std::atomic<int> tide{-1};                    // 0 day, 1 night, -1 not decided yet
  std::atomic<bool> held_by_load{false};
};

struct TidalControllerOptions {
  std::string state_namespace = "tideslice-system";
  std::string state_name = "tideslice-tides";   // ConfigMap: one key per pool
  std::chrono::milliseconds period{5000};
  std::string component = "tideslice-scheduler";
  std::function<std::chrono::system_clock::time_point()> now = [] { return std::chrono::system_clock::now(); };
  // Reads a pool's loadTrigger.prometheusQuery; null = no Prometheus configured.
  std::function<StatusOr<double>(const std::string& query)> demand;
  // How long this replica may still act as leader (the lease's time left); null = unbounded (no
  // election). An eviction is made only with time left, and bounded by it, so a deposed leader's
  // eviction cannot land after a new leader has decided otherwise.
  std::function<std::chrono::milliseconds()> lease_time_left;
};

class TidalController {
 public:
  TidalController(kube::KubeClient* client, ClusterCache* cache, std::vector<tidal::PoolSpec> pools, TideBoard* board,
                  TidalControllerOptions options);

  // One round. The leader decides and acts; a follower only reads the recorded state.
  void Tick(bool leading);
  // Rounds every period until `cancel`.
  void Run(const std::function<bool()>& leading, http::CancelFlag* cancel);

  const PoolCounters& counters(const std::string& pool) const { return *counters_.at(pool); }
  const std::vector<tidal::PoolSpec>& pools() const { return pools_; }

 private:
  std::string StatePath() const;
  StatusOr<std::map<std::string, tidal::PoolState>> LoadStates();
  Status SaveState(const std::string& pool, const tidal::PoolState& state);
  void Publish(const tidal::PoolSpec& pool, const tidal::PoolState& state, const tidal::PoolView& view,
               tidal::TimePoint now);
  // The ConfigMap that holds the pools' state, as the object of transition and floor Events.
  kube::json StateObject() const;
  // Logs a persistent condition under `key` once when it starts or changes and once when it
  // clears; `activity` names what is being done ("recording a pool's state").
  void Problem(const std::string& key, const Status& s, const std::string& event, const std::string& activity,
               log::Fields fields = {});
  void Act(const tidal::PoolSpec& pool, const tidal::Decision& d, const tidal::PoolView& view,
           const std::map<std::string, std::map<std::string, std::string>>& node_labels, tidal::TimePoint now);
  Status GiveNotice(const tidal::PoolSpec& pool, const std::string& key, const tidal::Decision& d, tidal::TimePoint now);
  Status WithdrawNotice(const tidal::PoolSpec& pool, const std::string& key);
  void EvictPod(const tidal::PoolSpec& pool, const tidal::EvictOrder& order);
  void Event(const kube::json& involved, const std::string& type, const std::string& reason, const std::string& message);

  kube::KubeClient* client_;
  ClusterCache* cache_;
  std::vector<tidal::PoolSpec> pools_;
  TideBoard* board_;
  TidalControllerOptions options_;
  std::map<std::string, std::unique_ptr<PoolCounters>> counters_;
  std::map<std::string, tidal::PoolState> recorded_;   // as last written or read
  // Notices this process wrote, until the watch shows them (pod key -> notice): a round that
  // runs before the watch catches up must not choose the same pods again.
  std::map<std::string, tidal::Notice> written_notices_;
  std::set<std::string> blocked_;                      // pod keys whose eviction a PDB refuses
  log::ChangeLog problems_;                            // persistent failures, logged per change
  std::map<std::string, int> floor_checked_;           // pool -> card count its floors were checked at
};

// Reads an instant-query answer of the Prometheus HTTP API (/api/v1/query): the sum of a vector
// result's samples, or a scalar. Errors say what the answer held instead.
StatusOr<double> ParsePrometheusAnswer(const std::string& body);
// A demand source that asks the Prometheus server at `base_url` ("http://prometheus:9090").
StatusOr<std::function<StatusOr<double>(const std::string&)>> PrometheusDemand(const std::string& base_url);

}  // namespace tideslice::service
