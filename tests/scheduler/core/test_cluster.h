// Builders shared by the core tests.
#pragma once

#include <map>
#include <string>

#include "common/catalog/catalog.h"
#include "common/kube/pod_spec.h"
#include "scheduler/core/placement.h"
#include "scheduler/core/request.h"

namespace tideslice::core::testing {

inline const catalog::Catalog& Cat() { return catalog::Catalog::Builtin(); }

// A node of `cards` cards of one model; cards [i*per_domain, (i+1)*per_domain) share a link domain.
inline NodeState MakeNode(const std::string& name, const std::string& model, int cards, int per_domain = 0,
                          int64_t cpu_milli = 0, int64_t memory_mib = 0) {
  NodeState n;
  n.name = name;
  n.cpu_milli_capacity = cpu_milli;
  n.memory_mib_capacity = memory_mib;
  const auto* m = Cat().Find(model);
  for (int i = 0; i < cards; ++i) {
    CardState c;
    c.uuid = name + "-card" + std::to_string(i);
    c.index = i;
    c.model = m;
    c.memory_mib = m->memory_mib;
    c.numa_node = i < cards / 2 ? 0 : 1;
    if (per_domain > 0) c.link_domain = name + "-link" + std::to_string(i / per_domain);
    n.cards.push_back(c);
  }
  return n;
}

struct PodBuilder {
  kube::PodSpec spec;
  explicit PodBuilder(const std::string& name) {
    spec.name = name;
    spec.namespace_name = "default";
    spec.uid = "uid-" + name;
  }
  PodBuilder& Container(const std::string& name, std::map<std::string, std::string> limits) {
    kube::ContainerSpec c;
    c.name = name;
    c.limits = std::move(limits);
    spec.containers.push_back(std::move(c));
    return *this;
  }
  PodBuilder& Init(const std::string& name, std::map<std::string, std::string> limits) {
    kube::ContainerSpec c;
    c.name = name;
    c.limits = std::move(limits);
    spec.init_containers.push_back(std::move(c));
    return *this;
  }
  PodBuilder& Annotate(const std::string& k, const std::string& v) {
    spec.annotations[k] = v;
    return *this;
  }
  PodBuilder& Label(const std::string& k, const std::string& v) {
    spec.labels[k] = v;
    return *this;
  }
  PodBuilder& Priority(int32_t p) {
    spec.priority = p;
    return *this;
  }
  PodBuilder& Owner(const std::string& kind) {
    spec.owners.push_back({kind, "owner", true});
    return *this;
  }
  StatusOr<PodRequest> Request() const { return PreFilter(spec, Cat()); }
  PodRequest MustRequest() const {
    auto r = Request();
    if (!r.ok()) throw std::runtime_error(r.status().ToString());
    return *r;
  }
};

// One-container pod asking for `limits`.
inline PodRequest Req(const std::string& name, std::map<std::string, std::string> limits,
                      std::map<std::string, std::string> annotations = {}) {
  PodBuilder b(name);
  b.Container("main", std::move(limits));
  for (auto& [k, v] : annotations) b.Annotate(k, v);
  return b.MustRequest();
}

// Places a pod with Schedule + Reserve; returns the placement (node empty when it did not fit).
inline PodPlacement Place(ClusterState& cluster, const PodRequest& req, Policy policy = Policy::kBinpack) {
  Context ctx;
  ctx.policy = policy;
  Decision d = Schedule(cluster, req, ctx);
  if (!d.scheduled) return {};
  Status st = Reserve(cluster, d.placement);
  if (!st.ok()) throw std::runtime_error(st.ToString());
  return d.placement;
}

}  // namespace tideslice::core::testing
