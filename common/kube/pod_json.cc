#include "common/kube/pod_json.h"

#include "common/kube/json_fields.h"

#include <algorithm>
#include <climits>
#include <cstdint>

#include <nlohmann/json.hpp>

namespace tideslice::kube {
namespace {

using nlohmann::json;

// Go's encoding/json writes nil maps and slices as null; treat null like absent.
Status ReadStringMap(const json& obj, const char* key, std::map<std::string, std::string>& out,
                     const std::string& where) {
  const json* v = Child(obj, key);
  if (!v) return Status::Ok();
  if (!v->is_object()) return Status::InvalidArgument(where + "." + key, "must be an object of strings");
  for (auto it = v->begin(); it != v->end(); ++it) {
    if (it->is_string()) {
      out[it.key()] = it->get<std::string>();
    } else if (it->is_number()) {
      // Quantities are strings on the wire, but hand-written JSON sometimes uses numbers.
      out[it.key()] = it->dump();
    } else {
      return Status::InvalidArgument(where + "." + key + "." + it.key(), "must be a string");
    }
  }
  return Status::Ok();
}

Status ReadContainers(const json& spec, const char* key, std::vector<ContainerSpec>& out) {
  const json* list = Child(spec, key);
  if (!list) return Status::Ok();
  if (!list->is_array()) return Status::InvalidArgument(std::string("spec.") + key, "must be a list");
  for (size_t i = 0; i < list->size(); ++i) {
    const json& c = (*list)[i];
    std::string where = std::string("spec.") + key + "[" + std::to_string(i) + "]";
    if (!c.is_object()) return Status::InvalidArgument(where, "must be an object");
    ContainerSpec container;
    TS_RETURN_IF_ERROR(ReadString(c, "name", container.name, where));
    if (const json* res = Child(c, "resources")) {
      if (!res->is_object()) return Status::InvalidArgument(where + ".resources", "must be an object");
      TS_RETURN_IF_ERROR(ReadStringMap(*res, "requests", container.requests, where + ".resources"));
      TS_RETURN_IF_ERROR(ReadStringMap(*res, "limits", container.limits, where + ".resources"));
    }
    out.push_back(std::move(container));
  }
  return Status::Ok();
}

Status ReadResourceClaims(const json& spec, std::vector<PodResourceClaim>& out) {
  const json* list = Child(spec, "resourceClaims");
  if (!list) return Status::Ok();
  if (!list->is_array()) return Status::InvalidArgument("spec.resourceClaims", "must be a list");
  for (size_t i = 0; i < list->size(); ++i) {
    const json& c = (*list)[i];
    const std::string where = "spec.resourceClaims[" + std::to_string(i) + "]";
    if (!c.is_object()) return Status::InvalidArgument(where, "must be an object");
    PodResourceClaim claim;
    TS_RETURN_IF_ERROR(ReadString(c, "name", claim.name, where));
    TS_RETURN_IF_ERROR(ReadString(c, "resourceClaimName", claim.claim_name, where));
    TS_RETURN_IF_ERROR(ReadString(c, "resourceClaimTemplateName", claim.template_name, where));
    out.push_back(std::move(claim));
  }
  return Status::Ok();
}

}  // namespace

StatusOr<PodSpec> PodSpecFromJson(const json& pod) {
  if (!pod.is_object()) return Status::InvalidArgument("pod", "must be a JSON object");
  PodSpec out;
  if (const json* meta = Child(pod, "metadata")) {
    if (!meta->is_object()) return Status::InvalidArgument("metadata", "must be an object");
    TS_RETURN_IF_ERROR(ReadString(*meta, "name", out.name, "metadata"));
    TS_RETURN_IF_ERROR(ReadString(*meta, "namespace", out.namespace_name, "metadata"));
    TS_RETURN_IF_ERROR(ReadString(*meta, "uid", out.uid, "metadata"));
    TS_RETURN_IF_ERROR(ReadStringMap(*meta, "labels", out.labels, "metadata"));
    TS_RETURN_IF_ERROR(ReadStringMap(*meta, "annotations", out.annotations, "metadata"));
    out.deleting = Child(*meta, "deletionTimestamp") != nullptr;
    if (const json* owners = Child(*meta, "ownerReferences")) {
      if (!owners->is_array()) return Status::InvalidArgument("metadata.ownerReferences", "must be a list");
      for (const auto& o : *owners) {
        OwnerReference ref;
        TS_RETURN_IF_ERROR(ReadString(o, "kind", ref.kind, "metadata.ownerReferences"));
        TS_RETURN_IF_ERROR(ReadString(o, "name", ref.name, "metadata.ownerReferences"));
        if (const json* c = Child(o, "controller"); c && c->is_boolean()) ref.controller = c->get<bool>();
        out.owners.push_back(std::move(ref));
      }
    }
  }
  if (out.namespace_name.empty()) out.namespace_name = "default";
  if (const json* spec = Child(pod, "spec")) {
    if (!spec->is_object()) return Status::InvalidArgument("spec", "must be an object");
    TS_RETURN_IF_ERROR(ReadContainers(*spec, "initContainers", out.init_containers));
    TS_RETURN_IF_ERROR(ReadContainers(*spec, "containers", out.containers));
    TS_RETURN_IF_ERROR(ReadResourceClaims(*spec, out.resource_claims));
    TS_RETURN_IF_ERROR(ReadString(*spec, "schedulerName", out.scheduler_name, "spec"));
    TS_RETURN_IF_ERROR(ReadString(*spec, "nodeName", out.node_name, "spec"));
    if (const json* p = Child(*spec, "priority")) {
      if (!p->is_number_integer()) return Status::InvalidArgument("spec.priority", "must be an integer");
      // nlohmann stores non-negative integers as unsigned; clamp before range-checking.
      int64_t priority = p->is_number_unsigned()
                             ? static_cast<int64_t>(std::min<uint64_t>(p->get<uint64_t>(), INT64_MAX))
                             : p->get<int64_t>();
      if (priority < INT32_MIN || priority > INT32_MAX)
        return Status::InvalidArgument("spec.priority", "must fit in 32 bits (Kubernetes caps it at 1000000000)");
      out.priority = static_cast<int32_t>(priority);
    }
  }
  if (const json* status = Child(pod, "status")) {
    TS_RETURN_IF_ERROR(ReadString(*status, "phase", out.phase, "status"));
  }
  return out;
}

StatusOr<PodSpec> PodSpecFromJson(std::string_view text) {
  json pod = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (pod.is_discarded()) return Status::InvalidArgument("pod", "is not valid JSON");
  return PodSpecFromJson(pod);
}

}  // namespace tideslice::kube
