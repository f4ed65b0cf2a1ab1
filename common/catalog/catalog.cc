#include "common/catalog/catalog.h"

#include <fstream>
#include <sstream>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <set>

#include <nlohmann/json.hpp>

#include "common/catalog/builtin_catalog_data.h"  // generated: kBuiltinCatalogJson

namespace tideslice::catalog {
namespace {

using nlohmann::json;

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

Status CheckKeys(const json& obj, const std::set<std::string>& allowed, const std::string& where) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (!allowed.count(it.key()))
      return Status::InvalidArgument(where + "." + it.key(), "unknown key; allowed keys are listed in docs/catalog.md");
  }
  return Status::Ok();
}

template <typename T>
Status Get(const json& obj, const char* key, T& out, const std::string& where, bool required) {
  auto it = obj.find(key);
  if (it == obj.end()) {
    if (required) return Status::InvalidArgument(where + "." + key, "is required");
    return Status::Ok();
  }
  try {
    out = it->get<T>();
  } catch (const json::exception& e) {
    return Status::InvalidArgument(where + "." + key, std::string("has the wrong type: ") + e.what());
  }
  return Status::Ok();
}

StatusOr<PartitionProfile> ParseProfile(const json& j, const std::string& where, Partitioning kind,
                                        int mig_slices) {
  if (!j.is_object()) return Status::InvalidArgument(where, "must be an object");
  TS_RETURN_IF_ERROR(CheckKeys(j, {"name", "memory_mib", "compute_slices", "compute_units", "aicpu", "slot_size",
                                   "start_slots", "max_instances"},
                               where));
  PartitionProfile p;
  TS_RETURN_IF_ERROR(Get(j, "name", p.name, where, true));
  TS_RETURN_IF_ERROR(Get(j, "memory_mib", p.memory_mib, where, true));
  if (p.memory_mib <= 0) return Status::InvalidArgument(where + ".memory_mib", "must be positive");
  if (kind == Partitioning::kMig) {
    TS_RETURN_IF_ERROR(Get(j, "compute_slices", p.compute, where, true));
    TS_RETURN_IF_ERROR(Get(j, "slot_size", p.slot_size, where, true));
    TS_RETURN_IF_ERROR(Get(j, "start_slots", p.start_slots, where, true));
    TS_RETURN_IF_ERROR(Get(j, "max_instances", p.max_instances, where, true));
    if (p.slot_size <= 0 || p.slot_size > mig_slices)
      return Status::InvalidArgument(where + ".slot_size", "must be 1.." + std::to_string(mig_slices));
    if (p.start_slots.empty()) return Status::InvalidArgument(where + ".start_slots", "must not be empty");
    for (int s : p.start_slots)
      if (s < 0 || s + p.slot_size > mig_slices)
        return Status::InvalidArgument(where + ".start_slots",
                                       "slot " + std::to_string(s) + " + size runs past the card's memory slices");
  } else {
    TS_RETURN_IF_ERROR(Get(j, "compute_units", p.compute, where, true));
    TS_RETURN_IF_ERROR(Get(j, "aicpu", p.aicpu, where, false));
  }
  if (p.compute <= 0) return Status::InvalidArgument(where, "compute must be positive");
  return p;
}

StatusOr<AcceleratorModel> ParseModel(const json& j, const std::string& where) {
  if (!j.is_object()) return Status::InvalidArgument(where, "must be an object");
  TS_RETURN_IF_ERROR(CheckKeys(j, {"name", "vendor", "aliases", "memory_mib", "compute_units", "aicpu_units",
                                   "fp16_tflops", "interconnect", "partitioning", "mig_memory_slices",
                                   "mig_compute_slices", "profiles", "sources"},
                               where));
  AcceleratorModel m;
  TS_RETURN_IF_ERROR(Get(j, "name", m.name, where, true));
  TS_RETURN_IF_ERROR(Get(j, "vendor", m.vendor, where, true));
  TS_RETURN_IF_ERROR(Get(j, "aliases", m.aliases, where, false));
  TS_RETURN_IF_ERROR(Get(j, "memory_mib", m.memory_mib, where, true));
  TS_RETURN_IF_ERROR(Get(j, "compute_units", m.compute_units, where, true));
  TS_RETURN_IF_ERROR(Get(j, "aicpu_units", m.aicpu_units, where, false));
  TS_RETURN_IF_ERROR(Get(j, "fp16_tflops", m.fp16_tflops, where, false));
  TS_RETURN_IF_ERROR(Get(j, "interconnect", m.interconnect, where, false));
  TS_RETURN_IF_ERROR(Get(j, "sources", m.sources, where, false));
  if (m.name.empty()) return Status::InvalidArgument(where + ".name", "must not be empty");
  if (m.memory_mib <= 0) return Status::InvalidArgument(where + ".memory_mib", "must be positive");
  if (m.compute_units <= 0) return Status::InvalidArgument(where + ".compute_units", "must be positive");
  std::string part = "none";
  TS_RETURN_IF_ERROR(Get(j, "partitioning", part, where, false));
  if (part == "none") {
    m.partitioning = Partitioning::kNone;
  } else if (part == "mig") {
    m.partitioning = Partitioning::kMig;
    TS_RETURN_IF_ERROR(Get(j, "mig_memory_slices", m.mig_memory_slices, where, true));
    TS_RETURN_IF_ERROR(Get(j, "mig_compute_slices", m.mig_compute_slices, where, true));
    if (m.mig_memory_slices <= 0 || m.mig_memory_slices > 16)
      return Status::InvalidArgument(where + ".mig_memory_slices", "must be 1..16");
    if (m.mig_compute_slices <= 0) return Status::InvalidArgument(where + ".mig_compute_slices", "must be positive");
  } else if (part == "ascend-vnpu") {
    m.partitioning = Partitioning::kAscendVnpu;
  } else {
    return Status::InvalidArgument(where + ".partitioning", "must be none, mig or ascend-vnpu, got \"" + part + "\"");
  }
  auto profiles = j.find("profiles");
  if (profiles != j.end()) {
    if (!profiles->is_array()) return Status::InvalidArgument(where + ".profiles", "must be a list");
    if (m.partitioning == Partitioning::kNone && !profiles->empty())
      return Status::InvalidArgument(where + ".profiles", "a model with partitioning none cannot list profiles");
    for (size_t i = 0; i < profiles->size(); ++i) {
      auto p = ParseProfile((*profiles)[i], where + ".profiles[" + std::to_string(i) + "]", m.partitioning,
                            m.mig_memory_slices);
      if (!p.ok()) return p.status();
      if (m.FindProfile(p->name))
        return Status::InvalidArgument(where + ".profiles", "profile " + p->name + " is listed twice");
      if (p->memory_mib > m.memory_mib)
        return Status::InvalidArgument(where + ".profiles[" + std::to_string(i) + "].memory_mib",
                                       "is larger than the card's memory");
      m.profiles.push_back(std::move(*p));
    }
  }
  return m;
}

}  // namespace

const char* PartitioningName(Partitioning p) {
  switch (p) {
    case Partitioning::kNone: return "none";
    case Partitioning::kMig: return "mig";
    case Partitioning::kAscendVnpu: return "ascend-vnpu";
  }
  return "none";
}

StatusOr<Catalog> Catalog::FromJson(std::string_view text) {
  json root;
  try {
    root = json::parse(text, /*cb=*/nullptr, /*allow_exceptions=*/true, /*ignore_comments=*/true);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for numbers like 1e999
    return Status::InvalidArgument("catalog", std::string("is not valid JSON: ") + e.what());
  }
  if (!root.is_object()) return Status::InvalidArgument("catalog", "must be a JSON object with \"models\"");
  TS_RETURN_IF_ERROR(CheckKeys(root, {"version", "models"}, "catalog"));
  std::string version = "v1";
  TS_RETURN_IF_ERROR(Get(root, "version", version, "catalog", false));
  if (version != "v1") return Status::InvalidArgument("catalog.version", "only v1 is understood, got " + version);
  auto models = root.find("models");
  if (models == root.end() || !models->is_array())
    return Status::InvalidArgument("catalog.models", "must be a list of models");
  Catalog catalog;
  for (size_t i = 0; i < models->size(); ++i) {
    auto m = ParseModel((*models)[i], "catalog.models[" + std::to_string(i) + "]");
    if (!m.ok()) return m.status();
    if (catalog.Find(m->name))
      return Status::InvalidArgument("catalog.models[" + std::to_string(i) + "].name",
                                     "model " + m->name + " is defined twice");
    catalog.Add(std::move(*m));
  }
  return catalog;
}

const Catalog& Catalog::Builtin() {
  static const Catalog* builtin = [] {
    auto parsed = FromJson(kBuiltinCatalogJson);
    // The built-in file is tested; failing here means the binary itself is broken.
    if (!parsed.ok()) {
      std::fprintf(stderr, "built-in catalog is invalid: %s\n", parsed.status().ToString().c_str());
      std::abort();
    }
    return new Catalog(std::move(*parsed));
  }();
  return *builtin;
}

void Catalog::Merge(const Catalog& overrides) {
  for (const auto& m : overrides.models_) Add(m);
}

void Catalog::Add(AcceleratorModel model) {
  auto it = std::find_if(models_.begin(), models_.end(), [&](const auto& m) { return Lower(m.name) == Lower(model.name); });
  if (it != models_.end()) {
    *it = std::move(model);
  } else {
    models_.push_back(std::move(model));
  }
  Reindex();
}

void Catalog::Reindex() {
  index_.clear();
  for (size_t i = 0; i < models_.size(); ++i) {
    index_[Lower(models_[i].name)] = i;
  }
  for (size_t i = 0; i < models_.size(); ++i) {
    for (const auto& alias : models_[i].aliases) index_.emplace(Lower(alias), i);  // names win over aliases
  }
}

const AcceleratorModel* Catalog::Find(std::string_view name_or_alias) const {
  auto it = index_.find(Lower(name_or_alias));
  return it == index_.end() ? nullptr : &models_[it->second];
}

StatusOr<Catalog> Catalog::BuiltinWithOverrides(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument("--catalog", "cannot read " + path);
  std::stringstream text;
  text << in.rdbuf();
  auto overrides = FromJson(text.str());
  if (!overrides.ok()) return overrides.status().WithContext("--catalog " + path);
  Catalog merged = Builtin();
  merged.Merge(*overrides);
  return merged;
}

}  // namespace tideslice::catalog
