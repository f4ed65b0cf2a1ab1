#include "device-plugin/backends/open_backend.h"

#include "device-plugin/backends/mock_backend.h"

namespace tideslice::deviceplugin {

StatusOr<std::unique_ptr<DeviceBackend>> OpenBackend(const BackendChoice& choice, const catalog::Catalog& catalog) {
  if (choice.name == "mock") {
    if (choice.mock_config.empty())
      return Status::InvalidArgument("--mock-config", "--backend mock needs --mock-config FILE");
    auto b = MockBackend::FromFile(choice.mock_config, catalog);
    if (!b.ok()) return b.status();
    return std::unique_ptr<DeviceBackend>(std::move(*b));
  }
  if (choice.name == "nvml") {
    auto api = LoadNvml();
    if (!api.ok()) return api.status();
    auto b = NvmlBackend::Create(*api, catalog, choice.nvml);
    if (!b.ok()) return b.status();
    return std::unique_ptr<DeviceBackend>(std::move(*b));
  }
  if (choice.name == "dcmi") {
    auto api = LoadDcmi();
    if (!api.ok()) return api.status();
    auto b = DcmiBackend::Create(*api, catalog, choice.dcmi);
    if (!b.ok()) return b.status();
    return std::unique_ptr<DeviceBackend>(std::move(*b));
  }
  return Status::InvalidArgument("--backend", "must be nvml, dcmi or mock, got \"" + choice.name + "\"");
}

}  // namespace tideslice::deviceplugin
