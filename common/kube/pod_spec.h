// The parts of a Kubernetes Pod that TideSlice reads, as plain data. Filled by the JSON
// adapter (pod_json.h); consumed by the placement core, which never sees JSON.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tideslice::kube {

struct ContainerSpec {
  std::string name;
  std::map<std::string, std::string> requests;  // resource name -> quantity string
  std::map<std::string, std::string> limits;
};

struct OwnerReference {
  std::string kind;   // "ReplicaSet", "StatefulSet", "Job", "PyTorchJob", ...
  std::string name;
  bool controller = false;
};

// spec.resourceClaims[] (DRA): a claim of the pod, named here and in containers'
// resources.claims, either an existing ResourceClaim or one made from a ResourceClaimTemplate.
struct PodResourceClaim {
  std::string name;
  std::string claim_name;       // resourceClaimName
  std::string template_name;    // resourceClaimTemplateName
};

struct PodSpec {
  std::string name;
  std::string namespace_name;
  std::string uid;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::vector<OwnerReference> owners;
  std::vector<ContainerSpec> init_containers;
  std::vector<ContainerSpec> containers;
  std::vector<PodResourceClaim> resource_claims;
  std::string scheduler_name;
  std::string node_name;
  std::string phase;                 // status.phase
  int32_t priority = 0;              // spec.priority (resolved by admission from priorityClassName)
  bool deleting = false;             // metadata.deletionTimestamp set

  std::string Key() const { return namespace_name + "/" + name; }
};

}  // namespace tideslice::kube
