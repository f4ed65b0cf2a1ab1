#include "scheduler/service/webhook.h"

#include <openssl/evp.h>

#include <nlohmann/json.hpp>

#include "common/kube/pod_json.h"
#include "scheduler/core/request.h"
#include "scheduler/tidal/decide.h"

namespace tideslice::service {

using nlohmann::json;

namespace {

std::string Base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

// JSON-pointer escaping of one path segment (RFC 6901): "~" -> "~0", "/" -> "~1".
std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

struct Review {
  std::string uid;
  std::string ns;
  json pod;
};

StatusOr<Review> ParseReview(const std::string& body) {
  json root = json::parse(body, nullptr, false);
  if (!root.is_object() || root.value("kind", std::string()) != "AdmissionReview" || !root.contains("request") ||
      !root["request"].is_object())
    return Status::InvalidArgument("body", "is not an admission.k8s.io/v1 AdmissionReview");
  const json& req = root["request"];
  Review r;
  r.uid = req.value("uid", std::string());
  r.ns = req.value("namespace", std::string());
  if (r.uid.empty()) return Status::InvalidArgument("request.uid", "is missing");
  if (!req.contains("object") || !req["object"].is_object())
    return Status::InvalidArgument("request.object", "is missing");
  r.pod = req["object"];
  if (r.ns.empty()) r.ns = r.pod.value("metadata", json::object()).value("namespace", std::string());
  return r;
}

extender::HttpReply Answer(const std::string& uid, bool allowed, const std::string& message, const json& patch) {
  json response = {{"uid", uid}, {"allowed", allowed}};
  if (!allowed) response["status"] = {{"code", 422}, {"reason", "Invalid"}, {"message", message}};
  if (allowed && patch.is_array() && !patch.empty()) {
    response["patchType"] = "JSONPatch";
    response["patch"] = Base64(patch.dump());
  }
  json review = {{"apiVersion", "admission.k8s.io/v1"}, {"kind", "AdmissionReview"}, {"response", response}};
  return {200, review.dump()};
}

// The checkpoint notice as files: a downward-API volume (its files follow the annotations as the
// kubelet refreshes them) mounted in every container that does not use the path already. A pod
// that already has a volume of that name keeps its own.
void AddNoticeVolume(const json& pod_spec, const std::string& mount_path, json* patch) {
  const json volumes = pod_spec.value("volumes", json::array());
  if (volumes.is_array())
    for (const auto& v : volumes)
      if (v.is_object() && v.contains("name") && v["name"] == kNoticeVolume) return;
  auto item = [](const char* file, const char* annotation) {
    return json{{"path", file}, {"fieldRef", {{"fieldPath", std::string("metadata.annotations['") + annotation + "']"}}}};
  };
  json volume = {{"name", kNoticeVolume},
                 {"downwardAPI", {{"items", {item("deadline", tidal::kDeadlineAnnotation), item("notice", tidal::kNoticeAnnotation)}}}}};
  if (pod_spec.contains("volumes") && pod_spec["volumes"].is_array())
    patch->push_back({{"op", "add"}, {"path", "/spec/volumes/-"}, {"value", volume}});
  else
    patch->push_back({{"op", "add"}, {"path", "/spec/volumes"}, {"value", json::array({volume})}});
  const json mount = {{"name", kNoticeVolume}, {"mountPath", mount_path}, {"readOnly", true}};
  const json containers = pod_spec.value("containers", json::array());
  for (size_t i = 0; containers.is_array() && i < containers.size(); ++i) {
    const json& c = containers[i];
    if (!c.is_object()) continue;
    const std::string base = "/spec/containers/" + std::to_string(i) + "/volumeMounts";
    if (c.contains("volumeMounts") && c["volumeMounts"].is_array()) {
      bool taken = false;
      for (const auto& m : c["volumeMounts"])
        taken = taken || (m.is_object() && m.contains("mountPath") && m["mountPath"] == mount_path);
      if (!taken) patch->push_back({{"op", "add"}, {"path", base + "/-"}, {"value", mount}});
    } else {
      patch->push_back({{"op", "add"}, {"path", base}, {"value", json::array({mount})}});
    }
  }
}

}  // namespace

extender::HttpReply ServeMutate(const std::string& body, const catalog::Catalog& catalog, const WebhookOptions& options) {
  auto review = ParseReview(body);
  if (!review.ok()) return {400, json{{"error", review.status().ToString()}}.dump()};
  if (options.excluded_namespaces.count(review->ns)) return Answer(review->uid, true, "", json::array());
  auto spec = kube::PodSpecFromJson(review->pod);
  if (!spec.ok()) return Answer(review->uid, true, "", json::array());  // not ours to judge; validation says more
  auto request = core::PreFilter(*spec, catalog);
  // Invalid requests are the validating webhook's to reject; only well-formed ones are mutated.
  if (!request.ok() || !request->WantsAccelerators()) return Answer(review->uid, true, "", json::array());
  json patch = json::array();
  const json pod_spec = review->pod.value("spec", json::object());
  const std::string scheduler = pod_spec.value("schedulerName", std::string());
  if (scheduler.empty() || scheduler == "default-scheduler")
    patch.push_back({{"op", scheduler.empty() ? "add" : "replace"}, {"path", "/spec/schedulerName"},
                     {"value", options.scheduler_name}});
  const json meta = review->pod.value("metadata", json::object());
  const json labels = meta.value("labels", json::object());
  std::string cls = request->workload == core::WorkloadClass::kTraining    ? "training"
                    : request->workload == core::WorkloadClass::kInference ? "inference"
                                                                           : options.default_workload;
  if (!labels.contains(core::names::kWorkloadLabel)) {
    if (!meta.contains("labels") || !meta["labels"].is_object())
      patch.push_back({{"op", "add"}, {"path", "/metadata/labels"}, {"value", {{core::names::kWorkloadLabel, cls}}}});
    else
      patch.push_back({{"op", "add"}, {"path", "/metadata/labels/" + Escape(core::names::kWorkloadLabel)}, {"value", cls}});
  }
  if (cls == "training" && !options.notice_mount_path.empty()) AddNoticeVolume(pod_spec, options.notice_mount_path, &patch);
  return Answer(review->uid, true, "", patch);
}

extender::HttpReply ServeValidate(const std::string& body, const catalog::Catalog& catalog,
                                  const WebhookOptions& options) {
  auto review = ParseReview(body);
  if (!review.ok()) return {400, json{{"error", review.status().ToString()}}.dump()};
  if (options.excluded_namespaces.count(review->ns)) return Answer(review->uid, true, "", json::array());
  auto spec = kube::PodSpecFromJson(review->pod);
  if (!spec.ok())
    return Answer(review->uid, false, "TideSlice cannot read this pod: " + spec.status().ToString(), json::array());
  auto request = core::PreFilter(*spec, catalog);
  if (!request.ok()) {
    const Status& s = request.status();
    return Answer(review->uid, false,
                  "TideSlice rejects the request: " + (s.field().empty() ? s.message() : s.field() + ": " + s.message()),
                  json::array());
  }
  return Answer(review->uid, true, "", json::array());
}

}  // namespace tideslice::service
