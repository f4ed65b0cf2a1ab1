// The extender over real HTTP on 127.0.0.1, with bodies shaped exactly as kube-scheduler sends
// them (KUBE-WIRE.md §3.1b), and the listener's bounds (timeouts, caps, limits, TLS policy).
#include "common/http/server.h"

#include <openssl/ssl.h>
#include <poll.h>
#include <sys/resource.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "scheduler/extender/service.h"
#include "tests/scheduler/core/test_cluster.h"
#include "tests/support/test_support.h"
#include "tests/support/tls.h"

namespace tideslice::http {
namespace {

using ::testing::HasSubstr;
using extender::ServeVerb;
using extender::Verbs;

class ExtenderHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = std::make_shared<core::ClusterState>();
    cluster->AddNode(core::testing::MakeNode("n1", "H100-80G", 2));
    cluster->AddNode(core::testing::MakeNode("n2", "T4", 1));
    snapshot_ = cluster;
    port_ = testsupport::FreeLoopbackPort();
    auto s = HttpServer::Start("http://127.0.0.1:" + std::to_string(port_) + "/sched",
                               [this](const std::string& verb, const std::string& body) {
                                 return ServeVerb(verbs_, [this] { return snapshot_; }, verb, body);
                               });
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
  }
  void TearDown() override { server_->Stop(); }

  Verbs verbs_{catalog::Catalog::Builtin(), core::Context{core::Policy::kBinpack, nullptr, nullptr}};
  std::shared_ptr<const core::ClusterState> snapshot_;
  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
};

const char* kFilterBody =
    R"({"Pod":{"metadata":{"name":"p","namespace":"default","uid":"u-1"},"spec":{"containers":[{"name":"c","image":"x",)"
    R"("resources":{"limits":{"tideslice.io/vnpu":"1","tideslice.io/vnpu-memory":"20Gi"},"requests":{"tideslice.io/vnpu":"1","tideslice.io/vnpu-memory":"20Gi"}}}]},)"
    R"("status":{"phase":"Pending"}},"Nodes":null,"NodeNames":["n1","n2"]})";

TEST_F(ExtenderHttp, FilterAndPrioritizeAnswerAsKubeSchedulerExpects) {
  auto [status, body] = testsupport::HttpRequest(port_, "POST", "/sched/filter", kFilterBody);
  ASSERT_EQ(status, 200) << body;
  auto j = nlohmann::json::parse(body);
  EXPECT_TRUE(j["Nodes"].is_null());
  EXPECT_EQ(j["NodeNames"], nlohmann::json::array({"n1"}));
  EXPECT_THAT(j["FailedAndUnresolvableNodes"]["n2"].get<std::string>(), HasSubstr("eligible"));
  EXPECT_EQ(j["Error"], "");
  auto [pstatus, pbody] = testsupport::HttpRequest(port_, "POST", "/sched/prioritize", kFilterBody);
  ASSERT_EQ(pstatus, 200);
  auto p = nlohmann::json::parse(pbody);
  ASSERT_TRUE(p.is_array());
  for (const auto& h : p) {
    EXPECT_TRUE(h.contains("Host"));
    EXPECT_GE(h["Score"].get<int>(), 0);
    EXPECT_LE(h["Score"].get<int>(), 10);
  }
}

TEST_F(ExtenderHttp, ErrorsAreTwoHundredWithErrorOrClearStatusCodes) {
  auto [s1, b1] = testsupport::HttpRequest(port_, "POST", "/sched/filter", "{not json");
  EXPECT_EQ(s1, 200);
  EXPECT_THAT(nlohmann::json::parse(b1)["Error"].get<std::string>(), HasSubstr("not valid JSON"));
  auto [s2, b2] = testsupport::HttpRequest(port_, "POST", "/sched/bind", R"({"PodName":"p","PodNamespace":"default","PodUID":"u-1","Node":"n1"})");
  EXPECT_EQ(s2, 200);
  EXPECT_THAT(nlohmann::json::parse(b2)["Error"].get<std::string>(), HasSubstr("bind is not available"));
  EXPECT_EQ(testsupport::HttpRequest(port_, "GET", "/sched/filter", "").first, 405);
  EXPECT_EQ(testsupport::HttpRequest(port_, "POST", "/sched/frobnicate", "{}").first, 404);
  auto [s3, b3] = testsupport::HttpRequest(port_, "POST", "/sched/preempt", R"({"Pod":{"metadata":{"name":"p"}},"NodeNameToMetaVictims":{}})");
  EXPECT_EQ(s3, 200);
  EXPECT_EQ(b3, R"({"NodeNameToMetaVictims":{}})");
}

TEST_F(ExtenderHttp, ConcurrentRequestsAllSucceed) {
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i)
        if (testsupport::HttpRequest(port_, "POST", "/sched/filter", kFilterBody).first == 200) ok++;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 200);
}


// ---------------------------------------------------------------------------------------------
// The listener's bounds, over real sockets on 127.0.0.1. Timeouts are set short here (hundreds
// of milliseconds); assertions wait for the expected effect with generous bounds (seconds), so a
// busy machine makes them slower, never wrong.

constexpr auto kPatience = std::chrono::seconds(10);

std::unique_ptr<HttpServer> StartOrDie(const std::string& address, RouteHandler handler, HttpServerOptions options) {
  auto s = HttpServer::StartRoutes(address, std::move(handler), std::move(options));
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

HttpReply Echo(const HttpCall& c) { return {200, R"({"path":")" + c.path + R"("})"}; }

// Waits (bounded) until `done` holds; returns whether it did.
template <typename F>
bool WaitFor(F done, std::chrono::milliseconds limit = kPatience) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// A connected client socket (optionally from another loopback source address), with send and
// receive timeouts so a broken server fails the test instead of hanging it.
int Connect(int port, const char* source = nullptr, int rcvbuf = 0) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (source) {
    sockaddr_in s{};
    s.sin_family = AF_INET;
    inet_pton(AF_INET, source, &s.sin_addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&s), sizeof s) != 0) ADD_FAILURE() << "bind " << source;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) ADD_FAILURE() << "connect: " << strerror(errno);
  return fd;
}

bool Send(int fd, const std::string& data) {
  return send(fd, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
}

// Whether the server closed the connection (EOF or reset) within `limit`; data sent before the
// close is skipped.
bool ClosedWithin(int fd, std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  char buf[4096];
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return true;
  }
  return false;
}

std::string Request(const std::string& method, const std::string& path, const std::string& body = "",
                    const std::string& extra_headers = "") {
  return method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra_headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Reads one response (Content-Length framed) from a keep-alive connection; 0 if none came.
// With pipelined requests pass `pending`: bytes of the next responses are kept there.
int ReadResponse(int fd, std::string* body, std::string* pending = nullptr) {
  std::string buf = pending ? std::move(*pending) : std::string();
  char chunk[8192];
  size_t end;
  while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return 0;
    buf.append(chunk, static_cast<size_t>(n));
  }
  std::string head = buf.substr(0, end);
  std::string lower = head;
  for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  auto cl = lower.find("content-length:");
  size_t length = cl == std::string::npos ? 0 : std::stoul(head.substr(cl + 15));
  std::string rest = buf.substr(end + 4);
  while (rest.size() < length) {
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return 0;
    rest.append(chunk, static_cast<size_t>(n));
  }
  if (body) *body = rest.substr(0, length);
  if (pending) *pending = rest.substr(length);
  return std::atoi(head.substr(9, 3).c_str());
}

int OpenFdCount() {
  int n = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

TEST(HttpListener, SlowlorisHeaderIsClosedAtTheHeaderTimeout) {
  HttpServerOptions o;
  o.header_timeout = std::chrono::milliseconds(300);
  auto server = StartOrDie("http://127.0.0.1:0", Echo, o);
  ASSERT_TRUE(server);
  auto start = std::chrono::steady_clock::now();  // before connect: the server's deadline starts later
  int fd = Connect(server->port());
  // A byte every 50 ms: every single read makes progress, only the phase's deadline ends it.
  const std::string partial = "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  bool closed = false;
  for (size_t i = 0; !closed && std::chrono::steady_clock::now() - start < kPatience; ++i) {
    if (!Send(fd, std::string(1, partial[i % partial.size()]))) {
      closed = true;
      break;
    }
    closed = ClosedWithin(fd, std::chrono::milliseconds(50));
  }
  auto elapsed = std::chrono::steady_clock::now() - start;
  close(fd);
  EXPECT_TRUE(closed) << "a client trickling a header was never cut off";
  EXPECT_GE(elapsed, std::chrono::milliseconds(250));
  EXPECT_TRUE(WaitFor([&] { return server->Counters().timed_out >= 1; }));
  EXPECT_EQ(testsupport::HttpRequest(server->port(), "GET", "/after").first, 200);
}

TEST(HttpListener, StalledBodyIsClosedAtTheBodyTimeout) {
  HttpServerOptions o;
  o.body_timeout = std::chrono::milliseconds(300);
  auto server = StartOrDie("http://127.0.0.1:0", Echo, o);
  ASSERT_TRUE(server);
  int fd = Connect(server->port());
  ASSERT_TRUE(Send(fd, "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n0123456789"));
  EXPECT_TRUE(ClosedWithin(fd, kPatience));
  close(fd);
  EXPECT_TRUE(WaitFor([&] { return server->Counters().timed_out >= 1; }));
}

TEST(HttpListener, IdleKeepAliveConnectionIsClosedAtTheIdleTimeout) {
  HttpServerOptions o;
  o.idle_timeout = std::chrono::milliseconds(300);
  auto server = StartOrDie("http://127.0.0.1:0", Echo, o);
  ASSERT_TRUE(server);
  int fd = Connect(server->port());
  std::string body;
  ASSERT_TRUE(Send(fd, Request("GET", "/one")));
  ASSERT_EQ(ReadResponse(fd, &body), 200);
  EXPECT_EQ(body, R"({"path":"/one"})");
  ASSERT_TRUE(Send(fd, Request("GET", "/two")));  // keep-alive: the same connection serves again
  ASSERT_EQ(ReadResponse(fd, &body), 200);
  EXPECT_EQ(body, R"({"path":"/two"})");
  EXPECT_TRUE(ClosedWithin(fd, kPatience)) << "an idle keep-alive connection was kept open";
  close(fd);
  EXPECT_TRUE(WaitFor([&] { return server->Counters().timed_out >= 1 && server->Counters().open_connections == 0; }));
}

TEST(HttpListener, ClientThatDoesNotReadIsClosedAtTheWriteTimeout) {
  HttpServerOptions o;
  o.write_timeout = std::chrono::milliseconds(300);
  const std::string big(32 << 20, 'x');  // far beyond what the loopback's socket buffers hold
  auto server = StartOrDie("http://127.0.0.1:0", [&](const HttpCall&) { return HttpReply{200, big, "text/plain"}; }, o);
  ASSERT_TRUE(server);
  int fd = Connect(server->port(), nullptr, /*rcvbuf=*/4096);
  ASSERT_TRUE(Send(fd, Request("GET", "/big")));
  EXPECT_TRUE(WaitFor([&] { return server->Counters().timed_out >= 1; })) << "a stalled reader held its reply forever";
  EXPECT_TRUE(WaitFor([&] { return server->Counters().open_connections == 0; }));
  close(fd);
}

TEST(HttpListener, ConnectionCapsOverallAndPerClientAddress) {
  HttpServerOptions o;
  o.max_connections = 3;
  o.max_connections_per_client = 2;
  auto server = StartOrDie("http://127.0.0.1:0", Echo, o);
  ASSERT_TRUE(server);
  const int port = server->port();
  // Linux routes all of 127/8 to the loopback: other source addresses are other clients.
  int a1 = Connect(port, "127.0.0.1"), a2 = Connect(port, "127.0.0.1");
  ASSERT_TRUE(WaitFor([&] { return server->Counters().open_connections == 2; }));
  int a3 = Connect(port, "127.0.0.1");  // third from one address: over the per-client cap
  EXPECT_TRUE(ClosedWithin(a3, kPatience));
  EXPECT_EQ(server->Counters().rejected_over_cap, 1u);
  EXPECT_TRUE(server->Check().ok()) << server->Check().ToString();
  int b1 = Connect(port, "127.0.0.2");
  ASSERT_TRUE(WaitFor([&] { return server->Counters().open_connections == 3; }));
  Status at_cap = server->Check();
  EXPECT_EQ(at_cap.code(), StatusCode::kResourceExhausted) << at_cap.ToString();
  int c1 = Connect(port, "127.0.0.3");  // a new client, but the listener is full
  EXPECT_TRUE(ClosedWithin(c1, kPatience));
  EXPECT_EQ(server->Counters().rejected_over_cap, 2u);
  // The admitted connections still work, and a freed slot takes a new client.
  std::string body;
  ASSERT_TRUE(Send(a1, Request("GET", "/a1")));
  EXPECT_EQ(ReadResponse(a1, &body), 200);
  close(a2);
  ASSERT_TRUE(WaitFor([&] { return server->Counters().open_connections == 2; }));
  EXPECT_TRUE(server->Check().ok()) << server->Check().ToString();
  int c2 = Connect(port, "127.0.0.3");
  ASSERT_TRUE(Send(c2, Request("GET", "/c2")));
  EXPECT_EQ(ReadResponse(c2, &body), 200);
  EXPECT_EQ(body, R"({"path":"/c2"})");
  for (int fd : {a1, a3, b1, c1, c2}) close(fd);
}

TEST(HttpListener, HandlerExceptionIsA500AndTheServerKeepsServing) {
  HttpServerOptions o;
  o.blocking = [](const HttpCall& c) { return c.path == "/blocking-throw"; };
  auto server = StartOrDie(
      "http://127.0.0.1:0/prefix",
      [](const HttpCall& c) -> HttpReply {
        if (c.path == "/throw" || c.path == "/blocking-throw") throw std::runtime_error("handler bug");
        if (c.path == "/throw-int") throw 42;
        return Echo(c);
      },
      o);
  ASSERT_TRUE(server);
  int fd = Connect(server->port());
  for (const char* path : {"/prefix/throw", "/prefix/throw-int", "/prefix/blocking-throw"}) {
    std::string body;
    ASSERT_TRUE(Send(fd, Request("POST", path, "{}")));
    ASSERT_EQ(ReadResponse(fd, &body), 500) << path;
    auto j = nlohmann::json::parse(body);
    EXPECT_THAT(j["Error"].get<std::string>(), HasSubstr("internal error")) << path;
    // The same connection serves the next request.
    ASSERT_TRUE(Send(fd, Request("GET", "/prefix/ok")));
    EXPECT_EQ(ReadResponse(fd, &body), 200) << "after " << path;
    EXPECT_EQ(body, R"({"path":"/ok"})");
  }
  close(fd);
  EXPECT_EQ(server->Counters().handler_exceptions, 3u);
  EXPECT_EQ(testsupport::HttpRequest(server->port(), "GET", "/prefix/ok").first, 200);
  EXPECT_EQ(testsupport::HttpRequest(server->port(), "GET", "/elsewhere").first, 404);
  EXPECT_TRUE(server->Check().ok());
}

TEST(HttpListener, OversizedBodyIs413AndOversizedHeaderIs431) {
  HttpServerOptions o;
  o.max_body_bytes = 1024;
  o.max_header_bytes = 8 << 10;
  auto server = StartOrDie("http://127.0.0.1:0", [](const HttpCall& c) { return HttpReply{200, std::to_string(c.body.size())}; }, o);
  ASSERT_TRUE(server);
  const int port = server->port();
  EXPECT_EQ(testsupport::HttpRequest(port, "POST", "/x", std::string(1024, 'a')), std::make_pair(200, std::string("1024")));
  EXPECT_EQ(testsupport::HttpRequest(port, "POST", "/x", std::string(2048, 'a')).first, 413);
  // Chunked: no length up front, the limit still holds.
  int fd = Connect(port);
  std::string chunk(600, 'b');
  char size_line[16];
  std::snprintf(size_line, sizeof size_line, "%zx\r\n", chunk.size());
  ASSERT_TRUE(Send(fd, "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(size_line) +
                           chunk + "\r\n" + size_line + chunk + "\r\n0\r\n\r\n"));
  std::string body;
  EXPECT_EQ(ReadResponse(fd, &body), 413);
  close(fd);
  fd = Connect(port);
  ASSERT_TRUE(Send(fd, "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + std::string(10 << 10, 'h') + "\r\n\r\n"));
  EXPECT_EQ(ReadResponse(fd, &body), 431);
  close(fd);
  EXPECT_EQ(testsupport::HttpRequest(port, "POST", "/x", "{}").first, 200);
}

// curl sends large bodies only after the server's "100 Continue".
TEST(HttpListener, ExpectContinueIsAnswered) {
  auto server = StartOrDie("http://127.0.0.1:0", [](const HttpCall& c) { return HttpReply{200, c.body}; }, {});
  ASSERT_TRUE(server);
  int fd = Connect(server->port());
  ASSERT_TRUE(Send(fd, "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"));
  std::string interim;
  char buf[256];
  while (interim.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0) << "no 100 Continue";
    interim.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(interim.substr(0, 12), "HTTP/1.1 100");
  ASSERT_TRUE(Send(fd, "{}{}"));
  std::string body, pending = interim.substr(interim.find("\r\n\r\n") + 4);
  EXPECT_EQ(ReadResponse(fd, &body, &pending), 200);
  EXPECT_EQ(body, "{}{}");
  close(fd);
}

TEST(HttpListener, BlockingHandlersRunOffTheIoThreadsAndRepliesKeepRequestOrder) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> slow_started{false};
  HttpServerOptions o;
  o.io_threads = 1;  // a blocking handler on the only I/O thread would stall every connection
  o.workers = 2;
  o.blocking = [](const HttpCall& c) { return c.path == "/slow"; };
  auto server = StartOrDie(
      "http://127.0.0.1:0",
      [&](const HttpCall& c) {
        if (c.path == "/slow") {
          slow_started = true;
          released.wait_for(kPatience);
        }
        return Echo(c);
      },
      o);
  ASSERT_TRUE(server);
  // Pipelined on one connection: the fast request's reply must wait for the slow one's.
  int pipelined = Connect(server->port());
  ASSERT_TRUE(Send(pipelined, Request("GET", "/slow") + Request("GET", "/fast")));
  ASSERT_TRUE(WaitFor([&] { return slow_started.load(); }));
  // Meanwhile another connection is served: the I/O thread is free.
  int other = Connect(server->port());
  std::string body;
  ASSERT_TRUE(Send(other, Request("GET", "/other")));
  EXPECT_EQ(ReadResponse(other, &body), 200);
  release.set_value();
  std::string pending;
  EXPECT_EQ(ReadResponse(pipelined, &body, &pending), 200);
  EXPECT_EQ(body, R"({"path":"/slow"})");
  EXPECT_EQ(ReadResponse(pipelined, &body, &pending), 200);
  EXPECT_EQ(body, R"({"path":"/fast"})");
  close(pipelined);
  close(other);
}

// UBSan's vptr check probes memory through a pipe; with every descriptor taken it cannot, and
// reports a false "invalid vptr". The two calls made while descriptors are exhausted skip UBSan.
__attribute__((no_sanitize("undefined"))) uint64_t AcceptErrorsOf(const HttpServer& s) {
  return s.Counters().accept_errors;
}
__attribute__((no_sanitize("undefined"))) Status CheckOf(const HttpServer& s) { return s.Check(); }

TEST(HttpListener, AcceptLoopSurvivesRunningOutOfDescriptors) {
  auto server = StartOrDie("http://127.0.0.1:0", Echo, {});
  ASSERT_TRUE(server);
  int client = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{10, 0};
  setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  rlimit old{};
  getrlimit(RLIMIT_NOFILE, &old);
  int highest = 0;
  for (auto& e : std::filesystem::directory_iterator("/proc/self/fd"))
    highest = std::max(highest, std::atoi(e.path().filename().c_str()));
  // Take every descriptor below a limit just above the highest one in use: accept() gets EMFILE.
  rlimit tight = old;
  tight.rlim_cur = static_cast<rlim_t>(highest + 1);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
  std::vector<int> fillers;
  for (int fd; (fd = dup(client)) >= 0;) fillers.push_back(fd);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(server->port()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int connected = connect(client, reinterpret_cast<sockaddr*>(&a), sizeof a);  // the kernel completes it
  bool failed = WaitFor([&] { return AcceptErrorsOf(*server) >= 1; });
  Status during = CheckOf(*server);
  for (int fd : fillers) close(fd);
  setrlimit(RLIMIT_NOFILE, &old);
  ASSERT_EQ(connected, 0) << strerror(errno);
  ASSERT_TRUE(failed) << "accept() never failed; the test did not exhaust descriptors";
  EXPECT_EQ(during.code(), StatusCode::kUnavailable) << during.ToString();
  // The loop retries: the waiting connection is served, and Check recovers.
  std::string body;
  ASSERT_TRUE(Send(client, Request("GET", "/after")));
  EXPECT_EQ(ReadResponse(client, &body), 200);
  close(client);
  EXPECT_TRUE(server->Check().ok()) << server->Check().ToString();
  EXPECT_EQ(testsupport::HttpRequest(server->port(), "GET", "/again").first, 200);
}

// Stop while clients keep sending, blocking and not: every request is answered or refused, Stop
// returns, nothing outlives the server.
TEST(HttpListener, StopWhileRequestsAreInFlight) {
  HttpServerOptions o;
  o.workers = 2;
  o.blocking = [](const HttpCall& c) { return c.path == "/slow"; };
  auto server = StartOrDie(
      "http://127.0.0.1:0",
      [](const HttpCall& c) {
        if (c.path == "/slow") std::this_thread::sleep_for(std::chrono::milliseconds(2));
        return Echo(c);
      },
      o);
  ASSERT_TRUE(server);
  const int port = server->port();
  std::atomic<bool> done{false};
  std::atomic<int> answered{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t)
    clients.emplace_back([&, t] {
      while (!done) {
        // Own socket with a receive timeout: a connection the stopped server forgot to close
        // fails the test instead of hanging it.
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        timeval tv{10, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int status = 0;
        if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
            Send(fd, Request("POST", t % 2 ? "/slow" : "/fast", "{}", "Connection: close\r\n"))) {
          errno = 0;
          status = ReadResponse(fd, nullptr);
          EXPECT_NE(errno, EAGAIN) << "a connection stayed open after Stop";
        }
        close(fd);
        if (status == 200) answered++;
        else EXPECT_EQ(status, 0);  // refused or cut off once stopped, never an error reply
      }
    });
  ASSERT_TRUE(WaitFor([&] { return answered.load() >= 20; }));
  server->Stop();
  done = true;
  for (auto& c : clients) c.join();
  EXPECT_EQ(server->Check().code(), StatusCode::kUnavailable);
}

TEST(HttpListener, CheckAndCountersAfterStop) {
  auto server = StartOrDie("http://127.0.0.1:0", Echo, {});
  ASSERT_TRUE(server);
  EXPECT_EQ(testsupport::HttpRequest(server->port(), "GET", "/").first, 200);
  EXPECT_TRUE(server->Check().ok());
  auto c = server->Counters();
  EXPECT_EQ(c.accepted, 1u);
  EXPECT_EQ(c.requests, 1u);
  server->Stop();
  EXPECT_EQ(server->Check().code(), StatusCode::kUnavailable);
  EXPECT_EQ(testsupport::HttpRequest(server->port(), "GET", "/").first, 0);
  server->Stop();  // idempotent
}

// --- TLS --------------------------------------------------------------------------------------

// An RSA certificate (the default EC one cannot test RSA key exchange).
testsupport::TlsFiles MakeRsaCert(const std::string& dir) {
  return testsupport::MakeSelfSignedCert(dir, testsupport::KeyType::kRsa2048, "rsa");
}

struct TlsResult {
  bool handshake = false;
  std::string cipher, version, peer_cert_pem, body;
  int status = 0;
};

// One https request with OpenSSL directly: the protocol versions and TLS 1.2 ciphers offered
// are the test's to choose (no verification: the certificates are self-signed throw-aways).
TlsResult TlsRequest(int port, int min_version, int max_version, const char* tls12_ciphers = nullptr) {
  TlsResult r;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, min_version);
  SSL_CTX_set_max_proto_version(ctx, max_version);
  // Level 0 lets the client offer what the system policy forbids: refusing it is the server's job.
  SSL_CTX_set_security_level(ctx, 0);
  if (tls12_ciphers) SSL_CTX_set_cipher_list(ctx, tls12_ciphers);
  int fd = Connect(port);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  if (SSL_connect(ssl) == 1) {
    r.handshake = true;
    r.cipher = SSL_get_cipher_name(ssl);
    r.version = SSL_get_version(ssl);
    if (X509* peer = SSL_get1_peer_certificate(ssl)) {
      r.peer_cert_pem = testsupport::PemOf(peer);
      X509_free(peer);
    }
    std::string req = "GET /tls HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    SSL_write(ssl, req.data(), static_cast<int>(req.size()));
    std::string out;
    char buf[4096];
    int n;
    while ((n = SSL_read(ssl, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    if (out.size() > 12) r.status = std::atoi(out.substr(9, 3).c_str());
    auto split = out.find("\r\n\r\n");
    if (split != std::string::npos) r.body = out.substr(split + 4);
  }
  SSL_free(ssl);
  close(fd);
  SSL_CTX_free(ctx);
  return r;
}

class HttpsListener : public ::testing::Test {
 protected:
  void SetUp() override { ec_ = testsupport::MakeSelfSignedCert(dir_.path()); }
  std::unique_ptr<HttpServer> Serve(const testsupport::TlsFiles& files, HttpServerOptions o = {}) {
    o.tls_cert_file = files.cert_file;
    o.tls_key_file = files.key_file;
    return StartOrDie("https://127.0.0.1:0", Echo, o);
  }
  testsupport::TempDir dir_;
  testsupport::TlsFiles ec_;
};

TEST_F(HttpsListener, Tls11IsRefused) {
  auto server = Serve(ec_);
  ASSERT_TRUE(server);
  EXPECT_FALSE(TlsRequest(server->port(), TLS1_1_VERSION, TLS1_1_VERSION, "ALL:@SECLEVEL=0").handshake);
  EXPECT_FALSE(TlsRequest(server->port(), TLS1_VERSION, TLS1_VERSION, "ALL:@SECLEVEL=0").handshake);
  EXPECT_TRUE(WaitFor([&] { return server->Counters().handshake_failures >= 2; }));
}

TEST_F(HttpsListener, Tls12WithoutForwardSecrecyOrAeadIsRefused) {
  auto rsa = MakeRsaCert(dir_.path());
  auto server = Serve(rsa);
  ASSERT_TRUE(server);
  // RSA key exchange (no forward secrecy), then ECDHE with CBC (not AEAD).
  for (const char* cipher : {"AES128-GCM-SHA256", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384"}) {
    auto r = TlsRequest(server->port(), TLS1_2_VERSION, TLS1_2_VERSION, cipher);
    EXPECT_FALSE(r.handshake) << cipher << " was accepted";
  }
}

TEST_F(HttpsListener, Tls12EcdheAeadAndTls13AreAccepted) {
  auto server = Serve(ec_);
  ASSERT_TRUE(server);
  for (const char* cipher : {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"}) {
    auto r = TlsRequest(server->port(), TLS1_2_VERSION, TLS1_2_VERSION, cipher);
    ASSERT_TRUE(r.handshake) << cipher;
    EXPECT_EQ(r.cipher, cipher);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, R"({"path":"/tls"})");
  }
  auto t13 = TlsRequest(server->port(), TLS1_3_VERSION, TLS1_3_VERSION);
  ASSERT_TRUE(t13.handshake);
  EXPECT_EQ(t13.version, "TLSv1.3");
  EXPECT_EQ(t13.status, 200);
  auto rsa = MakeRsaCert(dir_.path());
  auto rsa_server = Serve(rsa);
  ASSERT_TRUE(rsa_server);
  auto r = TlsRequest(rsa_server->port(), TLS1_2_VERSION, TLS1_2_VERSION, "ECDHE-RSA-AES256-GCM-SHA384");
  ASSERT_TRUE(r.handshake);
  EXPECT_EQ(r.status, 200);
}

// A port scan: connections that close before any TLS byte. Each must give its descriptor (and
// memory) back; the listener keeps answering.
TEST_F(HttpsListener, ConnectionsClosedWithoutAHandshakeReleaseTheirDescriptors) {
  HttpServerOptions o;
  o.max_connections = 4096;
  o.max_connections_per_client = 4096;  // the scan must reach the handshake, not the cap
  auto server = Serve(ec_, o);
  ASSERT_TRUE(server);
  ASSERT_EQ(TlsRequest(server->port(), TLS1_2_VERSION, TLS1_3_VERSION).status, 200);
  ASSERT_TRUE(WaitFor([&] { return server->Counters().open_connections == 0; }));
  const int baseline = OpenFdCount();
  constexpr int kScans = 2000;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(server->port()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < kScans; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << i << ": " << strerror(errno);
    close(fd);
  }
  EXPECT_TRUE(WaitFor([&] { return server->Counters().handshake_failures >= kScans; }))
      << server->Counters().handshake_failures;
  EXPECT_TRUE(WaitFor([&] { return OpenFdCount() <= baseline; })) << OpenFdCount() << " descriptors open, " << baseline
                                                                   << " before the scan";
  EXPECT_EQ(server->Counters().open_connections, 0);
  auto r = TlsRequest(server->port(), TLS1_2_VERSION, TLS1_3_VERSION);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(server->Check().ok()) << server->Check().ToString();
}

TEST_F(HttpsListener, SilentClientIsClosedAtTheHandshakeTimeout) {
  HttpServerOptions o;
  o.tls_handshake_timeout = std::chrono::milliseconds(300);
  auto server = Serve(ec_, o);
  ASSERT_TRUE(server);
  int fd = Connect(server->port());
  EXPECT_TRUE(ClosedWithin(fd, kPatience));
  close(fd);
  EXPECT_TRUE(WaitFor([&] { return server->Counters().timed_out >= 1 && server->Counters().handshake_failures >= 1; }));
}

// cert-manager replaces the files (a symlink swap or a rename): new connections get the new pair.
TEST_F(HttpsListener, RotatedCertificateIsServedToNewConnections) {
  HttpServerOptions o;
  o.tls_reload_interval = std::chrono::milliseconds(0);
  auto server = Serve(ec_, o);
  ASSERT_TRUE(server);
  auto first = TlsRequest(server->port(), TLS1_2_VERSION, TLS1_3_VERSION);
  ASSERT_EQ(first.status, 200);
  EXPECT_EQ(first.peer_cert_pem, ec_.cert_pem);
  testsupport::TempDir next_dir;
  auto next = testsupport::MakeSelfSignedCert(next_dir.path());
  ASSERT_NE(next.cert_pem, ec_.cert_pem);
  std::filesystem::rename(next.key_file, ec_.key_file);
  std::filesystem::rename(next.cert_file, ec_.cert_file);
  auto second = TlsRequest(server->port(), TLS1_2_VERSION, TLS1_3_VERSION);
  ASSERT_EQ(second.status, 200);
  EXPECT_EQ(second.peer_cert_pem, next.cert_pem) << "the rotated certificate was not picked up";
  // A broken replacement keeps the last good pair in service.
  {
    std::ofstream broken(ec_.cert_file, std::ios::trunc);
    broken << "not a certificate\n";
  }
  auto third = TlsRequest(server->port(), TLS1_2_VERSION, TLS1_3_VERSION);
  EXPECT_EQ(third.status, 200);
  EXPECT_EQ(third.peer_cert_pem, next.cert_pem);
}

TEST(HttpListenerStart, AddressesAndTlsFilesAreChecked) {
  EXPECT_FALSE(HttpServer::StartRoutes("ftp://127.0.0.1:1/", Echo).ok());
  EXPECT_FALSE(HttpServer::StartRoutes("https://127.0.0.1:0/", Echo).ok());
  HttpServerOptions o;
  o.tls_cert_file = "/nonexistent/tls.crt";
  o.tls_key_file = "/nonexistent/tls.key";
  EXPECT_FALSE(HttpServer::StartRoutes("https://127.0.0.1:0/", Echo, o).ok());
  auto local = HttpServer::StartRoutes("http://localhost:0/", Echo);  // a name, not an address
  EXPECT_TRUE(local.ok()) << local.status().ToString();
  auto first = HttpServer::StartRoutes("http://127.0.0.1:0/", Echo);
  ASSERT_TRUE(first.ok());
  auto second = HttpServer::StartRoutes("http://127.0.0.1:" + std::to_string((*first)->port()) + "/", Echo);
  EXPECT_FALSE(second.ok()) << "two listeners on one port";
}

}  // namespace
}  // namespace tideslice::http
