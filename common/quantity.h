// Kubernetes resource quantities ("8Gi", "8192Mi", "500M", "1.5", "2e3") and TideSlice's
// request values. Pure functions, no allocation beyond the error message.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/status.h"

namespace tideslice {

// Parses a Kubernetes quantity into base units (bytes for memory, cores for CPU), as a
// long double so that "100m" and "1.5Gi" are exact enough. Grammar as in
// k8s.io/apimachinery resource.Quantity: sign? number (binary-SI | decimal-SI | exponent)?
StatusOr<long double> ParseQuantity(std::string_view text);

// Memory for tideslice.io/vnpu-memory: a quantity with a unit is bytes rounded UP to whole MiB;
// a bare number is already MiB (so that "8192" means 8 GiB, as HAMi users expect).
StatusOr<int64_t> ParseMemoryMiB(std::string_view text);

// A whole count ("1", "2", "4") such as tideslice.io/vnpu or nvidia.com/gpu. Fractions and
// negative numbers are rejected; the kubelet requires whole extended resources anyway.
StatusOr<int64_t> ParseCount(std::string_view text);

// CPU quantity to milli-cores ("500m" -> 500, "2" -> 2000), rounded up.
StatusOr<int64_t> ParseMilliCpu(std::string_view text);

}  // namespace tideslice
