// Writes the filter's per-node reasons onto pending pods (scheduler/service/filter_record.h for
// the annotation). Off the filter's path: the filter hands the reasons over and returns at once;
// one worker thread writes them, the latest reasons per pod winning, and only when they differ
// from what it last wrote for that pod. A pod that was bound or re-created meanwhile is left as
// it is. Failures are logged once when they start and once when they clear.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "common/kube/client.h"
#include "common/log/log.h"

namespace tideslice::service {

class FilterReasonRecorder {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;
  explicit FilterReasonRecorder(kube::KubeClient* client, Clock now = [] { return std::chrono::system_clock::now(); });
  ~FilterReasonRecorder();
  FilterReasonRecorder(const FilterReasonRecorder&) = delete;
  FilterReasonRecorder& operator=(const FilterReasonRecorder&) = delete;

  // Queues the reasons (node -> reason) for the pod; never blocks on the API.
  void Record(const std::string& ns, const std::string& name, const std::string& uid,
              std::map<std::string, std::string> reasons);
  // Waits until every queued record has been written or given up (tests).
  void Flush();
  uint64_t writes() const;

  // Pods waiting to be written beyond this are dropped (their next filter queues them again).
  static constexpr size_t kMaxQueued = 1024;
  // Pods whose last written reasons are remembered; beyond this the memory starts afresh.
  static constexpr size_t kMaxRemembered = 8192;

 private:
  struct Pending {
    std::string ns, name, uid;
    std::map<std::string, std::string> reasons;
  };
  void Loop();
  Status Write(const Pending& p);

  kube::KubeClient* client_;
  Clock now_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Pending> queued_;                              // pod key -> latest reasons
  std::map<std::string, std::map<std::string, std::string>> written_;  // pod key -> reasons written
  bool busy_ = false;
  bool stop_ = false;
  uint64_t writes_ = 0;
  log::ChangeLog log_;
  std::thread worker_;
};

}  // namespace tideslice::service
