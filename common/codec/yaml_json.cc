#include "common/codec/yaml_json.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>

namespace tideslice::codec {
namespace {

nlohmann::json Convert(const YAML::Node& node, int depth) {
  if (depth > 64) throw std::runtime_error("nested more than 64 levels");
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Sequence: {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& item : node) arr.push_back(Convert(item, depth + 1));
      return arr;
    }
    case YAML::NodeType::Map: {
      nlohmann::json obj = nlohmann::json::object();
      for (const auto& kv : node) obj[kv.first.as<std::string>()] = Convert(kv.second, depth + 1);
      return obj;
    }
    case YAML::NodeType::Scalar: break;
  }
  const std::string text = node.Scalar();
  if (node.Tag() == "!") return text;  // quoted: a string whatever it looks like
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  if (text == "null" || text == "~" || text.empty()) return nullptr;
  char* end = nullptr;
  long long i = std::strtoll(text.c_str(), &end, 10);
  if (end && *end == '\0') return i;
  double d = std::strtod(text.c_str(), &end);
  if (end && *end == '\0') return d;
  return text;
}

}  // namespace

StatusOr<nlohmann::json> YamlToJson(const std::string& text, const std::string& what) {
  nlohmann::json out;
  try {
    out = Convert(YAML::Load(text), 0);
  } catch (const std::exception& e) {
    return Status::InvalidArgument(what, std::string("is not valid YAML/JSON: ") + e.what());
  }
  try {
    (void)out.dump();  // JSON text must be UTF-8; find out here rather than in a later dump()
  } catch (const nlohmann::json::type_error&) {
    return Status::InvalidArgument(what, "contains text that is not UTF-8");
  }
  return out;
}

}  // namespace tideslice::codec
