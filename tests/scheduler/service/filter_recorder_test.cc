// The filter's per-node reasons on pending pods: the bounded record and its parser (external
// input), the recorder against the test API server (written once per change, never onto a pod
// that was bound or re-created), and the running scheduler writing it when a pod fits no node.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <google/protobuf/util/time_util.h>

#include "common/codec/annotations.h"
#include "scheduler/service/app.h"
#include "scheduler/service/filter_record.h"
#include "scheduler/service/filter_recorder.h"
#include "tests/support/kube_env.h"

namespace tideslice::service {
namespace {

using kube::json;
using ::testing::HasSubstr;
using testsupport::WaitFor;

const auto kT0 = std::chrono::system_clock::time_point(std::chrono::seconds(1'790'000'000));  // 2026-09-21T...

TEST(FilterRecord, BoundedAndRoundTrips) {
  std::map<std::string, std::string> reasons;
  for (int i = 0; i < 60; ++i) reasons["node-" + std::to_string(100 + i)] = "no card with 200Gi free";
  reasons["node-100"] = std::string(1000, 'x');
  FilterRecord r = BoundedRecord(reasons, kT0 + std::chrono::milliseconds(250));
  EXPECT_EQ(r.nodes.size(), kMaxRecordedNodes);
  EXPECT_EQ(r.omitted, 10);
  EXPECT_EQ(r.nodes["node-100"].size(), kMaxReasonBytes);
  const std::string text = FormatFilterRecord(r);
  EXPECT_LT(text.size(), 32u * 1024);
  auto back = ParseFilterRecord(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->nodes, r.nodes);
  EXPECT_EQ(back->omitted, 10);
  EXPECT_EQ(back->since, kT0);  // whole seconds
}

TEST(FilterRecord, HostileValuesAreRefusedWithTheField) {
  struct Case {
    std::string text, says;
  };
  for (const Case& c : std::vector<Case>{
           {"", "tideslice.io/filter-reasons"},
           {"[]", "is not a JSON object"},
           {R"({"nodes":{}})", "tideslice.io/filter-reasons.since"},
           {R"({"since":"yesterday","nodes":{}})", "since"},
           {R"({"since":"2026-01-01T00:00:00Z"})", "tideslice.io/filter-reasons.nodes"},
           {R"({"since":"2026-01-01T00:00:00Z","nodes":{"a":1}})", "tideslice.io/filter-reasons.nodes.a: must be a string"},
           {R"({"since":"2026-01-01T00:00:00Z","nodes":{},"omitted":-1})", "omitted"},
           {R"({"since":"2026-01-01T00:00:00Z","nodes":{"a":)" + std::string(5000, '[') + std::string(5000, ']') + "}}",
            "nests deeper"},
           {std::string(70 * 1024, ' '), "tideslice.io/filter-reasons"}}) {
    auto r = ParseFilterRecord(c.text);
    ASSERT_FALSE(r.ok()) << c.text.substr(0, 80);
    EXPECT_THAT(r.status().ToString(), HasSubstr(c.says)) << c.text.substr(0, 80);
  }
  // Too many nodes from outside are cut, not refused.
  json many = {{"since", "2026-01-01T00:00:00Z"}, {"nodes", json::object()}};
  for (int i = 0; i < 80; ++i) many["nodes"]["n" + std::to_string(i)] = "r";
  auto r = ParseFilterRecord(many.dump());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->nodes.size(), kMaxRecordedNodes);
  EXPECT_EQ(r->omitted, 30);
}

json PendingPod(const std::string& name, const std::string& memory = "200Gi") {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"namespace", "ml"}}},
          {"spec",
           {{"schedulerName", "tideslice-scheduler"},
            {"containers",
             {{{"name", "c"},
               {"image", "vllm"},
               {"resources", {{"limits", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", memory}}}}}}}}}},
          {"status", {{"phase", "Pending"}}}};
}

std::string Annotation(testsupport::TestApiServer* server, const std::string& name) {
  auto pod = server->Get("pods", "ml", name);
  if (!pod || !(*pod)["metadata"].contains("annotations")) return "";
  return (*pod)["metadata"]["annotations"].value(kFilterReasonsAnnotation, std::string());
}

TEST(FilterReasonRecorder, WritesOncePerChangeAndOnlyOntoTheSamePendingPod) {
  testsupport::KubeEnv env;
  json pod = env.server->Upsert("pods", PendingPod("llm"));
  const std::string uid = pod["metadata"]["uid"];
  FilterReasonRecorder recorder(env.client.get(), [] { return kT0; });
  recorder.Record("ml", "llm", uid, {{"gpu-a", "no card with 200Gi free"}, {"gpu-b", "inventory is stale"}});
  recorder.Flush();
  auto record = ParseFilterRecord(Annotation(env.server.get(), "llm"));
  ASSERT_TRUE(record.ok()) << record.status().ToString();
  EXPECT_EQ(record->nodes.at("gpu-a"), "no card with 200Gi free");
  EXPECT_EQ(record->nodes.at("gpu-b"), "inventory is stale");
  EXPECT_EQ(record->since, kT0);
  const int puts = env.server->requests("PUT pods");
  // The same reasons again (kube-scheduler retries): nothing written.
  for (int i = 0; i < 5; ++i) recorder.Record("ml", "llm", uid, {{"gpu-a", "no card with 200Gi free"}, {"gpu-b", "inventory is stale"}});
  recorder.Flush();
  EXPECT_EQ(env.server->requests("PUT pods"), puts);
  EXPECT_EQ(recorder.writes(), 1u);
  // Changed reasons: rewritten.
  recorder.Record("ml", "llm", uid, {{"gpu-a", "no card with 200Gi free"}});
  recorder.Flush();
  EXPECT_EQ(ParseFilterRecord(Annotation(env.server.get(), "llm"))->nodes.size(), 1u);
  // Another pod under the same name (re-created), a bound pod, a deleted pod: left alone.
  recorder.Record("ml", "llm", "other-uid", {{"gpu-c", "x"}});
  json bound = PendingPod("bound");
  bound["spec"]["nodeName"] = "gpu-a";
  env.server->Upsert("pods", bound);
  recorder.Record("ml", "bound", "", {{"gpu-c", "x"}});
  recorder.Record("ml", "gone", "", {{"gpu-c", "x"}});
  recorder.Flush();
  EXPECT_EQ(ParseFilterRecord(Annotation(env.server.get(), "llm"))->nodes.count("gpu-c"), 0u);
  EXPECT_EQ(Annotation(env.server.get(), "bound"), "");
}

TEST(FilterReasonRecorder, TheSchedulerRecordsWhyAPodFitsNoNode) {
  testsupport::KubeEnv env;
  for (const char* name : {"gpu-a", "gpu-b"}) {
    v1::NodeInventory inv;
    inv.set_node_name(name);
    inv.set_backend("mock");
    *inv.mutable_heartbeat() = google::protobuf::util::TimeUtil::GetCurrentTime();
    auto* card = inv.add_cards();
    card->set_uuid(std::string("GPU-") + name);
    card->set_index(0);
    card->set_vendor("nvidia");
    card->set_model("A10");  // 24 GiB: too small for the 30Gi pod below
    card->set_memory_mib(24576);
    card->set_compute_units(72);
    card->set_health(v1::HEALTH_HEALTHY);
    card->set_numa_node(-1);
    env.server->Upsert("nodes", {{"metadata", {{"name", name}, {"annotations", {{"tideslice.io/inventory", codec::EncodeInventory(inv)}}}}}});
  }
  AppOptions o;
  const int port = testsupport::FreeLoopbackPort();
  o.extender_address = "http://127.0.0.1:" + std::to_string(port) + "/tideslice";
  o.health_address = "http://127.0.0.1:" + std::to_string(testsupport::FreeLoopbackPort());
  o.leader_elect = false;
  o.refresh_period = std::chrono::milliseconds(100);
  auto app = SchedulerApp::Start(env.client.get(), catalog::Catalog::Builtin(), o);
  ASSERT_TRUE(app.ok()) << app.status().ToString();
  ASSERT_TRUE(WaitFor([&] { return (*app)->ready(); }));
  json fits = env.server->Upsert("pods", PendingPod("small", "10Gi"));
  json huge = env.server->Upsert("pods", PendingPod("huge", "30Gi"));
  auto filter = [&](const json& pod) {
    json body = {{"Pod", pod}, {"NodeNames", {"gpu-a", "gpu-b"}}};
    auto [status, text] = testsupport::HttpRequest(port, "POST", "/tideslice/filter", body.dump());
    EXPECT_EQ(status, 200) << text;
    return json::parse(text);
  };
  json r = filter(huge);
  EXPECT_TRUE(r["NodeNames"].empty()) << r.dump();
  ASSERT_TRUE(WaitFor([&] { return !Annotation(env.server.get(), "huge").empty(); }));
  auto record = ParseFilterRecord(Annotation(env.server.get(), "huge"));
  ASSERT_TRUE(record.ok()) << record.status().ToString();
  ASSERT_EQ(record->nodes.size(), 2u);
  json failed = r["FailedNodes"];
  failed.update(r["FailedAndUnresolvableNodes"]);
  EXPECT_EQ(record->nodes.at("gpu-a"), failed["gpu-a"].get<std::string>());
  // A pod that fits somewhere gets no record.
  r = filter(fits);
  EXPECT_EQ(r["NodeNames"].size(), 2u);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(Annotation(env.server.get(), "small"), "");
  (*app)->Stop();
}

}  // namespace
}  // namespace tideslice::service
