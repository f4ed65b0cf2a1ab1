// The only file in common/ that includes cpprestsdk (whose macro U breaks other headers).
#include <cpprest/http_client.h>
#include <cpprest/rawptrstream.h>
#include <pplx/threadpool.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/http/client.h"

namespace tideslice::http {

namespace {

using web::http::http_request;
using web::http::http_response;
using web::http::client::http_client;
using web::http::client::http_client_config;

// The bearer token, re-read from its file when the file changes (kubelet rotates projected
// service-account tokens well before they expire).
class TokenSource {
 public:
  explicit TokenSource(const ClientOptions& a) : token_(a.token), file_(a.token_file) {}
  std::string Get() {
    if (file_.empty()) return token_;
    struct stat st {};
    if (stat(file_.c_str(), &st) != 0) return token_;  // keep the last good token
    std::lock_guard<std::mutex> lock(mu_);
    if (st.st_mtim.tv_sec != mtime_.tv_sec || st.st_mtim.tv_nsec != mtime_.tv_nsec || st.st_size != size_) {
      std::ifstream in(file_);
      std::stringstream ss;
      ss << in.rdbuf();
      std::string t = ss.str();
      while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
      if (!t.empty()) {
        token_ = t;
        mtime_ = st.st_mtim;
        size_ = st.st_size;
      }
    }
    return token_;
  }

 private:
  std::mutex mu_;
  std::string token_;
  std::string file_;
  timespec mtime_{};
  off_t size_ = -1;
};

http_client_config MakeConfig(const ClientOptions& a, int timeout_s) {
  http_client_config config;
  config.set_timeout(std::chrono::seconds(timeout_s));
  if (a.server.rfind("http://", 0) != 0) {
    config.set_validate_certificates(!a.insecure_skip_tls_verify);
    std::string ca = a.ca_pem, cert = a.client_cert_pem, key = a.client_key_pem;
    config.set_ssl_context_callback([ca, cert, key](boost::asio::ssl::context& ctx) {
      if (!ca.empty()) ctx.add_certificate_authority(boost::asio::buffer(ca.data(), ca.size()));
      if (!cert.empty()) {
        ctx.use_certificate_chain(boost::asio::buffer(cert.data(), cert.size()));
        ctx.use_private_key(boost::asio::buffer(key.data(), key.size()), boost::asio::ssl::context::pem);
      }
    });
  }
  return config;
}

class CppRestClient : public Client {
 public:
  explicit CppRestClient(const ClientOptions& a)
      : server_(a.server),
        peer_(a.peer),
        tokens_(a),
        client_(web::uri(a.server), MakeConfig(a, a.request_timeout_s)),
        stream_client_(web::uri(a.server), MakeConfig(a, a.stream_idle_timeout_s)) {}

  StatusOr<Reply> Send(const Request& r) override {
    if (r.timeout.count() > 0) return SendWithin(r);
    try {
      http_response resp = client_.request(Build(r)).get();
      Reply reply;
      reply.status = resp.status_code();
      reply.retry_after_seconds = RetryAfter(resp);
      reply.body = resp.extract_utf8string(true).get();
      return reply;
    } catch (const std::exception& e) {
      return Status::Unavailable("cannot reach " + peer_ + " at " + server_ + " (" + r.method + " " +
                                 PathOnly(r.path) + "): " + e.what());
    }
  }

  // A call with its own deadline: the request is cancelled when the deadline passes, and the
  // caller is answered then even if the connection hangs (cpprest's own timeout is per read).
  StatusOr<Reply> SendWithin(const Request& r) {
    struct Shared {
      std::mutex mu;
      std::condition_variable cv;
      bool done = false;
      StatusOr<Reply> result = Status::Unavailable("no answer");
    };
    auto shared = std::make_shared<Shared>();
    pplx::cancellation_token_source cts;
    const std::string what = r.method + " " + PathOnly(r.path);
    const std::string server = server_, peer = peer_;
    try {
      client_.request(Build(r), cts.get_token())
          .then([](http_response resp) {
            return resp.extract_utf8string(true).then([resp](std::string body) mutable {
              Reply reply;
              reply.status = resp.status_code();
              reply.retry_after_seconds = RetryAfter(resp);
              reply.body = std::move(body);
              return reply;
            });
          })
          .then([shared, what, server, peer](pplx::task<Reply> t) {
            StatusOr<Reply> result = Status::Unavailable("no answer");
            try {
              result = t.get();
            } catch (const std::exception& e) {
              result = Status::Unavailable("cannot reach " + peer + " at " + server + " (" + what + "): " + e.what());
            }
            std::lock_guard<std::mutex> lock(shared->mu);
            shared->result = std::move(result);
            shared->done = true;
            shared->cv.notify_all();
          });
    } catch (const std::exception& e) {
      return Status::Unavailable("cannot reach " + peer_ + " at " + server_ + " (" + what + "): " + e.what());
    }
    std::unique_lock<std::mutex> lock(shared->mu);
    if (!shared->cv.wait_for(lock, r.timeout, [&] { return shared->done; })) {
      cts.cancel();
      return Status::Unavailable(peer_ + " at " + server_ + " did not answer " + what + " within " +
                                 std::to_string(r.timeout.count()) + " ms");
    }
    return std::move(shared->result);
  }

  StatusOr<Reply> Stream(const Request& r, const std::function<bool(std::string_view)>& on_line,
                            CancelFlag* cancel) override {
    pplx::cancellation_token_source cts;
    int id = cancel ? cancel->Register([cts] { cts.cancel(); }) : -1;
    struct Unreg {
      CancelFlag* c;
      int id;
      ~Unreg() {
        if (c) c->Unregister(id);
      }
    } unreg{cancel, id};
    try {
      http_response resp = stream_client_.request(Build(r), cts.get_token()).get();
      Reply reply;
      reply.status = resp.status_code();
      reply.retry_after_seconds = RetryAfter(resp);
      if (reply.status != 200) {
        reply.body = resp.extract_utf8string(true).get();
        return reply;
      }
      auto body = resp.body();
      std::string line;
      char buf[16384];
      while (true) {
        if (cancel && cancel->cancelled()) break;
        concurrency::streams::rawptr_buffer<uint8_t> target(reinterpret_cast<uint8_t*>(buf), sizeof buf);
        size_t n = body.read_line(target).get();
        // read_line stops at '\n' or when `target` is full; a full buffer is part of a longer line.
        line.append(buf, n);
        if (n == sizeof buf) continue;
        if (n == 0 && body.is_eof()) break;
        if (!line.empty() && !on_line(line)) break;
        line.clear();
      }
      return reply;
    } catch (const std::exception& e) {
      if (cancel && cancel->cancelled()) return Reply{200, "", 0};
      return Status::Unavailable("watch stream from " + server_ + " (" + PathOnly(r.path) + ") broke: " + e.what());
    }
  }

 private:
  static std::string PathOnly(const std::string& p) { return p.substr(0, p.find('?')); }

  static int RetryAfter(const http_response& resp) {
    auto it = resp.headers().find("Retry-After");
    if (it == resp.headers().end()) return 0;
    try {
      return std::max(0, std::stoi(it->second));
    } catch (...) {
      return 0;
    }
  }

  http_request Build(const Request& r) {
    http_request req(r.method);
    req.set_request_uri(r.path);
    req.headers().add("Accept", "application/json");
    req.headers().add("User-Agent", "tideslice/0.1");
    std::string token = tokens_.Get();
    if (!token.empty()) req.headers().add("Authorization", "Bearer " + token);
    if (!r.body.empty() || r.method == "POST" || r.method == "PUT" || r.method == "PATCH")
      req.set_body(r.body, r.content_type);
    return req;
  }

  std::string server_;
  std::string peer_;
  TokenSource tokens_;
  http_client client_;
  http_client stream_client_;
};

}  // namespace

bool ConfigureClientThreads(size_t threads) {
  try {
    crossplat::threadpool::initialize_with_threads(std::max<size_t>(1, threads));
    return true;
  } catch (const std::exception&) {
    return false;  // already initialised
  }
}

StatusOr<std::shared_ptr<Client>> NewCppRestClient(const ClientOptions& options) {
  try {
    return std::shared_ptr<Client>(std::make_shared<CppRestClient>(options));
  } catch (const std::exception& e) {
    return Status::InvalidArgument("server", "\"" + options.server + "\" is not a usable URL for " + options.peer +
                                                 ": " + e.what());
  }
}

}  // namespace tideslice::http
