// The only file that includes cpprestsdk.
#include "scheduler/extender/http_server.h"

#include <cpprest/http_listener.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>

namespace tideslice::extender {
namespace {

using web::http::http_request;
using web::http::methods;
using web::http::status_codes;
using web::http::experimental::listener::http_listener;

class CppRestServer : public HttpServer {
 public:
  CppRestServer(const std::string& address, VerbHandler handler, size_t max_body)
      : listener_(web::uri(utility::conversions::to_string_t(address))),
        handler_(std::move(handler)),
        max_body_(max_body) {
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
    // Let replies still on cpprest's thread pool finish (bounded), so no task outlives the
    // listener: tasks cut off at exit are what LeakSanitizer reports inside libcpprest.
    for (int i = 0; i < 5000 && in_flight_.load() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    try {
      listener_.close().wait();
    } catch (...) {
    }
  }

 private:
  void Handle(http_request req) {
    in_flight_++;
    std::string path = req.relative_uri().path();  // relative to the listener's urlPrefix
    static const std::set<std::string> verbs = {"filter", "prioritize", "bind", "preempt"};
    std::string verb = path;
    while (!verb.empty() && verb.front() == '/') verb.erase(verb.begin());
    if (!verbs.count(verb)) {
      Reply(req, 404, R"({"Error":"unknown extender verb; use filter, prioritize, bind or preempt"})");
      return;
    }
    if (req.method() != methods::POST) {
      Reply(req, 405, R"({"Error":"extender verbs are POST"})");
      return;
    }
    auto length = req.headers().content_length();
    if (length > max_body_) {
      Reply(req, 413, R"({"Error":"request body too large"})");
      return;
    }
    req.extract_string(/*ignore_content_type=*/true)
        .then([this, req, verb](pplx::task<utility::string_t> body_task) mutable {
          std::string body;
          try {
            body = utility::conversions::to_utf8string(body_task.get());
          } catch (const std::exception&) {
            Reply(req, 400, std::string(R"({"Error":"cannot read the request body"})"));
            return;
          }
          if (body.size() > max_body_) {
            Reply(req, 413, R"({"Error":"request body too large"})");
            return;
          }
          HttpReply r = handler_(verb, body);
          Reply(req, r.status, r.body);
        });
  }

  // Every request ends here exactly once; in_flight_ drops when cpprest has sent the reply.
  void Reply(http_request& req, int status, const std::string& body) {
    web::http::http_response resp(static_cast<web::http::status_code>(status));
    resp.set_body(body, "application/json");
    req.reply(resp).then([this](pplx::task<void> t) {
      try {
        t.get();
      } catch (...) {  // the client went away; nothing to do
      }
      in_flight_--;
    });
  }

  http_listener listener_;
  VerbHandler handler_;
  size_t max_body_;
  bool open_ = false;
  std::atomic<int> in_flight_{0};
};

}  // namespace

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& address, VerbHandler handler,
                                                        size_t max_body_bytes) {
  std::unique_ptr<CppRestServer> server;
  try {
    server = std::make_unique<CppRestServer>(address, std::move(handler), max_body_bytes);
  } catch (const std::exception& e) {
    return Status::InvalidArgument("listen address", std::string("\"") + address + "\" is not a valid URL: " + e.what());
  }
  TS_RETURN_IF_ERROR(server->Open());
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace tideslice::extender
