// The extender verbs of a running scheduler: filter, prioritize and preempt over the cache's
// snapshot; bind = plan on the chosen node, reserve, then the Binder (assignment + Binding in
// one API call, one allocating pod per node). Only the leader binds.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "common/catalog/catalog.h"
#include "common/kube/client.h"
#include "common/http/server.h"
#include "scheduler/extender/service.h"
#include "scheduler/extender/verbs.h"
#include "scheduler/extender/wire.h"
#include "scheduler/service/binder.h"
#include "scheduler/service/cache.h"
#include "scheduler/service/filter_recorder.h"
#include "scheduler/service/tidal_controller.h"
#include "scheduler/tidal/pool.h"

namespace tideslice::service {

struct VerbCounters {
  std::atomic<uint64_t> filter{0}, prioritize{0}, preempt{0}, bind{0}, bind_errors{0}, errors{0};
};

// True when an extender answer carries a non-empty Error ("Error":"" means success).
bool AnswersWithError(const std::string& body);

// The extender's verbs for a running scheduler, behind the one dispatcher (extender/service.h):
// filter, prioritize and preempt through the core's pipeline over the cache's snapshot (the
// tidal gate as a filter stage); bind through the binder.
class SchedulerService final : public extender::ExtenderVerbs {
 public:
  SchedulerService(const catalog::Catalog& catalog, ClusterCache* cache, Binder* binder, kube::KubeClient* client,
                   std::function<bool()> is_leader)
      : catalog_(catalog), cache_(cache), binder_(binder), client_(client), is_leader_(std::move(is_leader)) {}

  // Tidal pools gate filter and bind: a pod of the class a pool's tide does not serve first stays
  // off that pool's nodes, with the time it may start (unless the tide lets it borrow).
  // `tides` (may be null: the clock alone) is where the tidal controller posts each pool's tide.
  void set_pools(std::vector<tidal::PoolSpec> pools, std::function<std::chrono::system_clock::time_point()> now,
                 const TideBoard* tides = nullptr) {
    pools_ = std::move(pools);
    now_ = std::move(now);
    tides_ = tides;
  }

  // Records the filter's per-node reasons on pods that fit no node (annotation
  // tideslice.io/filter-reasons, written off the filter's path; see filter_recorder.h).
  void set_filter_recorder(FilterReasonRecorder* recorder) { recorder_ = recorder; }

  // Bind only pods that name this scheduler (spec.schedulerName).
  void set_scheduler_name(std::string name) { scheduler_name_ = std::move(name); }

  // verb + JSON body -> the reply kube-scheduler expects (HTTP 200 with Error on failure).
  http::HttpReply Serve(const std::string& verb, const std::string& body);
  extender::FilterResult Filter(const extender::ExtenderArgs& args) override;
  std::vector<extender::HostPriority> Prioritize(const extender::ExtenderArgs& args) override;
  StatusOr<std::map<std::string, extender::MetaVictims>> Preempt(const extender::PreemptionArgs& args) override;
  Status Bind(const extender::BindingArgs& args) override;
  // How often each pipeline stage ran (tests: the request stages run once per verb).
  const core::StageCounts& stage_counts() const { return stages_; }
  const VerbCounters& counters() const { return counters_; }
  // Called after every verb with its duration and whether it answered with an error (metrics).
  void set_observer(std::function<void(const std::string& verb, double seconds, bool error)> observer) {
    observer_ = std::move(observer);
  }

 private:
  const catalog::Catalog& catalog_;
  ClusterCache* cache_;
  Binder* binder_;
  kube::KubeClient* client_;
  std::function<bool()> is_leader_;
  VerbCounters counters_;
  core::VerdictMemo memo_;
  core::StageCounts stages_;
  std::function<void(const std::string&, double, bool)> observer_;
  std::vector<tidal::PoolSpec> pools_;
  const TideBoard* tides_ = nullptr;
  FilterReasonRecorder* recorder_ = nullptr;
  std::string scheduler_name_ = "tideslice-scheduler";
  std::function<std::chrono::system_clock::time_point()> now_ = [] { return std::chrono::system_clock::now(); };
};

}  // namespace tideslice::service
