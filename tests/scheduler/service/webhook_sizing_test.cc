// Sizing by model through the admission webhook: the real HTTP server on a loopback socket, the
// mutating webhook's patch applied as the API server applies it, and the mutated pod then judged
// by the validating webhook, as the API server chains them. Bad annotation values, conflicting
// memory requests and models no single card holds are refused with what to write instead.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/http/server.h"
#include "common/sizing/model_sizing.h"
#include "scheduler/service/webhook.h"
#include "tests/support/admission.h"
#include "tests/support/test_support.h"

namespace tideslice::service {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

class WebhookSizing : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = testsupport::FreeLoopbackPort();
    auto server = http::HttpServer::StartRoutes("http://127.0.0.1:" + std::to_string(port_), [](const http::HttpCall& c) {
      static const WebhookOptions options;
      if (c.path == "/mutate") return ServeMutate(c.body, catalog::Catalog::Builtin(), options);
      if (c.path == "/validate") return ServeValidate(c.body, catalog::Catalog::Builtin(), options);
      return http::HttpReply{404, "{}"};
    });
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  static json Review(const json& pod, const std::string& ns = "ml") {
    return {{"apiVersion", "admission.k8s.io/v1"},
            {"kind", "AdmissionReview"},
            {"request", {{"uid", "u1"}, {"namespace", ns}, {"operation", "CREATE"}, {"object", pod}}}};
  }
  // POSTs the review to `path` over the socket; the AdmissionReview answer.
  json Post(const std::string& path, const json& pod, const std::string& ns = "ml") {
    auto [status, body] = testsupport::HttpRequest(port_, "POST", path, Review(pod, ns).dump());
    EXPECT_EQ(status, 200) << body;
    json answer = json::parse(body, nullptr, false);
    EXPECT_TRUE(answer.is_object() && answer.contains("response")) << body;
    return answer.is_discarded() ? json::object() : answer;
  }
  // What the API server does at CREATE: mutate, apply the patch, then validate the result.
  struct Admitted {
    json pod;
    bool allowed = false;
    std::string message;
  };
  Admitted Admit(const json& pod, const std::string& ns = "ml") {
    Admitted a;
    json mutated = Post("/mutate", pod, ns);
    a.pod = testsupport::ApplyAdmissionPatch(pod, mutated);
    json validated = Post("/validate", a.pod, ns);
    const json& r = validated["response"];
    a.allowed = r.value("allowed", false);
    if (r.contains("status")) a.message = r["status"].value("message", std::string());
    return a;
  }

  int port_ = 0;
  std::unique_ptr<http::HttpServer> server_;
};

json ModelPod(const json& model_annotations, json containers) {
  return {{"metadata", {{"name", "llm"}, {"namespace", "ml"}, {"annotations", model_annotations}}},
          {"spec", {{"containers", std::move(containers)}}}};
}
json Annotations(const std::string& params, const std::string& dtype, const std::string& mode = "") {
  json a = {{sizing::kModelParamsAnnotation, params}, {sizing::kModelDtypeAnnotation, dtype}};
  if (!mode.empty()) a[sizing::kModelModeAnnotation] = mode;
  return a;
}
json Container(const std::string& name, const json& limits = nullptr) {
  json c = {{"name", name}, {"image", "vllm"}};
  if (!limits.is_null()) c["resources"] = {{"limits", limits}};
  return c;
}
const json& Limits(const json& pod, size_t i) { return pod["spec"]["containers"][i]["resources"]["limits"]; }

TEST_F(WebhookSizing, SevenBInBf16GetsSixteenGiAndTheFormula) {
  Admitted a = Admit(ModelPod(Annotations("7B", "bf16"), {Container("server", {{"tideslice.io/vnpu", "1"}})}));
  EXPECT_TRUE(a.allowed) << a.message;
  EXPECT_EQ(Limits(a.pod, 0)["tideslice.io/vnpu-memory"], "16Gi");
  EXPECT_EQ(Limits(a.pod, 0)["tideslice.io/vnpu"], "1");
  EXPECT_EQ(a.pod["metadata"]["annotations"][sizing::kSizedByAnnotation],
            "7B x 2 B/param (bf16 weights) x 1.2 (inference) = 16.8 GB -> 16Gi per slice");
  // The rest of the mutation still happens.
  EXPECT_EQ(a.pod["spec"]["schedulerName"], "tideslice-scheduler");
  EXPECT_EQ(a.pod["metadata"]["labels"]["tideslice.io/workload"], "inference");
  // Admitted again (a controller re-posting the same pod), nothing changes and it stays allowed.
  Admitted again = Admit(a.pod);
  EXPECT_TRUE(again.allowed) << again.message;
  EXPECT_EQ(Limits(again.pod, 0), Limits(a.pod, 0));
}

TEST_F(WebhookSizing, TheOnlyContainerGetsASliceWhereverItsLimitsAre) {
  // No resources at all, resources without limits, limits without TideSlice's resources.
  for (json c : {Container("main"), json{{"name", "main"}, {"resources", {{"requests", {{"cpu", "1"}}}}}},
                 Container("main", {{"cpu", "2"}})}) {
    Admitted a = Admit(ModelPod(Annotations("13B", "int4", "finetune-lora"), {c}));
    EXPECT_TRUE(a.allowed) << a.message << " for " << c.dump();
    EXPECT_EQ(Limits(a.pod, 0)["tideslice.io/vnpu"], "1") << c.dump();
    EXPECT_EQ(Limits(a.pod, 0)["tideslice.io/vnpu-memory"], "10Gi") << c.dump();
    EXPECT_THAT(a.pod["metadata"]["annotations"][sizing::kSizedByAnnotation].get<std::string>(),
                HasSubstr("0.16 B/param LoRA adapters"));
  }
  // Several containers and none asks: which one runs the model is the author's to say.
  Admitted a = Admit(ModelPod(Annotations("7B", "bf16"), {Container("a"), Container("b")}));
  EXPECT_FALSE(a.allowed);
  EXPECT_THAT(a.message, HasSubstr("none of the pod's 2 containers does; add tideslice.io/vnpu: 1"));
}

TEST_F(WebhookSizing, EveryContainerThatAsksIsSizedForItsSlices) {
  Admitted a = Admit(ModelPod(Annotations("7B", "bf16", "train-full"),
                              {Container("trainer", {{"tideslice.io/vnpu", "2"}}), Container("sidecar"),
                               Container("eval", {{"nvidia.com/gpu", "1"}})}));
  ASSERT_FALSE(a.allowed);  // one card cannot hold 126Gi
  EXPECT_THAT(a.message, HasSubstr("ask for tideslice.io/vnpu: 2 in container \"eval\" (63Gi on each of 2 cards)"));
  a = Admit(ModelPod(Annotations("7B", "bf16", "train-full"),
                     {Container("trainer", {{"tideslice.io/vnpu", "2"}}), Container("sidecar"),
                      Container("eval", {{"nvidia.com/gpu", "2"}})}));
  EXPECT_TRUE(a.allowed) << a.message;
  EXPECT_EQ(Limits(a.pod, 0)["tideslice.io/vnpu-memory"], "63Gi");
  EXPECT_FALSE(a.pod["spec"]["containers"][1].contains("resources"));
  EXPECT_EQ(Limits(a.pod, 2)["tideslice.io/vnpu-memory"], "63Gi");
  EXPECT_THAT(a.pod["metadata"]["annotations"][sizing::kSizedByAnnotation].get<std::string>(),
              HasSubstr("container \"trainer\": 7B x 16 B/param"));
  EXPECT_EQ(a.pod["metadata"]["labels"]["tideslice.io/workload"], "inference");  // no owner: the default
}

TEST_F(WebhookSizing, AModelNoCardHoldsIsRefusedWithTheCardsItNeeds) {
  Admitted a = Admit(ModelPod(Annotations("70B", "bf16"), {Container("server", {{"tideslice.io/vnpu", "1"}})}));
  EXPECT_FALSE(a.allowed);
  EXPECT_THAT(a.message, HasSubstr("tideslice.io/model-params: 70B bf16 inference needs 157Gi per slice"));
  EXPECT_THAT(a.message, HasSubstr("the largest allowed card, A100-80G, has 80Gi"));
  EXPECT_THAT(a.message, HasSubstr("ask for tideslice.io/vnpu: 2 in container \"server\" (79Gi on each of 2 cards)"));
  // The mutating webhook leaves it alone (the validating one explains).
  json mutated = Post("/mutate", ModelPod(Annotations("70B", "bf16"), {Container("server", {{"tideslice.io/vnpu", "1"}})}));
  EXPECT_FALSE(mutated["response"].contains("patch"));
  // As suggested: two slices of 79Gi.
  a = Admit(ModelPod(Annotations("70B", "bf16"), {Container("server", {{"tideslice.io/vnpu", "2"}})}));
  EXPECT_TRUE(a.allowed) << a.message;
  EXPECT_EQ(Limits(a.pod, 0)["tideslice.io/vnpu-memory"], "79Gi");
  // Only the card types the pod allows count.
  json only_small = ModelPod(Annotations("70B", "bf16"), {Container("server", {{"tideslice.io/vnpu", "1"}})});
  only_small["metadata"]["annotations"]["tideslice.io/card-type"] = "Ascend910B4";
  a = Admit(only_small);
  EXPECT_FALSE(a.allowed);
  EXPECT_THAT(a.message, HasSubstr("Ascend910B4, has 32Gi; ask for tideslice.io/vnpu: 5"));
  // Beyond 64 cards: no suggestion of a count.
  a = Admit(ModelPod(Annotations("20T", "fp32", "train-full"), {Container("server", {{"tideslice.io/vnpu", "1"}})}));
  EXPECT_FALSE(a.allowed);
  EXPECT_THAT(a.message, HasSubstr("does not fit on 64 cards either"));
}

TEST_F(WebhookSizing, AnExplicitMemoryThatDisagreesIsRefusedWithBothValues) {
  Admitted a = Admit(ModelPod(Annotations("7B", "bf16"),
                              {Container("server", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "8Gi"}})}));
  EXPECT_FALSE(a.allowed);
  EXPECT_THAT(a.message, HasSubstr("container \"server\" tideslice.io/vnpu-memory: asks 8192 MiB per slice"));
  EXPECT_THAT(a.message, HasSubstr("size it at 16Gi (16384 MiB)"));
  EXPECT_THAT(a.message, HasSubstr("remove tideslice.io/vnpu-memory"));
  // The vendor alias is the same request.
  a = Admit(ModelPod(Annotations("7B", "bf16"), {Container("server", {{"nvidia.com/gpu", "1"}, {"nvidia.com/gpumem", "20000"}})}));
  EXPECT_FALSE(a.allowed);
  EXPECT_THAT(a.message, HasSubstr("asks 20000 MiB per slice"));
  // The same value is no conflict.
  a = Admit(ModelPod(Annotations("7B", "bf16"),
                     {Container("server", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "16384"}})}));
  EXPECT_TRUE(a.allowed) << a.message;
  // A memory percentage or a hard partition profile fixes the memory too.
  a = Admit(ModelPod(Annotations("7B", "bf16"),
                     {Container("server", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory-percent", "50"}})}));
  EXPECT_FALSE(a.allowed);
  EXPECT_THAT(a.message, HasSubstr("tideslice.io/vnpu-memory-percent: conflicts with the model annotations"));
  json profiled = ModelPod(Annotations("7B", "bf16"), {Container("server", {{"tideslice.io/vnpu", "1"}})});
  profiled["metadata"]["annotations"]["tideslice.io/profile"] = "3g.40gb";
  a = Admit(profiled);
  EXPECT_FALSE(a.allowed);
  EXPECT_THAT(a.message, HasSubstr("tideslice.io/profile: fixes the memory"));
}

TEST_F(WebhookSizing, BadAnnotationValuesSayWhatToWrite) {
  struct Case {
    json annotations;
    const char* says;
  };
  for (const Case& c : std::vector<Case>{
           {Annotations("7b", "bf16"), "tideslice.io/model-params: must be a parameter count"},
           {Annotations("7b", "bf16"), "write 7B"},
           {Annotations("7B", "bfloat16"), "tideslice.io/model-dtype: got \"bfloat16\": write \"bf16\""},
           {Annotations("7B", "bf16", "lora"), "tideslice.io/model-mode: got \"lora\": write \"finetune-lora\""},
           {Annotations("7B", "int4", "train-full"), "write bf16 for fp8 training"},
           {json{{sizing::kModelParamsAnnotation, "7B"}}, "tideslice.io/model-dtype: is required"},
           {json{{sizing::kModelDtypeAnnotation, "bf16"}}, "tideslice.io/model-params: is required"}}) {
    json pod = ModelPod(c.annotations, {Container("server", {{"tideslice.io/vnpu", "1"}})});
    json mutated = Post("/mutate", pod);
    EXPECT_FALSE(mutated["response"].contains("patch")) << c.annotations.dump();
    Admitted a = Admit(pod);
    EXPECT_FALSE(a.allowed) << c.annotations.dump();
    EXPECT_THAT(a.message, HasSubstr("TideSlice rejects the request: "));
    EXPECT_THAT(a.message, HasSubstr(c.says));
  }
}

TEST_F(WebhookSizing, APodTheMutatingWebhookMissedIsRefusedWithTheValueToSet) {
  json pod = ModelPod(Annotations("7B", "bf16"), {Container("server", {{"tideslice.io/vnpu", "1"}})});
  json validated = Post("/validate", pod);
  EXPECT_FALSE(validated["response"].value("allowed", true));
  EXPECT_THAT(validated["response"]["status"]["message"].get<std::string>(),
              HasSubstr("(/mutate) did not run; set tideslice.io/vnpu-memory: 16Gi in its limits"));
  json bare = ModelPod(Annotations("7B", "bf16"), {Container("server")});
  validated = Post("/validate", bare);
  EXPECT_THAT(validated["response"]["status"]["message"].get<std::string>(),
              HasSubstr("tideslice.io/vnpu-memory: 16Gi and tideslice.io/vnpu: 1"));
}

TEST_F(WebhookSizing, ExcludedNamespacesAreLeftAlone) {
  json pod = ModelPod(Annotations("7b", "bf16"), {Container("server", {{"tideslice.io/vnpu", "1"}})});
  Admitted a = Admit(pod, "kube-system");
  EXPECT_TRUE(a.allowed) << a.message;
  EXPECT_FALSE(Limits(a.pod, 0).contains("tideslice.io/vnpu-memory"));
}

}  // namespace
}  // namespace tideslice::service
