// List-then-watch of one resource (client-go's reflector): list all pages, hand the full set to
// the owner, watch from the list's resourceVersion with bookmarks, and on expiry (410) list
// again. Broken streams reconnect with jittered exponential back-off from the last
// resourceVersion seen, so nothing between the list and the watch is missed.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "common/kube/client.h"

namespace tideslice::kube {

struct ReflectorOptions {
  std::string query;             // e.g. "fieldSelector=spec.nodeName%3Dn1"
  int page_size = 500;
  int watch_timeout_s = 300;     // the server ends each watch after this; we re-watch at once
  int backoff_initial_ms = 100;
  int backoff_max_ms = 10000;
};

class Reflector {
 public:
  struct Handler {
    // The complete current set (after every list). The owner replaces its cache with it.
    std::function<void(std::vector<json> items)> replace;
    // One change from the watch (never a bookmark).
    std::function<void(WatchEventType type, const json& object)> event;
  };

  Reflector(KubeClient* client, std::string path, Handler handler, ReflectorOptions options = {})
      : client_(client), path_(std::move(path)), handler_(std::move(handler)), options_(std::move(options)) {}

  // Runs until `cancel` fires. Call from a thread of its own.
  void Run(http::CancelFlag* cancel);

  bool synced() const { return synced_.load(); }
  int lists() const { return lists_.load(); }            // how many full lists so far (re-lists + 1)
  std::string last_resource_version() const;
  std::string last_error() const;
  // How long the API server has failed this reflector without a success in between (list,
  // watch event or clean watch end); zero while it works. Readiness reports it.
  std::chrono::milliseconds failing_for() const;

 private:
  // Records a failure (logged once when the outage starts) or a success (logged once when it
  // ends), never once per retry.
  void SetError(const Status& s);

  KubeClient* client_;
  std::string path_;
  Handler handler_;
  ReflectorOptions options_;
  std::atomic<bool> synced_{false};
  std::atomic<int> lists_{0};
  mutable std::mutex mu_;
  std::string rv_;
  std::string last_error_;
  std::chrono::steady_clock::time_point failing_since_{};  // guarded by mu_; epoch = not failing
};

}  // namespace tideslice::kube
