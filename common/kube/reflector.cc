#include "common/kube/reflector.h"

#include <random>

namespace tideslice::kube {

std::string Reflector::last_resource_version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rv_;
}

std::string Reflector::last_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

void Reflector::SetError(const Status& s) {
  std::lock_guard<std::mutex> lock(mu_);
  last_error_ = s.ok() ? "" : s.ToString();
}

void Reflector::Run(CancelFlag* cancel) {
  std::mt19937 rng(std::random_device{}());
  int backoff_ms = options_.backoff_initial_ms;
  auto back_off = [&]() {
    std::uniform_int_distribution<int> jitter(backoff_ms / 2, backoff_ms);
    bool alive = cancel->SleepFor(jitter(rng));
    backoff_ms = std::min(options_.backoff_max_ms, backoff_ms * 2);
    return alive;
  };
  bool need_list = true;
  while (!cancel->cancelled()) {
    if (need_list) {
      auto list = client_->List(path_, options_.query, options_.page_size);
      if (!list.ok()) {
        SetError(list.status());
        if (!back_off()) return;
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        rv_ = list->resource_version;
      }
      handler_.replace(std::move(list->items));
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
          backoff_ms = options_.backoff_initial_ms;  // the stream works
          return !cancel->cancelled();
        },
        cancel);
    if (cancel->cancelled()) return;
    if (s.ok()) continue;  // the server closed the watch at its timeout: re-watch from rv_
    SetError(s);
    if (s.code() == StatusCode::kExpired) {
      need_list = true;  // history is gone: only a fresh list tells us the truth
      continue;
    }
    if (!back_off()) return;
  }
}

}  // namespace tideslice::kube
