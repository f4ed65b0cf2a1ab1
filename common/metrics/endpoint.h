// The /metrics endpoint both binaries serve (prometheus-cpp's Exposer), started from their
// --metrics-address flag.
#pragma once

#include <memory>
#include <string>

#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include "common/status.h"

namespace tideslice::metrics {

// Serves `registry` on `address` ("HOST:PORT"); "off" serves nothing (null). A bind failure is
// an error naming the flag and the address.
StatusOr<std::unique_ptr<prometheus::Exposer>> StartEndpoint(const std::string& address,
                                                             std::shared_ptr<prometheus::Registry> registry);

}  // namespace tideslice::metrics
