// The scheduler's HTTP endpoints behind our own small interface; cpprestsdk is the
// implementation and its headers stay in the .cc (its macro U breaks other headers).
//
// Two ways in: the extender (POST <urlPrefix>/{filter,prioritize,bind,preempt}, VerbHandler) and
// plain routes (any method and path, RouteHandler) for health endpoints and the admission
// webhook. Handlers that may block (bind waits for its node; webhook calls) run on a worker pool
// of our own, never on cpprest's I/O threads.
//
// kube-scheduler treats any status but 200 as an error and decodes the body regardless of its
// Content-Type; verb failures are therefore 200 with the Error field set (filter, bind) or an
// empty answer (prioritize, whose errors kube-scheduler ignores anyway). Unknown paths are 404,
// other methods 405, bodies over the limit 413.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

namespace tideslice::extender {

struct HttpReply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

struct HttpCall {
  std::string method;
  std::string path;        // relative to the listener's URL prefix, starting with '/'
  std::string body;
};

// verb ("filter", "prioritize", "bind", "preempt") + request body -> reply.
using VerbHandler = std::function<HttpReply(const std::string& verb, const std::string& body)>;
using RouteHandler = std::function<HttpReply(const HttpCall& call)>;

struct HttpServerOptions {
  size_t max_body_bytes = 4 << 20;
  int workers = 16;                                    // pool for blocking handlers
  std::function<bool(const HttpCall&)> blocking;      // true: run on the pool (default: never)
  std::string tls_cert_file, tls_key_file;             // both set: serve https:// (PEM files)
};

// Sizes cpprestsdk's shared thread pool (its I/O and its tasks run there). Call once, before
// any server or client starts. cpprest's default is 40 threads; on a 2-core node that many
// threads cost more in wake-ups than they give (a round trip took about 190 us with 40 threads
// and 90 us with 2 on the CI machine), and nothing of ours blocks a pool thread. Returns false
// if the pool was already running.
bool ConfigureHttpThreads(size_t threads);

class HttpServer {
 public:
  // `address` like "http://127.0.0.1:8888/sched" (the urlPrefix kube-scheduler is given).
  static StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& address, VerbHandler handler,
                                                     size_t max_body_bytes = 4 << 20);
  // Any path under `address`; "https://..." needs tls_cert_file and tls_key_file.
  static StatusOr<std::unique_ptr<HttpServer>> StartRoutes(const std::string& address, RouteHandler handler,
                                                           HttpServerOptions options = {});
  virtual ~HttpServer() = default;
  virtual void Stop() = 0;
};

}  // namespace tideslice::extender
