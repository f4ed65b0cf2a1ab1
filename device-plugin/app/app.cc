#include "device-plugin/app/app.h"

#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <filesystem>

#include "common/kube/objects.h"
#include "common/log/log.h"
#include "common/metrics/endpoint.h"
#include "device-plugin/backends/nvml_backend.h"
#include "device-plugin/backends/open_backend.h"
#include "device-plugin/exporter/allocation_metrics.h"
#include "device-plugin/exporter/card_metrics.h"
#include "device-plugin/exporter/limiter_metrics.h"
#include "device-plugin/exporter/pod_usage.h"
#include "device-plugin/plugin/handoff.h"
#include "device-plugin/plugin/pod_resources.h"

namespace tideslice::deviceplugin {
namespace {

// --standalone: no Kubernetes, so no way to tell whose slice a device is. Refuse with a reason:
// handing out a slice without knowing whose it is would be the exact bug TideSlice exists to avoid.
class StandaloneHandler : public AllocationHandler {
 public:
  StatusOr<v1beta1::ContainerAllocateResponse> AllocateContainer(const std::vector<std::string>& ids,
                                                                const std::vector<DeviceInfo>&) override {
    return Status::FailedPrecondition("cannot tell which pod devices " + (ids.empty() ? std::string() : ids.front()) +
                                      "... belong to: the agent runs with --standalone (no Kubernetes access)");
  }
};

}  // namespace

DevicePluginApp::DevicePluginApp(DevicePluginLaunch launch) : launch_(std::move(launch)) {}

DevicePluginApp::~DevicePluginApp() { Stop(); }

StatusOr<std::unique_ptr<DevicePluginApp>> DevicePluginApp::Start(DevicePluginLaunch launch) {
  std::unique_ptr<DevicePluginApp> app(new DevicePluginApp(std::move(launch)));
  TS_RETURN_IF_ERROR(app->StartBackend());
  TS_RETURN_IF_ERROR(app->StartKubernetes());
  TS_RETURN_IF_ERROR(app->StartMetrics());

  AgentOptions options = app->launch_.agent;
  options.catalog = &app->catalog_;
  DevicePluginApp* self = app.get();
  options.on_devices = [self](const std::vector<DeviceInfo>& cards) { self->OnDevices(cards); };
  options.card_in_use = [self](const DeviceInfo& card) { return self->CardInUse(card); };
  app->agent_ = std::make_unique<Agent>(options, app->backend_.get(), app->handler_.get());
  TS_RETURN_IF_ERROR(app->agent_->Start());
  if (app->nvml_) {
    Status events = app->nvml_->StartHealthEvents([self] { self->agent_->RefreshNow(); });
    if (!events.ok())
      log::Warn("agent.health_events_off", "NVML health events are unavailable; health comes from polling only",
                {{"error", events.ToString()}});
  }
  if (app->client_) app->WatchPods();
  if (app->ledger_) app->reconcile_ = std::thread([self] { self->ReconcileLoop(); });

  const DevicePluginLaunch& l = app->launch_;
  log::Info("agent.started", "tideslice-device-plugin serves",
            {{"node", l.node_name},
             {"backend", app->backend_->Name()},
             {"resource", l.agent.plugin.resource_name},
             {"socket", l.agent.plugin.socket_dir + "/" + l.agent.plugin.socket_name},
             {"kubernetes", app->client_ ? "on" : "off (--standalone)"},
             {"metrics", app->exposer_ ? "http://" + l.metrics_address + "/metrics (port " +
                                             std::to_string(app->metrics_port()) + ")"
                                       : "off"}});
  return app;
}

Status DevicePluginApp::StartBackend() {
  if (!launch_.catalog_file.empty()) {
    auto merged = catalog::Catalog::BuiltinWithOverrides(launch_.catalog_file);
    if (!merged.ok()) return merged.status();
    catalog_ = std::move(*merged);
  }
  BackendChoice choice;
  choice.name = launch_.backend;
  choice.mock_config = launch_.mock_config;
  choice.nvml.sysfs_root = choice.dcmi.sysfs_root = launch_.sysfs_root;
  auto xids = nvml::ParseXidList(launch_.critical_xids);   // checked when parsed
  if (xids.ok()) choice.nvml.extra_critical_xids = *xids;
  auto backend = OpenBackend(choice, catalog_);
  if (!backend.ok()) return backend.status();
  backend_ = std::move(*backend);
  nvml_ = dynamic_cast<NvmlBackend*>(backend_.get());   // XID events, when the cards are NVIDIA's
  return Status::Ok();
}

// The assignment store for Allocate, the partition ledger, the limiter files and the inventory
// publisher; --standalone has none of them and refuses Allocate.
Status DevicePluginApp::StartKubernetes() {
  if (launch_.standalone) {
    handler_ = std::make_unique<StandaloneHandler>();
    return Status::Ok();
  }
  auto access = kube::ResolveAccess(launch_.kubeconfig);
  if (!access.ok()) return access.status().WithContext("Kubernetes access (or pass --standalone)");
  auto transport = kube::NewCppRestTransport(*access);
  if (!transport.ok()) return transport.status();
  client_ = std::make_unique<kube::KubeClient>(*transport);
  AssignmentTrust trust;
  if (!launch_.verify_key_file.empty()) {
    verify_key_ = std::make_unique<trust::VerifierFile>(launch_.verify_key_file);
    trust.verifier = verify_key_.get();
  } else {
    log::Warn("assignment.unverified", "no --assignment-verify-key: assignments are honoured without checking the "
                                       "scheduler's signature (only their pod UID and node)");
  }
  trust.lease_name = launch_.lease_name;
  trust.lease_namespace = launch_.lease_namespace;
  store_ = std::make_unique<KubeAssignmentStore>(client_.get(), launch_.node_name, std::move(trust));
  auto opened = PartitionLedger::Open(launch_.agent.plugin.socket_dir + "/tideslice-partitions.json");
  if (!opened.ok()) return opened.status();
  ledger_ = std::move(*opened);
  if (auto cards = backend_->Discover(); cards.ok()) RemoveOrphanPartitions(*ledger_, *backend_, *cards);
  auto handoff = std::make_unique<HandoffHandler>(store_.get(), backend_.get(), ledger_.get());
  limiter_files_ = std::make_unique<LimiterFiles>(launch_.limiter_dir);
  if (launch_.limiter) {
    // Installed before the first Allocate can mount it; a node that cannot serve the limiter
    // must not hand out soft slices as if it did.
    Status installed = InstallLimiterLibrary(launch_.limiter_library, limiter_files_->layout());
    if (!installed.ok())
      return Status::FailedPrecondition("installing the memory limiter: " + installed.ToString() +
                                        " (or pass --limiter off for a node group that opts out)");
    handoff->EnableLimiter(limiter_files_.get(), launch_.limiter_context_reserve);
    log::Info("limiter.installed", "soft slices get the in-container memory limiter",
              {{"library", limiter_files_->layout().LibraryPath()}, {"dir", launch_.limiter_dir}});
  } else {
    log::Warn("limiter.off", "--limiter off: soft slices are accounting only; nothing keeps a container within "
                             "its slice's memory",
              {{"dir", launch_.limiter_dir}});
  }
  handler_ = std::move(handoff);
  publisher_ = std::make_unique<InventoryPublisher>(client_.get(), launch_.node_name, backend_->Name(), catalog_,
                                                    launch_.heartbeat);
  return Status::Ok();
}

Status DevicePluginApp::StartMetrics() {
  registry_ = std::make_shared<prometheus::Registry>();
  card_metrics_ = std::make_unique<CardMetrics>(registry_, launch_.node_name);
  allocation_metrics_ = std::make_unique<AllocationMetrics>(registry_, launch_.node_name);
  limiter_metrics_ = std::make_unique<LimiterMetrics>(registry_, launch_.node_name);
  auto exposer = metrics::StartEndpoint(launch_.metrics_address, registry_);
  if (!exposer.ok()) return exposer.status();
  exposer_ = std::move(*exposer);
  return Status::Ok();
}

int DevicePluginApp::metrics_port() const { return exposer_ ? exposer_->GetListeningPorts()[0] : 0; }

// On the agent's thread after every discovery: card and allocation metrics, the limiter's
// per-container metrics, and the inventory annotation.
void DevicePluginApp::OnDevices(const std::vector<DeviceInfo>& cards) {
  std::lock_guard<std::mutex> lock(mu_);
  card_metrics_->Update(cards);
  last_cards_ = cards;
  last_used_.clear();
  if (auto procs = backend_->Processes(); procs.ok() && !procs->empty())
    last_used_ = UsageByPod(*procs, [](uint32_t pid) { return ReadProcCgroup(pid); });
  allocation_metrics_->Update(last_cards_, last_allocations_, last_used_);
  std::vector<std::string> unreadable;
  const auto limited = ReadLimiterContainers(launch_.limiter_dir, &unreadable);
  limiter_metrics_->Update(limited, cards, unreadable);
  limiter_metrics_->UpdateCompute(limited, ReadCardsCoordination(launch_.limiter_dir), cards);
  if (!publisher_) return;
  Status st = publisher_->Update(cards);
  if (st.ok())
    log_.Record("inventory", "ok", log::Level::kInfo, "agent.inventory_published", "the node's inventory is published",
                {{"node", launch_.node_name}}, /*log_first=*/true);
  else
    log_.Record("inventory", st.ToString(), log::Level::kWarn, "agent.inventory_failed",
                "cannot publish the node's inventory; the scheduler drops the node once its heartbeat is stale",
                {{"node", launch_.node_name}, {"error", st.ToString()}}, /*log_first=*/true);
}

std::string DevicePluginApp::CardInUse(const DeviceInfo& card) {
  if (client_ && !pods_listed_) return "this node's pods are not listed yet";
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& a : last_allocations_)
    if (a.card_uuid == card.uuid) return "allocated to pod " + a.pod_namespace + "/" + a.pod;
  return "";
}

// The pods of this node, watched, feed the allocation metrics (allocated versus used) and tell
// MIG mode which cards are allocated.
void DevicePluginApp::WatchPods() {
  kube::ReflectorOptions ro;
  ro.query = "fieldSelector=" + kube::QueryEscape("spec.nodeName=" + launch_.node_name);
  pods_ = std::make_unique<kube::Reflector>(
      client_.get(), "/api/v1/pods",
      kube::Reflector::Handler{[this](std::vector<kube::json> items) {
                                 ReplacePodsByKey(on_node_, std::move(items));
                                 RefreshAllocations();
                                 pods_listed_ = true;
                               },
                               [this](kube::WatchEventType type, const kube::json& p) {
                                 if (type == kube::WatchEventType::kDeleted) on_node_.erase(kube::PodKey(p));
                                 else on_node_[kube::PodKey(p)] = p;
                                 RefreshAllocations();
                               }},
      ro);
  pod_watch_ = std::thread([this] { pods_->Run(&cancel_); });
}

void DevicePluginApp::RefreshAllocations() {
  std::vector<kube::json> list;
  for (const auto& [key, pod] : on_node_) list.push_back(pod);
  std::lock_guard<std::mutex> lock(mu_);
  last_allocations_ = AllocationsFromPods(list);
  allocation_metrics_->Update(last_cards_, last_allocations_, last_used_);
}

// Every reconcile period: limiter files, then partitions, of pods that are gone.
void DevicePluginApp::ReconcileLoop() {
  while (cancel_.SleepFor(static_cast<int>(launch_.reconcile_period.count() * 1000))) {
    ReconcileLimiter();
    ReconcilePartitions();
  }
}

// Partitions of pods the kubelet no longer reports are destroyed.
void DevicePluginApp::ReconcilePartitions() {
  const std::string& socket = launch_.pod_resources_socket;
  if (ledger_->All().empty() || !std::filesystem::exists(socket)) return;
  auto live = PodResourcesClient(socket).List(launch_.agent.plugin.resource_name, std::chrono::seconds(5));
  auto cards = backend_->Discover();
  if (!live.ok() || !cards.ok()) {
    Status why = !live.ok() ? live.status() : cards.status();
    log_.Record("reconcile", why.ToString(), log::Level::kWarn, "agent.reconcile_skipped",
                "partitions of gone pods are not released while this fails", {{"error", why.ToString()}},
                /*log_first=*/true);
    return;
  }
  log_.Record("reconcile", "ok", log::Level::kInfo, "agent.reconcile_recovered", "partition reconcile works again");
  auto report = ReleaseGonePartitions(*ledger_, *backend_, *cards, *live, std::chrono::system_clock::now(),
                                      std::chrono::seconds(60));
  if (report.released > 0)
    log::Info("agent.partitions_released", "released partitions of pods that are gone",
              {{"count", std::to_string(report.released)}});
  for (const auto& e : report.errors) log::Warn("agent.reconcile_failed", e);
}

// A directory goes only when a fresh list of this node's pods (not a watch cache that may lag)
// lacks its pod, or shows it finished; a failed list removes nothing. Directories changed since 2
// minutes before the list was asked for stay whatever the list says: a pod allocated after the
// list was taken (Allocate writes its directory moments after the bind), however long the list
// took, is never mistaken for a gone one. Roster slots of compute shares go with their
// containers' directories; leftovers of an interrupted Allocate (no directory holds them) go at
// once, which needs no list.
void DevicePluginApp::ReconcileLimiter() {
  if (!limiter_files_) return;
  if (limiter_files_->PodUids().empty()) {
    for (const auto& e : limiter_files_->SyncCards()) log::Warn("limiter.roster_failed", e);
    return;
  }
  const auto listed_at = std::chrono::system_clock::now();
  auto live = store_->PodUidsOnNode();
  if (!live.ok()) {
    log_.Record("limiter_cleanup", live.status().ToString(), log::Level::kWarn, "limiter.cleanup_skipped",
                "limiter files of gone pods are not removed while listing this node's pods fails",
                {{"error", live.status().ToString()}}, /*log_first=*/true);
    return;
  }
  log_.Record("limiter_cleanup", "ok", log::Level::kInfo, "limiter.cleanup_recovered", "limiter cleanup works again");
  auto report = limiter_files_->RemoveGonePods(*live, listed_at, std::chrono::seconds(120));
  for (const auto& uid : report.removed)
    log::Info("limiter.removed", "removed the limiter files of a pod that is gone", {{"pod_uid", uid}});
  for (const auto& e : report.errors) log::Warn("limiter.remove_failed", e);
}

void DevicePluginApp::Stop() {
  if (stopped_) return;
  stopped_ = true;
  cancel_.Cancel();
  if (pod_watch_.joinable()) pod_watch_.join();
  if (reconcile_.joinable()) reconcile_.join();
  if (nvml_) nvml_->StopHealthEvents();
  if (agent_) agent_->Stop();
}

}  // namespace tideslice::deviceplugin
