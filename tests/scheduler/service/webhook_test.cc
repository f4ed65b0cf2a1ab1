// The mutating webhook's patch, applied to the pod as the API server would: scheduler name,
// workload label, and for training pods the checkpoint-notice volume and mounts, whatever
// volumes and mounts the pod brings.
#include "scheduler/service/webhook.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/support/admission.h"

namespace tideslice::service {
namespace {

using nlohmann::json;

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

}  // namespace
}  // namespace tideslice::service
