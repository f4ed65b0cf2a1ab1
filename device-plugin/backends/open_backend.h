// Choosing and opening a backend by name, as the node agent and the DRA driver both do: "mock"
// reads a cards file, "nvml" and "dcmi" load the vendor library at run time.
#pragma once

#include <memory>
#include <string>

#include "common/catalog/catalog.h"
#include "common/status.h"
#include "device-plugin/backends/dcmi_backend.h"
#include "device-plugin/backends/device_backend.h"
#include "device-plugin/backends/nvml_backend.h"

namespace tideslice::deviceplugin {

struct BackendChoice {
  std::string name = "nvml";     // nvml | dcmi | mock
  std::string mock_config;       // the cards file of "mock"
  NvmlOptions nvml;              // sysfs root, extra critical XIDs
  DcmiOptions dcmi;              // sysfs root
};

// The backend, or why it cannot be had (no driver library on the node, a bad cards file).
StatusOr<std::unique_ptr<DeviceBackend>> OpenBackend(const BackendChoice& choice, const catalog::Catalog& catalog);

}  // namespace tideslice::deviceplugin
