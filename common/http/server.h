// The scheduler's HTTP endpoints behind our own small interface. The implementation is
// Boost.Beast over Boost.Asio (asio::ssl with OpenSSL for https://); its headers stay in the .cc.
//
// Two ways in: the extender (POST <urlPrefix>/{filter,prioritize,bind,preempt}, VerbHandler) and
// plain routes (any method and path, RouteHandler) for health endpoints and the admission
// webhook. Handlers that may block (bind waits for its node; webhook calls) run on a worker pool
// of our own, never on the listener's I/O threads.
//
// kube-scheduler treats any status but 200 as an error and decodes the body regardless of its
// Content-Type; verb failures are therefore 200 with the Error field set (filter, bind) or an
// empty answer (prioritize, whose errors kube-scheduler ignores anyway). Unknown paths are 404,
// other methods 405, bodies over the limit 413, headers over the limit 431, and a handler that
// throws 500 (the server logs it and keeps serving).
//
// The webhook listener is reachable by every pod of the cluster, so every resource a client can
// hold is bounded: connections (overall and per client address), time (TLS handshake, header,
// body, idle keep-alive, write) and bytes (header, body). A connection over a bound is closed and
// counted (HttpServerCounters); Check() turns the counters into a health verdict.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

namespace tideslice::http {

struct HttpReply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

struct HttpCall {
  std::string method;
  std::string path;        // relative to the listener's URL prefix, starting with '/'; no query
  std::string body;
};

// verb ("filter", "prioritize", "bind", "preempt") + request body -> reply.
using VerbHandler = std::function<HttpReply(const std::string& verb, const std::string& body)>;
using RouteHandler = std::function<HttpReply(const HttpCall& call)>;

struct HttpServerOptions {
  size_t max_body_bytes = 4 << 20;                     // larger: 413, connection closed
  size_t max_header_bytes = 64 << 10;                  // request line + headers; larger: 431
  int workers = 16;                                    // pool for blocking handlers
  std::function<bool(const HttpCall&)> blocking;      // true: run on the pool (default: never)
  std::string tls_cert_file, tls_key_file;             // both set: serve https:// (PEM files)

  // Time bounds. Each is a deadline for the whole phase, not for one read, so a client that
  // trickles a byte at a time (slowloris) is closed when the phase's time is up.
  std::chrono::milliseconds tls_handshake_timeout{10'000};
  std::chrono::milliseconds header_timeout{10'000};   // from connect (or the first byte of a
                                                       // later request) to the end of the headers
  std::chrono::milliseconds body_timeout{30'000};     // end of the headers to the end of the body
  std::chrono::milliseconds idle_timeout{60'000};     // keep-alive: a reply to the next request
  std::chrono::milliseconds write_timeout{30'000};    // one whole reply
  // The handler of a request gets no deadline: a slow bind is the Kubernetes API's to bound.

  // Connections held open at once. Over either cap a new connection is closed at once (counted
  // in rejected_over_cap), so one client cannot take every slot of the process.
  int max_connections = 1024;
  int max_connections_per_client = 128;               // per remote IP address

  // https://: the PEM files are re-read when their mtime, size or inode changes (cert-manager
  // rotates the webhook's certificate in place), checked on accept at most this often. A file
  // pair that does not load keeps the previous certificate in use (and is logged).
  std::chrono::milliseconds tls_reload_interval{5'000};

  // I/O threads of this listener; 0: as ConfigureHttpThreads was given (2 if it was not called).
  int io_threads = 0;
};

// What a listener has seen since it started; all monotonic except open_connections.
struct HttpServerCounters {
  uint64_t accepted = 0;             // connections taken into service
  uint64_t rejected_over_cap = 0;    // closed at once: max_connections or the per-client cap
  uint64_t timed_out = 0;            // closed by a handshake, header, body, idle or write timeout
  uint64_t handshake_failures = 0;   // TLS handshakes that did not complete (timeouts included)
  uint64_t handler_exceptions = 0;   // handler invocations that threw (answered 500)
  uint64_t accept_errors = 0;        // accept() failures (EMFILE, ENFILE, ...), retried after a pause
  uint64_t requests = 0;             // requests answered (any status)
  int64_t open_connections = 0;
};

// Sizes cpprestsdk's shared thread pool (the Kubernetes client's I/O and tasks run there) and is
// the default I/O thread count of HttpServers started afterwards. Call once, before any server or
// client starts. cpprest's default is 40 threads; on a 2-core node that many threads cost more in
// wake-ups than they give (a round trip took about 190 us with 40 threads and 90 us with 2 on the
// CI machine). Returns false if cpprest's pool was already running.
bool ConfigureHttpThreads(size_t threads);

class HttpServer {
 public:
  // `address` like "http://127.0.0.1:8888/sched" (the urlPrefix kube-scheduler is given).
  static StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& address, VerbHandler handler,
                                                     size_t max_body_bytes = 4 << 20);
  // Any path under `address`; "https://..." needs tls_cert_file and tls_key_file. Port 0 picks
  // a free port (see port()).
  static StatusOr<std::unique_ptr<HttpServer>> StartRoutes(const std::string& address, RouteHandler handler,
                                                           HttpServerOptions options = {});
  virtual ~HttpServer() = default;
  // Closes the listener and every connection; waits (up to 5 s) for replies in flight, then for
  // handlers already running or queued for the pool to return (a bind returns within its own
  // wait budget and the lease's time left). Idempotent; not from one of its handlers.
  virtual void Stop() = 0;

  // The listener's health, for /livez and /readyz:
  //  - Unavailable: stopped; the accept loop is not running or its last accept() failed (it is
  //    pausing before the next try, e.g. out of file descriptors); or no I/O thread has run for
  //    30 s (every I/O thread stuck in a handler).
  //  - ResourceExhausted: at max_connections now (new connections are being refused).
  //  - Ok otherwise; the message of a failure names the counters.
  // Cheap and safe from any thread, including from a handler of the same server.
  virtual Status Check() const = 0;
  virtual HttpServerCounters Counters() const = 0;
  // The port listened on (useful with port 0).
  virtual int port() const = 0;
};

}  // namespace tideslice::http
