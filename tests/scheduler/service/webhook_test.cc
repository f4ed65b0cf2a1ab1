// The mutating webhook's patch, applied to the pod as the API server would: scheduler name,
// workload label, and for training pods the checkpoint-notice volume and mounts, whatever
// volumes and mounts the pod brings. Hostile bodies (wrong types, deep nesting) get an answer,
// directly and over a real socket; TideSlice's own annotations are TideSlice's to write.
#include "scheduler/service/webhook.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/log/log.h"
#include "tests/support/admission.h"
#include "tests/support/test_support.h"

namespace tideslice::service {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

json Mutated(json pod) {
  json review = {{"apiVersion", "admission.k8s.io/v1"},
                 {"kind", "AdmissionReview"},
                 {"request", {{"uid", "u1"}, {"namespace", "ml"}, {"operation", "CREATE"}, {"object", pod}}}};
  auto reply = ServeMutate(review.dump(), catalog::Catalog::Builtin(), WebhookOptions{});
  EXPECT_EQ(reply.status, 200);
  return testsupport::ApplyAdmissionPatch(pod, json::parse(reply.body));  // throws if the patch does not apply
}

json Pod(const std::string& workload) {
  return {{"metadata", {{"name", "p"}, {"namespace", "ml"}, {"labels", {{"tideslice.io/workload", workload}}}}},
          {"spec",
           {{"containers",
             {{{"name", "a"}, {"image", "x"}, {"resources", {{"limits", {{"tideslice.io/vnpu", "1"}}}}}},
              {{"name", "b"}, {"image", "x"}}}}}}};
}

TEST(MutatingWebhook, TrainingPodsGetTheCheckpointNoticeAsFiles) {
  json pod = Mutated(Pod("training"));
  EXPECT_EQ(pod["spec"]["schedulerName"], "tideslice-scheduler");
  ASSERT_EQ(pod["spec"]["volumes"].size(), 1u);
  EXPECT_EQ(pod["spec"]["volumes"][0]["name"], kNoticeVolume);
  EXPECT_EQ(pod["spec"]["volumes"][0]["downwardAPI"]["items"][1]["fieldRef"]["fieldPath"],
            "metadata.annotations['tideslice.io/checkpoint-notice']");
  for (const auto& c : pod["spec"]["containers"]) {
    ASSERT_EQ(c["volumeMounts"].size(), 1u) << c.dump();
    EXPECT_EQ(c["volumeMounts"][0]["mountPath"], "/etc/tideslice/notice");
  }
}

TEST(MutatingWebhook, NoticeVolumeJoinsExistingVolumesAndSkipsTakenPaths) {
  json in = Pod("training");
  in["spec"]["volumes"] = {{{"name", "data"}, {"emptyDir", json::object()}}};
  in["spec"]["containers"][0]["volumeMounts"] = {{{"name", "data"}, {"mountPath", "/data"}}};
  in["spec"]["containers"][1]["volumeMounts"] = {{{"name", "data"}, {"mountPath", "/etc/tideslice/notice"}}};
  json pod = Mutated(in);
  ASSERT_EQ(pod["spec"]["volumes"].size(), 2u);
  EXPECT_EQ(pod["spec"]["containers"][0]["volumeMounts"].size(), 2u);
  EXPECT_EQ(pod["spec"]["containers"][1]["volumeMounts"].size(), 1u);  // its own mount stays
  // A pod that brings the volume already (re-admitted, or written by hand) keeps its own.
  json again = Mutated(pod);
  EXPECT_EQ(again["spec"]["volumes"].size(), 2u);
}

TEST(MutatingWebhook, InferencePodsGetNoNoticeVolume) {
  json pod = Mutated(Pod("inference"));
  EXPECT_FALSE(pod["spec"].contains("volumes"));
  EXPECT_FALSE(pod["spec"]["containers"][0].contains("volumeMounts"));
}

// --- Bodies from outside: every one gets an answer that says what is wrong. ---

const char* kScheduler = "system:serviceaccount:tideslice-system:tideslice-scheduler";
const char* kAgent = "system:serviceaccount:tideslice-system:tideslice-device-plugin";

json Review(const std::string& operation, const json& pod, const json& old_pod = nullptr,
            const std::string& user = "alice", const std::string& ns = "ml") {
  json request = {{"uid", "u1"}, {"namespace", ns}, {"operation", operation}, {"userInfo", {{"username", user}}},
                  {"object", pod}};
  if (!old_pod.is_null()) request["oldObject"] = old_pod;
  return {{"apiVersion", "admission.k8s.io/v1"}, {"kind", "AdmissionReview"}, {"request", request}};
}

// The AdmissionReview response of a 200 answer (fails the test on anything else).
json Response(const http::HttpReply& reply) {
  EXPECT_EQ(reply.status, 200) << reply.body;
  json answer = json::parse(reply.body, nullptr, false);
  if (!answer.is_object() || !answer.contains("response")) {
    ADD_FAILURE() << "not an AdmissionReview answer: " << reply.body;
    return json::object();
  }
  return answer["response"];
}

std::string Message(const json& response) {
  return response.contains("status") ? response["status"].value("message", std::string()) : std::string();
}

WebhookOptions Trusting() {
  WebhookOptions o;
  o.trusted_writers = {kScheduler, kAgent};
  return o;
}

json SlicePod(const json& annotations = json::object()) {
  json pod = Pod("inference");
  if (!annotations.empty()) pod["metadata"]["annotations"] = annotations;
  return pod;
}

// tideslice.io/compute-mode: "capped" (the default) or "work-conserving"; anything else is refused
// at CREATE with a message that names the annotation and the two values.
TEST(ValidatingWebhook, ComputeModeIsCappedOrWorkConserving) {
  auto validate = [](const json& pod, const std::string& ns = "ml") {
    return Response(ServeValidate(Review("CREATE", pod, nullptr, "alice", ns).dump(), catalog::Catalog::Builtin(),
                                  WebhookOptions{}));
  };
  for (const char* ok : {"capped", "work-conserving"})
    EXPECT_TRUE(validate(SlicePod({{"tideslice.io/compute-mode", ok}})).value("allowed", false)) << ok;
  for (const char* bad : {"", "Capped", "work_conserving", "workconserving", "turbo", "true", " capped"}) {
    json response = validate(SlicePod({{"tideslice.io/compute-mode", bad}}));
    EXPECT_FALSE(response.value("allowed", true)) << bad;
    EXPECT_THAT(Message(response), HasSubstr("tideslice.io/compute-mode"));
    EXPECT_THAT(Message(response), HasSubstr("\"capped\""));
    EXPECT_THAT(Message(response), HasSubstr("\"work-conserving\""));
    EXPECT_THAT(Message(response), HasSubstr("got \"" + std::string(bad) + "\""));
  }
  // Excluded namespaces skip the contract, as for every other annotation.
  EXPECT_TRUE(validate(SlicePod({{"tideslice.io/compute-mode", "turbo"}}), "kube-system").value("allowed", false));
  // The mutating webhook leaves an invalid pod alone (the validating one refuses it).
  json review = Review("CREATE", SlicePod({{"tideslice.io/compute-mode", "turbo"}}));
  json mutated = Response(ServeMutate(review.dump(), catalog::Catalog::Builtin(), WebhookOptions{}));
  EXPECT_TRUE(mutated.value("allowed", false));
  EXPECT_FALSE(mutated.contains("patch"));
}

// A body nested `depth` levels inside the pod's labels (well-formed JSON; the tester's crash was
// about 87k levels).
std::string DeeplyNested(int depth) {
  std::string body = R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1",)"
                     R"("operation":"CREATE","object":{"metadata":{"name":"p","labels":{"a":)";
  body += std::string(static_cast<size_t>(depth), '[') + std::string(static_cast<size_t>(depth), ']');
  body += "}}}}}";
  return body;
}

TEST(WebhookHostileBodies, WrongTypesAreAnsweredNotThrown) {
  const auto& cat = catalog::Catalog::Builtin();
  WebhookOptions o;
  // Not an AdmissionReview at all (kind is a number): 400 for both verbs.
  for (auto serve : {ServeValidate, ServeMutate}) {
    auto r = serve(R"({"kind":5,"request":{}})", cat, o);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_THAT(r.body, HasSubstr("AdmissionReview"));
    r = serve(R"({"kind":"AdmissionReview","request":{"uid":7,"object":{}}})", cat, o);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_THAT(r.body, HasSubstr("request.uid: must be a string"));
  }
  // With a uid: a refusal that names the field.
  json bad_ns = Review("CREATE", SlicePod());
  bad_ns["request"]["namespace"] = 5;
  json bad_meta = Review("CREATE", SlicePod());
  bad_meta["request"]["object"]["metadata"] = "p";
  json bad_user = Review("UPDATE", SlicePod(), SlicePod());
  bad_user["request"]["userInfo"]["username"] = json::array({"x"});
  json bad_meta_ns = Review("CREATE", SlicePod());
  bad_meta_ns["request"].erase("namespace");
  bad_meta_ns["request"]["object"]["metadata"]["namespace"] = {{"x", 1}};
  json bad_old = Review("UPDATE", SlicePod(), json::array({1}));
  for (auto serve : {ServeValidate, ServeMutate}) {
    for (const auto& [body, field] : std::vector<std::pair<json, std::string>>{
             {bad_ns, "request.namespace"},
             {bad_meta, "request.object.metadata"},
             {bad_user, "request.userInfo.username"},
             {bad_meta_ns, "request.object.metadata.namespace"},
             {bad_old, "request.oldObject"}}) {
      json response = Response(serve(body.dump(), cat, o));
      EXPECT_EQ(response.value("allowed", true), false) << body.dump();
      EXPECT_THAT(Message(response), HasSubstr(field));
    }
  }
}

TEST(WebhookHostileBodies, NullMetadataOrSpecIsReadAsAbsent) {
  // Go writes nil as null; the old mutation code called value() on it and threw.
  json pod = SlicePod();
  pod["metadata"] = nullptr;
  json response = Response(ServeMutate(Review("CREATE", pod).dump(), catalog::Catalog::Builtin(), WebhookOptions{}));
  EXPECT_TRUE(response.value("allowed", false));
  json patched = testsupport::ApplyAdmissionPatch(json{{"metadata", json::object()}, {"spec", pod["spec"]}},
                                                  json{{"response", response}});
  EXPECT_EQ(patched["metadata"]["labels"]["tideslice.io/workload"], "inference");
  pod = SlicePod();
  pod["spec"]["volumes"] = "not a list";
  pod["metadata"]["labels"]["tideslice.io/workload"] = "training";
  response = Response(ServeMutate(Review("CREATE", pod).dump(), catalog::Catalog::Builtin(), WebhookOptions{}));
  EXPECT_TRUE(response.value("allowed", false));
}

TEST(WebhookHostileBodies, DeepNestingIsRefusedWithoutRecursion) {
  const std::string body = DeeplyNested(100000);
  for (auto serve : {ServeValidate, ServeMutate}) {
    auto r = serve(body, catalog::Catalog::Builtin(), WebhookOptions{});
    EXPECT_EQ(r.status, 400) << r.body.substr(0, 300);
    EXPECT_THAT(r.body, HasSubstr("nests deeper than"));
  }
  // Ordinary pods nest far less than the limit.
  EXPECT_EQ(ServeValidate(DeeplyNested(20), catalog::Catalog::Builtin(), WebhookOptions{}).status, 200);
}

// The webhook behind the real HTTP server, as the scheduler app routes it: bodies that used to end
// the process get an answer, and the server answers the next request.
TEST(WebhookHostileBodies, RealServerSurvivesCrashingBodies) {
  const int port = testsupport::FreeLoopbackPort();
  WebhookOptions options = Trusting();
  auto server = http::HttpServer::StartRoutes(
      "http://127.0.0.1:" + std::to_string(port),
      [&options](const http::HttpCall& c) {
        if (c.path == "/mutate") return ServeMutate(c.body, catalog::Catalog::Builtin(), options);
        if (c.path == "/validate") return ServeValidate(c.body, catalog::Catalog::Builtin(), options);
        return http::HttpReply{404, "{}"};
      });
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  json bad_meta = Review("CREATE", SlicePod());
  bad_meta["request"]["object"]["metadata"] = 1;
  json null_meta = Review("CREATE", SlicePod());
  null_meta["request"]["object"]["metadata"] = nullptr;
  const std::vector<std::string> hostile = {R"({"kind":5,"request":{}})",
                                            R"({"kind":"AdmissionReview","request":{"uid":{},"namespace":[]}})",
                                            bad_meta.dump(), null_meta.dump(), DeeplyNested(87000)};
  for (const char* path : {"/validate", "/mutate"}) {
    for (const auto& body : hostile) {
      auto [status, reply] = testsupport::HttpRequest(port, "POST", path, body);
      EXPECT_TRUE(status == 200 || status == 400) << path << " " << status << " for " << body.substr(0, 120);
      EXPECT_FALSE(reply.empty());
    }
  }
  auto [status, reply] = testsupport::HttpRequest(port, "POST", "/validate", Review("CREATE", SlicePod()).dump());
  ASSERT_EQ(status, 200) << "the server stopped answering";
  EXPECT_TRUE(json::parse(reply)["response"]["allowed"].get<bool>()) << reply;
  (*server)->Stop();
}

// --- TideSlice's own annotations. ---

struct Captured {
  std::vector<std::string> lines;
  static void Sink(const std::string& line, void* self) { static_cast<Captured*>(self)->lines.push_back(line); }
};

class OwnedAnnotations : public ::testing::Test {
 protected:
  void SetUp() override { log::SetSink(&Captured::Sink, &captured_); }
  void TearDown() override { log::SetSink(nullptr, nullptr); }
  json Validate(const json& review, const WebhookOptions& options = Trusting()) {
    return Response(ServeValidate(review.dump(), catalog::Catalog::Builtin(), options));
  }
  Captured captured_;
};

const char* kAssignment = "tideslice.io/assignment";
const std::string kAssignmentValue = R"({"phase":"ASSIGNMENT_PHASE_ALLOCATED","containers":[]})";

TEST_F(OwnedAnnotations, TheListNamesWhatTideSliceWrites) {
  EXPECT_THAT(kOwnedAnnotations, ::testing::ElementsAre("tideslice.io/assignment", "tideslice.io/checkpoint-notice",
                                                       "tideslice.io/checkpoint-deadline", "tideslice.io/filter-reasons"));
}

TEST_F(OwnedAnnotations, CreateCarryingOneIsRefusedForEveryoneEverywhere) {
  for (std::string_view key : kOwnedAnnotations) {
    for (const char* user : {"alice", kScheduler}) {
      for (const char* ns : {"ml", "kube-system"}) {  // kube-system is excluded from the contract check only
        json response = Validate(Review("CREATE", SlicePod({{std::string(key), "x"}}), nullptr, user, ns));
        EXPECT_FALSE(response.value("allowed", true)) << key << " " << user << " " << ns;
        EXPECT_THAT(Message(response), HasSubstr(std::string(key)));
        EXPECT_THAT(Message(response), HasSubstr("only TideSlice may set"));
      }
    }
  }
  // A pod with no TideSlice resources at all is no exception.
  json plain = {{"metadata", {{"name", "web"}, {"annotations", {{kAssignment, kAssignmentValue}}}}},
                {"spec", {{"containers", {{{"name", "c"}}}}}}};
  EXPECT_FALSE(Validate(Review("CREATE", plain)).value("allowed", true));
}

TEST_F(OwnedAnnotations, UpdateByAnUntrustedUserThatChangesOneIsRefusedAndLogged) {
  json before = SlicePod({{kAssignment, kAssignmentValue}});
  json after = SlicePod({{kAssignment, R"({"phase":"ASSIGNMENT_PHASE_ALLOCATED","containers":[{"name":"x"}]})"}});
  json response = Validate(Review("UPDATE", after, before, "mallory"));
  EXPECT_FALSE(response.value("allowed", true));
  EXPECT_THAT(Message(response), HasSubstr("only TideSlice may set the annotation tideslice.io/assignment"));
  ASSERT_EQ(captured_.lines.size(), 1u);
  json line = json::parse(captured_.lines[0]);
  EXPECT_EQ(line["event"], "admission.forgery_refused");
  EXPECT_EQ(line["user"], "mallory");
  EXPECT_EQ(line["pod"], "ml/p");
  EXPECT_EQ(line["annotation"], kAssignment);
  EXPECT_EQ(line["operation"], "UPDATE");
  // Added, removed, or added without an oldObject to compare with: refused the same way.
  EXPECT_FALSE(Validate(Review("UPDATE", after, SlicePod(), "mallory")).value("allowed", true));
  EXPECT_FALSE(Validate(Review("UPDATE", SlicePod(), before, "mallory")).value("allowed", true));
  EXPECT_FALSE(Validate(Review("UPDATE", after, nullptr, "mallory")).value("allowed", true));
  // The notice annotations too, and an anonymous request as well.
  json noticed = SlicePod({{"tideslice.io/checkpoint-deadline", "2026-01-01T00:00:00Z"}});
  EXPECT_FALSE(Validate(Review("UPDATE", noticed, SlicePod(), "")).value("allowed", true));
  // With nobody trusted (the default), not even the scheduler may change it.
  EXPECT_FALSE(Validate(Review("UPDATE", after, before, kScheduler), WebhookOptions{}).value("allowed", true));
}

TEST_F(OwnedAnnotations, TrustedWritersMayChangeThem) {
  json before = SlicePod({{kAssignment, kAssignmentValue}});
  json after = SlicePod({{kAssignment, R"({"phase":"ASSIGNMENT_PHASE_FAILED"})"},
                         {"tideslice.io/checkpoint-notice", "{}"}});
  EXPECT_TRUE(Validate(Review("UPDATE", after, before, kScheduler)).value("allowed", false));
  EXPECT_TRUE(Validate(Review("UPDATE", after, before, kAgent)).value("allowed", false));
  // The prefix form trusts a namespace's service accounts, and nothing outside it.
  WebhookOptions prefix;
  prefix.trusted_writers = {"system:serviceaccount:tideslice-system:*"};
  EXPECT_TRUE(Validate(Review("UPDATE", after, before, kScheduler), prefix).value("allowed", false));
  EXPECT_TRUE(captured_.lines.empty());
  EXPECT_FALSE(Validate(Review("UPDATE", after, before, "system:serviceaccount:tideslice-systemx:a"), prefix)
                   .value("allowed", true));
  WebhookOptions everyone;
  everyone.trusted_writers = {"*"};  // would switch the check off: matches nobody
  EXPECT_FALSE(Validate(Review("UPDATE", after, before, kScheduler), everyone).value("allowed", true));
}

TEST_F(OwnedAnnotations, UpdatesThatLeaveThemAloneAreAllowed) {
  json before = SlicePod({{kAssignment, kAssignmentValue}, {"team", "a"}});
  json after = before;
  after["metadata"]["annotations"]["team"] = "b";
  after["metadata"]["labels"]["extra"] = "yes";
  EXPECT_TRUE(Validate(Review("UPDATE", after, before, "alice")).value("allowed", false));
  EXPECT_TRUE(Validate(Review("UPDATE", SlicePod(), SlicePod(), "alice")).value("allowed", false));
  EXPECT_TRUE(captured_.lines.empty());
}

TEST_F(OwnedAnnotations, ExcludedNamespacesAreStillChecked) {
  json before = SlicePod({{kAssignment, kAssignmentValue}});
  json after = SlicePod({{kAssignment, "forged"}});
  EXPECT_FALSE(Validate(Review("UPDATE", after, before, "alice", "kube-system")).value("allowed", true));
  // ... while the contract check still skips them: an invalid request passes there.
  json invalid = SlicePod();
  invalid["spec"]["containers"][0]["resources"]["limits"]["tideslice.io/vnpu-cores"] = "500";
  EXPECT_TRUE(Validate(Review("CREATE", invalid, nullptr, "alice", "kube-system")).value("allowed", false));
  EXPECT_FALSE(Validate(Review("CREATE", invalid, nullptr, "alice", "ml")).value("allowed", true));
}

TEST_F(OwnedAnnotations, TheContractIsCheckedOnCreateOnly) {
  json invalid = SlicePod();
  invalid["spec"]["containers"][0]["resources"]["limits"]["tideslice.io/vnpu-cores"] = "500";
  json response = Validate(Review("CREATE", invalid));
  EXPECT_FALSE(response.value("allowed", true));
  EXPECT_THAT(Message(response), HasSubstr("tideslice.io/vnpu-cores"));
  EXPECT_TRUE(Validate(Review("UPDATE", invalid, invalid)).value("allowed", false));
  // Mutation is for CREATE too: an UPDATE gets no patch.
  json mutated = Response(ServeMutate(Review("UPDATE", SlicePod(), SlicePod()).dump(), catalog::Catalog::Builtin(),
                                      WebhookOptions{}));
  EXPECT_TRUE(mutated.value("allowed", false));
  EXPECT_FALSE(mutated.contains("patch"));
}

TEST_F(OwnedAnnotations, RefusalsQuoteInputWithinBounds) {
  // A huge invalid value is quoted in the refusal, cut to a readable size.
  json invalid = SlicePod({{"tideslice.io/exclusive", std::string(300000, 'y')}});
  json response = Validate(Review("CREATE", invalid));
  EXPECT_FALSE(response.value("allowed", true));
  EXPECT_LE(Message(response).size(), 1024u);
  EXPECT_THAT(Message(response), HasSubstr("tideslice.io/exclusive"));
  EXPECT_THAT(Message(response), ::testing::EndsWith("..."));
  // A huge username is logged within bounds.
  json forged = Review("UPDATE", SlicePod({{kAssignment, "x"}}), SlicePod(), std::string(100000, 'm'));
  EXPECT_FALSE(Validate(forged).value("allowed", true));
  ASSERT_EQ(captured_.lines.size(), 1u);
  EXPECT_LT(captured_.lines[0].size(), 2000u);
}

}  // namespace
}  // namespace tideslice::service
