#include "scheduler/sim/scenario.h"

#include "scheduler/core/pipeline.h"

#include <algorithm>
#include <map>
#include <random>

#include "scheduler/core/request.h"

namespace tideslice::sim {
namespace {

void AddNodes(core::ClusterState& cluster, const catalog::Catalog& catalog, const std::string& prefix,
              const std::string& model_name, int nodes, int cards, int cards_per_link_domain, int64_t cpu_milli,
              int64_t memory_mib) {
  const auto* model = catalog.Find(model_name);
  for (int n = 0; n < nodes; ++n) {
    core::NodeState node;
    node.name = prefix + "-" + std::to_string(n);
    node.cpu_milli_capacity = cpu_milli;
    node.memory_mib_capacity = memory_mib;
    node.labels["tideslice.io/card-model"] = model->name;
    for (int c = 0; c < cards; ++c) {
      core::CardState card;
      card.uuid = node.name + "-" + std::to_string(c);
      card.index = c;
      card.model = model;
      card.memory_mib = model->memory_mib;
      card.numa_node = c < cards / 2 ? 0 : 1;
      card.link_domain = node.name + "/link" + std::to_string(c / cards_per_link_domain);
      node.cards.push_back(std::move(card));
    }
    cluster.AddNode(std::move(node));
  }
}

kube::PodSpec MakePod(const std::string& name, std::map<std::string, std::string> limits,
                      std::map<std::string, std::string> annotations, const std::string& owner_kind) {
  kube::PodSpec p;
  p.name = name;
  p.namespace_name = "demo";
  p.uid = "uid-" + name;
  p.annotations = std::move(annotations);
  p.owners.push_back({owner_kind, name + "-owner", true});
  kube::ContainerSpec c;
  c.name = "main";
  c.limits = std::move(limits);
  c.requests["cpu"] = "4";
  c.requests["memory"] = "16Gi";
  p.containers.push_back(std::move(c));
  return p;
}

}  // namespace

double CardAllocatedFraction(const core::CardState& card) {
  double compute = card.usage.used_compute_permille / 1000.0;
  double memory = card.memory_mib > 0 ? static_cast<double>(card.usage.used_memory_mib) / card.memory_mib : 0;
  if (card.usage.whole_taken) return 1.0;
  return std::min(1.0, std::max(compute, memory));
}

core::ClusterState DefaultCluster(const catalog::Catalog& catalog, int scale) {
  core::ClusterState cluster;
  const int k = std::max(1, scale);
  // NVLink joins all 8 GPUs of an HGX board; Ascend 910 servers have two HCCS rings of 4.
  AddNodes(cluster, catalog, "h100", "H100-80G", 4 * k, 8, 8, 192000, 2 << 20);
  AddNodes(cluster, catalog, "a100", "A100-80G", 4 * k, 8, 8, 128000, 1 << 20);
  AddNodes(cluster, catalog, "ascend910b3", "Ascend910B3", 4 * k, 8, 4, 192000, 1 << 20);
  AddNodes(cluster, catalog, "ascend310p3", "Ascend310P3", 2 * k, 8, 8, 96000, 512 << 10);
  AddNodes(cluster, catalog, "t4", "T4", 4 * k, 4, 4, 64000, 256 << 10);
  return cluster;
}

std::string OpenbFleetModel(const std::string& trace_model) {
  static const std::map<std::string, std::string> fleet = {
      {"G2", "Ascend910B3"}, {"G3", "H100-80G"},       {"V100M32", "A100-80G"}, {"V100M16", "A100-40G"},
      {"P100", "Ascend310P3"}, {"T4", "T4"},           {"A10", "A10"},
  };
  auto it = fleet.find(trace_model);
  return it == fleet.end() ? std::string() : it->second;
}

StatusOr<core::ClusterState> OpenbMixedCluster(const std::vector<TraceNode>& nodes, const catalog::Catalog& catalog,
                                               int every) {
  if (every < 1) return Status::InvalidArgument("every", "must be at least 1");
  std::vector<TraceNode> sorted;
  for (const auto& n : nodes)
    if (n.gpus > 0) sorted.push_back(n);
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  core::ClusterState cluster;
  for (size_t i = 0; i < sorted.size(); i += static_cast<size_t>(every)) {
    const TraceNode& n = sorted[i];
    const std::string model_name = OpenbFleetModel(n.model);
    const auto* model = model_name.empty() ? nullptr : catalog.Find(model_name);
    if (!model)
      return Status::InvalidArgument("--nodes", "node " + n.name + " has GPU model " + n.model +
                                                    ", which the mixed fleet does not map (known: G2, G3, V100M32, "
                                                    "V100M16, P100, T4, A10)");
    if (n.gpus > core::kMaxCardsPerNode)
      return Status::InvalidArgument("--nodes", "node " + n.name + " has more than " +
                                                    std::to_string(core::kMaxCardsPerNode) + " GPUs");
    core::NodeState node;
    node.name = "mixed-" + n.name;
    node.cpu_milli_capacity = n.cpu_milli;
    node.memory_mib_capacity = n.memory_mib;
    node.labels["tideslice.io/card-model"] = model->name;
    const int ring = model->name == "Ascend910B3" ? 4 : n.gpus;
    for (int c = 0; c < n.gpus; ++c) {
      core::CardState card;
      card.uuid = node.name + "-" + std::to_string(c);
      card.index = c;
      card.model = model;
      card.memory_mib = model->memory_mib;
      card.numa_node = c < n.gpus / 2 ? 0 : 1;
      card.link_domain = node.name + "/link" + std::to_string(c / std::max(1, ring));
      node.cards.push_back(std::move(card));
    }
    cluster.AddNode(std::move(node));
  }
  if (cluster.nodes().empty()) return Status::InvalidArgument("--nodes", "the node list has no GPU nodes");
  return cluster;
}

std::vector<ScenarioPod> OpenbMixedWorkload(const core::ClusterState& cluster, const std::vector<TracePod>& pods,
                                            uint64_t seed, double demand_ratio) {
  int cards = 0;
  for (const auto& n : cluster.nodes()) cards += static_cast<int>(n.cards.size());
  std::vector<TracePod> sorted = pods;
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  std::vector<ScenarioPod> out;
  if (sorted.empty() || cards == 0) return out;
  std::mt19937_64 rng(seed);
  double demand = 0;
  int serial = 0;
  // A pod list without GPU requests would never reach the demand: stop after as many pods as
  // a list of 1 % GPU requests would take.
  const size_t guard = static_cast<size_t>(demand_ratio * cards * 100) + 1;
  while (demand < demand_ratio * cards && out.size() < guard) {
    const TracePod& t = sorted[std::uniform_int_distribution<size_t>(0, sorted.size() - 1)(rng)];
    ScenarioPod p;
    p.spec.name = "openb-" + std::to_string(serial++);
    p.spec.namespace_name = "openb";
    p.spec.uid = "uid-" + p.spec.name;
    kube::ContainerSpec c;
    c.name = "main";
    c.requests["cpu"] = std::to_string(t.cpu_milli) + "m";
    c.requests["memory"] = std::to_string(t.memory_mib) + "Mi";
    std::string owner = "ReplicaSet";
    if (t.num_gpu == 0) {
      p.kind = "cpu-only";
    } else if (t.gpu_milli < 1000) {
      c.limits["tideslice.io/vnpu"] = "1";
      c.limits["tideslice.io/vnpu-cores"] = std::to_string(std::max(1, (t.gpu_milli + 5) / 10));
      p.kind = "fractional";
    } else {
      c.limits["tideslice.io/vnpu"] = std::to_string(t.num_gpu);
      p.kind = t.num_gpu > 1 ? "multi-card" : "whole";
      owner = "Job";
    }
    std::string types;
    for (const auto& s : t.gpu_spec) {
      std::string m = OpenbFleetModel(s);
      if (m.empty()) continue;
      types += (types.empty() ? "" : ",") + m;
    }
    if (!types.empty()) p.spec.annotations["tideslice.io/card-type"] = types;
    p.spec.owners.push_back({owner, p.spec.name + "-owner", true});
    p.spec.containers.push_back(std::move(c));
    p.card_equivalents = t.TotalGpuMilli() / 1000.0;
    demand += p.card_equivalents;
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<ScenarioPod> DefaultWorkload(const core::ClusterState& cluster, uint64_t seed, double demand_ratio) {
  int cards = 0;
  for (const auto& n : cluster.nodes()) cards += static_cast<int>(n.cards.size());
  std::mt19937_64 rng(seed);
  auto pick = [&](auto... options) {
    std::vector<std::string> v{options...};
    return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
  };
  std::vector<ScenarioPod> pods;
  double demand = 0;
  int serial = 0;
  while (demand < demand_ratio * cards) {
    std::string name = "pod-" + std::to_string(serial++);
    int roll = std::uniform_int_distribution<int>(0, 99)(rng);
    ScenarioPod p;
    if (roll < 28) {  // fractional inference: memory + cores on any card
      std::string mem = pick("8Gi", "16Gi", "12288Mi", "20Gi");
      std::string cores = pick("20", "30", "50");
      p.spec = MakePod(name, {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", mem}, {"tideslice.io/vnpu-cores", cores}},
                       {}, "ReplicaSet");
      p.kind = "fractional";
      p.card_equivalents = std::stoi(cores) / 100.0;
    } else if (roll < 36) {  // Ascend vNPU templates
      bool b3 = std::uniform_int_distribution<int>(0, 1)(rng);
      std::string profile = b3 ? pick("vir05_1c_16g", "vir10_3c_32g") : pick("vir02", "vir04", "vir01");
      p.spec = MakePod(name, {{"tideslice.io/vnpu", "1"}}, {{"tideslice.io/profile", profile}}, "Deployment");
      p.kind = "profile";
      p.card_equivalents = b3 ? (profile == "vir05_1c_16g" ? 0.25 : 0.5) : (profile == "vir01" ? 0.125 : profile == "vir02" ? 0.25 : 0.5);
    } else if (roll < 44) {  // NVIDIA MIG profiles
      std::string profile = pick("1g.10gb", "2g.20gb", "3g.40gb", "1g.20gb");
      p.spec = MakePod(name, {{"tideslice.io/vnpu", "1"}}, {{"tideslice.io/profile", profile}}, "Deployment");
      p.kind = "profile";
      p.card_equivalents = (profile[0] - '0') / 7.0;
    } else if (roll < 58) {  // whole cards through vendor-native names
      if (std::uniform_int_distribution<int>(0, 1)(rng))
        p.spec = MakePod(name, {{"nvidia.com/gpu", "1"}}, {}, "Job");
      else
        p.spec = MakePod(name, {{"huawei.com/Ascend910B3", "1"}}, {}, "Job");
      p.kind = "whole";
      p.card_equivalents = 1;
    } else if (roll < 68) {  // multi-card training
      std::string n = pick("2", "4", "8");
      p.spec = MakePod(name, {{"tideslice.io/vnpu", n}}, {{"tideslice.io/card-type", pick("H100-80G,A100-80G", "Ascend910B3")}},
                       "PyTorchJob");
      p.kind = "multi-card";
      p.card_equivalents = std::stoi(n);
    } else if (roll < 80) {  // normalised compute: any vendor that is fast enough
      std::string t = pick("30", "60", "120");
      p.spec = MakePod(name, {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-tflops", t}}, {}, "Deployment");
      p.kind = "tflops";
      p.card_equivalents = std::stoi(t) / 300.0;
    } else if (roll < 92) {  // small T4 / 310P inference
      p.spec = MakePod(name, {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", pick("4Gi", "6Gi")}, {"tideslice.io/vnpu-cores", "25"}},
                       {{"tideslice.io/card-type", "T4,Ascend310P3"}}, "Deployment");
      p.kind = "fractional";
      p.card_equivalents = 0.25;
    } else {  // sensitive workloads that must not share a card
      p.spec = MakePod(name, {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "16Gi"}},
                       {{"tideslice.io/exclusive", "true"}}, "Deployment");
      p.kind = "exclusive";
      p.card_equivalents = 1;
    }
    demand += p.card_equivalents;
    pods.push_back(std::move(p));
  }
  return pods;
}

namespace {

// What every run of a pod list shares: the requests (PreFilter once) and the workload model.
struct PreparedPods {
  std::vector<core::PodRequest> requests;
  std::vector<bool> valid;
  core::WorkloadModel model;
};

PreparedPods Prepare(const std::vector<ScenarioPod>& pods, const core::ClusterState& cluster,
                     const catalog::Catalog& catalog) {
  PreparedPods out;
  // The fragmentation model learns the workload's shapes as TideSlice does in production:
  // from the requests it has seen (here: the whole list, by count).
  std::vector<core::TypicalPod> typical;
  for (const auto& p : pods) {
    auto req = core::PreFilter(p.spec, catalog);
    out.valid.push_back(req.ok());
    out.requests.push_back(req.ok() ? *req : core::PodRequest{});
    if (!req.ok()) continue;
    for (const auto& c : req->containers) {
      if (c.init) continue;
      core::TypicalPod t;
      t.cpu_milli = req->cpu_milli;
      t.num_cards = c.slice.count;
      // Whole cards, hard partitions and exclusive pods all need a card no soft slice is on.
      bool needs_idle_card = c.slice.whole || !c.slice.profile.empty() || req->exclusive;
      t.per_card_permille = needs_idle_card ? 1000 : std::max(1, c.slice.compute_permille);
      t.memory_mib = needs_idle_card ? 0 : c.slice.memory_mib;
      t.allowed_models.assign(req->type_include.begin(), req->type_include.end());
      typical.push_back(std::move(t));
    }
  }
  out.model = core::WorkloadModel::FromTypicalPods(typical);
  out.model.Bind(cluster);
  return out;
}

}  // namespace

StatusOr<PodExplanation> ExplainScenarioPod(const std::vector<ScenarioPod>& pods, const core::ClusterState& empty_cluster,
                                            const catalog::Catalog& catalog, core::Policy policy, uint64_t seed,
                                            const std::string& pod_name, int top) {
  size_t target = pods.size();
  for (size_t i = 0; i < pods.size(); ++i)
    if (pods[i].spec.name == pod_name) {
      target = i;
      break;
    }
  if (target == pods.size())
    return Status::InvalidArgument("--explain", "no pod " + pod_name + " in this scenario (its pods are " +
                                             (pods.empty() ? std::string("none") : pods.front().spec.name + " .. " + pods.back().spec.name) +
                                             ")");
  core::ClusterState cluster = empty_cluster;
  PreparedPods prepared = Prepare(pods, cluster, catalog);
  if (!prepared.valid[target]) {
    auto st = core::PreFilter(pods[target].spec, catalog).status();
    return Status::InvalidArgument("--explain", pod_name + " is refused before scheduling: " + st.ToString());
  }
  // The same run as RunScenario up to the pod, so the cluster is the one the pod met.
  std::mt19937_64 rng(seed);
  core::Context ctx;
  ctx.policy = policy;
  ctx.workload = &prepared.model;
  ctx.rng = &rng;
  ctx.node_order_seed = seed;
  for (size_t i = 0; i < target; ++i) {
    if (!prepared.valid[i]) continue;
    core::Decision d = core::Schedule(cluster, prepared.requests[i], ctx);
    if (d.scheduled) (void)core::Reserve(cluster, d.placement);
  }
  const core::PodRequest& req = prepared.requests[target];
  PodExplanation out;
  out.pod = pod_name;
  out.kind = pods[target].kind;
  out.policy = core::PolicyName(policy);
  core::Context quiet = ctx;
  quiet.rng = nullptr;  // explaining must not draw: ties go to the first node, as without a seed
  for (const auto& node : cluster.nodes()) {
    core::NodeVerdict v = core::Filter(node, req, quiet);
    if (v.kind != core::VerdictKind::kFits) continue;
    NodeExplanation n;
    n.node = node.name;
    n.model = node.cards.empty() || !node.cards.front().model ? "" : node.cards.front().model->name;
    n.score = core::Score(node, req, v.plan, quiet, &n.terms);
    for (const auto& c : v.plan.containers)
      for (const auto& g : c.cards) n.cards.push_back(g.uuid);
    out.feasible.push_back(std::move(n));
  }
  std::stable_sort(out.feasible.begin(), out.feasible.end(), [](const NodeExplanation& a, const NodeExplanation& b) {
    if (a.score.primary != b.score.primary) return a.score.primary > b.score.primary;
    return a.score.tiebreak > b.score.tiebreak;
  });
  core::Decision d = core::Schedule(cluster, req, ctx);
  out.chosen = d.scheduled ? d.placement.node : "";
  out.summary = d.Summary();
  out.feasible_nodes = static_cast<int>(out.feasible.size());
  if (static_cast<int>(out.feasible.size()) > top) out.feasible.resize(std::max(0, top));
  for (core::Policy other : {core::Policy::kBestFit, core::Policy::kBinpack}) {
    if (other == policy) continue;
    core::Context alt = quiet;
    alt.policy = other;
    core::Decision a = core::Schedule(cluster, req, alt);
    out.other_choices[core::PolicyName(other)] = a.scheduled ? a.placement.node : "(none)";
  }
  return out;
}

ScenarioResult RunScenario(const std::vector<ScenarioPod>& pods, const core::ClusterState& empty_cluster,
                           const catalog::Catalog& catalog, core::Policy policy, uint64_t seed) {
  ScenarioResult r;
  r.policy = core::PolicyName(policy);
  core::ClusterState cluster = empty_cluster;
  int cards = 0;
  for (const auto& n : cluster.nodes()) cards += static_cast<int>(n.cards.size());

  PreparedPods prepared = Prepare(pods, cluster, catalog);
  const std::vector<core::PodRequest>& requests = prepared.requests;
  const std::vector<bool>& valid = prepared.valid;
  core::WorkloadModel& model = prepared.model;
  std::mt19937_64 rng(seed);
  core::Context ctx;
  ctx.policy = policy;
  ctx.workload = &model;
  ctx.rng = &rng;
  ctx.node_order_seed = seed;

  double arrived = 0;
  for (size_t i = 0; i < pods.size(); ++i) {
    const auto& p = pods[i];
    r.pods++;
    arrived += p.card_equivalents;
    auto& kind = r.by_kind[p.kind];
    kind.second++;
    if (!valid[i]) {
      r.rejected_at_prefilter++;
      continue;
    }
    core::Decision d = core::Pipeline(ctx, catalog).Schedule(cluster, requests[i]);
    if (d.scheduled && core::Reserve(cluster, d.placement).ok()) {
      r.placed++;
      kind.first++;
    } else if (r.first_failures.size() < 3) {
      r.first_failures.push_back(p.spec.name + " (" + p.kind + "): " + d.Summary());
    }
    double allocated = 0;
    for (const auto& n : cluster.nodes())
      for (const auto& c : n.cards) allocated += CardAllocatedFraction(c);
    r.curve.emplace_back(100.0 * arrived / cards, 100.0 * allocated / cards);
  }
  std::map<std::string, std::pair<double, int>> by_model;
  double allocated = 0;
  for (const auto& n : cluster.nodes()) {
    for (const auto& c : n.cards) {
      double f = CardAllocatedFraction(c);
      allocated += f;
      by_model[c.model->name].first += f;
      by_model[c.model->name].second++;
      if (c.usage.Idle() && c.usage.hard_instances == 0) r.idle_cards++;
      double free_compute = c.FreeComputePermille() / 1000.0;
      double free_memory = c.memory_mib > 0 ? static_cast<double>(c.FreeMemoryMiB()) / c.memory_mib : 0;
      if (!c.usage.Idle() && !c.usage.whole_taken && f < 1.0 && std::min(free_compute, free_memory) < 0.10 &&
          std::max(free_compute, free_memory) > 0)
        r.stranded_cards++;
    }
  }
  for (const auto& [m, v] : by_model) r.allocated_by_model[m] = 100.0 * v.first / v.second;
  r.allocated_pct = 100.0 * allocated / cards;
  r.fragmentation_pct = core::ClusterFragmentationPercent(cluster, model);
  return r;
}

}  // namespace tideslice::sim
