#include "scheduler/service/webhook.h"

#include <openssl/evp.h>

#include <exception>

#include <nlohmann/json.hpp>

#include "common/codec/annotations.h"
#include "common/codec/bounded_json.h"
#include "common/kube/json_fields.h"
#include "common/kube/pod_json.h"
#include "common/log/log.h"
#include "common/sizing/model_sizing.h"
#include "scheduler/extender/wire.h"
#include "scheduler/core/request.h"
#include "scheduler/service/filter_record.h"
#include "scheduler/tidal/decide.h"

namespace tideslice::service {

using nlohmann::json;
using kube::Child;
using kube::StringOr;

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

static_assert(kOwnedAnnotations[0] == codec::kAssignmentAnnotation);
static_assert(kOwnedAnnotations[1] == std::string_view(tidal::kNoticeAnnotation));
static_assert(kOwnedAnnotations[2] == std::string_view(tidal::kDeadlineAnnotation));
static_assert(kOwnedAnnotations[3] == std::string_view(kFilterReasonsAnnotation));

// What the API server tells us (or anyone who can reach the port claims) is read with type checks
// only: nlohmann's value() and get<>() throw on a wrong type, and one throw would end the process.
constexpr size_t kMaxMessageBytes = 1024;  // a refusal is read by a person; it quotes input
constexpr size_t kMaxLogFieldBytes = 256;

struct Review {
  std::string uid;  // set as soon as it is known: from then on, failures are refusals, not 400s
  std::string ns, name, operation, username;
  json pod;      // request.object (null for DELETE and CONNECT)
  json old_pod;  // request.oldObject (UPDATE; null otherwise)
};

Status ParseReview(const std::string& body, Review* r) {
  auto parsed = codec::BoundedParse(body, "AdmissionReview body");
  if (!parsed.ok()) return parsed.status();
  json& root = *parsed;
  if (!root.is_object() || StringOr(&root, "kind") != "AdmissionReview")
    return Status::InvalidArgument("body", "is not an admission.k8s.io/v1 AdmissionReview");
  json* req = root.contains("request") && root["request"].is_object() ? &root["request"] : nullptr;
  if (!req) return Status::InvalidArgument("request", "is missing or not an object");
  std::string uid;
  TS_RETURN_IF_ERROR(kube::ReadString(*req, "uid", uid, "request"));
  if (uid.empty()) return Status::InvalidArgument("request.uid", "is missing");
  r->uid = std::move(uid);
  TS_RETURN_IF_ERROR(kube::ReadString(*req, "namespace", r->ns, "request"));
  TS_RETURN_IF_ERROR(kube::ReadString(*req, "name", r->name, "request"));
  TS_RETURN_IF_ERROR(kube::ReadString(*req, "operation", r->operation, "request"));
  // admission.k8s.io/v1 always names the operation; a review without one is judged as a CREATE,
  // the stricter of the two for TideSlice's annotations.
  if (r->operation.empty()) r->operation = "CREATE";
  if (const json* user = Child(req, "userInfo")) {
    if (!user->is_object()) return Status::InvalidArgument("request.userInfo", "must be an object");
    TS_RETURN_IF_ERROR(kube::ReadString(*user, "username", r->username, "request.userInfo"));
  }
  const bool writes = r->operation == "CREATE" || r->operation == "UPDATE";
  for (auto [key, out] : {std::pair<const char*, json*>{"object", &r->pod}, {"oldObject", &r->old_pod}}) {
    const json* obj = Child(req, key);
    const std::string where = std::string("request.") + key;
    if (!obj) continue;
    if (!obj->is_object()) return Status::InvalidArgument(where, "must be an object");
    if (const json* meta = Child(obj, "metadata"); meta && !meta->is_object())
      return Status::InvalidArgument(where + ".metadata", "must be an object");
    if (const json* annotations = Child(Child(obj, "metadata"), "annotations"); annotations && !annotations->is_object())
      return Status::InvalidArgument(where + ".metadata.annotations", "must be an object of strings");
    if (const json* meta = Child(obj, "metadata")) {
      std::string ignored;
      TS_RETURN_IF_ERROR(kube::ReadString(*meta, "namespace", ignored, where + ".metadata"));
      TS_RETURN_IF_ERROR(kube::ReadString(*meta, "name", ignored, where + ".metadata"));
    }
    *out = std::move((*req)[key]);  // moved out of the tree, not copied
  }
  if (writes && !r->pod.is_object()) return Status::InvalidArgument("request.object", "is missing");
  const json* meta = Child(&r->pod, "metadata");
  if (r->ns.empty()) r->ns = StringOr(meta, "namespace");
  if (r->name.empty()) r->name = StringOr(meta, "name", StringOr(meta, "generateName"));
  return Status::Ok();
}

// The annotation value `key` on `pod`, null when the pod does not carry it.
const json* OwnedAnnotation(const json& pod, std::string_view key) {
  return Child(Child(Child(&pod, "metadata"), "annotations"), key);
}

// The first owned annotation this request writes without the right to: any on CREATE (no pod
// is born with an assignment or a notice), and on UPDATE any added, changed or removed by a user
// who is not a trusted writer. "" when there is none.
std::string_view ForgedAnnotation(const Review& r, const WebhookOptions& options) {
  if (r.operation == "CREATE") {
    for (std::string_view key : kOwnedAnnotations)
      if (OwnedAnnotation(r.pod, key)) return key;
    return "";
  }
  if (r.operation != "UPDATE" || IsTrustedWriter(r.username, options.trusted_writers)) return "";
  for (std::string_view key : kOwnedAnnotations) {
    const json* now = OwnedAnnotation(r.pod, key);
    const json* before = OwnedAnnotation(r.old_pod, key);
    if ((now == nullptr) != (before == nullptr) || (now && *now != *before)) return key;
  }
  return "";
}

// Replies are dumped with invalid UTF-8 replaced, never thrown on (messages quote input).
std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

http::HttpReply Answer(const std::string& uid, bool allowed, const std::string& message, const json& patch) {
  json response = {{"uid", uid}, {"allowed", allowed}};
  if (!allowed)
    response["status"] = {{"code", 422}, {"reason", "Invalid"}, {"message", extender::BoundedText(message, kMaxMessageBytes)}};
  if (allowed && patch.is_array() && !patch.empty()) {
    response["patchType"] = "JSONPatch";
    response["patch"] = Base64(Dump(patch));
  }
  json review = {{"apiVersion", "admission.k8s.io/v1"}, {"kind", "AdmissionReview"}, {"response", response}};
  return {200, Dump(review)};
}

// A request we cannot read: without a uid there is nothing to answer (400, which only a caller
// that is not the API server sees); with one, a refusal that names the field to fix.
http::HttpReply Unreadable(const Review& r, const std::string& what) {
  const std::string message = "TideSlice cannot read this admission request: " + what;
  if (r.uid.empty()) return {400, Dump(json{{"error", extender::BoundedText(message, kMaxMessageBytes)}})};
  return Answer(r.uid, false, message, json::array());
}

// The one guard around every decoding step: whatever the body holds, the answer is a reply.
// Typed reads make a throw unexpected; the catch keeps an oversight (or bad_alloc) from ending
// the process that also serves the extender.
template <typename Serve>
http::HttpReply Guarded(const std::string& body, Serve serve) {
  Review r;
  try {
    Status s = ParseReview(body, &r);
    if (!s.ok()) return Unreadable(r, s.field().empty() ? s.message() : s.field() + ": " + s.message());
    return serve(r);
  } catch (const std::exception& e) {
    try {
      return Unreadable(r, std::string("unexpected content (") + e.what() + ")");
    } catch (...) {
      return {500, R"({"error":"internal error"})"};
    }
  }
}

// The checkpoint notice as files: a downward-API volume (its files follow the annotations as the
// kubelet refreshes them) mounted in every container that does not use the path already. A pod
// that already has a volume of that name keeps its own.
void AddNoticeVolume(const json* pod_spec, const std::string& mount_path, json* patch) {
  const json* volumes = Child(pod_spec, "volumes");
  if (volumes && volumes->is_array())
    for (const auto& v : *volumes)
      if (StringOr(&v, "name") == kNoticeVolume) return;
  auto item = [](const char* file, const char* annotation) {
    return json{{"path", file}, {"fieldRef", {{"fieldPath", std::string("metadata.annotations['") + annotation + "']"}}}};
  };
  json volume = {{"name", kNoticeVolume},
                 {"downwardAPI", {{"items", {item("deadline", tidal::kDeadlineAnnotation), item("notice", tidal::kNoticeAnnotation)}}}}};
  if (volumes && volumes->is_array())
    patch->push_back({{"op", "add"}, {"path", "/spec/volumes/-"}, {"value", volume}});
  else
    patch->push_back({{"op", "add"}, {"path", "/spec/volumes"}, {"value", json::array({volume})}});
  const json mount = {{"name", kNoticeVolume}, {"mountPath", mount_path}, {"readOnly", true}};
  const json* containers = Child(pod_spec, "containers");
  for (size_t i = 0; containers && containers->is_array() && i < containers->size(); ++i) {
    const json& c = (*containers)[i];
    if (!c.is_object()) continue;
    const std::string base = "/spec/containers/" + std::to_string(i) + "/volumeMounts";
    const json* mounts = Child(&c, "volumeMounts");
    if (mounts && mounts->is_array()) {
      bool taken = false;
      for (const auto& m : *mounts) taken = taken || StringOr(&m, "mountPath") == mount_path;
      if (!taken) patch->push_back({{"op", "add"}, {"path", base + "/-"}, {"value", mount}});
    } else {
      patch->push_back({{"op", "add"}, {"path", base}, {"value", json::array({mount})}});
    }
  }
}

// --- Sizing by model (common/sizing holds the rule; this is the glue to the pod). ---

constexpr int kMaxSlicesPerContainer = 64;  // as PreFilter allows

// One app container the model annotations size.
struct SizingTarget {
  size_t index = 0;            // in spec.containers
  std::string name;
  bool add_count = false;      // the pod's only container asked for no slice: it gets one
  int64_t have_mib = 0;        // its own memory request per slice (0 = none)
  sizing::Sizing sized;
};

// Which containers the model annotations size and to what, or the refusal that says what to
// change: the containers that ask for slices (each runs the model, split over its slices), or
// the pod's only container when none asks; never one with a hard-partition profile or a memory
// percentage, and never to more memory per slice than the largest allowed card has.
StatusOr<std::vector<SizingTarget>> PlanSizing(const kube::PodSpec& spec, const core::PodRequest& request,
                                               const sizing::ModelSpec& model, const catalog::Catalog& catalog) {
  std::vector<SizingTarget> targets;
  for (const auto& c : request.containers) {
    if (c.init || c.slice.count == 0) continue;
    SizingTarget t;
    for (size_t i = 0; i < spec.containers.size(); ++i)
      if (spec.containers[i].name == c.name) t.index = i;
    t.name = c.name;
    const std::string where = "container \"" + c.name + "\"";
    if (!c.slice.profile.empty())
      return Status::InvalidArgument(core::names::kProfile,
                                     "fixes the memory of " + where + "'s slice, and so do the model annotations; remove "
                                     "tideslice.io/profile or the tideslice.io/model-* annotations");
    if (c.slice.memory_percent)
      return Status::InvalidArgument(where + " " + core::names::kVnpuMemoryPercent,
                                     "conflicts with the model annotations, which size the slice's memory; remove it or "
                                     "the tideslice.io/model-* annotations");
    t.have_mib = c.slice.memory_mib;
    t.sized = sizing::Size(model, c.slice.count);
    targets.push_back(std::move(t));
  }
  if (targets.empty()) {
    if (spec.containers.size() != 1)
      return Status::InvalidArgument(sizing::kModelParamsAnnotation,
                                     "sizes the containers that ask for " + std::string(core::names::kVnpu) +
                                         ", and none of the pod's " + std::to_string(spec.containers.size()) +
                                         " containers does; add tideslice.io/vnpu: 1 to the limits of the container "
                                         "that runs the model");
    SizingTarget t;
    t.name = spec.containers[0].name;
    t.add_count = true;
    t.sized = sizing::Size(model, 1);
    targets.push_back(std::move(t));
  }
  const auto allowed = core::AllowedModels(request, catalog);
  const std::string what = sizing::FormatParams(model.params) + " " + sizing::DtypeName(model.dtype) + " " +
                           sizing::ModeName(model.mode);
  for (const auto& t : targets) {
    const sizing::Fit fit = sizing::FitOnCards(model, t.sized.slices, allowed, kMaxSlicesPerContainer);
    if (fit.largest_mib == 0)
      return Status::InvalidArgument(core::names::kCardTypeExclude, "excludes every card type the pod may use");
    if (fit.holding_models.empty()) {
      std::string msg = what + " needs " + sizing::MemoryQuantity(fit.mib_per_slice) + " per slice (" +
                        t.sized.formula + ") but the largest allowed card, " + fit.largest_model + ", has " +
                        sizing::MemoryQuantity(fit.largest_mib) + "; ";
      if (fit.slices_needed > 0)
        msg += "ask for " + std::string(core::names::kVnpu) + ": " + std::to_string(fit.slices_needed) +
               " in container \"" + t.name + "\" (" + sizing::MemoryQuantity(fit.mib_per_slice_needed) +
               " on each of " + std::to_string(fit.slices_needed) + " cards)";
      else
        msg += "it does not fit on " + std::to_string(kMaxSlicesPerContainer) +
               " cards either; use a smaller dtype or mode";
      return Status::InvalidArgument(sizing::kModelParamsAnnotation, msg);
    }
    if (t.have_mib != 0 && t.have_mib != t.sized.mib_per_slice)
      return Status::InvalidArgument(
          "container \"" + t.name + "\" " + core::names::kVnpuMemory,
          "asks " + std::to_string(t.have_mib) + " MiB per slice, but the model annotations (" + what + ") size it at " +
              sizing::MemoryQuantity(t.sized.mib_per_slice) + " (" + std::to_string(t.sized.mib_per_slice) +
              " MiB); remove tideslice.io/vnpu-memory and TideSlice sizes the slice, or remove the "
              "tideslice.io/model-* annotations to size it yourself");
  }
  return targets;
}

// The tideslice.io/sized-by text: the formula, per container when more than one is sized.
std::string SizedBy(const std::vector<SizingTarget>& targets) {
  if (targets.size() == 1) return targets[0].sized.formula;
  std::string out;
  for (const auto& t : targets) out += (out.empty() ? "" : "; ") + ("container \"" + t.name + "\": " + t.sized.formula);
  return out;
}

// Patches the memory (and, for an only container that asked for none, one slice) into the
// containers' limits, whatever of resources/limits they already have, and records the formula.
void AddSizingPatch(const json& pod, const std::vector<SizingTarget>& targets, json* patch) {
  const json* containers = Child(Child(&pod, "spec"), "containers");
  for (const auto& t : targets) {
    if (t.have_mib != 0) continue;  // sized already (re-admitted) and equal: PlanSizing checked it
    json values = {{core::names::kVnpuMemory, sizing::MemoryQuantity(t.sized.mib_per_slice)}};
    if (t.add_count) values[core::names::kVnpu] = "1";
    const json* c = containers && containers->is_array() && t.index < containers->size() ? &(*containers)[t.index] : nullptr;
    const std::string base = "/spec/containers/" + std::to_string(t.index) + "/resources";
    const json* resources = Child(c, "resources");
    const json* limits = Child(resources, "limits");
    if (!resources || !resources->is_object())
      patch->push_back({{"op", "add"}, {"path", base}, {"value", {{"limits", values}}}});
    else if (!limits || !limits->is_object())
      patch->push_back({{"op", "add"}, {"path", base + "/limits"}, {"value", values}});
    else
      for (const auto& [key, value] : values.items())
        patch->push_back({{"op", "add"}, {"path", base + "/limits/" + Escape(key)}, {"value", value}});
  }
  patch->push_back({{"op", "add"},
                    {"path", "/metadata/annotations/" + Escape(sizing::kSizedByAnnotation)},
                    {"value", SizedBy(targets)}});
}


http::HttpReply Mutate(const Review& review, const catalog::Catalog& catalog, const WebhookOptions& options) {
  // A pod's spec is immutable after CREATE: a patch on any other operation would be refused.
  if (review.operation != "CREATE" || options.excluded_namespaces.count(review.ns))
    return Answer(review.uid, true, "", json::array());
  auto spec = kube::PodSpecFromJson(review.pod);
  if (!spec.ok()) return Answer(review.uid, true, "", json::array());  // not ours to judge; validation says more
  auto request = core::PreFilter(*spec, catalog);
  // Invalid requests are the validating webhook's to reject; only well-formed ones are mutated.
  if (!request.ok()) return Answer(review.uid, true, "", json::array());
  json patch = json::array();
  auto model = sizing::ModelFromAnnotations(spec->annotations);
  if (!model.ok()) return Answer(review.uid, true, "", json::array());
  bool wants = request->WantsAccelerators();
  if (model->has_value()) {
    auto targets = PlanSizing(*spec, *request, **model, catalog);
    if (!targets.ok()) return Answer(review.uid, true, "", json::array());
    AddSizingPatch(review.pod, *targets, &patch);
    wants = true;
  }
  if (!wants) return Answer(review.uid, true, "", json::array());
  const json* pod_spec = Child(&review.pod, "spec");
  const std::string scheduler = StringOr(pod_spec, "schedulerName");
  if (scheduler.empty() || scheduler == "default-scheduler")
    patch.push_back({{"op", scheduler.empty() ? "add" : "replace"}, {"path", "/spec/schedulerName"},
                     {"value", options.scheduler_name}});
  const json* meta = Child(&review.pod, "metadata");
  const json* labels = Child(meta, "labels");
  std::string cls = request->workload == core::WorkloadClass::kTraining    ? "training"
                    : request->workload == core::WorkloadClass::kInference ? "inference"
                                                                           : options.default_workload;
  if (!Child(labels, core::names::kWorkloadLabel)) {
    if (!labels || !labels->is_object())
      patch.push_back({{"op", "add"}, {"path", "/metadata/labels"}, {"value", {{core::names::kWorkloadLabel, cls}}}});
    else
      patch.push_back({{"op", "add"}, {"path", "/metadata/labels/" + Escape(core::names::kWorkloadLabel)}, {"value", cls}});
  }
  if (cls == "training" && !options.notice_mount_path.empty()) AddNoticeVolume(pod_spec, options.notice_mount_path, &patch);
  return Answer(review.uid, true, "", patch);
}

http::HttpReply Validate(const Review& review, const catalog::Catalog& catalog, const WebhookOptions& options) {
  if (std::string_view forged = ForgedAnnotation(review, options); !forged.empty()) {
    auto bounded = [](const std::string& s) { return extender::BoundedText(s, kMaxLogFieldBytes); };
    log::Warn("admission.forgery_refused", "refused a pod write that sets an annotation only TideSlice may set",
              {{"user", bounded(review.username)},
               {"operation", bounded(review.operation)},
               {"pod", bounded(review.ns + "/" + review.name)},
               {"annotation", std::string(forged)}});
    return Answer(review.uid, false,
                  std::string("only TideSlice may set the annotation ") + std::string(forged) +
                      (review.operation == "CREATE"
                           ? ": remove it from the pod (TideSlice writes it after scheduling)"
                           : ": it is written by TideSlice's scheduler and node agents; leave it as it is"),
                  json::array());
  }
  // The request contract is checked once, when the pod is created; later updates cannot change
  // what it asks for (requests, limits and annotations read by PreFilter are fixed by then or
  // TideSlice's own).
  if (review.operation != "CREATE" || options.excluded_namespaces.count(review.ns))
    return Answer(review.uid, true, "", json::array());
  auto spec = kube::PodSpecFromJson(review.pod);
  if (!spec.ok())
    return Answer(review.uid, false, "TideSlice cannot read this pod: " + spec.status().ToString(), json::array());
  auto reject = [&](const Status& s) {
    return Answer(review.uid, false,
                  "TideSlice rejects the request: " + (s.field().empty() ? s.message() : s.field() + ": " + s.message()),
                  json::array());
  };
  auto model = sizing::ModelFromAnnotations(spec->annotations);
  if (!model.ok()) return reject(model.status());
  auto request = core::PreFilter(*spec, catalog);
  if (!request.ok()) return reject(request.status());
  if (model->has_value()) {
    auto targets = PlanSizing(*spec, *request, **model, catalog);
    if (!targets.ok()) return reject(targets.status());
    // The mutating webhook writes the memory before this runs; a pod without it was not sized
    // (its MutatingWebhookConfiguration is missing or failed open).
    for (const auto& t : *targets)
      if (t.have_mib == 0)
        return reject(Status::InvalidArgument(
            "container \"" + t.name + "\" " + core::names::kVnpuMemory,
            "is missing although the model annotations size it at " + sizing::MemoryQuantity(t.sized.mib_per_slice) +
                ": TideSlice's mutating webhook (/mutate) did not run; set " + core::names::kVnpuMemory + ": " +
                sizing::MemoryQuantity(t.sized.mib_per_slice) + (t.add_count ? " and tideslice.io/vnpu: 1" : "") +
                " in its limits, or ask your admin to check the MutatingWebhookConfiguration"));
  }
  return Answer(review.uid, true, "", json::array());
}

}  // namespace

bool IsTrustedWriter(const std::string& username, const std::set<std::string>& trusted) {
  if (username.empty()) return false;
  if (trusted.count(username)) return true;
  for (const auto& entry : trusted)
    // A bare "*" would switch the check off; it matches nobody.
    if (entry.size() > 1 && entry.back() == '*' && username.compare(0, entry.size() - 1, entry, 0, entry.size() - 1) == 0)
      return true;
  return false;
}

http::HttpReply ServeMutate(const std::string& body, const catalog::Catalog& catalog, const WebhookOptions& options) {
  return Guarded(body, [&](const Review& r) { return Mutate(r, catalog, options); });
}

http::HttpReply ServeValidate(const std::string& body, const catalog::Catalog& catalog,
                                  const WebhookOptions& options) {
  return Guarded(body, [&](const Review& r) { return Validate(r, catalog, options); });
}

}  // namespace tideslice::service
