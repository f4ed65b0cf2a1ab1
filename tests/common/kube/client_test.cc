// KubeClient against the test API server over real loopback HTTP.
#include "common/kube/client.h"

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "tests/support/kube_env.h"
#include "tests/support/test_apiserver.h"
#include "tests/support/test_support.h"

namespace tideslice::kube {
namespace {

using testsupport::TempDir;
using testsupport::TestApiServer;

json Pod(const std::string& name, const std::string& node = "", const json& labels = json::object()) {
  json p = {{"metadata", {{"name", name}, {"namespace", "default"}, {"labels", labels}}},
            {"spec", {{"containers", json::array({{{"name", "c"}, {"image", "busybox"}}})}}},
            {"status", {{"phase", "Pending"}}}};
  if (!node.empty()) p["spec"]["nodeName"] = node;
  return p;
}

class ClientTest : public ::testing::Test {
 protected:
  testsupport::KubeEnv env_{testsupport::FastBookmarks()};
  TestApiServer* server_ = env_.server.get();
  KubeClient* client_ = env_.client.get();
  TempDir& dir_ = env_.dir;
};

TEST_F(ClientTest, CreateGetAndErrorsCarryTheApiMessage) {
  auto created = client_->Create("/api/v1/namespaces/default/pods", Pod("a"));
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_FALSE((*created)["metadata"]["uid"].get<std::string>().empty());
  auto got = client_->Get(PodPath("default", "a"));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)["kind"], "Pod");
  Status missing = client_->Get(PodPath("default", "nope")).status();
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("pods \"nope\" not found"), std::string::npos) << missing.message();
  Status dup = client_->Create("/api/v1/namespaces/default/pods", Pod("a")).status();
  EXPECT_EQ(dup.code(), StatusCode::kAlreadyExists);
}

TEST_F(ClientTest, ListFollowsContinueTokensAcrossPagesWithSelectors) {
  for (int i = 0; i < 7; ++i) server_->Upsert("pods", Pod("p" + std::to_string(i), i % 2 ? "n1" : "n2"));
  auto all = client_->List("/api/v1/pods", "", 2);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->items.size(), 7u);
  EXPECT_EQ(all->resource_version, std::to_string(server_->resource_version()));
  EXPECT_EQ(server_->requests("GET pods"), 4);  // 2+2+2+1
  auto on_n1 = client_->List("/api/v1/pods", "fieldSelector=" + QueryEscape("spec.nodeName=n1"), 2);
  ASSERT_TRUE(on_n1.ok());
  EXPECT_EQ(on_n1->items.size(), 3u);
  Status bad = client_->List("/api/v1/pods", "fieldSelector=" + QueryEscape("spec.bogus=1")).status();
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("field label not supported"), std::string::npos);
}

TEST_F(ClientTest, ExpiredContinueTokenIsExpired) {
  for (int i = 0; i < 4; ++i) server_->Upsert("pods", Pod("p" + std::to_string(i)));
  auto first = client_->Get("/api/v1/pods?limit=2");
  ASSERT_TRUE(first.ok());
  std::string token = (*first)["metadata"]["continue"];
  server_->Upsert("pods", Pod("late"));
  server_->Compact();
  Status s = client_->Get("/api/v1/pods?limit=2&continue=" + QueryEscape(token)).status();
  EXPECT_EQ(s.code(), StatusCode::kExpired) << s.ToString();
}

TEST_F(ClientTest, ThrottledAndUnavailableReadsAreRetried) {
  server_->Upsert("pods", Pod("a"));
  server_->FailNext("GET", "/pods/a", 429, 1, "TooManyRequests");
  server_->FailNext("GET", "/pods/a", 503, 1, "ServiceUnavailable");
  EXPECT_TRUE(client_->Get(PodPath("default", "a")).ok());
  server_->FailNext("GET", "/pods/a", 403, 1, "Forbidden");
  EXPECT_EQ(client_->Get(PodPath("default", "a")).status().code(), StatusCode::kPermissionDenied);
}

TEST_F(ClientTest, StaleResourceVersionIsAConflictAndReadModifyWriteRetriesIt) {
  server_->Upsert("pods", Pod("a"));
  auto pod = client_->Get(PodPath("default", "a"));
  ASSERT_TRUE(pod.ok());
  std::string old_rv = (*pod)["metadata"]["resourceVersion"];
  ASSERT_TRUE(client_->MergePatch(PodPath("default", "a"), {{"metadata", {{"labels", {{"x", "1"}}}}}}).ok());
  Status stale = client_->MergePatch(PodPath("default", "a"),
                                     {{"metadata", {{"resourceVersion", old_rv}, {"labels", {{"x", "2"}}}}}})
                     .status();
  EXPECT_EQ(stale.code(), StatusCode::kAborted);
  EXPECT_NE(stale.message().find("the object has been modified"), std::string::npos);

  // Eight writers increment one annotation 10 times each: every increment survives only if
  // conflicts are detected and retried with fresh state.
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (int w = 0; w < 8; ++w)
    writers.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        auto r = client_->ReadModifyWrite(
            PodPath("default", "a"),
            [](json& p, bool*) {
              auto& ann = p["metadata"]["annotations"];
              int n = ann.contains("count") ? std::stoi(ann["count"].get<std::string>()) : 0;
              ann["count"] = std::to_string(n + 1);
              return Status::Ok();
            },
            50);
        if (!r.ok()) failures++;
      }
    });
  for (auto& t : writers) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(server_->Get("pods", "default", "a")->at("metadata").at("annotations").at("count"), "80");
}

TEST_F(ClientTest, BindMergesAnnotationsAndRefusesASecondBind) {
  json created = server_->Upsert("pods", Pod("a"));
  std::string uid = created["metadata"]["uid"];
  Status wrong_uid = client_->Bind("default", "a", "not-the-uid", "n1", {});
  EXPECT_EQ(wrong_uid.code(), StatusCode::kAborted);
  ASSERT_TRUE(client_->Bind("default", "a", uid, "n1", {{"tideslice.io/assignment", "{}"}}).ok());
  json pod = *server_->Get("pods", "default", "a");
  EXPECT_EQ(pod["spec"]["nodeName"], "n1");
  EXPECT_EQ(pod["metadata"]["annotations"]["tideslice.io/assignment"], "{}");
  Status again = client_->Bind("default", "a", uid, "n2", {});
  EXPECT_EQ(again.code(), StatusCode::kAborted);
  EXPECT_NE(again.message().find("already assigned to node \"n1\""), std::string::npos);
}

TEST_F(ClientTest, EvictionHonoursDisruptionBudgets) {
  for (const char* n : {"t1", "t2"}) {
    json p = Pod(n, "n1", {{"app", "train"}});
    p["status"]["phase"] = "Running";
    server_->Upsert("pods", p);
  }
  server_->Upsert("poddisruptionbudgets", {{"metadata", {{"name", "train"}, {"namespace", "default"}}},
                                           {"spec", {{"minAvailable", 1}, {"selector", {{"matchLabels", {{"app", "train"}}}}}}}});
  json t1 = *server_->Get("pods", "default", "t1");
  EXPECT_TRUE(client_->Evict("default", "t1", t1["metadata"]["uid"]).ok());
  EXPECT_FALSE(server_->Get("pods", "default", "t1").has_value());
  Status blocked = client_->Evict("default", "t2", "");
  EXPECT_EQ(blocked.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(blocked.message().find("disruption budget"), std::string::npos);
  EXPECT_TRUE(server_->Get("pods", "default", "t2").has_value());
  EXPECT_EQ(client_->Evict("default", "t2", "other-uid").code(), StatusCode::kAborted);
}

TEST_F(ClientTest, EventsAreCreatedWithGeneratedNames) {
  json pod = server_->Upsert("pods", Pod("a"));
  ASSERT_TRUE(client_->RecordEvent(pod, "Normal", "CheckpointNotice", "checkpoint by 10:00", "tideslice").ok());
  auto events = server_->List("events");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["involvedObject"]["name"], "a");
  EXPECT_EQ(events[0]["reason"], "CheckpointNotice");
  EXPECT_EQ(events[0]["metadata"]["name"].get<std::string>().rfind("a.", 0), 0u);
}

TEST_F(ClientTest, WatchStreamsChangesBookmarksAndReportsExpiry) {
  server_->Upsert("pods", Pod("a"));
  auto list = client_->List("/api/v1/pods");
  ASSERT_TRUE(list.ok());
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    server_->Upsert("pods", Pod("b"));
    json a = *server_->Get("pods", "default", "a");
    a["metadata"]["labels"]["x"] = "y";
    server_->Upsert("pods", a);
    server_->Remove("pods", "default", "b");
  });
  std::vector<std::string> seen;
  int bookmarks = 0;
  http::CancelFlag cancel;
  Status s = client_->Watch(
      "/api/v1/pods", "", list->resource_version, 30,
      [&](const WatchEvent& ev) {
        if (ev.type == WatchEventType::kBookmark) {
          ++bookmarks;
          return seen.size() < 3 || bookmarks < 2;
        }
        const char* t = ev.type == WatchEventType::kAdded ? "ADDED" : ev.type == WatchEventType::kModified ? "MODIFIED" : "DELETED";
        seen.push_back(std::string(t) + " " + ev.object["metadata"]["name"].get<std::string>());
        return true;
      },
      &cancel);
  writer.join();
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(seen, (std::vector<std::string>{"ADDED b", "MODIFIED a", "DELETED b"}));
  EXPECT_GE(bookmarks, 1);

  server_->Compact();
  Status expired = client_->Watch("/api/v1/pods", "", list->resource_version, 30, [](const WatchEvent&) { return true; },
                                  &cancel);
  EXPECT_EQ(expired.code(), StatusCode::kExpired) << expired.ToString();
  EXPECT_NE(expired.message().find("too old resource version"), std::string::npos);
}

TEST_F(ClientTest, CancelEndsAWatchPromptly) {
  http::CancelFlag cancel;
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel.Cancel();
  });
  Status s = client_->Watch("/api/v1/nodes", "", std::to_string(server_->resource_version()), 300,
                            [](const WatchEvent&) { return true; }, &cancel);
  stopper.join();
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(ClientTest, RotatedTokenFileIsReRead) {
  std::string token_path = dir_.path() + "/token";
  std::ofstream(token_path) << "first";
  std::ofstream(dir_.path() + "/kc") << "current-context: t\nclusters:\n- name: c\n  cluster: {server: '" << server_->url()
                                     << "'}\ncontexts:\n- name: t\n  context: {cluster: c, user: u}\nusers:\n- name: u\n  user: {tokenFile: token}\n";
  auto access = LoadKubeconfig(dir_.path() + "/kc");
  ASSERT_TRUE(access.ok()) << access.status().ToString();
  KubeClient client(*NewCppRestTransport(*access));
  server_->set_required_token("first");
  EXPECT_TRUE(client.Get("/api/v1/nodes").ok());
  server_->set_required_token("second-token");
  EXPECT_EQ(client.Get("/api/v1/nodes").status().code(), StatusCode::kPermissionDenied);
  std::ofstream(token_path) << "second-token";
  EXPECT_TRUE(client.Get("/api/v1/nodes").ok());
}

TEST_F(ClientTest, UnreachableServerIsUnavailableAndNamesIt) {
  KubeAccess a;
  a.server = "http://127.0.0.1:" + std::to_string(testsupport::FreeLoopbackPort());
  a.source = "test";
  KubeClient client(*NewCppRestTransport(a, 2));
  Status s = client.Get("/api/v1/nodes").status();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find(a.server), std::string::npos);
}

// The tester's "pod names are not escaped into API paths": `ml/../kube-system` and `?watch=true`
// reached the URL as path and query. Every name is now one percent-encoded segment.
TEST(PathSegmentTest, EveryNameIsOneEscapedSegment) {
  EXPECT_EQ(PodPath("ml", "../kube-system"), "/api/v1/namespaces/ml/pods/..%2Fkube-system");
  EXPECT_EQ(PodPath("ml/../kube-system", "coredns"), "/api/v1/namespaces/ml%2F..%2Fkube-system/pods/coredns");
  EXPECT_EQ(PodPath("ml", "?watch=true"), "/api/v1/namespaces/ml/pods/%3Fwatch%3Dtrue");
  EXPECT_EQ(PodPath("ml", "a/b#c"), "/api/v1/namespaces/ml/pods/a%2Fb%23c");
  EXPECT_EQ(PodPath("ml", ".."), "/api/v1/namespaces/ml/pods/%2E%2E");
  EXPECT_EQ(PodPath("ml", "."), "/api/v1/namespaces/ml/pods/%2E");
  EXPECT_EQ(NodePath("../namespaces/kube-system/pods/x"), "/api/v1/nodes/..%2Fnamespaces%2Fkube-system%2Fpods%2Fx");
  EXPECT_EQ(LeasePath("tideslice-system", "a?b"),
            "/apis/coordination.k8s.io/v1/namespaces/tideslice-system/leases/a%3Fb");
  // Valid DNS names pass unchanged.
  EXPECT_EQ(PodPath("ml", "web-0.v1"), "/api/v1/namespaces/ml/pods/web-0.v1");
  for (const std::string name : {"", ".", "..", "../kube-system", "?watch=true", "a/b", "x#y", "%2F", "a b", "\n"}) {
    std::string seg = PathSegment(name);
    EXPECT_FALSE(seg.empty()) << "\"" << name << "\" must not name the collection";
    EXPECT_EQ(seg.find_first_of("/?#"), std::string::npos) << "\"" << name << "\" -> " << seg;
    EXPECT_NE(seg, ".");
    EXPECT_NE(seg, "..");
  }
}

TEST_F(ClientTest, EscapedNamesNeverReachAnotherObjectOrAList) {
  json coredns = Pod("coredns");
  coredns["metadata"]["namespace"] = "kube-system";
  server_->Upsert("pods", coredns);
  json secret = Pod("secret");
  secret["metadata"]["namespace"] = "ml";
  server_->Upsert("pods", secret);
  json web = Pod("web");
  web["metadata"]["namespace"] = "ml";
  server_->Upsert("pods", web);

  const std::vector<std::pair<std::string, std::string>> names = {
      {"ml", "../kube-system"},                   // walks up a segment
      {"ml/../kube-system", "coredns"},           // another namespace's pod
      {"kube-system/pods/coredns?x=", "y"},       // a path and a query in the namespace
      {"ml", "?watch=true"},                      // a watch of the namespace
      {"ml", "?limit=5"},                         // a list
      {"ml", ""},                                 // the collection itself
      {"ml", "secret?x=1"},                       // another pod through a query
      {"ml", "secret#fragment"},                  // ... or a fragment
      {"ml", "web/status"},                       // another pod through a subresource
      {"ml", ".."},
  };
  for (const auto& [ns, name] : names) {
    auto got = client_->Get(PodPath(ns, name), std::chrono::seconds(5));
    EXPECT_EQ(got.status().code(), StatusCode::kNotFound)
        << "GET " << PodPath(ns, name) << " for " << ns << "/" << name << ": "
        << (got.ok() ? "answered " + got->value("kind", std::string("?")) + " " +
                           got->value("metadata", json::object()).value("name", std::string())
                     : got.status().ToString());
  }

  // Binds with such names bind nothing: not the kube-system pod, not a pod of this namespace.
  const std::vector<std::pair<std::string, std::string>> binds = {
      {"kube-system/pods/coredns/binding?x=", "coredns"},
      {"ml/../kube-system", "coredns"},
      {"ml", "../../kube-system/pods/coredns"},
      {"ml", "secret/binding?x="},
      {"ml", "web?x="},
      {"ml", "web#x"},
  };
  for (const auto& [ns, name] : binds) {
    Status s = client_->Bind(ns, name, "", "n1", {{"tideslice.io/assignment", "{}"}});
    EXPECT_FALSE(s.ok()) << "bind " << ns << "/" << name;
  }
  for (const auto& [ns, name] : std::vector<std::pair<std::string, std::string>>{
           {"kube-system", "coredns"}, {"ml", "secret"}, {"ml", "web"}}) {
    json pod = *server_->Get("pods", ns, name);
    EXPECT_FALSE(pod["spec"].contains("nodeName")) << ns << "/" << name << " was bound to " << pod["spec"]["nodeName"];
    EXPECT_FALSE(pod["metadata"].contains("annotations") && pod["metadata"]["annotations"].contains("tideslice.io/assignment"))
        << ns << "/" << name;
  }
}

// A transport that replays a canned stream, to pin framing: events spread over several lines
// (as with ?pretty=true) and two events on one line must both parse.
class CannedStream : public http::Client {
 public:
  explicit CannedStream(std::vector<std::string> lines) : lines_(std::move(lines)) {}
  StatusOr<http::Reply> Send(const http::Request&) override { return http::Reply{500, "", 0}; }
  StatusOr<http::Reply> Stream(const http::Request&, const std::function<bool(std::string_view)>& on_line,
                            http::CancelFlag*) override {
    for (const auto& l : lines_)
      if (!on_line(l)) break;
    return http::Reply{200, "", 0};
  }

 private:
  std::vector<std::string> lines_;
};

TEST(WatchFramingTest, MultiLineAndConcatenatedEvents) {
  auto transport = std::make_shared<CannedStream>(std::vector<std::string>{
      "{", R"(  "type": "ADDED",)", R"(  "object": {"metadata": {"name": "a}b{", "resourceVersion": "5"}})", "}",
      R"({"type":"MODIFIED","object":{"metadata":{"name":"x\"}"}}}{"type":"DELETED","object":{"metadata":{"name":"y"}}})"});
  KubeClient client(transport);
  std::vector<std::string> names;
  Status s = client.Watch("/api/v1/pods", "", "1", 10,
                          [&](const WatchEvent& ev) {
                            names.push_back(ev.object["metadata"]["name"]);
                            return true;
                          },
                          nullptr);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(names, (std::vector<std::string>{"a}b{", "x\"}", "y"}));

  KubeClient garbage(std::make_shared<CannedStream>(std::vector<std::string>{"not json"}));
  EXPECT_EQ(garbage.Watch("/api/v1/pods", "", "1", 10, [](const WatchEvent&) { return true; }, nullptr).code(),
            StatusCode::kInternal);
}

TEST(MicroTimeTest, SixFractionalDigitsAndRoundTrip) {
  auto t = std::chrono::system_clock::time_point(std::chrono::seconds(1795000000) + std::chrono::microseconds(42));
  std::string text = MicroTimeFrom(t);
  EXPECT_EQ(text, "2026-11-18T11:06:40.000042Z");
  auto back = ParseRfc3339("renewTime", text);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, t);
  auto offset = ParseRfc3339("x", "2026-11-18T13:06:40+02:00");
  ASSERT_TRUE(offset.ok());
  EXPECT_EQ(*offset, std::chrono::system_clock::time_point(std::chrono::seconds(1795000000)));
  EXPECT_EQ(ParseRfc3339("spec.renewTime", "yesterday").status().field(), "spec.renewTime");
  // Beyond what a 64-bit nanosecond clock holds: refused, not overflowed.
  EXPECT_FALSE(ParseRfc3339("x", "9999-01-01T00:00:00Z").ok());
  EXPECT_FALSE(ParseRfc3339("x", "1000-01-01T00:00:00Z").ok());
  EXPECT_FALSE(ParseRfc3339("x", "2026-11-18T10:26:40").ok());
}

}  // namespace
}  // namespace tideslice::kube
