#include "common/kube/reflector.h"

#include <random>

#include "common/log/log.h"

namespace tideslice::kube {

std::string Reflector::last_resource_version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rv_;
}

std::string Reflector::last_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

std::chrono::milliseconds Reflector::failing_for() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (failing_since_ == std::chrono::steady_clock::time_point{}) return std::chrono::milliseconds(0);
  return std::max(std::chrono::milliseconds(1), std::chrono::duration_cast<std::chrono::milliseconds>(
                                                    std::chrono::steady_clock::now() - failing_since_));
}

void Reflector::SetError(const Status& s) {
  bool started = false, ended = false;
  std::string previous;
  {
    std::lock_guard<std::mutex> lock(mu_);
    previous = last_error_;
    if (s.ok()) {
      ended = failing_since_ != std::chrono::steady_clock::time_point{};
      failing_since_ = {};
      last_error_.clear();
    } else {
      started = failing_since_ == std::chrono::steady_clock::time_point{};
      if (started) failing_since_ = std::chrono::steady_clock::now();
      last_error_ = s.ToString();
    }
  }
  if (started)
    log::Warn("api.unreachable", "cannot list or watch " + path_ + "; retrying with back-off",
              {{"path", path_}, {"error", s.ToString()}});
  if (ended) log::Info("api.recovered", "listing and watching " + path_ + " works again", {{"path", path_}, {"last_error", previous}});
}

void Reflector::Run(http::CancelFlag* cancel) {
  std::mt19937 rng(std::random_device{}());
  int backoff_ms = options_.backoff_initial_ms;
  auto back_off = [&]() {
    std::uniform_int_distribution<int> jitter(backoff_ms / 2, backoff_ms);
    bool alive = cancel->SleepFor(jitter(rng));
    backoff_ms = std::min(options_.backoff_max_ms, backoff_ms * 2);
    return alive;
  };
  // Successes are reported only after a failure, so a healthy stream takes no lock per event.
  bool failing = false;
  auto report = [&](const Status& st) {
    if (st.ok() && !failing) return;
    failing = !st.ok();
    SetError(st);
  };
  bool need_list = true;
  while (!cancel->cancelled()) {
    if (need_list) {
      auto list = client_->List(path_, options_.query, options_.page_size);
      if (!list.ok()) {
        report(list.status());
        if (!back_off()) return;
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        rv_ = list->resource_version;
      }
      handler_.replace(std::move(list->items));
      report(Status::Ok());
      lists_++;
      synced_ = true;
      need_list = false;
    }
    Status s = client_->Watch(
        path_, options_.query, last_resource_version(), options_.watch_timeout_s,
        [&](const WatchEvent& ev) {
          std::string rv = ev.object.value("metadata", json::object()).value("resourceVersion", std::string());
          if (ev.type != WatchEventType::kBookmark) handler_.event(ev.type, ev.object);
          if (!rv.empty()) {
            std::lock_guard<std::mutex> lock(mu_);
            rv_ = rv;
          }
          report(Status::Ok());
          backoff_ms = options_.backoff_initial_ms;  // the stream works
          return !cancel->cancelled();
        },
        cancel);
    if (cancel->cancelled()) return;
    if (s.ok()) {
      report(Status::Ok());
      continue;  // the server closed the watch at its timeout: re-watch from rv_
    }
    report(s);
    if (s.code() == StatusCode::kExpired) {
      need_list = true;  // history is gone: only a fresh list tells us the truth
      continue;
    }
    if (!back_off()) return;
  }
}

}  // namespace tideslice::kube
