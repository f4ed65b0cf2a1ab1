// The accelerator catalog: the built-in data file (accelerators.json, compiled in) plus
// optional overrides from configuration. Lookup by name or alias is case-insensitive.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/catalog/model.h"
#include "common/status.h"

namespace tideslice::catalog {

class Catalog {
 public:
  // Parses the JSON form (comments allowed). Unknown keys are errors so typos surface.
  static StatusOr<Catalog> FromJson(std::string_view text);
  // The catalog compiled into the binary from common/catalog/accelerators.json.
  static const Catalog& Builtin();
  // The built-in catalog with the models of the JSON file at `path` merged in (--catalog).
  static StatusOr<Catalog> BuiltinWithOverrides(const std::string& path);

  // Models from `overrides` replace same-named models and add new ones.
  void Merge(const Catalog& overrides);

  const AcceleratorModel* Find(std::string_view name_or_alias) const;
  const std::vector<AcceleratorModel>& models() const { return models_; }
  // Adds (or replaces) one model; used by the simulator for trace-only models such as "G2".
  void Add(AcceleratorModel model);

 private:
  void Reindex();
  std::vector<AcceleratorModel> models_;
  std::map<std::string, size_t> index_;  // lower-cased name/alias -> position
};

}  // namespace tideslice::catalog
