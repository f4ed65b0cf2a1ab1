#include "common/metrics/endpoint.h"

namespace tideslice::metrics {

StatusOr<std::unique_ptr<prometheus::Exposer>> StartEndpoint(const std::string& address,
                                                             std::shared_ptr<prometheus::Registry> registry) {
  if (address == "off") return std::unique_ptr<prometheus::Exposer>();
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    return Status::InvalidArgument("--metrics-address", address + ": " + e.what());
  }
  exposer->RegisterCollectable(registry);
  return exposer;
}

}  // namespace tideslice::metrics
