// tideslice-scheduler: the scheduler extender service (filter, prioritize, bind, preempt for
// kube-scheduler's tideslice-scheduler profile), its watch cache, leader election, health
// endpoints, metrics and the admission webhook. Flags are resolved and validated here, once.
#include <prometheus/exposer.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "common/catalog/catalog.h"
#include "common/codec/annotations.h"
#include "common/codec/yaml_json.h"
#include "common/flags.h"
#include "common/trust/assignment_seal.h"
#include "common/metrics/endpoint.h"
#include "common/kube/access.h"
#include "common/kube/client.h"
#include "scheduler/core/placement.h"
#include "scheduler/service/app.h"
#include "scheduler/service/metrics.h"
#include "scheduler/tidal/pool.h"

using namespace tideslice;

namespace {

constexpr const char* kUsage = R"(tideslice-scheduler: TideSlice's scheduler extender service.

Flags:
  --extender-address URL        where kube-scheduler calls the extender (its urlPrefix)
                                (default http://127.0.0.1:8888/tideslice: same pod as kube-scheduler)
  --health-address URL          /healthz and /readyz (default http://0.0.0.0:10260); ready once
                                the node and pod caches are synced
  --metrics-address HOST:PORT   Prometheus /metrics (default 0.0.0.0:10261; "off" disables)
  --webhook-address URL         admission webhook, e.g. https://0.0.0.0:9443 (default: off)
  --tls-cert-file FILE          webhook certificate (PEM); with --tls-key-file
  --tls-key-file FILE           webhook private key (PEM)
  --webhook-excluded-namespaces a,b   namespaces the webhook leaves alone (default kube-system)
  --scheduler-name NAME          the schedulerName of the pods this scheduler binds (default
                                tideslice-scheduler; the webhook sets it on pods asking for cards)
  --trusted-writers u1,u2       API users (e.g. system:serviceaccount:NS:SA) allowed to write the
                                pod annotations TideSlice owns (tideslice.io/assignment, notices);
                                the webhook refuses everyone else
  --assignment-signing-key FILE Ed25519 private key (PEM) that signs every assignment; its public
                                key is published in ConfigMap tideslice-assignment-key (ed25519.pub)
                                for the node agents. Without it assignments are unsigned (warned)
  --kubeconfig FILE             Kubernetes access (default: in-cluster service account)
  --config FILE                 tideslice.v1 SchedulerConfig as YAML or JSON: defaultPolicy
                                (fragaware|binpack|spread|bestfit|...), inventoryStaleSeconds,
                                allocatingTimeoutSeconds, pools
  --leader-elect true|false     Lease-based leader election (default true); only the leader binds
  --lease-name NAME             (default tideslice-scheduler)
  --lease-namespace NS          (default: the pod's namespace, else tideslice-system)
  --leader-elect-identity ID    (default: host name plus a random suffix)
  --leader-elect-lease-duration S, --leader-elect-renew-deadline S, --leader-elect-retry-period S
                                (defaults 15, 10, 2 seconds)
  --prometheus-url URL          Prometheus server for pools' loadTrigger.prometheusQuery
                                (e.g. http://prometheus-operated.monitoring:9090; default: none,
                                and a pool that names a query is refused at start)
  --tidal-period-seconds S      how often the tidal controller decides (default 5)
  --http-threads N              threads for HTTP I/O (default: the number of cores, at least 2)
  --catalog FILE                accelerator catalog overrides (JSON, the format of
                                common/catalog/accelerators.json): models replace or add to the built-in ones
  --help
)";

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

int Fail(const std::string& msg) {
  std::fprintf(stderr, "tideslice-scheduler: %s\n(see --help)\n", msg.c_str());
  return 2;
}

std::set<std::string> SplitCommas(const std::string& s) {
  std::set<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.insert(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const std::set<std::string> known = {
      "--extender-address", "--health-address", "--metrics-address", "--webhook-address", "--tls-cert-file",
      "--tls-key-file", "--webhook-excluded-namespaces", "--kubeconfig", "--config", "--leader-elect", "--lease-name",
      "--lease-namespace", "--leader-elect-identity", "--leader-elect-lease-duration", "--leader-elect-renew-deadline",
      "--leader-elect-retry-period", "--http-threads", "--catalog", "--prometheus-url", "--tidal-period-seconds",
      "--trusted-writers", "--assignment-signing-key", "--scheduler-name"};
  std::map<std::string, std::string> flags;
  auto parsed = ParseFlags(argc, argv, known);
  if (!parsed.ok()) return Fail(parsed.status().message());
  if (parsed->help) {
    std::printf("%s", kUsage);
    return 0;
  }
  flags = std::move(parsed->values);
  auto get = [&](const char* k, const std::string& def) { return flags.count(k) ? flags[k] : def; };
  auto seconds = [&](const char* k, int def, int* out) {
    std::string v = get(k, std::to_string(def));
    try {
      size_t used = 0;
      int x = std::stoi(v, &used);
      if (used != v.size() || x < 1 || x > 3600) return false;
      *out = x;
      return true;
    } catch (...) {
      return false;
    }
  };

  {
    int threads = static_cast<int>(std::max(2u, std::thread::hardware_concurrency()));
    if (flags.count("--http-threads")) {
      try {
        threads = std::stoi(flags["--http-threads"]);
      } catch (...) {
        threads = 0;
      }
      if (threads < 1 || threads > 256) return Fail("--http-threads must be 1..256");
    }
    http::ConfigureHttpThreads(static_cast<size_t>(threads));
  }
  service::AppOptions options;
  options.extender_address = get("--extender-address", options.extender_address);
  options.health_address = get("--health-address", options.health_address);
  options.webhook_address = get("--webhook-address", "");
  options.tls_cert_file = get("--tls-cert-file", "");
  options.tls_key_file = get("--tls-key-file", "");
  if (!options.webhook_address.empty() && (options.tls_cert_file.empty() || options.tls_key_file.empty()))
    return Fail("--webhook-address needs --tls-cert-file and --tls-key-file (the API server only calls webhooks over HTTPS)");
  for (const auto& f : {options.tls_cert_file, options.tls_key_file})
    if (!f.empty() && !std::ifstream(f)) return Fail("cannot read TLS file " + f);
  if (flags.count("--webhook-excluded-namespaces"))
    options.webhook.excluded_namespaces = SplitCommas(flags["--webhook-excluded-namespaces"]);
  if (flags.count("--scheduler-name")) {
    const std::string name = flags["--scheduler-name"];
    if (name.empty() || name.size() > 253 || name.find_first_of(" /,\t\n") != std::string::npos)
      return Fail("--scheduler-name must be a non-empty name without spaces, slashes or commas");
    options.cache.scheduler_name = name;
    options.webhook.scheduler_name = name;
  }
  if (flags.count("--trusted-writers"))
    for (const auto& u : SplitCommas(flags["--trusted-writers"])) options.webhook.trusted_writers.insert(u);
  if (flags.count("--assignment-signing-key")) {
    auto signer = trust::AssignmentSigner::FromPemFile(flags["--assignment-signing-key"]);
    if (!signer.ok()) return Fail(signer.status().ToString());
    options.signer = std::move(*signer);
  }

  // SchedulerConfig: policy, staleness, allocating timeout (pools are the tidal controller's).
  if (flags.count("--config")) {
    std::ifstream in(flags["--config"]);
    if (!in) return Fail("--config: cannot read " + flags["--config"]);
    std::stringstream ss;
    ss << in.rdbuf();
    auto json = codec::YamlToJson(ss.str(), "--config " + flags["--config"]);
    if (!json.ok()) return Fail(json.status().ToString());
    auto config = codec::DecodeSchedulerConfig(json->dump());
    if (!config.ok()) return Fail(config.status().WithContext("--config " + flags["--config"]).ToString());
    if (!config->default_policy().empty()) {
      auto policy = core::ParsePolicy(config->default_policy());
      if (!policy.ok()) return Fail("--config defaultPolicy: " + policy.status().message());
      options.cache.policy = *policy;
    }
    // Tidal pools are checked now, so that a bad pool stops start-up instead of a tide.
    auto pools = tidal::ValidatePools(*config);
    if (!pools.ok()) return Fail(pools.status().WithContext("--config " + flags["--config"]).ToString());
    options.pools = std::move(*pools);
    if (config->inventory_stale_seconds() < 0 || config->allocating_timeout_seconds() < 0)
      return Fail("--config: inventoryStaleSeconds and allocatingTimeoutSeconds must not be negative");
    if (config->inventory_stale_seconds() > 0) options.cache.stale_after = std::chrono::seconds(config->inventory_stale_seconds());
    if (config->allocating_timeout_seconds() > 0)
      options.binder.acknowledge_timeout = std::chrono::seconds(config->allocating_timeout_seconds());
  }

  // The tidal controller.
  int tidal_period_s = 5;
  if (!seconds("--tidal-period-seconds", 5, &tidal_period_s))
    return Fail("--tidal-period-seconds must be a whole number of seconds, 1..3600");
  options.tidal.period = std::chrono::seconds(tidal_period_s);
  if (flags.count("--prometheus-url")) {
    auto demand = service::PrometheusDemand(flags["--prometheus-url"]);
    if (!demand.ok()) return Fail(demand.status().ToString());
    options.tidal.demand = *demand;
  }
  for (const auto& p : options.pools)
    if (!p.load_trigger.prometheus_query().empty() && !options.tidal.demand)
      return Fail("pool " + p.name + " sets loadTrigger.prometheusQuery but no --prometheus-url is given; "
                  "give the Prometheus server's URL or remove the query");

  const std::string leader_elect = get("--leader-elect", "true");
  if (leader_elect != "true" && leader_elect != "false") return Fail("--leader-elect must be true or false");
  options.leader_elect = leader_elect == "true";
  int lease_s = 15, renew_s = 10, retry_s = 2;
  if (!seconds("--leader-elect-lease-duration", 15, &lease_s) || !seconds("--leader-elect-renew-deadline", 10, &renew_s) ||
      !seconds("--leader-elect-retry-period", 2, &retry_s))
    return Fail("leader election durations are whole seconds 1..3600");
  options.leader.lease_duration = std::chrono::seconds(lease_s);
  options.leader.renew_deadline = std::chrono::seconds(renew_s);
  options.leader.retry_period = std::chrono::seconds(retry_s);
  options.leader.lease_name = get("--lease-name", "tideslice-scheduler");
  {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    std::mt19937 rng(std::random_device{}());
    options.leader.identity = get("--leader-elect-identity", std::string(host) + "_" + std::to_string(rng() % 100000));
  }

  catalog::Catalog catalog = catalog::Catalog::Builtin();
  if (flags.count("--catalog")) {
    auto merged = catalog::Catalog::BuiltinWithOverrides(flags["--catalog"]);
    if (!merged.ok()) return Fail(merged.status().ToString());
    catalog = std::move(*merged);
  }
  auto access = kube::ResolveAccess(get("--kubeconfig", ""));
  if (!access.ok()) return Fail("Kubernetes access: " + access.status().ToString());
  const char* pod_ns = std::getenv("POD_NAMESPACE");
  options.leader.lease_namespace =
      get("--lease-namespace", pod_ns && *pod_ns ? pod_ns : (access->source == "in-cluster" ? access->default_namespace : "tideslice-system"));
  if (options.leader_elect) {
    Status v = service::ValidateLeaderElection(options.leader);
    if (!v.ok()) return Fail(v.ToString());
  }
  // The tidal controller keeps its state next to the lease.
  options.tidal.state_namespace = options.leader.lease_namespace;
  auto transport = kube::NewCppRestTransport(*access);
  if (!transport.ok()) return Fail(transport.status().ToString());
  kube::KubeClient client(*transport);

  // Metrics.
  auto registry = std::make_shared<prometheus::Registry>();
  service::SchedulerMetrics metrics(registry, options.pools);
  const std::string metrics_address = get("--metrics-address", "0.0.0.0:10261");
  auto started_exposer = tideslice::metrics::StartEndpoint(metrics_address, registry);
  if (!started_exposer.ok()) return Fail(started_exposer.status().ToString());
  std::unique_ptr<prometheus::Exposer> exposer = std::move(*started_exposer);

  auto app = service::SchedulerApp::Start(&client, catalog, options);
  if (!app.ok()) return Fail(app.status().ToString());
  (*app)->service().set_observer(
      [&](const std::string& verb, double s, bool error) { metrics.ObserveVerb(verb, s, error); });
  std::fprintf(stderr,
               "tideslice-scheduler: extender %s, health %s, metrics %s, webhook %s, leader election %s (%s/%s as %s), "
               "Kubernetes %s\n",
               options.extender_address.c_str(), options.health_address.c_str(),
               exposer ? (metrics_address + " (port " + std::to_string(exposer->GetListeningPorts()[0]) + ")").c_str() : "off",
               options.webhook_address.empty() ? "off" : options.webhook_address.c_str(),
               options.leader_elect ? "on" : "off", options.leader.lease_namespace.c_str(), options.leader.lease_name.c_str(),
               options.leader.identity.c_str(), access->server.c_str());
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  int tick = 0;
  while (!g_stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (++tick % 10 == 0) metrics.Update(**app);  // every 2 s
  }
  (*app)->Stop();
  return 0;
}
