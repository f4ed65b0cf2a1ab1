// YAML (and therefore JSON) configuration text to nlohmann::json, so that configuration files
// can be written in either and then go through one validating decoder. Plain scalars that read
// as booleans, null or numbers become those; quoted scalars stay strings.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"

namespace tideslice::codec {

StatusOr<nlohmann::json> YamlToJson(const std::string& text, const std::string& what);

}  // namespace tideslice::codec
