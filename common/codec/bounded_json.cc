#include "common/codec/bounded_json.h"

namespace tideslice::codec {

int JsonDepth(std::string_view text, int cap) {
  int depth = 0, max = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') {
      if (++depth > max) max = depth;
      if (max > cap) return max;
    } else if (c == '}' || c == ']') {
      if (depth > 0) --depth;
    }
  }
  return max;
}

StatusOr<nlohmann::json> BoundedParse(std::string_view text, const std::string& what, JsonLimits limits) {
  if (text.size() > limits.max_bytes)
    return Status::InvalidArgument(what, "is " + std::to_string(text.size()) + " bytes; at most " +
                                             std::to_string(limits.max_bytes) + " are accepted");
  if (JsonDepth(text, limits.max_depth) > limits.max_depth)
    return Status::InvalidArgument(what, "nests deeper than " + std::to_string(limits.max_depth) + " levels");
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument(what, "is not valid JSON");
  return j;
}

}  // namespace tideslice::codec
