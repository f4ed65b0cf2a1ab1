#include "scheduler/service/filter_recorder.h"

#include "common/kube/json_fields.h"
#include "scheduler/service/filter_record.h"

namespace tideslice::service {

FilterReasonRecorder::FilterReasonRecorder(kube::KubeClient* client, Clock now)
    : client_(client), now_(std::move(now)), worker_([this] { Loop(); }) {}

FilterReasonRecorder::~FilterReasonRecorder() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

void FilterReasonRecorder::Record(const std::string& ns, const std::string& name, const std::string& uid,
                                  std::map<std::string, std::string> reasons) {
  const std::string key = ns + "/" + name;
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = written_.find(key); it != written_.end() && it->second == reasons) return;
  if (!queued_.count(key) && queued_.size() >= kMaxQueued) return;
  queued_[key] = Pending{ns, name, uid, std::move(reasons)};
  cv_.notify_all();
}

void FilterReasonRecorder::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return stop_ || (queued_.empty() && !busy_); });
}

uint64_t FilterReasonRecorder::writes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return writes_;
}

void FilterReasonRecorder::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || !queued_.empty(); });
    if (stop_) return;
    Pending p = std::move(queued_.begin()->second);
    queued_.erase(queued_.begin());
    busy_ = true;
    lock.unlock();
    Status s = Write(p);
    lock.lock();
    busy_ = false;
    const std::string key = p.ns + "/" + p.name;
    if (s.ok()) {
      ++writes_;
      if (written_.size() >= kMaxRemembered) written_.clear();
      written_[key] = std::move(p.reasons);
    }
    log_.Record("write", s.ok() ? "ok" : "failing", s.ok() ? log::Level::kInfo : log::Level::kWarn,
                s.ok() ? "filter_reasons.recorded" : "filter_reasons.write_failed",
                s.ok() ? "writing filter reasons onto pending pods works again"
                       : "cannot write the filter's per-node reasons onto a pending pod: " + s.ToString(),
                {{"pod", key}}, /*log_first=*/!s.ok());
    cv_.notify_all();
  }
}

Status FilterReasonRecorder::Write(const Pending& p) {
  const FilterRecord record = BoundedRecord(p.reasons, now_());
  auto written = client_->ReadModifyWrite(kube::PodPath(p.ns, p.name), [&](kube::json& pod, bool* changed) {
    const kube::json* meta = kube::Child(&pod, "metadata");
    // Re-created under the same name, or bound meanwhile: these reasons are not its own.
    if ((!p.uid.empty() && kube::StringOr(meta, "uid") != p.uid) ||
        !kube::StringOr(kube::Child(&pod, "spec"), "nodeName").empty()) {
      *changed = false;
      return Status::Ok();
    }
    const kube::json* annotations = kube::Child(meta, "annotations");
    const std::string old = kube::StringOr(annotations, kFilterReasonsAnnotation);
    if (!old.empty())
      if (auto before = ParseFilterRecord(old); before.ok() && before->nodes == record.nodes &&
                                                before->omitted == record.omitted) {
        *changed = false;  // the same reasons: keep the time they were first seen
        return Status::Ok();
      }
    if (!annotations || !annotations->is_object()) pod["metadata"]["annotations"] = kube::json::object();
    pod["metadata"]["annotations"][kFilterReasonsAnnotation] = FormatFilterRecord(record);
    *changed = true;
    return Status::Ok();
  });
  if (!written.ok() && written.status().code() == StatusCode::kNotFound) return Status::Ok();  // gone: nothing to say
  return written.ok() ? Status::Ok() : written.status();
}

}  // namespace tideslice::service
