// The small HTTP client interface the Kubernetes client and the Prometheus query speak through.
// cpprestsdk implements it in cpprest_client.cc (the only file in common/ that includes cpprest,
// whose macro U breaks other headers); tests may substitute their own.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace tideslice::http {

struct Request {
  std::string method = "GET";
  std::string path;                         // path and query, e.g. "/api/v1/pods?limit=500"
  std::string body;
  std::string content_type = "application/json";
  // Bounds this call below the transport's default timeout (0 = the default). A leader bounds
  // its writes by the time its lease is still provably its own.
  std::chrono::milliseconds timeout{0};
};

struct Reply {
  int status = 0;
  std::string body;
  int retry_after_seconds = 0;              // from a Retry-After header, 0 if none
};

// Cancels blocking calls (a watch stream) from another thread. Callbacks registered while not
// yet cancelled run on Cancel(); registered after, they run at once.
class CancelFlag {
 public:
  void Cancel() {
    std::vector<std::function<void()>> run;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (cancelled_) return;
      cancelled_ = true;
      run.swap(callbacks_);
    }
    for (auto& f : run) f();
  }
  bool cancelled() const {
    std::lock_guard<std::mutex> lock(mu_);
    return cancelled_;
  }
  // Returns an id for Unregister.
  int Register(std::function<void()> f) {
    std::unique_lock<std::mutex> lock(mu_);
    if (cancelled_) {
      lock.unlock();
      f();
      return -1;
    }
    callbacks_.push_back(std::move(f));
    return static_cast<int>(callbacks_.size()) - 1;
  }
  void Unregister(int id) {
    std::lock_guard<std::mutex> lock(mu_);
    if (id >= 0 && id < static_cast<int>(callbacks_.size())) callbacks_[static_cast<size_t>(id)] = [] {};
  }
  // Sleeps up to `ms`, waking early on Cancel(); returns false if cancelled.
  bool SleepFor(int ms);

 private:
  mutable std::mutex mu_;
  bool cancelled_ = false;
  std::vector<std::function<void()>> callbacks_;
};

class Client {
 public:
  virtual ~Client() = default;
  // One request; transport failures (refused, TLS, timeout) are Unavailable, HTTP errors are a
  // reply with their status for the caller to map.
  virtual StatusOr<Reply> Send(const Request& request) = 0;
  // A long response read line by line as it arrives (a watch). For a 200 answer each line goes
  // to on_line until the server ends the stream, on_line returns false, or `cancel` fires; the
  // reply then has status 200 and an empty body. Any other status comes back with its body.
  virtual StatusOr<Reply> Stream(const Request& request, const std::function<bool(std::string_view)>& on_line,
                                    CancelFlag* cancel) = 0;
};

// Where a client connects and how it proves who it is.
struct ClientOptions {
  std::string server;                   // "https://10.96.0.1:443", "http://prometheus:9090"
  std::string ca_pem;                   // trusted CA bundle (PEM); empty = system roots
  std::string client_cert_pem;          // client certificate (PEM), with client_key_pem
  std::string client_key_pem;
  std::string token;                    // static bearer token
  std::string token_file;               // bearer token re-read as it rotates (wins over token)
  bool insecure_skip_tls_verify = false;
  std::string peer = "the server";      // for messages: "the Kubernetes API", "Prometheus"
  int request_timeout_s = 30;
  int stream_idle_timeout_s = 300;      // silence allowed on a stream (watches carry bookmarks)
};

// Sizes cpprestsdk's shared thread pool, where every client's I/O and tasks run (cpprest's own
// default is 40 threads). Call once, before any client starts; false if the pool already runs.
bool ConfigureClientThreads(size_t threads);

// cpprestsdk over http:// or https://. InvalidArgument when `server` is not a usable URL.
StatusOr<std::shared_ptr<Client>> NewCppRestClient(const ClientOptions& options);

}  // namespace tideslice::http
