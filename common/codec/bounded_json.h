// Parsing JSON that came from outside the process (HTTP bodies, annotations, files) with limits
// that nlohmann does not enforce by itself: its parser and its destructor recurse once per
// nesting level, so about 90k nested brackets exhaust a thread's stack. BoundedParse measures
// the nesting with a flat scan first (strings skipped, escapes honoured) and refuses deep or
// large input with a Status; it never throws.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace tideslice::codec {

struct JsonLimits {
  size_t max_bytes = 4 << 20;
  int max_depth = 64;  // Kubernetes objects nest about 12 deep; 64 leaves room and stays cheap
};

// `what` names the input in the error ("request body", "tideslice.io/assignment").
StatusOr<nlohmann::json> BoundedParse(std::string_view text, const std::string& what, JsonLimits limits = {});

// Nesting depth of JSON text (objects and arrays), without parsing it; stops counting at `cap`.
int JsonDepth(std::string_view text, int cap);

}  // namespace tideslice::codec
