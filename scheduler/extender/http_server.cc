// The only file of the scheduler that includes cpprestsdk's listener.
#include "scheduler/extender/http_server.h"

#include <cpprest/http_listener.h>
#include <pplx/threadpool.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <set>
#include <thread>

namespace tideslice::extender {
namespace {

using web::http::http_request;
using web::http::methods;
using web::http::experimental::listener::http_listener;
using web::http::experimental::listener::http_listener_config;

// A fixed pool for handlers that block (bind waits for its node's previous pod).
class WorkerPool {
 public:
  explicit WorkerPool(int n) {
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { Run(); });
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
      f();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

http_listener_config ListenerConfig(const HttpServerOptions& o) {
  http_listener_config config;
  if (!o.tls_cert_file.empty()) {
    std::string cert = o.tls_cert_file, key = o.tls_key_file;
    config.set_ssl_context_callback([cert, key](boost::asio::ssl::context& ctx) {
      ctx.set_options(boost::asio::ssl::context::default_workarounds | boost::asio::ssl::context::no_sslv2 |
                      boost::asio::ssl::context::no_sslv3 | boost::asio::ssl::context::no_tlsv1 |
                      boost::asio::ssl::context::no_tlsv1_1);
      ctx.use_certificate_chain_file(cert);
      ctx.use_private_key_file(key, boost::asio::ssl::context::pem);
    });
  }
  return config;
}

class CppRestServer : public HttpServer {
 public:
  CppRestServer(const std::string& address, RouteHandler handler, HttpServerOptions options)
      : listener_(web::uri(utility::conversions::to_string_t(address)), ListenerConfig(options)),
        handler_(std::move(handler)),
        options_(std::move(options)),
        pool_(options_.blocking ? std::make_unique<WorkerPool>(options_.workers) : nullptr) {
    listener_.support([this](http_request req) { Handle(std::move(req)); });
  }
  ~CppRestServer() override { Stop(); }

  Status Open() {
    try {
      listener_.open().wait();
    } catch (const std::exception& e) {
      return Status::Unavailable(std::string("cannot listen on ") + listener_.uri().to_string() + ": " + e.what());
    }
    open_ = true;
    return Status::Ok();
  }

  void Stop() override {
    if (!open_) return;
    open_ = false;
    // Let replies still in flight finish (bounded), so no task outlives the listener: tasks cut
    // off at exit are what LeakSanitizer reports inside libcpprest.
    for (int i = 0; i < 5000 && in_flight_.load() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    try {
      listener_.close().wait();
    } catch (...) {
    }
    pool_.reset();
  }

 private:
  void Handle(http_request req) {
    in_flight_++;
    auto length = req.headers().content_length();
    if (length > options_.max_body_bytes) {
      Reply(req, {413, R"({"Error":"request body too large"})"});
      return;
    }
    std::string method = req.method();
    std::string path = req.relative_uri().path();
    if (path.empty() || path.front() != '/') path.insert(path.begin(), '/');
    req.extract_string(/*ignore_content_type=*/true)
        .then([this, req, method, path](pplx::task<utility::string_t> body_task) mutable {
          HttpCall call{method, path, ""};
          try {
            call.body = utility::conversions::to_utf8string(body_task.get());
          } catch (const std::exception&) {
            Reply(req, {400, R"({"Error":"cannot read the request body"})"});
            return;
          }
          if (call.body.size() > options_.max_body_bytes) {
            Reply(req, {413, R"({"Error":"request body too large"})"});
            return;
          }
          if (pool_ && options_.blocking(call)) {
            pool_->Post([this, req, call]() mutable { Reply(req, handler_(call)); });
            return;
          }
          Reply(req, handler_(call));
        });
  }

  // Every request ends here exactly once; in_flight_ drops when cpprest has sent the reply.
  void Reply(http_request& req, const HttpReply& r) {
    web::http::http_response resp(static_cast<web::http::status_code>(r.status));
    resp.set_body(r.body, r.content_type);
    req.reply(resp).then([this](pplx::task<void> t) {
      try {
        t.get();
      } catch (...) {  // the client went away; nothing to do
      }
      in_flight_--;
    });
  }

  http_listener listener_;
  RouteHandler handler_;
  HttpServerOptions options_;
  std::unique_ptr<WorkerPool> pool_;
  bool open_ = false;
  std::atomic<int> in_flight_{0};
};

}  // namespace

bool ConfigureHttpThreads(size_t threads) {
  try {
    crossplat::threadpool::initialize_with_threads(std::max<size_t>(1, threads));
    return true;
  } catch (const std::exception&) {
    return false;  // already initialised
  }
}

StatusOr<std::unique_ptr<HttpServer>> HttpServer::StartRoutes(const std::string& address, RouteHandler handler,
                                                              HttpServerOptions options) {
  if (address.rfind("https://", 0) == 0 && (options.tls_cert_file.empty() || options.tls_key_file.empty()))
    return Status::InvalidArgument("listen address", address + " is https:// but no TLS certificate and key were given");
  std::unique_ptr<CppRestServer> server;
  try {
    server = std::make_unique<CppRestServer>(address, std::move(handler), std::move(options));
  } catch (const std::exception& e) {
    return Status::InvalidArgument("listen address", std::string("\"") + address + "\" is not a valid URL: " + e.what());
  }
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

}  // namespace tideslice::extender
