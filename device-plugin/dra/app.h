// tideslice-dra-driver as one object: ParseDraCommandLine turns the flags into a validated
// DraLaunch; DraDriverApp owns the backend, the API client, the partition ledger and limiter
// files, the node-side driver, the kubelet-facing servers, the metrics and the loop that polls
// card health and keeps this node's ResourceSlices in sync, with start and stop.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "common/catalog/catalog.h"
#include "common/http/client.h"
#include "common/kube/client.h"
#include "common/log/log.h"
#include "common/status.h"
#include "device-plugin/dra/dra_server.h"
#include "device-plugin/dra/driver.h"
#include "device-plugin/dra/slice_publisher.h"
#include "device-plugin/kube/inventory_publisher.h"
#include "device-plugin/plugin/limiter_paths.h"

namespace prometheus {
class Exposer;
class Registry;
}  // namespace prometheus

namespace tideslice::dra {

struct DraLaunch {
  std::string driver = kDefaultDriverName;
  std::string node_name;                     // resolved: flag, else $NODE_NAME
  std::string backend = "nvml";              // nvml | dcmi | mock
  std::string mock_config;
  std::string catalog_file;
  std::string kubeconfig;                    // "" = in-cluster
  std::string plugin_dir;                    // resolved: default /var/lib/kubelet/plugins/<driver>
  std::string registry_dir = "/var/lib/kubelet/plugins_registry";
  std::string cdi_dir = kDefaultCdiDir;
  SliceLayout layout = SliceLayout::kPartitionable;
  bool limiter = true;
  std::string limiter_dir = deviceplugin::kDefaultLimiterDir;
  std::string limiter_library = deviceplugin::kDefaultLimiterLibrary;
  uint64_t context_reserve_bytes = 0;
  std::chrono::seconds health_poll{10};
  std::chrono::seconds resync{30};
  std::chrono::seconds heartbeat{30};        // the node inventory annotation, re-published at least this often
  std::string metrics_address = "0.0.0.0:9402";
};

struct DraCommandLine {
  bool help = false;
  std::string usage;
  DraLaunch launch;
};

StatusOr<DraCommandLine> ParseDraCommandLine(int argc, const char* const* argv);

class DraDriverApp {
 public:
  static StatusOr<std::unique_ptr<DraDriverApp>> Start(DraLaunch launch);
  ~DraDriverApp();
  // Idempotent. Sockets are removed; slices stay for the kubelet to wipe if the driver does not
  // come back.
  void Stop();

 private:
  struct Metrics;
  explicit DraDriverApp(DraLaunch launch);
  Status StartParts();
  void Loop();
  void UpdateMetrics();
  void PublishInventory();

  DraLaunch launch_;
  catalog::Catalog catalog_ = catalog::Catalog::Builtin();
  std::unique_ptr<deviceplugin::DeviceBackend> backend_;
  std::unique_ptr<kube::KubeClient> client_;
  std::unique_ptr<deviceplugin::PartitionLedger> ledger_;
  std::unique_ptr<deviceplugin::LimiterFiles> limiter_;
  std::unique_ptr<DraDriver> driver_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::unique_ptr<DraServer> server_;
  std::unique_ptr<SlicePublisher> publisher_;
  // The same node inventory annotation as the device plugin's, marked with the driver name: the
  // scheduler extender scores this node from it (cards, link domains, heartbeat).
  std::unique_ptr<deviceplugin::InventoryPublisher> inventory_;
  DriverCounters last_{};
  log::ChangeLog log_;
  http::CancelFlag cancel_;
  std::thread loop_;
  bool stopped_ = false;
};

}  // namespace tideslice::dra
