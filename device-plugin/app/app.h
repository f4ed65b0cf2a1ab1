// The node agent as one object that owns its parts and loops: the backend, the Kubernetes side
// (assignment store, inventory publisher, the node's pod watch), the partition ledger and limiter
// files, the metrics, the kubelet-facing Agent, and the reconcile loop (partitions and limiter
// files of pods that are gone). Start brings them up in order or fails with the reason; Stop
// takes them down in reverse. tideslice-device-plugin's main is Parse -> Start -> wait -> Stop.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/catalog/catalog.h"
#include "common/http/client.h"
#include "common/kube/client.h"
#include "common/kube/reflector.h"
#include "common/status.h"
#include "common/trust/assignment_seal.h"
#include "device-plugin/app/launch.h"
#include "device-plugin/backends/device_backend.h"
#include "device-plugin/kube/inventory_publisher.h"
#include "device-plugin/kube/kube_assignment_store.h"
#include "device-plugin/plugin/agent.h"
#include "device-plugin/plugin/container_allocation.h"
#include "device-plugin/plugin/limiter_setup.h"
#include "device-plugin/plugin/partitions.h"

namespace prometheus {
class Exposer;
class Registry;
}  // namespace prometheus

namespace tideslice::deviceplugin {

class CardMetrics;
class AllocationMetrics;
class LimiterMetrics;
class NvmlBackend;

class DevicePluginApp {
 public:
  static StatusOr<std::unique_ptr<DevicePluginApp>> Start(DevicePluginLaunch launch);
  ~DevicePluginApp();
  // Idempotent.
  void Stop();

  // The port /metrics listens on (0 when off).
  int metrics_port() const;
  Agent& agent() { return *agent_; }

 private:
  explicit DevicePluginApp(DevicePluginLaunch launch);
  Status StartBackend();
  Status StartKubernetes();
  Status StartMetrics();
  void OnDevices(const std::vector<DeviceInfo>& cards);
  std::string CardInUse(const DeviceInfo& card);
  void WatchPods();
  void RefreshAllocations();
  void ReconcileLoop();
  void ReconcilePartitions();
  void ReconcileLimiter();

  DevicePluginLaunch launch_;
  catalog::Catalog catalog_ = catalog::Catalog::Builtin();
  std::unique_ptr<DeviceBackend> backend_;
  NvmlBackend* nvml_ = nullptr;   // for XID events, when the backend is NVML
  std::unique_ptr<kube::KubeClient> client_;
  std::unique_ptr<trust::VerifierFile> verify_key_;
  std::unique_ptr<KubeAssignmentStore> store_;
  std::unique_ptr<InventoryPublisher> publisher_;
  std::unique_ptr<AllocationHandler> handler_;
  std::unique_ptr<PartitionLedger> ledger_;
  std::unique_ptr<LimiterFiles> limiter_files_;   // with Kubernetes only: removal needs the node's pods

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<CardMetrics> card_metrics_;
  std::unique_ptr<AllocationMetrics> allocation_metrics_;
  std::unique_ptr<LimiterMetrics> limiter_metrics_;
  std::unique_ptr<prometheus::Exposer> exposer_;

  // What the metrics and the MIG-mode check read, from the agent's and the pod watch's threads.
  std::mutex mu_;
  std::vector<DeviceInfo> last_cards_;
  std::vector<ContainerAllocation> last_allocations_;
  std::map<std::pair<std::string, std::string>, int64_t> last_used_;   // (pod UID, card) -> bytes
  std::atomic<bool> pods_listed_{false};   // MIG mode waits for the first list of this node's pods
  log::ChangeLog log_;

  std::unique_ptr<Agent> agent_;
  std::unique_ptr<kube::Reflector> pods_;
  std::map<std::string, kube::json> on_node_;   // only touched on the pod watch's thread
  http::CancelFlag cancel_;
  std::thread pod_watch_, reconcile_;
  bool stopped_ = false;
};

}  // namespace tideslice::deviceplugin
