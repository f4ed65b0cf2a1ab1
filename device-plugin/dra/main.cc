// tideslice-dra-driver: the kubelet DRA plugin for TideSlice's cards (docs/dra.md). Serves the
// DRA gRPC services and the registration socket, publishes this node's ResourceSlices, and
// re-publishes them when card health changes or the kubelet wiped them. Metrics on
// --metrics-address.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include "common/flags.h"
#include "common/kube/access.h"
#include "common/kube/client.h"
#include "common/log/log.h"
#include "common/metrics/endpoint.h"
#include "common/quantity.h"
#include "device-plugin/backends/dcmi_backend.h"
#include "device-plugin/backends/mock_backend.h"
#include "device-plugin/backends/nvml_backend.h"
#include "device-plugin/dra/dra_server.h"
#include "device-plugin/dra/slice_publisher.h"

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

struct Flags {
  std::string driver = tideslice::dra::kDefaultDriverName;
  std::string node_name;
  std::string backend = "nvml";
  std::string mock_config;
  std::string catalog_file;
  std::string kubeconfig;
  std::string plugin_dir;   // default /var/lib/kubelet/plugins/<driver>
  std::string registry_dir = "/var/lib/kubelet/plugins_registry";
  std::string cdi_dir = tideslice::dra::kDefaultCdiDir;
  std::string slice_layout = "partitionable";
  std::string limiter = "on";
  std::string limiter_dir = tideslice::deviceplugin::kDefaultLimiterDir;
  std::string limiter_library = tideslice::deviceplugin::kDefaultLimiterLibrary;
  std::string context_reserve = "0";
  std::chrono::seconds health_poll{10};
  std::chrono::seconds resync{30};
  std::string metrics_address = "0.0.0.0:9402";
};

int Fail(const std::string& msg) {
  std::fprintf(stderr, "tideslice-dra-driver: %s\n(see --help)\n", msg.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace tideslice;
  Flags f;
  if (const char* n = std::getenv("NODE_NAME")) f.node_name = n;
  FlagSet flags("tideslice-dra-driver", "TideSlice's DRA kubelet plugin: ResourceSlices for this node's cards, "
                                        "claims prepared into CDI specs with partitions and the limiter.");
  auto not_empty = [](const std::string& v) { return v.empty() ? std::string("must not be empty") : std::string(); };
  auto absolute = [](const std::string& v) {
    return v.empty() || v.front() != '/' ? std::string("must be an absolute path") : std::string();
  };
  flags.String("--driver-name", &f.driver, "DRA driver name (ResourceSlice spec.driver, DeviceClass selectors)", not_empty)
      .String("--node-name", &f.node_name, "this node's name (default: $NODE_NAME)", not_empty)
      .Choice("--backend", &f.backend, {"nvml", "dcmi", "mock"}, "where the cards come from")
      .Raw("--mock-config", &f.mock_config, "cards for --backend mock (JSON/YAML, see deploy/examples/mock-cards.json)")
      .Raw("--catalog", &f.catalog_file, "extra catalog models (JSON) merged into the built-in catalog")
      .Raw("--kubeconfig", &f.kubeconfig, "kubeconfig file (default: in-cluster service account)")
      .Raw("--plugin-dir", &f.plugin_dir, "plugin data directory (default /var/lib/kubelet/plugins/<driver>)")
      .String("--registry-dir", &f.registry_dir, "kubelet plugin registry directory", absolute)
      .String("--cdi-dir", &f.cdi_dir, "directory for the per-claim CDI spec files", absolute)
      .Choice("--slice-layout", &f.slice_layout, {"partitionable", "basic"},
              "partitionable: shared cards, MIG and vNPU devices on counters (Kubernetes 1.36+, or 1.34/1.35 with "
              "DRAPartitionableDevices and DRAConsumableCapacity on); basic: whole cards only")
      .Choice("--limiter", &f.limiter, {"on", "off"}, "set up the in-container limiter for shared cards")
      .String("--limiter-dir", &f.limiter_dir, "the limiter's host directory", absolute)
      .String("--limiter-library", &f.limiter_library, "the limiter library to install", absolute)
      .String("--limiter-context-reserve", &f.context_reserve, "memory reserved per CUDA/ACL context, e.g. 512Mi")
      .Seconds("--health-poll-seconds", &f.health_poll, 1, 3600, "how often card health is read")
      .Seconds("--resync-seconds", &f.resync, 5, 3600, "how often the slices are checked against the API")
      .String("--metrics-address", &f.metrics_address, "HOST:PORT for /metrics, or off", not_empty);
  Status parsed = flags.Parse(argc, argv);
  if (flags.help_requested()) {
    std::printf("%s", flags.Usage().c_str());
    return 0;
  }
  if (!parsed.ok()) return Fail(parsed.ToString());
  if (f.node_name.empty()) return Fail("--node-name (or $NODE_NAME) is required");
  if (f.plugin_dir.empty()) f.plugin_dir = "/var/lib/kubelet/plugins/" + f.driver;
  uint64_t context_reserve = 0;
  {
    auto q = ParseQuantity(f.context_reserve);
    if (!q.ok() || *q < 0 || *q > (1ll << 36))
      return Fail("--limiter-context-reserve must be a number of bytes from 0 to 64Gi, e.g. 512Mi");
    context_reserve = static_cast<uint64_t>(*q);
  }
  auto layout = dra::ParseSliceLayout(f.slice_layout);
  if (!layout.ok()) return Fail(layout.status().ToString());
  std::error_code ec;
  for (const auto& d : {f.plugin_dir, f.registry_dir, f.cdi_dir}) {
    std::filesystem::create_directories(d, ec);
    if (!std::filesystem::is_directory(d, ec)) return Fail(d + " is not a directory and cannot be created");
  }

  catalog::Catalog catalog = catalog::Catalog::Builtin();
  if (!f.catalog_file.empty()) {
    auto merged = catalog::Catalog::BuiltinWithOverrides(f.catalog_file);
    if (!merged.ok()) return Fail(merged.status().ToString());
    catalog = std::move(*merged);
  }
  std::unique_ptr<deviceplugin::DeviceBackend> backend;
  if (f.backend == "mock") {
    if (f.mock_config.empty()) return Fail("--backend mock needs --mock-config");
    auto b = deviceplugin::MockBackend::FromFile(f.mock_config, catalog);
    if (!b.ok()) return Fail(b.status().ToString());
    backend = std::move(*b);
  } else if (f.backend == "nvml") {
    auto api = deviceplugin::LoadNvml();
    if (!api.ok()) return Fail(api.status().ToString());
    auto b = deviceplugin::NvmlBackend::Create(*api, catalog);
    if (!b.ok()) return Fail(b.status().ToString());
    backend = std::move(*b);
  } else {
    auto api = deviceplugin::LoadDcmi();
    if (!api.ok()) return Fail(api.status().ToString());
    auto b = deviceplugin::DcmiBackend::Create(*api, catalog);
    if (!b.ok()) return Fail(b.status().ToString());
    backend = std::move(*b);
  }

  auto access = kube::ResolveAccess(f.kubeconfig);
  if (!access.ok()) return Fail(access.status().WithContext("Kubernetes access").ToString());
  auto transport = kube::NewCppRestTransport(*access);
  if (!transport.ok()) return Fail(transport.status().ToString());
  kube::KubeClient client(*transport);

  auto ledger = deviceplugin::PartitionLedger::Open(f.plugin_dir + "/partitions.json");
  if (!ledger.ok()) return Fail(ledger.status().ToString());
  std::unique_ptr<deviceplugin::LimiterFiles> limiter;
  if (f.limiter == "on") {
    Status installed = deviceplugin::InstallLimiterLibrary(f.limiter_library, deviceplugin::LimiterLayout{f.limiter_dir});
    if (!installed.ok()) return Fail(installed.WithContext("installing the limiter (or pass --limiter off)").ToString());
    limiter = std::make_unique<deviceplugin::LimiterFiles>(f.limiter_dir);
  }

  dra::DriverOptions options;
  options.driver = f.driver;
  options.node_name = f.node_name;
  options.cdi_dir = f.cdi_dir;
  options.checkpoint_path = f.plugin_dir + "/checkpoint.json";
  options.layout = *layout;
  options.context_reserve_bytes = context_reserve;
  dra::DraDriver driver(
      options, *backend, catalog,
      [&client](const dra::ClaimRef& r) -> StatusOr<std::string> {
        auto got = client.Get("/apis/resource.k8s.io/v1/namespaces/" + kube::PathSegment(r.ns) + "/resourceclaims/" +
                                  kube::PathSegment(r.name),
                              std::chrono::seconds(20));
        if (!got.ok()) return got.status();
        return got->dump();
      },
      ledger->get(), limiter.get());
  Status started = driver.Start();
  if (!started.ok()) return Fail(started.ToString());

  auto registry = std::make_shared<prometheus::Registry>();
  auto& prepared_g = prometheus::BuildGauge().Name("tideslice_dra_prepared_claims")
                         .Help("ResourceClaims prepared on this node now").Register(*registry).Add({});
  auto& calls = prometheus::BuildCounter().Name("tideslice_dra_claim_operations_total")
                    .Help("NodePrepareResources / NodeUnprepareResources claims, by operation and result").Register(*registry);
  auto& healthy_g = prometheus::BuildGauge().Name("tideslice_dra_card_healthy")
                        .Help("1 when the card is healthy (its devices are untainted)").Register(*registry);
  auto& generation_g = prometheus::BuildGauge().Name("tideslice_dra_slice_generation")
                           .Help("generation of this node's ResourceSlice pool").Register(*registry).Add({});
  auto& registered_g = prometheus::BuildGauge().Name("tideslice_dra_registered")
                           .Help("1 when the kubelet registered the driver").Register(*registry).Add({});
  auto exposer = metrics::StartEndpoint(f.metrics_address, registry);
  if (!exposer.ok()) return Fail(exposer.status().ToString());

  dra::DraServer server(driver, dra::ServerOptions{f.plugin_dir, f.registry_dir});
  Status serving = server.Start();
  if (!serving.ok()) return Fail(serving.ToString());

  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  dra::SlicePublisher publisher(client, f.driver, f.node_name);
  log::ChangeLog publish_log;
  auto next_resync = std::chrono::steady_clock::now();
  auto next_health = std::chrono::steady_clock::now() + f.health_poll;
  dra::DriverCounters last{};
  while (!g_stop) {
    const auto now = std::chrono::steady_clock::now();
    bool publish = now >= next_resync;
    if (now >= next_health) {
      next_health = now + f.health_poll;
      auto changed = driver.RefreshCards();
      if (changed.ok() && *changed) {
        server.NotifyHealthChanged();
        publish = true;
      }
    }
    if (publish) {
      next_resync = now + f.resync;
      Status s = publisher.Sync(driver.Inventory());
      publish_log.Record("slices", s.ok() ? "ok" : "failing", s.ok() ? log::Level::kInfo : log::Level::kWarn,
                         "dra_publish", s.ok() ? "ResourceSlices published" : "publishing ResourceSlices: " + s.ToString());
    }
    const auto c = driver.counters();
    calls.Add({{"operation", "prepare"}, {"result", "ok"}}).Increment(static_cast<double>(c.prepared - last.prepared));
    calls.Add({{"operation", "prepare"}, {"result", "error"}}).Increment(static_cast<double>(c.prepare_errors - last.prepare_errors));
    calls.Add({{"operation", "unprepare"}, {"result", "ok"}}).Increment(static_cast<double>(c.unprepared - last.unprepared));
    calls.Add({{"operation", "unprepare"}, {"result", "error"}}).Increment(static_cast<double>(c.unprepare_errors - last.unprepare_errors));
    last = c;
    prepared_g.Set(static_cast<double>(driver.Prepared().size()));
    generation_g.Set(static_cast<double>(publisher.generation()));
    registered_g.Set(server.registered() ? 1 : 0);
    for (const auto& card : driver.Cards())
      healthy_g.Add({{"card", card.uuid}, {"model", card.model}}).Set(card.healthy ? 1 : 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  server.Stop();
  log::Info("dra_driver_stopped", "sockets removed; slices stay for the kubelet to wipe if the driver does not return");
  return 0;
}
