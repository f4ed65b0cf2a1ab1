#include "scheduler/core/request.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "common/quantity.h"

namespace tideslice::core {
namespace {

constexpr int kMaxSlicesPerContainer = 64;

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    auto b = item.find_first_not_of(" \t");
    auto e = item.find_last_not_of(" \t");
    if (b == std::string::npos) continue;
    out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

// One resource value of a container: limits win; requests must agree when both are given
// (Kubernetes requires that for extended resources, and a mismatch means a confused spec).
StatusOr<std::optional<std::string>> ResourceValue(const kube::ContainerSpec& c, const std::string& name,
                                                   const std::string& where) {
  auto l = c.limits.find(name);
  auto r = c.requests.find(name);
  if (l != c.limits.end() && r != c.requests.end() && l->second != r->second)
    return Status::InvalidArgument(where + " " + name,
                                   "requests (" + r->second + ") and limits (" + l->second +
                                       ") differ; set them equal or give only limits");
  if (l != c.limits.end()) return std::optional<std::string>(l->second);
  if (r != c.requests.end()) return std::optional<std::string>(r->second);
  return std::optional<std::string>();
}

// Several resource names may say the same thing (tideslice.io/vnpu and nvidia.com/gpu);
// they must agree.
template <typename T>
Status Merge(std::optional<T>& slot, std::string& slot_source, T value, const std::string& source,
             const std::string& where) {
  if (slot && *slot != value) {
    std::ostringstream msg;
    msg << "conflicts with " << slot_source << " (" << *slot << " vs " << value << "); give only one of them";
    return Status::InvalidArgument(where + " " + source, msg.str());
  }
  slot = value;
  slot_source = source;
  return Status::Ok();
}

StatusOr<int> ParsePercent(const std::string& text, const std::string& field) {
  auto v = ParseCount(text);
  if (!v.ok()) return Status::InvalidArgument(field, v.status().message() + " (expected a whole percentage 1..100)");
  if (*v < 1 || *v > 100)
    return Status::InvalidArgument(field, "must be between 1 and 100 (percent of one card), got " + text);
  return static_cast<int>(*v);
}

struct ContainerParse {
  SliceSpec slice;
  std::set<std::string> implied_models;  // huawei.com/Ascend910B3 -> Ascend910B3
  bool implies_nvidia = false;
};

StatusOr<ContainerParse> ParseContainer(const kube::ContainerSpec& c, const std::string& where,
                                        const catalog::Catalog& catalog) {
  ContainerParse out;
  std::optional<int64_t> count, memory;
  std::optional<int> percent, cores;
  std::optional<double> tflops;
  std::string count_src, memory_src, percent_src, cores_src, tflops_src;

  std::set<std::string> resource_names;
  for (const auto& [k, v] : c.limits) resource_names.insert(k);
  for (const auto& [k, v] : c.requests) resource_names.insert(k);

  for (const auto& name : resource_names) {
    auto value = ResourceValue(c, name, where);
    if (!value.ok()) return value.status();
    if (!value->has_value()) continue;
    const std::string& text = **value;
    const std::string field = where + " " + name;
    if (name == names::kVnpu || name == names::kNvidiaGpu) {
      auto n = ParseCount(text);
      if (!n.ok()) return Status::InvalidArgument(field, n.status().message());
      TS_RETURN_IF_ERROR(Merge(count, count_src, *n, name, where));
      if (name == names::kNvidiaGpu) out.implies_nvidia = true;
    } else if (name == names::kVnpuMemory) {
      auto m = ParseMemoryMiB(text);
      if (!m.ok()) return Status::InvalidArgument(field, m.status().message() + " (examples: 8Gi, 8192Mi, 8192)");
      TS_RETURN_IF_ERROR(Merge(memory, memory_src, *m, name, where));
    } else if (name == names::kNvidiaGpuMem) {
      auto m = ParseCount(text);  // HAMi semantics: a number of MiB
      if (!m.ok() || *m <= 0) return Status::InvalidArgument(field, "must be a positive number of MiB, got " + text);
      TS_RETURN_IF_ERROR(Merge(memory, memory_src, *m, name, where));
      out.implies_nvidia = true;
    } else if (name == names::kVnpuMemoryPercent || name == names::kNvidiaGpuMemPercent) {
      auto p = ParsePercent(text, field);
      if (!p.ok()) return p.status();
      TS_RETURN_IF_ERROR(Merge(percent, percent_src, *p, name, where));
    } else if (name == names::kVnpuCores || name == names::kNvidiaGpuCores) {
      auto p = ParsePercent(text, field);
      if (!p.ok()) return p.status();
      TS_RETURN_IF_ERROR(Merge(cores, cores_src, *p, name, where));
    } else if (name == names::kVnpuTflops) {
      auto t = ParseQuantity(text);
      if (!t.ok() || *t <= 0 || *t > 1e6)
        return Status::InvalidArgument(field, "must be a positive number of FP16 TFLOPS, got " + text);
      TS_RETURN_IF_ERROR(Merge(tflops, tflops_src, static_cast<double>(*t), name, where));
    } else if (name.rfind(names::kHuaweiPrefix, 0) == 0) {
      // huawei.com/Ascend910B3 (count) or huawei.com/Ascend910B3-memory (MiB)
      std::string model_part = name.substr(std::string("huawei.com/").size());
      bool is_memory = false;
      const std::string suffix = "-memory";
      if (model_part.size() > suffix.size() &&
          model_part.compare(model_part.size() - suffix.size(), suffix.size(), suffix) == 0) {
        is_memory = true;
        model_part.resize(model_part.size() - suffix.size());
      }
      const auto* model = catalog.Find(model_part);
      if (!model)
        return Status::InvalidArgument(field, "unknown Ascend model " + model_part + "; see docs/catalog.md for the list");
      out.implied_models.insert(model->name);
      if (is_memory) {
        auto m = ParseCount(text);
        if (!m.ok() || *m <= 0) return Status::InvalidArgument(field, "must be a positive number of MiB, got " + text);
        TS_RETURN_IF_ERROR(Merge(memory, memory_src, *m, name, where));
      } else {
        auto n = ParseCount(text);
        if (!n.ok()) return Status::InvalidArgument(field, n.status().message());
        TS_RETURN_IF_ERROR(Merge(count, count_src, *n, name, where));
      }
    }
    // Other resources (cpu, memory, ephemeral-storage, other vendors) are not ours.
  }

  if (count && *count > kMaxSlicesPerContainer)
    return Status::InvalidArgument(where + " " + count_src,
                                   "asks for " + std::to_string(*count) + " cards; at most " +
                                       std::to_string(kMaxSlicesPerContainer) + " per container");
  bool has_shape = memory || percent || cores || tflops;
  if (has_shape && (!count || *count == 0)) {
    std::string src = memory ? memory_src : percent ? percent_src : cores ? cores_src : tflops_src;
    return Status::InvalidArgument(where + " " + src,
                                   std::string("is given without a slice count; add ") + names::kVnpu +
                                       ": 1 (the number of slices, each on a different card)");
  }
  if (memory && percent)
    return Status::InvalidArgument(where + " " + percent_src, "give either " + memory_src + " or " + percent_src +
                                                                  ", not both");
  out.slice.count = count ? static_cast<int>(*count) : 0;
  out.slice.memory_mib = memory.value_or(0);
  out.slice.memory_percent = percent.value_or(0);
  out.slice.compute_permille = cores.value_or(0) * 10;
  out.slice.tflops = tflops.value_or(0);
  out.slice.memory_proportional = !memory && !percent && (cores || tflops);
  out.slice.whole = out.slice.count > 0 && !has_shape;
  return out;
}

StatusOr<std::set<std::string>> ResolveTypes(const std::string& text, const std::string& field,
                                             const catalog::Catalog& catalog) {
  std::set<std::string> out;
  auto items = SplitList(text);
  if (items.empty()) return Status::InvalidArgument(field, "must list at least one card model, e.g. \"Ascend910B3,H100-80G\"");
  for (const auto& item : items) {
    const auto* m = catalog.Find(item);
    if (!m) {
      std::string known;
      for (const auto& model : catalog.models()) known += (known.empty() ? "" : ", ") + model.name;
      return Status::InvalidArgument(field, "unknown card type \"" + item + "\"; known types: " + known);
    }
    out.insert(m->name);
  }
  return out;
}

// Host CPU (milli-cores) or memory (MiB) of a container; requests win, limits stand in for
// missing requests as in Kubernetes. Returns -1 for an unparsable quantity.
int64_t HostQuantity(const kube::ContainerSpec& c, const std::string& name, bool cpu) {
  const std::string* text = nullptr;
  if (auto it = c.requests.find(name); it != c.requests.end()) {
    text = &it->second;
  } else if (auto lit = c.limits.find(name); lit != c.limits.end()) {
    text = &lit->second;
  }
  if (!text) return 0;
  if (cpu) {
    auto v = ParseMilliCpu(*text);
    return v.ok() ? *v : -1;
  }
  auto v = ParseQuantity(*text);
  if (!v.ok() || *v < 0) return -1;
  return static_cast<int64_t>(std::ceil(static_cast<double>(*v / (1024.0L * 1024.0L))));
}

WorkloadClass DefaultWorkload(const kube::PodSpec& pod) {
  for (const auto& o : pod.owners) {
    const std::string_view cls = kube::WorkloadOfOwnerKind(o.kind);
    if (cls == kube::kWorkloadInference) return WorkloadClass::kInference;
    if (cls == kube::kWorkloadTraining) return WorkloadClass::kTraining;
  }
  return WorkloadClass::kUnspecified;
}

}  // namespace

WorkloadClass WorkloadOf(const kube::PodSpec& pod) {
  if (auto it = pod.labels.find(names::kWorkloadLabel); it != pod.labels.end()) {
    if (it->second == "inference") return WorkloadClass::kInference;
    if (it->second == "training") return WorkloadClass::kTraining;
    return WorkloadClass::kUnspecified;
  }
  return DefaultWorkload(pod);
}

bool PodRequest::WantsAccelerators() const {
  return std::any_of(containers.begin(), containers.end(), [](const auto& c) { return c.slice.count > 0; });
}

int PodRequest::MaxCardsPerContainer() const {
  int n = 0;
  for (const auto& c : containers) n = std::max(n, c.slice.count);
  return n;
}

double PodRequest::CardEquivalents() const {
  double total = 0;
  for (const auto& c : containers) {
    if (c.init) continue;
    if (c.slice.whole || !c.slice.profile.empty())
      total += c.slice.count;
    else if (c.slice.compute_permille > 0)
      total += c.slice.count * c.slice.compute_permille / 1000.0;
    else if (c.slice.memory_percent > 0)
      total += c.slice.count * c.slice.memory_percent / 100.0;
  }
  return total;
}

std::vector<const catalog::AcceleratorModel*> AllowedModels(const PodRequest& request,
                                                             const catalog::Catalog& catalog) {
  std::vector<const catalog::AcceleratorModel*> out;
  for (const auto& m : catalog.models()) {
    if (!request.type_include.empty() && !request.type_include.count(m.name)) continue;
    if (request.type_exclude.count(m.name)) continue;
    out.push_back(&m);
  }
  return out;
}

StatusOr<PodRequest> PreFilter(const kube::PodSpec& pod, const catalog::Catalog& catalog) {
  PodRequest req;
  req.pod_key = pod.Key();
  req.pod_uid = pod.uid;
  req.priority = pod.priority;

  std::set<std::string> implied_models;
  bool implies_nvidia = false;
  int64_t app_cpu = 0, app_mem = 0, init_cpu = 0, init_mem = 0;
  auto parse_list = [&](const std::vector<kube::ContainerSpec>& list, bool init) -> Status {
    for (size_t i = 0; i < list.size(); ++i) {
      const auto& c = list[i];
      std::string where = std::string(init ? "initContainer " : "container ") +
                          (c.name.empty() ? "#" + std::to_string(i) : "\"" + c.name + "\"");
      auto parsed = ParseContainer(c, where, catalog);
      if (!parsed.ok()) return parsed.status();
      implied_models.insert(parsed->implied_models.begin(), parsed->implied_models.end());
      implies_nvidia |= parsed->implies_nvidia;
      ContainerRequest cr;
      cr.name = c.name.empty() ? "container-" + std::to_string(i) : c.name;
      cr.init = init;
      cr.slice = parsed->slice;
      req.containers.push_back(std::move(cr));
      int64_t cpu = HostQuantity(c, "cpu", true);
      int64_t mem = HostQuantity(c, "memory", false);
      if (cpu < 0) return Status::InvalidArgument(where + " cpu", "is not a valid CPU quantity");
      if (mem < 0) return Status::InvalidArgument(where + " memory", "is not a valid memory quantity");
      if (init) {
        init_cpu = std::max(init_cpu, cpu);
        init_mem = std::max(init_mem, mem);
      } else {
        app_cpu += cpu;
        app_mem += mem;
      }
    }
    return Status::Ok();
  };
  TS_RETURN_IF_ERROR(parse_list(pod.containers, false));
  TS_RETURN_IF_ERROR(parse_list(pod.init_containers, true));
  req.cpu_milli = std::max(app_cpu, init_cpu);
  req.memory_mib = std::max(app_mem, init_mem);

  const auto& ann = pod.annotations;
  auto get = [&](const char* key) -> const std::string* {
    auto it = ann.find(key);
    return it == ann.end() ? nullptr : &it->second;
  };
  if (const auto* v = get(names::kCardType)) {
    auto types = ResolveTypes(*v, names::kCardType, catalog);
    if (!types.ok()) return types.status();
    req.type_include = *types;
  }
  if (const auto* v = get(names::kCardTypeExclude)) {
    auto types = ResolveTypes(*v, names::kCardTypeExclude, catalog);
    if (!types.ok()) return types.status();
    req.type_exclude = *types;
  }
  if (!implied_models.empty()) {
    if (req.type_include.empty()) {
      req.type_include = implied_models;
    } else {
      std::set<std::string> both;
      std::set_intersection(req.type_include.begin(), req.type_include.end(), implied_models.begin(),
                            implied_models.end(), std::inserter(both, both.begin()));
      if (both.empty())
        return Status::InvalidArgument(names::kCardType, "allows none of the Ascend models the containers ask for by "
                                                         "resource name; remove the annotation or make them agree");
      req.type_include = both;
    }
  }
  if (implies_nvidia) {
    std::set<std::string> nvidia;
    for (const auto& m : catalog.models())
      if (m.vendor == "nvidia" && (req.type_include.empty() || req.type_include.count(m.name))) nvidia.insert(m.name);
    if (nvidia.empty())
      return Status::InvalidArgument(names::kCardType, "allows no NVIDIA model, but nvidia.com/* resources are requested");
    req.type_include = nvidia;
  }
  if (const auto* v = get(names::kCardUuid)) {
    for (auto& u : SplitList(*v)) req.uuid_include.insert(u);
    if (req.uuid_include.empty()) return Status::InvalidArgument(names::kCardUuid, "must list at least one card uuid");
  }
  if (const auto* v = get(names::kCardUuidExclude)) {
    for (auto& u : SplitList(*v)) req.uuid_exclude.insert(u);
  }
  for (const auto& u : req.uuid_include)
    if (req.uuid_exclude.count(u))
      return Status::InvalidArgument(names::kCardUuidExclude, "excludes " + u + ", which " + names::kCardUuid + " pins");
  if (const auto* v = get(names::kPlacement)) {
    if (*v == "binpack")
      req.placement = PlacementPolicy::kBinpack;
    else if (*v == "spread")
      req.placement = PlacementPolicy::kSpread;
    else
      return Status::InvalidArgument(names::kPlacement, "must be \"binpack\" or \"spread\", got \"" + *v + "\"");
  }
  if (const auto* v = get(names::kExclusive)) {
    if (*v == "true")
      req.exclusive = true;
    else if (*v != "false")
      return Status::InvalidArgument(names::kExclusive, "must be \"true\" or \"false\", got \"" + *v + "\"");
  }
  if (const auto* v = get(names::kComputeMode)) {
    if (*v == kube::kComputeModeWorkConserving)
      req.work_conserving = true;
    else if (*v != kube::kComputeModeCapped)
      return Status::InvalidArgument(names::kComputeMode,
                                     "must be \"capped\" (the compute share is a cap, the default) or \"work-conserving\" "
                                     "(the share is a floor; idle compute beyond it may be used), got \"" + *v + "\"");
  }
  if (auto it = pod.labels.find(names::kWorkloadLabel); it != pod.labels.end()) {
    if (it->second == "inference")
      req.workload = WorkloadClass::kInference;
    else if (it->second == "training")
      req.workload = WorkloadClass::kTraining;
    else
      return Status::InvalidArgument(names::kWorkloadLabel,
                                     "must be \"inference\" or \"training\", got \"" + it->second + "\"");
  } else {
    req.workload = DefaultWorkload(pod);
  }

  // Cross-checks against what any allowed card could ever offer.
  auto allowed = AllowedModels(req, catalog);
  if (allowed.empty() && req.WantsAccelerators())
    return Status::InvalidArgument(names::kCardTypeExclude, "excludes every card type the pod may use");
  const std::string* profile = get(names::kProfile);
  if (profile && !req.WantsAccelerators())
    return Status::InvalidArgument(names::kProfile, std::string("is set but no container asks for ") + names::kVnpu);
  int64_t max_memory = 0;
  double max_tflops = 0;
  for (const auto* m : allowed) {
    max_memory = std::max(max_memory, m->memory_mib);
    max_tflops = std::max(max_tflops, m->fp16_tflops);
  }
  for (auto& c : req.containers) {
    if (c.slice.count == 0) continue;
    std::string where = std::string(c.init ? "initContainer \"" : "container \"") + c.name + "\"";
    if (profile) {
      if (c.slice.memory_mib || c.slice.memory_percent || c.slice.compute_permille || c.slice.tflops)
        return Status::InvalidArgument(names::kProfile, "a hard partition profile fixes memory and cores; remove the "
                                                        "vnpu-memory/-cores requests of " + where + " or the profile");
      bool offered = std::any_of(allowed.begin(), allowed.end(), [&](const auto* m) { return m->FindProfile(*profile); });
      if (!offered) {
        std::string known;
        for (const auto* m : allowed)
          for (const auto& p : m->profiles) known += (known.empty() ? "" : ", ") + p.name + " (" + m->name + ")";
        return Status::InvalidArgument(names::kProfile, "no allowed card offers profile \"" + *profile +
                                                            "\"; available: " + (known.empty() ? "none" : known));
      }
      c.slice.profile = *profile;
      c.slice.whole = false;
      c.slice.memory_proportional = false;
    }
    if (c.slice.memory_mib > max_memory)
      return Status::InvalidArgument(where + " " + names::kVnpuMemory,
                                     "asks " + std::to_string(c.slice.memory_mib) + " MiB per slice but the largest "
                                     "allowed card has " + std::to_string(max_memory) + " MiB");
    if (c.slice.tflops > max_tflops)
      return Status::InvalidArgument(where + " " + names::kVnpuTflops,
                                     "asks more TFLOPS than the fastest allowed card offers");
  }
  return req;
}

}  // namespace tideslice::core
