// The HTTP listener: Boost.Beast over Boost.Asio, asio::ssl (OpenSSL) for https://.
//
// Why not cpprestsdk's http_listener (used here before): it cannot be bounded. A TCP connection
// closed before the TLS handshake leaked a descriptor and ~110 KB, it had no header, body or idle
// deadlines (slowloris), no connection caps, and a handler exception inside one of its
// continuations killed the process. Here every connection is one strand running
//   [TLS handshake] -> (idle wait) -> header -> body -> handler -> write -> (keep-alive: repeat)
// each phase under its own deadline (beast::tcp_stream's timer closes the socket at expiry), one
// request at a time, so replies keep the order of the requests.
#include "common/http/server.h"

#include "common/http/client.h"

#include <openssl/ssl.h>
#include <sys/stat.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/log/log.h"


namespace tideslice::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

std::atomic<int> g_io_threads{2};

// TLS 1.2: ECDHE key exchange (forward secrecy) with AEAD ciphers only. TLS 1.3's suites are all
// forward-secret AEAD; they are listed to pin the set against a changed system default.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kTls13Suites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

// No I/O thread ran for this long: every one of them is stuck (in a handler).
constexpr auto kStallLimit = std::chrono::seconds(30);
constexpr auto kHeartbeat = std::chrono::seconds(1);
// After an error reply the rest of the request is read and dropped for a moment before the close,
// so the client's kernel does not answer our close with a reset that discards the reply.
constexpr auto kLingerTime = std::chrono::seconds(1);
constexpr size_t kLingerBytes = 1 << 20;

std::string ErrorJson(const std::string& message) { return R"({"Error":")" + message + R"("})"; }

// A fixed pool for handlers that block (bind waits for its node's previous pod).
class WorkerPool {
 public:
  explicit WorkerPool(int n) {
    for (int i = 0; i < std::max(1, n); ++i) threads_.emplace_back([this] { Run(); });
  }
  ~WorkerPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void Post(std::function<void()> f) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(f));
    }
    cv_.notify_one();
  }

 private:
  void Run() {
    while (true) {
      std::function<void()> f;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stop_ and drained
        f = std::move(queue_.front());
        queue_.pop_front();
      }
      f();  // tasks catch their own exceptions (Listener::Invoke)
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

struct Endpoint {
  bool tls = false;
  std::string host, port, prefix;  // prefix: "" or "/sched" (no trailing '/')
};

StatusOr<Endpoint> ParseAddress(const std::string& address) {
  Endpoint e;
  std::string rest;
  if (address.rfind("http://", 0) == 0) {
    rest = address.substr(7);
  } else if (address.rfind("https://", 0) == 0) {
    e.tls = true;
    rest = address.substr(8);
  } else {
    return Status::InvalidArgument("listen address", "\"" + address + "\" is not an http:// or https:// URL");
  }
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  e.prefix = slash == std::string::npos ? "" : rest.substr(slash);
  while (!e.prefix.empty() && e.prefix.back() == '/') e.prefix.pop_back();
  if (!authority.empty() && authority.front() == '[') {  // [::1]:8443
    auto close = authority.find(']');
    if (close == std::string::npos)
      return Status::InvalidArgument("listen address", "\"" + address + "\" has an unterminated IPv6 address");
    e.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':') e.port = authority.substr(close + 2);
  } else {
    auto colon = authority.rfind(':');
    e.host = authority.substr(0, colon);
    if (colon != std::string::npos) e.port = authority.substr(colon + 1);
  }
  if (e.host.empty()) return Status::InvalidArgument("listen address", "\"" + address + "\" has no host");
  if (e.port.empty()) e.port = e.tls ? "443" : "80";
  if (e.port.find_first_not_of("0123456789") != std::string::npos || e.port.size() > 5 || std::stoi(e.port) > 65535)
    return Status::InvalidArgument("listen address", "\"" + address + "\" has an invalid port");
  return e;
}

// Identity of a PEM file as seen on disk: any change means "re-read it".
struct FileId {
  int64_t mtime_ns = -1, size = -1;
  uint64_t inode = 0, dev = 0;
  bool operator==(const FileId&) const = default;
};

FileId StatFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec, static_cast<int64_t>(st.st_size),
          static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_dev)};
}

StatusOr<std::shared_ptr<asio::ssl::context>> LoadTls(const std::string& cert, const std::string& key) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX* h = ctx->native_handle();
  SSL_CTX_set_min_proto_version(h, TLS1_2_VERSION);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                   asio::ssl::context::no_compression | asio::ssl::context::single_dh_use);
  // Client-initiated renegotiation costs the server a handshake per request of a client.
  SSL_CTX_set_options(h, SSL_OP_NO_RENEGOTIATION);
  // Idle connections give their read/write buffers (~34 KB) back.
  SSL_CTX_set_mode(h, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_sess_set_cache_size(h, 1024);
  if (SSL_CTX_set_cipher_list(h, kTls12Ciphers) != 1 || SSL_CTX_set_ciphersuites(h, kTls13Suites) != 1)
    return Status::Internal("this OpenSSL accepts none of the TLS ciphers we allow");
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(cert, ec);
  if (ec) return Status::InvalidArgument("tls_cert_file", "cannot load the certificate " + cert + ": " + ec.message());
  ctx->use_private_key_file(key, asio::ssl::context::pem, ec);
  if (ec) return Status::InvalidArgument("tls_key_file", "cannot load the private key " + key + ": " + ec.message());
  if (SSL_CTX_check_private_key(h) != 1)
    return Status::InvalidArgument("tls_key_file", "the private key " + key + " does not match the certificate " + cert);
  return ctx;
}

class ConnectionBase {
 public:
  virtual ~ConnectionBase() = default;
  virtual void Close() = 0;  // from any thread
};

class Listener;

template <bool kTls>
class Connection;

class Listener final : public HttpServer {
 public:
  Listener(Endpoint endpoint, RouteHandler handler, HttpServerOptions options)
      : endpoint_(std::move(endpoint)),
        handler_(std::move(handler)),
        options_(std::move(options)),
        pool_(options_.blocking ? std::make_unique<WorkerPool>(options_.workers) : nullptr),
        ioc_(std::make_unique<asio::io_context>()) {}
  ~Listener() override {
    Stop();
    // After a failed Open (Stop did nothing): I/O objects go before their context.
    heartbeat_.reset();
    backoff_timer_.reset();
    acceptor_.reset();
    ioc_.reset();
  }

  Status Open() {
    if (endpoint_.tls) {
      auto ctx = LoadTls(options_.tls_cert_file, options_.tls_key_file);
      if (!ctx.ok()) return ctx.status();
      tls_ = *ctx;
      tls_ids_ = {StatFile(options_.tls_cert_file), StatFile(options_.tls_key_file)};
      tls_checked_ = Clock::now();
    }
    boost::system::error_code ec;
    tcp::resolver resolver(*ioc_);
    auto results = resolver.resolve(endpoint_.host, endpoint_.port, tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    if (ec || results.empty())
      return Status::Unavailable("cannot listen on " + Where() + ": cannot resolve " + endpoint_.host + ": " + ec.message());
    // The first address of the host that takes the listener ("localhost" may resolve to ::1 first
    // on a node without IPv6).
    acceptor_ = std::make_unique<tcp::acceptor>(asio::make_strand(*ioc_));
    for (const auto& entry : results) {
      tcp::endpoint ep = entry.endpoint();
      boost::system::error_code ignored;
      acceptor_->close(ignored);
      ec = {};
      acceptor_->open(ep.protocol(), ec);
      if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec) acceptor_->bind(ep, ec);
      if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
      if (!ec) break;
    }
    if (ec) return Status::Unavailable("cannot listen on " + Where() + ": " + ec.message());
    port_ = acceptor_->local_endpoint(ec).port();
    backoff_timer_ = std::make_unique<asio::steady_timer>(acceptor_->get_executor());
    heartbeat_ = std::make_unique<asio::steady_timer>(*ioc_);
    last_tick_ns_ = NowNs();
    Beat();
    DoAccept();
    int threads = options_.io_threads > 0 ? options_.io_threads : g_io_threads.load();
    for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { RunIo(); });
    open_ = true;
    return Status::Ok();
  }

  void Stop() override {
    if (!open_ || stopped_.exchange(true)) return;
    asio::post(acceptor_->get_executor(), [this] {
      boost::system::error_code ignored;
      acceptor_->close(ignored);
      backoff_timer_->cancel();
    });
    // Let replies in flight finish (bounded) before the connections are cut.
    for (int i = 0; i < 5000 && in_flight_.load() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::vector<std::shared_ptr<ConnectionBase>> live;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [id, weak] : live_)
        if (auto c = weak.lock()) live.push_back(std::move(c));
    }
    for (auto& c : live) c->Close();
    live.clear();
    ioc_->stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
    // Only now: an I/O thread may hand a request to the pool until it stops. What was queued still
    // runs; its replies are posted to the stopped context.
    pool_.reset();
    // I/O objects go before their context. Destroying the context destroys the handlers still
    // queued and the operations still pending, and with them the connections they hold (one
    // accepted while Stop ran, one whose Close never ran): no socket outlives Stop, and the port
    // is free once it returns.
    heartbeat_.reset();
    backoff_timer_.reset();
    acceptor_.reset();
    ioc_.reset();
  }

  Status Check() const override {
    std::string counts = CountersText();
    if (!open_ || stopped_) return Status::Unavailable("the HTTP listener on " + Where() + " is stopped");
    if (accept_failing_) {
      std::lock_guard<std::mutex> lock(mu_);
      return Status::Unavailable("the HTTP listener on " + Where() + " cannot accept connections (" + last_accept_error_ +
                                 "); retrying; " + counts);
    }
    if (NowNs() - last_tick_ns_.load() > std::chrono::nanoseconds(kStallLimit).count())
      return Status::Unavailable("no I/O thread of the HTTP listener on " + Where() + " ran for " +
                                 std::to_string(kStallLimit.count()) + " s; " + counts);
    if (open_connections_.load() >= options_.max_connections)
      return Status::ResourceExhausted("the HTTP listener on " + Where() + " is at its cap of " +
                                       std::to_string(options_.max_connections) + " connections; " + counts);
    return Status::Ok();
  }

  HttpServerCounters Counters() const override {
    HttpServerCounters c;
    c.accepted = accepted_.load();
    c.rejected_over_cap = rejected_.load();
    c.timed_out = timed_out_.load();
    c.handshake_failures = handshake_failures_.load();
    c.handler_exceptions = handler_exceptions_.load();
    c.accept_errors = accept_errors_.load();
    c.requests = requests_.load();
    c.open_connections = open_connections_.load();
    return c;
  }

  int port() const override { return port_; }

  // --- used by connections ---
  const HttpServerOptions& options() const { return options_; }
  const std::string& prefix() const { return endpoint_.prefix; }
  WorkerPool* pool() { return pool_.get(); }
  void CountTimeout() { timed_out_++; }
  void CountHandshakeFailure() { handshake_failures_++; }
  void RequestStarted() { in_flight_++; }
  void RequestDone() {
    in_flight_--;
    requests_++;
  }

  // The handler, guarded: an exception is a 500 and a log line, never a dead process.
  HttpReply Invoke(const HttpCall& call) {
    std::string what;
    try {
      return handler_(call);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
      what = "an exception not derived from std::exception";
    }
    handler_exceptions_++;
    log::Error("http.handler_exception", "a request handler threw; answered 500",
               {{"listener", Where()}, {"method", call.method}, {"path", call.path}, {"exception", what}});
    return {500, ErrorJson("internal error while handling the request")};
  }

  bool IsBlocking(const HttpCall& call) {
    if (!pool_) return false;
    try {
      return options_.blocking(call);
    } catch (...) {
      return false;  // on this thread then; the handler itself is still guarded
    }
  }

  void Release(uint64_t id, const std::string& client) {
    std::lock_guard<std::mutex> lock(mu_);
    live_.erase(id);
    auto it = per_client_.find(client);
    if (it != per_client_.end() && --it->second <= 0) per_client_.erase(it);
    open_connections_--;
  }

 private:
  std::string Where() const { return (endpoint_.tls ? "https://" : "http://") + endpoint_.host + ":" + endpoint_.port + endpoint_.prefix; }

  static int64_t NowNs() { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); }

  std::string CountersText() const {
    auto c = Counters();
    return "connections open " + std::to_string(c.open_connections) + ", accepted " + std::to_string(c.accepted) +
           ", rejected over the cap " + std::to_string(c.rejected_over_cap) + ", timed out " + std::to_string(c.timed_out) +
           ", failed TLS handshakes " + std::to_string(c.handshake_failures) + ", handler exceptions " +
           std::to_string(c.handler_exceptions) + ", accept errors " + std::to_string(c.accept_errors);
  }

  void RunIo() {
    // A handler exception that escapes a completion handler unwinds out of run(); the loop
    // resumes, so the listener keeps serving (the request guard makes this a last resort).
    while (true) {
      try {
        ioc_->run();
        return;
      } catch (const std::exception& e) {
        log::Error("http.io_exception", "an exception escaped an I/O handler; continuing", {{"listener", Where()}, {"exception", e.what()}});
      } catch (...) {
        log::Error("http.io_exception", "an exception escaped an I/O handler; continuing", {{"listener", Where()}});
      }
    }
  }

  void Beat() {
    last_tick_ns_ = NowNs();
    heartbeat_->expires_after(kHeartbeat);
    heartbeat_->async_wait([this](boost::system::error_code ec) {
      if (!ec && !stopped_) Beat();
    });
  }

  void DoAccept() {
    acceptor_->async_accept(asio::make_strand(*ioc_), [this](boost::system::error_code ec, tcp::socket socket) {
      OnAccept(ec, std::move(socket));
    });
  }

  void OnAccept(boost::system::error_code ec, tcp::socket socket) {
    if (stopped_ || ec == asio::error::operation_aborted) return;
    if (ec) {
      // Out of descriptors or memory (or a connection reset before accept): pause and retry, so
      // the loop neither dies nor spins.
      accept_errors_++;
      {
        std::lock_guard<std::mutex> lock(mu_);
        last_accept_error_ = ec.message();
      }
      accept_failing_ = true;
      change_log_.Record("accept", ec.message(), log::Level::kWarn, "http.accept_failed",
                         "the HTTP listener cannot accept connections; retrying",
                         {{"listener", Where()}, {"error", ec.message()}}, /*log_first=*/true);
      backoff_ = std::min(std::max(backoff_ * 2, std::chrono::milliseconds(10)), std::chrono::milliseconds(1000));
      backoff_timer_->expires_after(backoff_);
      backoff_timer_->async_wait([this](boost::system::error_code wait_ec) {
        if (!wait_ec && !stopped_) DoAccept();
      });
      return;
    }
    if (accept_failing_) {
      accept_failing_ = false;
      backoff_ = std::chrono::milliseconds(0);
      change_log_.Record("accept", "ok", log::Level::kInfo, "http.accept_recovered", "the HTTP listener accepts connections again",
                         {{"listener", Where()}});
    }
    try {
      Admit(std::move(socket));
    } catch (const std::exception& e) {  // e.g. bad_alloc: drop this connection, keep accepting
      log::Error("http.admit_failed", "cannot serve a new connection", {{"listener", Where()}, {"error", e.what()}});
    }
    DoAccept();
  }

  void Admit(tcp::socket socket);
  void Register(uint64_t id, const std::shared_ptr<ConnectionBase>& c) {
    std::lock_guard<std::mutex> lock(mu_);
    live_[id] = c;
  }

  Endpoint endpoint_;
  RouteHandler handler_;
  HttpServerOptions options_;
  std::unique_ptr<WorkerPool> pool_;

  mutable std::mutex mu_;  // live_, per_client_, next_id_, last_accept_error_, tls_*
  std::unordered_map<uint64_t, std::weak_ptr<ConnectionBase>> live_;
  std::unordered_map<std::string, int> per_client_;
  uint64_t next_id_ = 0;
  std::string last_accept_error_;
  std::shared_ptr<asio::ssl::context> tls_;
  std::pair<FileId, FileId> tls_ids_;
  Clock::time_point tls_checked_;

  std::atomic<uint64_t> accepted_{0}, rejected_{0}, timed_out_{0}, handshake_failures_{0}, handler_exceptions_{0},
      accept_errors_{0}, requests_{0};
  std::atomic<int64_t> open_connections_{0};
  std::atomic<int> in_flight_{0};
  std::atomic<int64_t> last_tick_ns_{0};
  std::atomic<bool> accept_failing_{false}, rejecting_{false}, stopped_{false};
  std::chrono::milliseconds backoff_{0};  // acceptor strand only
  log::ChangeLog change_log_;
  bool open_ = false;
  int port_ = 0;

  std::shared_ptr<asio::ssl::context> CurrentTls();

  // Declared last: connections reach into the members above until the context is gone (Stop).
  std::unique_ptr<asio::io_context> ioc_;
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::unique_ptr<asio::steady_timer> backoff_timer_, heartbeat_;
  std::vector<std::thread> threads_;
};

// One connection: one request at a time, each phase under a deadline.
template <bool kTls>
class Connection final : public ConnectionBase, public std::enable_shared_from_this<Connection<kTls>> {
  using Stream = std::conditional_t<kTls, beast::ssl_stream<beast::tcp_stream>, beast::tcp_stream>;

 public:
  // TLS
  Connection(Listener* owner, uint64_t id, std::string client, tcp::socket socket, std::shared_ptr<asio::ssl::context> tls)
    requires kTls
      : owner_(owner), id_(id), client_(std::move(client)), tls_(std::move(tls)),
        stream_(beast::tcp_stream(std::move(socket)), *tls_) {}
  // plain
  Connection(Listener* owner, uint64_t id, std::string client, tcp::socket socket)
    requires(!kTls)
      : owner_(owner), id_(id), client_(std::move(client)), stream_(std::move(socket)) {}
  ~Connection() override { owner_->Release(id_, client_); }

  void Start() {
    asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] { self->Begin(); });
  }

  void Close() override {
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] { self->Shut(); });
  }

 private:
  beast::tcp_stream& tcp() { return beast::get_lowest_layer(stream_); }
  const HttpServerOptions& opt() const { return owner_->options(); }

  void Begin() {
    if constexpr (kTls) {
      tcp().expires_after(opt().tls_handshake_timeout);
      stream_.async_handshake(asio::ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
        if (ec) {
          self->owner_->CountHandshakeFailure();
          if (ec == beast::error::timeout) self->owner_->CountTimeout();
          self->Shut();
          return;
        }
        self->ReadHeader();
      });
    } else {
      ReadHeader();
    }
  }

  // Keep-alive: wait for the first byte of the next request under the idle deadline; the header
  // deadline starts with it.
  void WaitForNext() {
    if (buffer_.size() > 0) return ReadHeader();  // pipelined: already here
    tcp().expires_after(opt().idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096), [self = this->shared_from_this()](beast::error_code ec, size_t n) {
      if (ec) return self->OnReadError(ec);
      self->buffer_.commit(n);
      self->ReadHeader();
    });
  }

  void ReadHeader() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(std::min<size_t>(opt().max_header_bytes, UINT32_MAX)));
    parser_->body_limit(opt().max_body_bytes);
    tcp().expires_after(opt().header_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->OnReadError(ec);
      self->OnHeader();
    });
  }

  void OnHeader() {
    if (parser_->is_done()) return Dispatch();
    tcp().expires_after(opt().body_timeout);
    auto& req = parser_->get();
    if (beast::iequals(req[bhttp::field::expect], "100-continue")) {
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(stream_, asio::buffer(kContinue), [self = this->shared_from_this()](beast::error_code ec, size_t) {
        if (ec) return self->OnReadError(ec);
        self->ReadBody();
      });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    bhttp::async_read(stream_, buffer_, *parser_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->OnReadError(ec);
      self->Dispatch();
    });
  }

  void OnReadError(beast::error_code ec) {
    if (ec == beast::error::timeout) {
      owner_->CountTimeout();
      return Shut();
    }
    if (ec == bhttp::error::body_limit) return Fail(413, "request body too large");
    if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow)
      return Fail(431, "request header too large");
    if (ec.category() == beast::error_code(bhttp::error::end_of_stream).category() && ec != bhttp::error::end_of_stream &&
        ec != bhttp::error::partial_message)
      return Fail(400, "malformed HTTP request");
    Shut();  // the client went away (eof, reset, TLS error)
  }

  void Dispatch() {
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    HttpCall call;
    call.method = std::string(req.method_string());
    std::string_view target(req.target().data(), req.target().size());
    target = target.substr(0, target.find_first_of("?#"));
    const std::string& prefix = owner_->prefix();
    owner_->RequestStarted();
    if (target.substr(0, prefix.size()) != prefix ||
        (target.size() > prefix.size() && target[prefix.size()] != '/')) {
      Write({404, ErrorJson("not found")});
      return;
    }
    call.path = std::string(target.substr(prefix.size()));
    if (call.path.empty()) call.path = "/";
    call.body = std::move(req.body());
    parser_.reset();
    if (owner_->IsBlocking(call)) {
      // Off the I/O threads; the reply comes back to this connection's strand.
      owner_->pool()->Post([self = this->shared_from_this(), call = std::move(call)]() mutable {
        HttpReply reply = self->owner_->Invoke(call);
        asio::post(self->stream_.get_executor(), [self, reply = std::move(reply)]() mutable { self->Write(std::move(reply)); });
      });
      return;
    }
    Write(owner_->Invoke(call));
  }

  // An answer the server makes itself for a request it cannot read to the end: then the close.
  void Fail(int status, const std::string& message) {
    keep_alive_ = false;
    version_ = parser_ ? parser_->get().version() : 11;
    if (version_ != 10 && version_ != 11) version_ = 11;
    owner_->RequestStarted();
    Write({status, ErrorJson(message)});
  }

  void Write(HttpReply reply) {
    if (reply.status < 100 || reply.status > 999) reply = {500, ErrorJson("the handler answered an invalid HTTP status")};
    response_.emplace();
    response_->version(version_);
    response_->result(static_cast<unsigned>(reply.status));
    response_->set(bhttp::field::content_type, reply.content_type);
    response_->body() = std::move(reply.body);
    response_->keep_alive(keep_alive_);
    response_->prepare_payload();
    tcp().expires_after(opt().write_timeout);
    bhttp::async_write(stream_, *response_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
      self->owner_->RequestDone();
      self->response_.reset();
      if (ec) {
        if (ec == beast::error::timeout) self->owner_->CountTimeout();
        return self->Shut();
      }
      if (!self->keep_alive_) return self->Linger();
      self->WaitForNext();
    });
  }

  // Half-close, then drop what the client still sends for a moment (bounded), then close.
  void Linger() {
    beast::error_code ignored;
    tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    tcp().expires_after(kLingerTime);
    DrainSome();
  }
  void DrainSome() {
    buffer_.clear();
    tcp().async_read_some(buffer_.prepare(4096), [self = this->shared_from_this()](beast::error_code ec, size_t n) {
      self->drained_ += n;
      if (ec || self->drained_ > kLingerBytes) return self->Shut();
      self->DrainSome();
    });
  }

  void Shut() {
    beast::error_code ignored;
    tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
    tcp().close();
  }

  Listener* owner_;
  uint64_t id_;
  std::string client_;
  std::shared_ptr<asio::ssl::context> tls_;  // kept alive across a certificate reload
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::response<bhttp::string_body>> response_;
  bool keep_alive_ = true;
  unsigned version_ = 11;
  size_t drained_ = 0;
};

std::shared_ptr<asio::ssl::context> Listener::CurrentTls() {
  std::lock_guard<std::mutex> lock(mu_);
  auto now = Clock::now();
  if (now - tls_checked_ < options_.tls_reload_interval) return tls_;
  tls_checked_ = now;
  std::pair<FileId, FileId> ids{StatFile(options_.tls_cert_file), StatFile(options_.tls_key_file)};
  if (ids == tls_ids_) return tls_;
  // cert-manager writes the certificate and the key one after the other: a pair that does not
  // match yet is tried again at the next check, the previous one staying in use meanwhile.
  auto fresh = LoadTls(options_.tls_cert_file, options_.tls_key_file);
  if (!fresh.ok()) {
    change_log_.Record("tls", fresh.status().ToString(), log::Level::kWarn, "http.tls_reload_failed",
                       "the changed TLS certificate or key does not load; serving the previous one",
                       {{"listener", Where()}, {"error", fresh.status().ToString()}}, /*log_first=*/true);
    return tls_;
  }
  tls_ = *fresh;
  tls_ids_ = ids;
  // One line per reload; the ChangeLog also learns that the failure above (if any) is over.
  log::Fields fields{{"listener", Where()}, {"cert_file", options_.tls_cert_file}};
  if (!change_log_.Record("tls", "loaded", log::Level::kInfo, "http.tls_reloaded", "loaded the changed TLS certificate and key",
                          fields, /*log_first=*/true))
    log::Info("http.tls_reloaded", "loaded the changed TLS certificate and key", fields);
  return tls_;
}

void Listener::Admit(tcp::socket socket) {
  boost::system::error_code ec;
  auto remote = socket.remote_endpoint(ec);
  if (ec) return;  // already gone
  std::string client = remote.address().to_string();
  uint64_t id = 0;
  bool over = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = per_client_.find(client);
    int from_client = it == per_client_.end() ? 0 : it->second;
    if (open_connections_.load() >= options_.max_connections || from_client >= options_.max_connections_per_client) {
      over = true;
    } else {
      per_client_[client]++;
      open_connections_++;
      id = ++next_id_;
    }
  }
  if (over) {
    rejected_++;
    // An immediate reset: the slot and the descriptor are free now, with no TIME_WAIT here.
    socket.set_option(asio::socket_base::linger(true, 0), ec);
    socket.close(ec);
    if (!rejecting_.exchange(true))
      change_log_.Record("cap", "rejecting", log::Level::kWarn, "http.connection_cap",
                         "refusing new connections: at the connection cap (overall or for one client address)",
                         {{"listener", Where()}, {"client", client}, {"max_connections", std::to_string(options_.max_connections)},
                          {"max_connections_per_client", std::to_string(options_.max_connections_per_client)}},
                         /*log_first=*/true);
    return;
  }
  if (rejecting_.exchange(false))
    change_log_.Record("cap", "accepting", log::Level::kInfo, "http.connection_cap", "accepting new connections again",
                       {{"listener", Where()}});
  accepted_++;
  socket.set_option(tcp::no_delay(true), ec);
  std::shared_ptr<ConnectionBase> base;
  try {
    if (endpoint_.tls) {
      auto c = std::make_shared<Connection<true>>(this, id, client, std::move(socket), CurrentTls());
      base = c;
      Register(id, base);
      c->Start();
    } else {
      auto c = std::make_shared<Connection<false>>(this, id, client, std::move(socket));
      base = c;
      Register(id, base);
      c->Start();
    }
  } catch (...) {
    if (!base) Release(id, client);  // the connection was never built; its destructor will not run
    throw;
  }
}

}  // namespace

bool ConfigureHttpThreads(size_t threads) {
  g_io_threads = static_cast<int>(std::clamp<size_t>(threads, 1, 256));
  return ConfigureClientThreads(threads);
}

StatusOr<std::unique_ptr<HttpServer>> HttpServer::StartRoutes(const std::string& address, RouteHandler handler,
                                                              HttpServerOptions options) {
  auto endpoint = ParseAddress(address);
  if (!endpoint.ok()) return endpoint.status();
  if (endpoint->tls && (options.tls_cert_file.empty() || options.tls_key_file.empty()))
    return Status::InvalidArgument("listen address", address + " is https:// but no TLS certificate and key were given");
  if (!endpoint->tls) options.tls_cert_file.clear(), options.tls_key_file.clear();
  auto server = std::make_unique<Listener>(std::move(*endpoint), std::move(handler), std::move(options));
  TS_RETURN_IF_ERROR(server->Open());
  return std::unique_ptr<HttpServer>(std::move(server));
}

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& address, VerbHandler handler,
                                                        size_t max_body_bytes) {
  static const std::set<std::string> verbs = {"filter", "prioritize", "bind", "preempt"};
  HttpServerOptions options;
  options.max_body_bytes = max_body_bytes;
  options.blocking = [](const HttpCall& c) { return c.path == "/bind"; };
  return StartRoutes(
      address,
      [handler = std::move(handler)](const HttpCall& call) -> HttpReply {
        std::string verb = call.path.substr(1);
        if (!verbs.count(verb)) return {404, R"({"Error":"unknown extender verb; use filter, prioritize, bind or preempt"})"};
        if (call.method != "POST") return {405, R"({"Error":"extender verbs are POST"})"};
        return handler(verb, call.body);
      },
      std::move(options));
}

}  // namespace tideslice::http
