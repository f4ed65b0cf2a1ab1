#include "tests/fuzz/targets.h"

#include "common/trust/assignment_seal.h"

#include <string>
#include <string_view>

#include "common/catalog/catalog.h"
#include "common/codec/annotations.h"
#include "common/codec/bounded_json.h"
#include "common/kube/pod_json.h"
#include "common/quantity.h"
#include "device-plugin/limiter/config.h"
#include "scheduler/core/placement.h"
#include "scheduler/core/request.h"
#include "scheduler/extender/verbs.h"
#include "scheduler/extender/wire.h"
#include "scheduler/sim/trace.h"
#include "common/codec/yaml_json.h"
#include "common/kube/objects.h"
#include "scheduler/service/cache.h"
#include "scheduler/service/dra_claims.h"
#include "scheduler/service/tidal_controller.h"
#include "scheduler/service/webhook.h"
#include "scheduler/tidal/decide.h"

namespace tideslice::fuzz {
namespace {
std::string_view View(const uint8_t* d, size_t n) { return {reinterpret_cast<const char*>(d), n}; }
}  // namespace

void Fuzz_quantity(const uint8_t* data, size_t size) {
  auto text = View(data, size);
  (void)ParseQuantity(text);
  (void)ParseMemoryMiB(text);
  (void)ParseCount(text);
  (void)ParseMilliCpu(text);
}

void Fuzz_pod_json(const uint8_t* data, size_t size) { (void)kube::PodSpecFromJson(View(data, size)); }

void Fuzz_annotations(const uint8_t* data, size_t size) {
  auto text = View(data, size);
  auto inv = codec::DecodeInventory(text);
  if (inv.ok()) (void)codec::DecodeInventory(codec::EncodeInventory(*inv));
  auto a = codec::DecodeAssignment(text);
  if (a.ok()) (void)codec::DecodeAssignment(codec::EncodeAssignment(*a));
  (void)codec::DecodeSchedulerConfig(text);
}

void Fuzz_trace_csv(const uint8_t* data, size_t size) {
  (void)sim::ParseNodeCsv(View(data, size), "fuzz");
  (void)sim::ParsePodCsv(View(data, size), "fuzz");
}

void Fuzz_catalog(const uint8_t* data, size_t size) { (void)catalog::Catalog::FromJson(View(data, size)); }

// Pod JSON all the way through PreFilter and a Filter on a small node: the whole path an
// untrusted pod takes in the extender.
void Fuzz_prefilter(const uint8_t* data, size_t size) {
  auto pod = kube::PodSpecFromJson(View(data, size));
  if (!pod.ok()) return;
  auto req = core::PreFilter(*pod, catalog::Catalog::Builtin());
  if (!req.ok()) return;
  static const core::NodeState node = [] {
    core::NodeState n;
    n.name = "fuzz";
    const auto* m = catalog::Catalog::Builtin().Find("H100-80G");
    for (int i = 0; i < 4; ++i) {
      core::CardState c;
      c.uuid = "g" + std::to_string(i);
      c.index = i;
      c.model = m;
      c.memory_mib = m->memory_mib;
      c.link_domain = i < 2 ? "a" : "b";
      n.cards.push_back(c);
    }
    return n;
  }();
  core::Context ctx;
  (void)core::Filter(node, *req, ctx);
}

// Every extender request body, decoded and answered, as kube-scheduler would send it.
void Fuzz_extender(const uint8_t* data, size_t size) {
  auto body = View(data, size);
  static const core::ClusterState cluster = [] {
    core::ClusterState c;
    core::NodeState n;
    n.name = "n1";
    const auto* m = catalog::Catalog::Builtin().Find("A100-80G");
    core::CardState card;
    card.uuid = "g0";
    card.model = m;
    card.memory_mib = m->memory_mib;
    n.cards.push_back(card);
    c.AddNode(n);
    return c;
  }();
  extender::Verbs verbs(catalog::Catalog::Builtin(), core::Context{});
  // The DOM-free decoder and the DOM decoder agree on every input: the same args or the same error.
  {
    auto fast = extender::ParseExtenderArgs(body);
    auto dom = extender::ParseExtenderArgsWithDom(body);
    if (fast.ok() != dom.ok()) __builtin_trap();
    if (!fast.ok() && fast.status().ToString() != dom.status().ToString()) __builtin_trap();
    if (fast.ok() && (fast->node_names != dom->node_names || fast->cache_capable != dom->cache_capable ||
                      fast->node_items_json != dom->node_items_json || fast->pod.name != dom->pod.name ||
                      fast->pod.namespace_name != dom->pod.namespace_name || fast->pod.uid != dom->pod.uid ||
                      fast->pod.containers.size() != dom->pod.containers.size() ||
                      fast->pod.annotations != dom->pod.annotations || fast->pod.labels != dom->pod.labels))
      __builtin_trap();
  }
  if (auto args = extender::ParseExtenderArgs(body); args.ok()) {
    auto r = verbs.Filter(*args, cluster);
    (void)extender::EncodeFilterResult(r, *args);
    (void)extender::EncodeHostPriorityList(verbs.Prioritize(*args, cluster));
  }
  (void)extender::ParseBindingArgs(body);
  if (auto p = extender::ParsePreemptionArgs(body); p.ok()) {
    auto v = verbs.Preempt(*p, cluster);
    if (v.ok()) (void)extender::EncodePreemptionResult(*v);
  }
}

// Both verbs on the raw bytes (the envelope parser), then the same bytes after a flag byte as
// the pod of a well-formed review, so that mutation reaches the ownership and contract checks
// without having to build the envelope first: flags pick the operation, the user (trusted
// exactly, trusted by prefix, untrusted, anonymous) and the namespace (excluded or not). A JSON
// array [new, old] is an UPDATE's object and oldObject; anything else is both (or the object
// alone when flag 32 is set).
void Fuzz_admission(const uint8_t* data, size_t size) {
  static const service::WebhookOptions options = [] {
    service::WebhookOptions o;
    o.trusted_writers = {"system:serviceaccount:tideslice-system:tideslice-scheduler", "system:serviceaccount:agents:*"};
    return o;
  }();
  const auto& cat = catalog::Catalog::Builtin();
  const std::string body(View(data, size));
  (void)service::ServeMutate(body, cat, options);
  (void)service::ServeValidate(body, cat, options);
  if (size == 0) return;
  const uint8_t flags = data[0];
  auto pod = codec::BoundedParse(View(data + 1, size - 1), "fuzz pod");
  if (!pod.ok()) return;
  static const char* const kOperations[] = {"CREATE", "UPDATE", "DELETE", ""};
  static const char* const kUsers[] = {"system:serviceaccount:tideslice-system:tideslice-scheduler",
                                       "system:serviceaccount:agents:node-7", "mallory", ""};
  nlohmann::json request = {{"uid", "u"},
                            {"operation", kOperations[flags & 3]},
                            {"userInfo", {{"username", kUsers[(flags >> 2) & 3]}}},
                            {"namespace", (flags & 16) ? "kube-system" : "ml"}};
  if (pod->is_array() && pod->size() == 2) {
    request["object"] = (*pod)[0];
    request["oldObject"] = (*pod)[1];
  } else {
    request["object"] = *pod;
    if (!(flags & 32)) request["oldObject"] = *pod;
  }
  const std::string review =
      nlohmann::json{{"apiVersion", "admission.k8s.io/v1"}, {"kind", "AdmissionReview"}, {"request", request}}.dump();
  (void)service::ServeMutate(review, cat, options);
  (void)service::ServeValidate(review, cat, options);
}

void Fuzz_yaml_config(const uint8_t* data, size_t size) {
  auto json = codec::YamlToJson(std::string(View(data, size)), "fuzz");
  if (json.ok()) (void)codec::DecodeSchedulerConfig(json->dump());
}

void Fuzz_kube_objects(const uint8_t* data, size_t size) {
  nlohmann::json obj = nlohmann::json::parse(View(data, size), nullptr, false);
  if (!obj.is_object()) return;
  (void)kube::PodKey(obj);
  (void)kube::NodeNameOf(obj);
  (void)kube::AssignmentOf(obj);
  (void)kube::InventoryOf(obj);
  (void)kube::PodIsFinished(obj);
  // Trust checks on whatever assignment the object carries: UID/node binding and the signature
  // (base64 and Ed25519 on hostile text), with and without a key.
  static const std::shared_ptr<const trust::AssignmentVerifier> verifier = [] {
    auto signer = trust::AssignmentSigner::Generate();
    return *trust::AssignmentVerifier::FromPem((*signer)->PublicKeyPem());
  }();
  if (auto a = kube::AssignmentOf(obj); a.ok() && a->has_value()) {
    (void)trust::CheckAssignmentOwner(nullptr, obj, **a);
    (void)trust::CheckAssignmentOwner(verifier.get(), obj, **a);
  }
  // The cache must take any object the watch delivers, as a node and as a pod, with and without
  // a signing key.
  service::CacheOptions keyed;
  keyed.verifier = verifier;
  service::ClusterCache keyed_cache(catalog::Catalog::Builtin(), keyed);
  keyed_cache.OnNode(kube::WatchEventType::kAdded, obj);
  keyed_cache.OnPod(kube::WatchEventType::kAdded, obj);
  (void)keyed_cache.TakeRefused();
  (void)keyed_cache.Allocating();
  service::ClusterCache cache(catalog::Catalog::Builtin());
  cache.OnNode(kube::WatchEventType::kAdded, obj);
  cache.OnPod(kube::WatchEventType::kAdded, obj);
  cache.Refresh();
  cache.OnPod(kube::WatchEventType::kDeleted, obj);
  cache.OnNode(kube::WatchEventType::kDeleted, obj);
}

// A ResourceClaim or ResourceClaimTemplate from the scheduler's watches (any pod author writes
// claim specs; the allocation comes from the API server): the pure readers, and the cache with a
// DRA node whose cards the claim's devices may name, a pod that uses the claim, and its removal.
void Fuzz_dra_objects(const uint8_t* data, size_t size) {
  nlohmann::json obj = nlohmann::json::parse(View(data, size), nullptr, false);
  if (obj.is_discarded()) return;
  const auto classes = service::DraClasses::ForDriver("tideslice.io");
  if (obj.is_object()) {
    (void)service::ClaimedSlices(obj.value("spec", nlohmann::json::object()), "c", classes);
    if (obj.contains("spec") && obj["spec"].is_object())
      (void)service::ClaimedSlices(obj["spec"].value("spec", nlohmann::json::object()), "t", classes);
  }
  static const nlohmann::json node = nlohmann::json::parse(
      R"({"metadata":{"name":"n1","annotations":{"tideslice.io/inventory":"{\"nodeName\":\"n1\",\"draDriver\":\"tideslice.io\",\"cards\":[{\"uuid\":\"g0\",\"index\":0,\"model\":\"A100-40G\",\"memoryMib\":40960,\"health\":\"HEALTH_HEALTHY\"},{\"uuid\":\"g1\",\"index\":1,\"model\":\"Ascend910B3\",\"memoryMib\":65536,\"health\":\"HEALTH_HEALTHY\"}]}"}}})");
  service::ClusterCache cache(catalog::Catalog::Builtin());
  cache.OnNode(kube::WatchEventType::kAdded, node);
  if (auto alloc = service::ClaimAllocationOf(obj); alloc.ok() && alloc->has_value()) {
    auto snapshot = cache.Snapshot();
    for (const auto& n : snapshot->nodes()) (void)service::PlacementFromClaim(**alloc, "tideslice.io", n);
  }
  cache.OnClaim(kube::WatchEventType::kAdded, obj);
  cache.OnClaimTemplate(kube::WatchEventType::kAdded, obj);
  // A pod using the object by name, as a claim and as a template.
  kube::PodSpec pod;
  pod.namespace_name = "default";
  std::string name = "c";
  if (obj.is_object() && obj.contains("metadata") && obj["metadata"].is_object()) {
    const auto& meta = obj["metadata"];
    if (meta.contains("namespace") && meta["namespace"].is_string()) pod.namespace_name = meta["namespace"];
    if (meta.contains("name") && meta["name"].is_string()) name = meta["name"];
  }
  pod.resource_claims = {{"a", name, ""}, {"b", "", name}};
  (void)cache.ClaimedSlices(pod);
  cache.OnClaim(kube::WatchEventType::kModified, obj);
  cache.OnClaim(kube::WatchEventType::kDeleted, obj);
  cache.OnClaimTemplate(kube::WatchEventType::kDeleted, obj);
  cache.ReplaceClaims({obj});
  cache.ReplaceClaimTemplates({obj});
}

void Fuzz_tidal_records(const uint8_t* data, size_t size) {
  const std::string text(View(data, size));
  (void)tidal::ParseNotice(text);
  (void)tidal::ParsePoolState(text);
  (void)tidal::ParseTime("fuzz", text);
  (void)service::ParsePrometheusAnswer(text);
  // The same text as the annotations a pod carries: the cache reads them into tidal facts.
  nlohmann::json pod = {{"metadata",
                         {{"name", "p"},
                          {"namespace", "n"},
                          {"annotations",
                           {{tidal::kNoticeAnnotation, text},
                            {tidal::kCheckpointedAnnotation, text},
                            {"tideslice.io/assignment",
                             R"({"phase":"ASSIGNMENT_PHASE_ALLOCATED","containers":[{"name":"c","slices":[{"cardUuid":"g","wholeCard":true}]}]})"}}}}},
                        {"spec", {{"nodeName", "n1"}}}};
  service::ClusterCache cache(catalog::Catalog::Builtin());
  cache.OnPod(kube::WatchEventType::kAdded, pod);
  (void)cache.TidalSnapshot({});
}

void Fuzz_limiter_config(const uint8_t* data, size_t size) {
  // The parser runs inside every limited container process: it must accept or refuse anything
  // without reading past the input or recursing without bound.
  limiter::Config config;
  char error[256];
  if (limiter::ParseConfig(reinterpret_cast<const char*>(data), size, &config, error, sizeof error)) {
    if (config.card_count == 0 || config.card_count > limiter::kConfigMaxCards || config.region_path[0] != '/')
      __builtin_trap();  // validation promised these
  } else if (error[0] == '\0') {
    __builtin_trap();  // every refusal says why
  }
}

}  // namespace tideslice::fuzz
