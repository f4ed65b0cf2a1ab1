// tideslice-device-plugin: the node agent. Flags are resolved and validated here, once; nothing
// else reads the environment or the command line.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include <prometheus/exposer.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include "common/catalog/catalog.h"
#include "common/quantity.h"
#include "device-plugin/backends/dcmi_backend.h"
#include "device-plugin/backends/mock_backend.h"
#include "device-plugin/backends/nvml_backend.h"
#include "common/flags.h"
#include "common/log/log.h"
#include "common/trust/assignment_seal.h"
#include "common/metrics/endpoint.h"
#include "common/kube/access.h"
#include "common/kube/client.h"
#include "common/kube/objects.h"
#include "common/kube/reflector.h"
#include "device-plugin/exporter/allocation_metrics.h"
#include "device-plugin/exporter/card_metrics.h"
#include "device-plugin/exporter/limiter_metrics.h"
#include "device-plugin/exporter/pod_usage.h"
#include "device-plugin/kube/inventory_publisher.h"
#include "device-plugin/kube/kube_assignment_store.h"
#include "device-plugin/plugin/agent.h"
#include "device-plugin/plugin/handoff.h"
#include "device-plugin/plugin/limiter_setup.h"
#include "device-plugin/plugin/mig_mode.h"
#include "device-plugin/plugin/partitions.h"
#include "device-plugin/plugin/pod_resources.h"

#include <yaml-cpp/yaml.h>

using namespace tideslice;
using namespace tideslice::deviceplugin;

namespace {

constexpr const char* kUsage = R"(tideslice-device-plugin: TideSlice's node agent (kubelet device plugin API v1beta1).

Flags:
  --backend nvml|dcmi|mock       where cards come from (default nvml). nvml loads libnvidia-ml.so.1
                                 and dcmi loads libdcmi.so at run time; mock reads --mock-config
  --mock-config FILE             JSON or YAML list of fake cards, e.g. deploy/examples/mock-cards.json
  --device-plugin-dir DIR        kubelet's device plugin directory (default /var/lib/kubelet/device-plugins)
  --resource-name NAME           extended resource to advertise (default tideslice.io/vnpu)
  --replicas-per-card N          how many pods may share one card (default 10, 1..100)
  --node-name NAME               this node's name (default: $NODE_NAME, else the host name)
  --metrics-address HOST:PORT    where /metrics is served (default 0.0.0.0:9400; "off" disables)
  --health-poll-seconds N        how often cards are re-read (default 5)
  --heartbeat-seconds N          the inventory annotation is re-published at least this often
                                 (default 30; the scheduler drops nodes whose heartbeat is stale)
  --pod-resources-socket PATH    kubelet PodResources API, used to release partitions of pods that
                                 are gone (default /var/lib/kubelet/pod-resources/kubelet.sock)
  --kubeconfig FILE              Kubernetes access from a kubeconfig (default: in-cluster service account)
  --standalone                   run without Kubernetes: no inventory, and Allocate is refused
                                 (for trying the kubelet side and the metrics on a laptop)
  --catalog FILE                 accelerator catalog overrides (JSON, as common/catalog/accelerators.json)
  --assignment-verify-key FILE   the scheduler's Ed25519 public key (PEM, from ConfigMap
                                 tideslice-assignment-key); an assignment is honoured only with a
                                 valid signature. Re-read when the file changes. Default: off (warned)
  --lease-name NAME              the scheduler's leader Lease; an assignment is honoured only if it
  --lease-namespace NS           was sealed in the Lease's current term (default namespace:
                                 $POD_NAMESPACE). Default: off
  --limiter on|off               the in-container memory limiter for soft slices (default on). on:
                                 every container holding a soft slice (neither a whole card nor a
                                 MIG/vNPU partition) gets libtideslice-limiter.so preloaded through a
                                 read-only /etc/ld.so.preload, its config and a per-container
                                 accounting region, which the agent reads for the
                                 tideslice_container_memory_* metrics. A soft slice with a compute
                                 share also takes a slot in its card's roster (--limiter-dir/cards/),
                                 read by the limiters sharing the card and, with their entries, for
                                 the tideslice_container_compute_* metrics. off: the node group opted
                                 out; soft slices are accounting only (nothing stops a container from
                                 using more card memory or compute than its slice)
  --limiter-dir DIR              host directory for the limiter's library, ld.so.preload, the
                                 per-container files and the per-card rosters (default
                                 /var/lib/tideslice/limiter); a container's files and roster slots
                                 are removed once its pod is gone from the node
  --limiter-library FILE         the library copied into --limiter-dir/lib at start (default
                                 /usr/local/lib/tideslice/libtideslice-limiter.so, in the image)
  --limiter-context-reserve Q    bytes charged once per process and card when the process creates
                                 its first context there (a quantity such as 512Mi; default 0). The
                                 context's own memory (hundreds of MiB with CUDA) is reported by no
                                 allocation call: with 0 it is not counted, so a slice's processes
                                 can together hold more of the card than the slice (leave headroom
                                 in the slice sizes); with the context size the limit covers what
                                 the card really loses, but every process that touches a card
                                 costs its slice that much, so containers with many such processes
                                 (data loader workers initialising CUDA) reach their limit sooner
  --mig-mode off|on|leave        MIG mode of this node group's NVIDIA cards (default leave). off/on:
                                 set on every MIG-capable card that is empty (no processes, no
                                 partitions, nothing allocated); busy cards wait until they are
                                 empty; a change the driver holds for the next GPU reset is logged
                                 as pending (drain the card, nvidia-smi -r). leave: never touched
  --critical-xids LIST           XIDs that take a card out of service besides the built-in list
                                 (48,63,64,74,79,92,95,119,120,154; docs/hardware.md), e.g. 94,140
  --config FILE                  YAML/JSON map of these flags without the dashes
                                 (e.g. "backend: mock"); command-line flags win
  --help

Allocation hand-off: a container gets exactly the slices the TideSlice scheduler assigned in the
pod's tideslice.io/assignment annotation (phase ALLOCATING); the agent acknowledges them (phase
ALLOCATED) through the Kubernetes API. Allocate fails with a reason, and never guesses, when no
pod or more than one pod on the node is waiting for devices.
)";

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

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

// --config FILE: a map of flag names (without dashes) to values; flags given on the command
// line win. Unknown keys are errors, like unknown flags.
Status MergeConfigFile(const std::string& path, const std::set<std::string>& known,
                       std::map<std::string, std::string>& flags) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const std::exception& e) {
    return Status::InvalidArgument("--config", path + ": " + e.what());
  }
  if (!root.IsMap()) return Status::InvalidArgument("--config", path + " must be a map of flag names to values");
  for (const auto& kv : root) {
    std::string key = "--" + kv.first.as<std::string>();
    if (!known.count(key) || key == "--config")
      return Status::InvalidArgument("--config", path + ": unknown key \"" + kv.first.as<std::string>() + "\"");
    if (!kv.second.IsScalar())
      return Status::InvalidArgument("--config", path + ": \"" + kv.first.as<std::string>() + "\" must be a single value");
    if (!flags.count(key)) flags[key] = kv.second.as<std::string>();
  }
  return Status::Ok();
}

int Fail(const std::string& msg) {
  std::fprintf(stderr, "tideslice-device-plugin: %s\n(see --help)\n", msg.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const std::set<std::string> known = {"--backend",          "--mock-config",       "--device-plugin-dir",
                                       "--resource-name",    "--replicas-per-card", "--node-name",
                                       "--metrics-address",  "--health-poll-seconds", "--heartbeat-seconds",
                                       "--kubeconfig",       "--standalone",        "--config",
                                       "--pod-resources-socket", "--catalog", "--assignment-verify-key",
                                       "--lease-name", "--lease-namespace", "--limiter", "--limiter-dir",
                                       "--limiter-library", "--limiter-context-reserve", "--mig-mode",
                                       "--critical-xids"};
  std::map<std::string, std::string> flags;
  auto parsed = ParseFlags(argc, argv, known, {"--standalone"});
  if (!parsed.ok()) return Fail(parsed.status().message());
  if (parsed->help) {
    std::printf("%s", kUsage);
    return 0;
  }
  flags = std::move(parsed->values);
  if (flags.count("--config")) {
    Status st = MergeConfigFile(flags["--config"], known, flags);
    if (!st.ok()) return Fail(st.ToString());
  }
  auto get = [&](const char* k, const std::string& def) { return flags.count(k) ? flags[k] : def; };
  auto get_int = [&](const char* k, int def, int lo, int hi, int* out) -> bool {
    std::string v = get(k, std::to_string(def));
    try {
      size_t used = 0;
      int x = std::stoi(v, &used);
      if (used != v.size() || x < lo || x > hi) return false;
      *out = x;
      return true;
    } catch (...) {
      return false;
    }
  };

  AgentOptions options;
  options.plugin.socket_dir = get("--device-plugin-dir", "/var/lib/kubelet/device-plugins");
  options.plugin.resource_name = get("--resource-name", "tideslice.io/vnpu");
  if (options.plugin.resource_name.find('/') == std::string::npos ||
      options.plugin.resource_name.find("kubernetes.io/") != std::string::npos)
    return Fail("--resource-name must be an extended resource name such as tideslice.io/vnpu");
  std::string sock = options.plugin.resource_name;
  for (char& c : sock)
    if (c == '/' || c == '.') c = '-';
  options.plugin.socket_name = sock + ".sock";
  if (!get_int("--replicas-per-card", 10, 1, 100, &options.plugin.replicas_per_card))
    return Fail("--replicas-per-card must be a whole number 1..100");
  int poll_s = 5;
  if (!get_int("--health-poll-seconds", 5, 1, 3600, &poll_s)) return Fail("--health-poll-seconds must be 1..3600");
  options.health_poll = std::chrono::seconds(poll_s);
  int heartbeat_s = 30;
  if (!get_int("--heartbeat-seconds", 30, 1, 3600, &heartbeat_s)) return Fail("--heartbeat-seconds must be 1..3600");
  const std::string standalone = get("--standalone", "false");
  if (standalone != "true" && standalone != "false") return Fail("--standalone takes no value (or true/false in --config)");
  const std::string limiter_mode = get("--limiter", "on");
  if (limiter_mode != "on" && limiter_mode != "off") return Fail("--limiter must be on or off, got \"" + limiter_mode + "\"");
  const std::string limiter_dir = get("--limiter-dir", kDefaultLimiterDir);
  if (limiter_dir.empty() || limiter_dir.front() != '/') return Fail("--limiter-dir must be an absolute path");
  const std::string limiter_library = get("--limiter-library", kDefaultLimiterLibrary);
  uint64_t context_reserve = 0;
  {
    auto q = ParseQuantity(get("--limiter-context-reserve", "0"));
    if (!q.ok() || *q < 0 || *q > (1ll << 36) || *q != static_cast<long double>(static_cast<uint64_t>(*q)))
      return Fail("--limiter-context-reserve must be a whole number of bytes from 0 to 64Gi, e.g. 512Mi");
    context_reserve = static_cast<uint64_t>(*q);
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(options.plugin.socket_dir, ec))
    return Fail("--device-plugin-dir " + options.plugin.socket_dir + " is not a directory");

  std::string node = get("--node-name", getenv("NODE_NAME") ? getenv("NODE_NAME") : "");
  if (node.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    node = host;
  }

  catalog::Catalog catalog = catalog::Catalog::Builtin();
  if (flags.count("--catalog")) {
    auto merged = catalog::Catalog::BuiltinWithOverrides(flags["--catalog"]);
    if (!merged.ok()) return Fail(merged.status().ToString());
    catalog = std::move(*merged);
  }
  auto mig_mode = ParseMigModePolicy(get("--mig-mode", "leave"));
  if (!mig_mode.ok()) return Fail(mig_mode.status().message());
  options.mig_mode = *mig_mode;
  options.catalog = &catalog;
  NvmlOptions nvml_options;
  if (auto xids = nvml::ParseXidList(get("--critical-xids", "")); xids.ok())
    nvml_options.extra_critical_xids = *xids;
  else
    return Fail(xids.status().message());
  std::unique_ptr<DeviceBackend> backend;
  NvmlBackend* nvml_backend = nullptr;  // for XID events, when --backend nvml
  std::string backend_name = get("--backend", "nvml");
  if (backend_name == "mock") {
    if (!flags.count("--mock-config")) return Fail("--backend mock needs --mock-config FILE");
    auto b = MockBackend::FromFile(flags["--mock-config"], catalog);
    if (!b.ok()) return Fail(b.status().ToString());
    backend = std::move(*b);
  } else if (backend_name == "nvml") {
    auto api = LoadNvml();
    if (!api.ok()) return Fail(api.status().message());
    auto b = NvmlBackend::Create(*api, catalog, nvml_options);
    if (!b.ok()) return Fail(b.status().message());
    nvml_backend = b->get();
    backend = std::move(*b);
  } else if (backend_name == "dcmi") {
    auto api = LoadDcmi();
    if (!api.ok()) return Fail(api.status().message());
    auto b = DcmiBackend::Create(*api, catalog);
    if (!b.ok()) return Fail(b.status().message());
    backend = std::move(*b);
  } else {
    return Fail("--backend must be nvml, dcmi or mock, got \"" + backend_name + "\"");
  }

  // Kubernetes: the assignment store for Allocate and the inventory publisher.
  std::unique_ptr<kube::KubeClient> client;
  std::unique_ptr<trust::VerifierFile> verify_key;
  std::unique_ptr<KubeAssignmentStore> store;
  std::unique_ptr<InventoryPublisher> publisher;
  std::unique_ptr<AllocationHandler> handler;
  std::unique_ptr<PartitionLedger> ledger;
  std::unique_ptr<LimiterFiles> limiter_files;  // with Kubernetes only: removal needs the node's pods
  if (standalone == "true") {
    handler = std::make_unique<StandaloneHandler>();
  } else {
    auto access = kube::ResolveAccess(get("--kubeconfig", ""));
    if (!access.ok()) return Fail("Kubernetes access: " + access.status().ToString() + " (or pass --standalone)");
    auto transport = kube::NewCppRestTransport(*access);
    if (!transport.ok()) return Fail(transport.status().ToString());
    client = std::make_unique<kube::KubeClient>(*transport);
    AssignmentTrust trust;
    if (flags.count("--assignment-verify-key")) {
      verify_key = std::make_unique<trust::VerifierFile>(flags["--assignment-verify-key"]);
      trust.verifier = verify_key.get();
    } else {
      log::Warn("assignment.unverified", "no --assignment-verify-key: assignments are honoured without checking the "
                                         "scheduler's signature (only their pod UID and node)");
    }
    if (flags.count("--lease-name")) {
      const char* pod_ns = std::getenv("POD_NAMESPACE");
      trust.lease_name = flags["--lease-name"];
      trust.lease_namespace = get("--lease-namespace", pod_ns && *pod_ns ? pod_ns : "");
      if (trust.lease_name.empty() || trust.lease_namespace.empty())
        return Fail("--lease-name needs a namespace: pass --lease-namespace or set POD_NAMESPACE");
    }
    store = std::make_unique<KubeAssignmentStore>(client.get(), node, std::move(trust));
    auto opened = PartitionLedger::Open(options.plugin.socket_dir + "/tideslice-partitions.json");
    if (!opened.ok()) return Fail(opened.status().ToString());
    ledger = std::move(*opened);
    if (auto cards = backend->Discover(); cards.ok()) RemoveOrphanPartitions(*ledger, *backend, *cards);
    auto handoff = std::make_unique<HandoffHandler>(store.get(), backend.get(), ledger.get());
    limiter_files = std::make_unique<LimiterFiles>(limiter_dir);
    if (limiter_mode == "on") {
      // Installed before the first Allocate can mount it; a node that cannot serve the limiter
      // must not hand out soft slices as if it did.
      Status installed = InstallLimiterLibrary(limiter_library, limiter_files->layout());
      if (!installed.ok())
        return Fail("installing the memory limiter: " + installed.ToString() +
                    " (or pass --limiter off for a node group that opts out)");
      handoff->EnableLimiter(limiter_files.get(), context_reserve);
      log::Info("limiter.installed", "soft slices get the in-container memory limiter",
                {{"library", limiter_files->layout().LibraryPath()}, {"dir", limiter_dir}});
    } else {
      log::Warn("limiter.off", "--limiter off: soft slices are accounting only; nothing keeps a container within "
                               "its slice's memory", {{"dir", limiter_dir}});
    }
    handler = std::move(handoff);
    publisher = std::make_unique<InventoryPublisher>(client.get(), node, backend->Name(), catalog,
                                                     std::chrono::seconds(heartbeat_s));
  }

  auto registry = std::make_shared<prometheus::Registry>();
  CardMetrics metrics(registry, node);
  AllocationMetrics allocation_metrics(registry, node);
  LimiterMetrics limiter_metrics(registry, node);
  std::mutex metrics_mu;
  std::vector<DeviceInfo> last_cards;
  std::vector<ContainerAllocation> last_allocations;
  std::map<std::pair<std::string, std::string>, int64_t> last_used;  // (pod UID, card) -> bytes
  std::string last_publish_error;
  std::atomic<bool> pods_listed{false};  // MIG mode waits for the first list of this node's pods
  options.card_in_use = [&](const DeviceInfo& card) {
    if (client && !pods_listed) return std::string("this node's pods are not listed yet");
    std::lock_guard<std::mutex> lock(metrics_mu);
    for (const auto& a : last_allocations)
      if (a.card_uuid == card.uuid) return "allocated to pod " + a.pod_namespace + "/" + a.pod;
    return std::string();
  };
  options.on_devices = [&](const std::vector<DeviceInfo>& cards) {
    std::lock_guard<std::mutex> lock(metrics_mu);
    metrics.Update(cards);
    last_cards = cards;
    last_used.clear();
    if (auto procs = backend->Processes(); procs.ok() && !procs->empty())
      last_used = UsageByPod(*procs, [](uint32_t pid) { return ReadProcCgroup(pid); });
    allocation_metrics.Update(last_cards, last_allocations, last_used);
    std::vector<std::string> unreadable;
    const auto limited = ReadLimiterContainers(limiter_dir, &unreadable);
    limiter_metrics.Update(limited, cards, unreadable);
    limiter_metrics.UpdateCompute(limited, ReadCardsCoordination(limiter_dir), cards);
    if (!publisher) return;
    Status st = publisher->Update(cards);
    std::string err = st.ok() ? "" : st.ToString();
    if (err != last_publish_error)  // say it once per change, not every poll
      std::fprintf(stderr, "tideslice-device-plugin: %s\n", err.empty() ? "inventory published" : err.c_str());
    last_publish_error = err;
  };
  const std::string metrics_address = get("--metrics-address", "0.0.0.0:9400");
  auto started_exposer = tideslice::metrics::StartEndpoint(metrics_address, registry);
  if (!started_exposer.ok()) return Fail(started_exposer.status().ToString());
  std::unique_ptr<prometheus::Exposer> exposer = std::move(*started_exposer);

  Agent agent(options, backend.get(), handler.get());
  Status st = agent.Start();
  if (!st.ok()) return Fail(st.ToString());
  if (nvml_backend) {
    Status events = nvml_backend->StartHealthEvents([&agent] { agent.RefreshNow(); });
    if (!events.ok()) std::fprintf(stderr, "tideslice-device-plugin: %s\n", events.message().c_str());
  }
  std::fprintf(stderr, "tideslice-device-plugin: node %s, backend %s, %s on %s/%s, kubernetes %s, metrics %s\n", node.c_str(),
               backend->Name().c_str(), options.plugin.resource_name.c_str(), options.plugin.socket_dir.c_str(),
               options.plugin.socket_name.c_str(), client ? "on" : "off (--standalone)",
               exposer ? ("http://" + metrics_address + "/metrics (port " + std::to_string(exposer->GetListeningPorts()[0]) + ")").c_str()
                       : "off");
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);

  // The pods of this node, watched, feed the allocation metrics (allocated versus used).
  http::CancelFlag stop_watch;
  std::thread pod_watch;
  std::unique_ptr<kube::Reflector> pods;
  // Both live as long as main: the reflector thread's handlers refer to them.
  std::map<std::string, kube::json> on_node;  // only touched on the reflector's thread
  std::function<void()> refresh;
  if (client) {
    refresh = [&]() {
      std::vector<kube::json> list;
      for (const auto& [k, v] : on_node) list.push_back(v);
      std::lock_guard<std::mutex> lock(metrics_mu);
      last_allocations = AllocationsFromPods(list);
      allocation_metrics.Update(last_cards, last_allocations, last_used);
    };
    kube::ReflectorOptions ro;
    ro.query = "fieldSelector=" + kube::QueryEscape("spec.nodeName=" + node);
    pods = std::make_unique<kube::Reflector>(
        client.get(), "/api/v1/pods",
        kube::Reflector::Handler{[&](std::vector<kube::json> items) {
                                   ReplacePodsByKey(on_node, std::move(items));
                                   refresh();
                                   pods_listed = true;
                                 },
                                 [&](kube::WatchEventType type, const kube::json& p) {
                                   if (type == kube::WatchEventType::kDeleted) on_node.erase(kube::PodKey(p));
                                   else on_node[kube::PodKey(p)] = p;
                                   refresh();
                                 }},
        ro);
    pod_watch = std::thread([&] { pods->Run(&stop_watch); });
  }

  // Reconcile every 30 s: partitions of pods the kubelet no longer reports are destroyed, and
  // limiter directories of pods no longer on this node are removed.
  const std::string pod_resources = get("--pod-resources-socket", "/var/lib/kubelet/pod-resources/kubelet.sock");
  auto reconcile_partitions = [&]() {
    if (ledger->All().empty() || !std::filesystem::exists(pod_resources)) return;
    auto live = PodResourcesClient(pod_resources).List(options.plugin.resource_name, std::chrono::seconds(5));
    auto cards = backend->Discover();
    if (!live.ok() || !cards.ok()) {
      std::fprintf(stderr, "tideslice-device-plugin: reconcile skipped: %s\n",
                   (!live.ok() ? live.status() : cards.status()).ToString().c_str());
      return;
    }
    auto report = ReleaseGonePartitions(*ledger, *backend, *cards, *live, std::chrono::system_clock::now(),
                                        std::chrono::seconds(60));
    if (report.released > 0)
      std::fprintf(stderr, "tideslice-device-plugin: released %d partition(s) of pods that are gone\n", report.released);
    for (const auto& e : report.errors) std::fprintf(stderr, "tideslice-device-plugin: reconcile: %s\n", e.c_str());
  };
  // A directory goes only when a fresh list of this node's pods (not a watch cache that may lag)
  // lacks its pod, or shows it finished; a failed list removes nothing. Directories changed
  // since 2 minutes before the list was asked for stay whatever the list says: a pod allocated
  // after the list was taken (Allocate writes its directory moments after the bind), however
  // long the list took, is never mistaken for a gone one.
  // Roster slots of compute shares go with their containers' directories; leftovers of an
  // interrupted Allocate (no directory holds them) go at once, which needs no list.
  auto reconcile_limiter = [&]() {
    if (!limiter_files) return;
    if (limiter_files->PodUids().empty()) {
      for (const auto& e : limiter_files->SyncCards()) log::Warn("limiter.roster_failed", e);
      return;
    }
    const auto listed_at = std::chrono::system_clock::now();
    auto live = store->PodUidsOnNode();
    if (!live.ok()) {
      std::fprintf(stderr, "tideslice-device-plugin: limiter cleanup skipped: %s\n", live.status().ToString().c_str());
      return;
    }
    auto report = limiter_files->RemoveGonePods(*live, listed_at, std::chrono::seconds(120));
    for (const auto& uid : report.removed)
      log::Info("limiter.removed", "removed the limiter files of a pod that is gone", {{"pod_uid", uid}});
    for (const auto& e : report.errors) log::Warn("limiter.remove_failed", e);
  };
  auto next_reconcile = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!g_stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (!ledger || std::chrono::steady_clock::now() < next_reconcile) continue;
    next_reconcile = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    reconcile_limiter();
    reconcile_partitions();
  }
  stop_watch.Cancel();
  if (pod_watch.joinable()) pod_watch.join();
  agent.Stop();
  return 0;
}
