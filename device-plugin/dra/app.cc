#include "device-plugin/dra/app.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <cstdlib>
#include <filesystem>

#include "common/flags.h"
#include "common/kube/access.h"
#include "common/metrics/endpoint.h"
#include "device-plugin/backends/open_backend.h"

namespace tideslice::dra {

StatusOr<DraCommandLine> ParseDraCommandLine(int argc, const char* const* argv) {
  DraCommandLine out;
  DraLaunch& l = out.launch;
  if (const char* n = std::getenv("NODE_NAME")) l.node_name = n;
  std::string layout = "partitionable", limiter = "on";
  FlagSet flags("tideslice-dra-driver", "TideSlice's DRA kubelet plugin: ResourceSlices for this node's cards, "
                                        "claims prepared into CDI specs with partitions and the limiter.");
  flags.String("--driver-name", &l.driver, "DRA driver name (ResourceSlice spec.driver, DeviceClass selectors)", FlagSet::NotEmpty)
      .String("--node-name", &l.node_name, "this node's name (default: $NODE_NAME)", FlagSet::NotEmpty)
      .Choice("--backend", &l.backend, {"nvml", "dcmi", "mock"}, "where the cards come from")
      .Raw("--mock-config", &l.mock_config, "cards for --backend mock (JSON/YAML, see deploy/examples/mock-cards.json)")
      .Raw("--catalog", &l.catalog_file, "extra catalog models (JSON) merged into the built-in catalog")
      .Raw("--kubeconfig", &l.kubeconfig, "kubeconfig file (default: in-cluster service account)")
      .Raw("--plugin-dir", &l.plugin_dir, "plugin data directory (default /var/lib/kubelet/plugins/<driver>)")
      .String("--registry-dir", &l.registry_dir, "kubelet plugin registry directory", FlagSet::AbsolutePath)
      .String("--cdi-dir", &l.cdi_dir, "directory for the per-claim CDI spec files", FlagSet::AbsolutePath)
      .Choice("--slice-layout", &layout, {"partitionable", "partitionable-combined", "basic"},
              "partitionable: shared cards, MIG and vNPU devices on counters (Kubernetes 1.36+, or\n1.35 with "
              "DRAPartitionableDevices and DRAConsumableCapacity on); partitionable-combined: the same\nfor 1.34 "
              "with both gates on (counter sets in the slices of their devices); basic: whole cards only")
      .Choice("--limiter", &limiter, {"on", "off"}, "set up the in-container limiter for shared cards")
      .String("--limiter-dir", &l.limiter_dir, "the limiter's host directory", FlagSet::AbsolutePath)
      .String("--limiter-library", &l.limiter_library, "the limiter library to install", FlagSet::AbsolutePath)
      .Bytes("--limiter-context-reserve", &l.context_reserve_bytes, 1ull << 36,
             "memory charged per CUDA/ACL context, e.g. 512Mi")
      .Seconds("--health-poll-seconds", &l.health_poll, 1, 3600, "how often card health is read")
      .Seconds("--resync-seconds", &l.resync, 5, 3600, "how often the slices are checked against the API")
      .Seconds("--heartbeat-seconds", &l.heartbeat, 1, 3600,
               "the node inventory annotation (what the scheduler extender scores) is re-published\nat least this "
               "often (the scheduler drops nodes whose heartbeat is stale)")
      .String("--metrics-address", &l.metrics_address, "HOST:PORT for /metrics, or off", FlagSet::NotEmpty);
  TS_RETURN_IF_ERROR(flags.Parse(argc, argv));
  out.usage = flags.Usage();
  if (flags.help_requested()) {
    out.help = true;
    return out;
  }
  if (l.node_name.empty()) return Status::InvalidArgument("--node-name", "is required (or set $NODE_NAME)");
  if (l.plugin_dir.empty()) l.plugin_dir = "/var/lib/kubelet/plugins/" + l.driver;
  auto parsed_layout = ParseSliceLayout(layout);
  if (!parsed_layout.ok()) return parsed_layout.status();
  l.layout = *parsed_layout;
  l.limiter = limiter == "on";
  std::error_code ec;
  for (const auto& d : {l.plugin_dir, l.registry_dir, l.cdi_dir}) {
    std::filesystem::create_directories(d, ec);
    if (!std::filesystem::is_directory(d, ec))
      return Status::InvalidArgument("directories", d + " is not a directory and cannot be created");
  }
  return out;
}

struct DraDriverApp::Metrics {
  prometheus::Gauge* prepared = nullptr;
  prometheus::Family<prometheus::Counter>* operations = nullptr;
  prometheus::Family<prometheus::Gauge>* healthy = nullptr;
  prometheus::Gauge* generation = nullptr;
  prometheus::Gauge* registered = nullptr;
};

DraDriverApp::DraDriverApp(DraLaunch launch) : launch_(std::move(launch)) {}

DraDriverApp::~DraDriverApp() { Stop(); }

StatusOr<std::unique_ptr<DraDriverApp>> DraDriverApp::Start(DraLaunch launch) {
  std::unique_ptr<DraDriverApp> app(new DraDriverApp(std::move(launch)));
  TS_RETURN_IF_ERROR(app->StartParts());
  DraDriverApp* self = app.get();
  app->loop_ = std::thread([self] { self->Loop(); });
  log::Info("dra.started", "tideslice-dra-driver serves",
            {{"driver", app->launch_.driver},
             {"node", app->launch_.node_name},
             {"backend", app->backend_->Name()},
             {"plugin_dir", app->launch_.plugin_dir}});
  return app;
}

Status DraDriverApp::StartParts() {
  const DraLaunch& l = launch_;
  if (!l.catalog_file.empty()) {
    auto merged = catalog::Catalog::BuiltinWithOverrides(l.catalog_file);
    if (!merged.ok()) return merged.status();
    catalog_ = std::move(*merged);
  }
  deviceplugin::BackendChoice choice;
  choice.name = l.backend;
  choice.mock_config = l.mock_config;
  auto backend = deviceplugin::OpenBackend(choice, catalog_);
  if (!backend.ok()) return backend.status();
  backend_ = std::move(*backend);

  auto access = kube::ResolveAccess(l.kubeconfig);
  if (!access.ok()) return access.status().WithContext("Kubernetes access");
  auto transport = kube::NewCppRestTransport(*access);
  if (!transport.ok()) return transport.status();
  client_ = std::make_unique<kube::KubeClient>(*transport);

  auto ledger = deviceplugin::PartitionLedger::Open(l.plugin_dir + "/partitions.json");
  if (!ledger.ok()) return ledger.status();
  ledger_ = std::move(*ledger);
  if (l.limiter) {
    Status installed = deviceplugin::InstallLimiterLibrary(l.limiter_library, deviceplugin::LimiterLayout{l.limiter_dir});
    if (!installed.ok()) return installed.WithContext("installing the limiter (or pass --limiter off)");
    limiter_ = std::make_unique<deviceplugin::LimiterFiles>(l.limiter_dir);
  }

  DriverOptions options;
  options.driver = l.driver;
  options.node_name = l.node_name;
  options.cdi_dir = l.cdi_dir;
  options.checkpoint_path = l.plugin_dir + "/checkpoint.json";
  options.layout = l.layout;
  options.context_reserve_bytes = l.context_reserve_bytes;
  kube::KubeClient* client = client_.get();
  driver_ = std::make_unique<DraDriver>(
      options, *backend_, catalog_,
      [client](const ClaimRef& r) -> StatusOr<std::string> {
        auto got = client->Get("/apis/resource.k8s.io/v1/namespaces/" + kube::PathSegment(r.ns) + "/resourceclaims/" +
                                   kube::PathSegment(r.name),
                               std::chrono::seconds(20));
        if (!got.ok()) return got.status();
        return got->dump();
      },
      ledger_.get(), limiter_.get());
  TS_RETURN_IF_ERROR(driver_->Start());

  registry_ = std::make_shared<prometheus::Registry>();
  metrics_ = std::make_unique<Metrics>();
  metrics_->prepared = &prometheus::BuildGauge()
                            .Name("tideslice_dra_prepared_claims")
                            .Help("ResourceClaims prepared on this node now")
                            .Register(*registry_)
                            .Add({});
  metrics_->operations = &prometheus::BuildCounter()
                              .Name("tideslice_dra_claim_operations_total")
                              .Help("NodePrepareResources / NodeUnprepareResources claims, by operation and result")
                              .Register(*registry_);
  metrics_->healthy = &prometheus::BuildGauge()
                           .Name("tideslice_dra_card_healthy")
                           .Help("1 when the card is healthy (its devices are untainted)")
                           .Register(*registry_);
  metrics_->generation = &prometheus::BuildGauge()
                              .Name("tideslice_dra_slice_generation")
                              .Help("generation of this node's ResourceSlice pool")
                              .Register(*registry_)
                              .Add({});
  metrics_->registered = &prometheus::BuildGauge()
                              .Name("tideslice_dra_registered")
                              .Help("1 when the kubelet registered the driver")
                              .Register(*registry_)
                              .Add({});
  auto exposer = metrics::StartEndpoint(l.metrics_address, registry_);
  if (!exposer.ok()) return exposer.status();
  exposer_ = std::move(*exposer);

  server_ = std::make_unique<DraServer>(*driver_, ServerOptions{l.plugin_dir, l.registry_dir});
  TS_RETURN_IF_ERROR(server_->Start());
  publisher_ = std::make_unique<SlicePublisher>(*client_, l.driver, l.node_name);
  inventory_ = std::make_unique<deviceplugin::InventoryPublisher>(client_.get(), l.node_name, backend_->Name(), catalog_,
                                                                  l.heartbeat);
  inventory_->set_dra_driver(l.driver);
  return Status::Ok();
}

// Card health every health_poll (a change re-publishes at once and tells the kubelet's health
// stream), the slices against the API every resync, the metrics every 200 ms.
void DraDriverApp::Loop() {
  auto next_resync = std::chrono::steady_clock::now();
  auto next_health = std::chrono::steady_clock::now() + launch_.health_poll;
  do {
    const auto now = std::chrono::steady_clock::now();
    bool publish = now >= next_resync;
    if (now >= next_health) {
      next_health = now + launch_.health_poll;
      auto changed = driver_->RefreshCards();
      if (changed.ok() && *changed) {
        server_->NotifyHealthChanged();
        publish = true;
      }
    }
    if (publish) {
      next_resync = now + launch_.resync;
      Status s = publisher_->Sync(driver_->Inventory());
      if (s.ok())
        log_.Record("slices", "ok", log::Level::kInfo, "dra.slices_published", "ResourceSlices published",
                    {{"node", launch_.node_name}}, /*log_first=*/true);
      else
        log_.Record("slices", s.ToString(), log::Level::kWarn, "dra.slices_failed",
                    "cannot publish ResourceSlices; retried every resync", {{"error", s.ToString()}},
                    /*log_first=*/true);
    }
    PublishInventory();
    UpdateMetrics();
  } while (cancel_.SleepFor(200));
}

// Cheap when nothing changed: the publisher writes only on a change of the cards or when the
// heartbeat is due.
void DraDriverApp::PublishInventory() {
  Status s = inventory_->Update(driver_->Cards());
  if (s.ok())
    log_.Record("inventory", "ok", log::Level::kInfo, "dra.inventory_published", "the node's inventory is published",
                {{"node", launch_.node_name}}, /*log_first=*/true);
  else
    log_.Record("inventory", s.ToString(), log::Level::kWarn, "dra.inventory_failed",
                "cannot publish the node's inventory; the scheduler extender stops scoring the node once its "
                "heartbeat is stale",
                {{"node", launch_.node_name}, {"error", s.ToString()}}, /*log_first=*/true);
}

void DraDriverApp::UpdateMetrics() {
  const DriverCounters c = driver_->counters();
  auto add = [&](const char* operation, const char* result, uint64_t now, uint64_t before) {
    metrics_->operations->Add({{"operation", operation}, {"result", result}}).Increment(static_cast<double>(now - before));
  };
  add("prepare", "ok", c.prepared, last_.prepared);
  add("prepare", "error", c.prepare_errors, last_.prepare_errors);
  add("unprepare", "ok", c.unprepared, last_.unprepared);
  add("unprepare", "error", c.unprepare_errors, last_.unprepare_errors);
  last_ = c;
  metrics_->prepared->Set(static_cast<double>(driver_->Prepared().size()));
  metrics_->generation->Set(static_cast<double>(publisher_->generation()));
  metrics_->registered->Set(server_->registered() ? 1 : 0);
  for (const auto& card : driver_->Cards())
    metrics_->healthy->Add({{"card", card.uuid}, {"model", card.model}}).Set(card.healthy ? 1 : 0);
}

void DraDriverApp::Stop() {
  if (stopped_) return;
  stopped_ = true;
  cancel_.Cancel();
  if (loop_.joinable()) loop_.join();
  if (server_) server_->Stop();
  log::Info("dra.stopped", "sockets removed; slices stay for the kubelet to wipe if the driver does not return");
}

}  // namespace tideslice::dra
