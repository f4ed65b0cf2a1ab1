#include "scheduler/app/launch.h"

#include <prometheus/exposer.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "common/codec/annotations.h"
#include "common/codec/yaml_json.h"
#include "common/flags.h"
#include "common/http/server.h"
#include "common/kube/access.h"
#include "common/kube/client.h"
#include "common/log/log.h"
#include "common/metrics/endpoint.h"
#include "common/process.h"
#include "common/trust/assignment_seal.h"
#include "scheduler/core/placement.h"
#include "scheduler/service/metrics.h"

namespace tideslice::service {
namespace {

std::string NotEmptyName(const std::string& v) {
  if (v.empty() || v.size() > 253 || v.find_first_of(" /,\t\n") != std::string::npos)
    return "must be a non-empty name without spaces, slashes or commas";
  return "";
}

std::string Readable(const std::string& path) { return std::ifstream(path) ? "" : "cannot read " + path; }

// SchedulerConfig: policy, staleness, allocating timeout and the tidal pools, checked now so that
// a bad pool stops start-up instead of a tide.
Status ApplyConfigFile(const std::string& path, AppOptions* options) {
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument("--config", "cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto json = codec::YamlToJson(ss.str(), "--config " + path);
  if (!json.ok()) return json.status();
  auto config = codec::DecodeSchedulerConfig(json->dump());
  if (!config.ok()) return config.status().WithContext("--config " + path);
  if (!config->default_policy().empty()) {
    auto policy = core::ParsePolicy(config->default_policy());
    if (!policy.ok()) return Status::InvalidArgument("--config", "defaultPolicy: " + policy.status().message());
    options->cache.policy = *policy;
  }
  auto pools = tidal::ValidatePools(*config);
  if (!pools.ok()) return pools.status().WithContext("--config " + path);
  options->pools = std::move(*pools);
  if (config->inventory_stale_seconds() < 0 || config->allocating_timeout_seconds() < 0)
    return Status::InvalidArgument("--config", "inventoryStaleSeconds and allocatingTimeoutSeconds must not be negative");
  if (config->inventory_stale_seconds() > 0)
    options->cache.stale_after = std::chrono::seconds(config->inventory_stale_seconds());
  if (config->allocating_timeout_seconds() > 0)
    options->binder.acknowledge_timeout = std::chrono::seconds(config->allocating_timeout_seconds());
  return Status::Ok();
}

std::string DefaultIdentity() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  std::mt19937 rng(std::random_device{}());
  return std::string(host) + "_" + std::to_string(rng() % 100000);
}

}  // namespace

StatusOr<SchedulerCommandLine> ParseSchedulerCommandLine(int argc, const char* const* argv) {
  SchedulerCommandLine out;
  SchedulerLaunch& l = out.launch;
  AppOptions& o = l.app;
  l.http_threads = static_cast<int>(std::max(2u, std::thread::hardware_concurrency()));
  o.webhook.excluded_namespaces = {"kube-system"};
  std::string scheduler_name = o.cache.scheduler_name, config_file, catalog_file, signing_key, prometheus_url;
  std::string lease_namespace, identity;
  std::set<std::string> trusted_writers;
  std::chrono::seconds lease{15}, renew{10}, retry{2}, tidal_period{5};
  o.leader.lease_name = "tideslice-scheduler";

  FlagSet flags("tideslice-scheduler", "TideSlice's scheduler extender service.");
  flags.String("--extender-address", &o.extender_address, "where kube-scheduler calls the extender (its urlPrefix)")
      .String("--health-address", &o.health_address, "/healthz, /livez and /readyz; ready once the caches are synced")
      .String("--metrics-address", &l.metrics_address, "Prometheus /metrics as HOST:PORT; \"off\" disables")
      .String("--webhook-address", &o.webhook_address, "admission webhook, e.g. https://0.0.0.0:9443 (default: off)")
      .String("--tls-cert-file", &o.tls_cert_file, "webhook certificate (PEM); with --tls-key-file", Readable)
      .String("--tls-key-file", &o.tls_key_file, "webhook private key (PEM)", Readable)
      .List("--webhook-excluded-namespaces", &o.webhook.excluded_namespaces, "namespaces the webhook leaves alone")
      .String("--scheduler-name", &scheduler_name,
              "the schedulerName of the pods this scheduler binds;\nthe webhook sets it on pods asking for cards",
              NotEmptyName)
      .List("--trusted-writers", &trusted_writers,
            "API users (system:serviceaccount:NS:SA) allowed to write the pod\nannotations TideSlice owns; the "
            "webhook refuses everyone else")
      .Raw("--assignment-signing-key", &signing_key,
           "Ed25519 private key (PEM) that signs every assignment; its public key\nis published in ConfigMap "
           "tideslice-assignment-key for the node agents.\nWithout it assignments are unsigned (warned)")
      .Raw("--kubeconfig", &l.kubeconfig, "Kubernetes access (default: in-cluster service account)")
      .Raw("--config", &config_file,
           "tideslice.v1 SchedulerConfig as YAML or JSON: defaultPolicy,\ninventoryStaleSeconds, "
           "allocatingTimeoutSeconds, pools")
      .Bool("--leader-elect", &o.leader_elect, "Lease-based leader election; only the leader binds")
      .String("--lease-name", &o.leader.lease_name, "the Lease", NotEmptyName)
      .Raw("--lease-namespace", &lease_namespace, "(default: the pod's namespace, else tideslice-system)")
      .Raw("--leader-elect-identity", &identity, "(default: host name plus a random suffix)")
      .Seconds("--leader-elect-lease-duration", &lease, 1, 3600, "")
      .Seconds("--leader-elect-renew-deadline", &renew, 1, 3600, "")
      .Seconds("--leader-elect-retry-period", &retry, 1, 3600, "")
      .Raw("--prometheus-url", &prometheus_url,
           "Prometheus server for pools' loadTrigger.prometheusQuery\n(e.g. http://prometheus-operated.monitoring:9090)")
      .Seconds("--tidal-period-seconds", &tidal_period, 1, 3600, "how often the tidal controller decides")
      .Int("--http-threads", &l.http_threads, 1, 256, "threads for HTTP I/O (default: the number of cores, at least 2)")
      .Raw("--catalog", &catalog_file,
           "accelerator catalog overrides (JSON, the format of the built-in\ncatalog): models replace or add to the "
           "built-in ones");
  TS_RETURN_IF_ERROR(flags.Parse(argc, argv));
  out.usage = flags.Usage();
  if (flags.help_requested()) {
    out.help = true;
    return out;
  }

  if (!o.webhook_address.empty() && (o.tls_cert_file.empty() || o.tls_key_file.empty()))
    return Status::InvalidArgument("--webhook-address", "--webhook-address needs --tls-cert-file and --tls-key-file "
                                                        "(the API server only calls webhooks over HTTPS)");
  o.cache.scheduler_name = o.webhook.scheduler_name = scheduler_name;
  o.webhook.trusted_writers.insert(trusted_writers.begin(), trusted_writers.end());
  if (!signing_key.empty()) {
    auto signer = trust::AssignmentSigner::FromPemFile(signing_key);
    if (!signer.ok()) return signer.status();
    o.signer = std::move(*signer);
  }
  if (!config_file.empty()) TS_RETURN_IF_ERROR(ApplyConfigFile(config_file, &o));

  o.tidal.period = tidal_period;
  if (!prometheus_url.empty()) {
    auto demand = PrometheusDemand(prometheus_url);
    if (!demand.ok()) return demand.status();
    o.tidal.demand = *demand;
  }
  for (const auto& p : o.pools)
    if (!p.load_trigger.prometheus_query().empty() && !o.tidal.demand)
      return Status::InvalidArgument("--prometheus-url", "pool " + p.name +
                                                             " sets loadTrigger.prometheusQuery but no --prometheus-url "
                                                             "is given; give the Prometheus server's URL or remove the query");
  o.leader.lease_duration = lease;
  o.leader.renew_deadline = renew;
  o.leader.retry_period = retry;
  o.leader.identity = identity.empty() ? DefaultIdentity() : identity;

  if (!catalog_file.empty()) {
    auto merged = catalog::Catalog::BuiltinWithOverrides(catalog_file);
    if (!merged.ok()) return merged.status();
    l.catalog = std::move(*merged);
  }
  // The lease namespace defaults from where the scheduler runs, so access is resolved here.
  auto access = kube::ResolveAccess(l.kubeconfig);
  if (!access.ok()) return access.status().WithContext("Kubernetes access");
  const char* pod_ns = std::getenv("POD_NAMESPACE");
  o.leader.lease_namespace = !lease_namespace.empty() ? lease_namespace
                             : pod_ns && *pod_ns      ? pod_ns
                             : access->source == "in-cluster" ? access->default_namespace
                                                              : "tideslice-system";
  if (o.leader_elect) TS_RETURN_IF_ERROR(ValidateLeaderElection(o.leader));
  o.tidal.state_namespace = o.leader.lease_namespace;  // the tidal state lives next to the lease
  return out;
}

int RunScheduler(SchedulerLaunch launch, const std::atomic<bool>& stop) {
  auto fail = [](const Status& s) { return process::StartFailed("tideslice-scheduler", s); };
  http::ConfigureHttpThreads(static_cast<size_t>(launch.http_threads));
  auto access = kube::ResolveAccess(launch.kubeconfig);
  if (!access.ok()) return fail(access.status().WithContext("Kubernetes access"));
  auto transport = kube::NewCppRestTransport(*access);
  if (!transport.ok()) return fail(transport.status());
  kube::KubeClient client(*transport);

  auto registry = std::make_shared<prometheus::Registry>();
  SchedulerMetrics metrics(registry, launch.app.pools);
  auto exposer = metrics::StartEndpoint(launch.metrics_address, registry);
  if (!exposer.ok()) return fail(exposer.status());

  const AppOptions& o = launch.app;
  auto app = SchedulerApp::Start(&client, launch.catalog, o);
  if (!app.ok()) return fail(app.status());
  (*app)->service().set_observer([&](const std::string& verb, double s, bool error) { metrics.ObserveVerb(verb, s, error); });
  log::Info("scheduler.started", "tideslice-scheduler serves",
            {{"extender", o.extender_address},
             {"health", o.health_address},
             {"metrics", *exposer ? launch.metrics_address + " (port " +
                                        std::to_string((*exposer)->GetListeningPorts()[0]) + ")"
                                  : "off"},
             {"webhook", o.webhook_address.empty() ? "off" : o.webhook_address},
             {"leader_election", o.leader_elect ? "on" : "off"},
             {"lease", o.leader.lease_namespace + "/" + o.leader.lease_name},
             {"identity", o.leader.identity},
             {"kubernetes", access->server}});
  for (int tick = 1; !stop; ++tick) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (tick % 10 == 0) metrics.Update(**app);  // every 2 s
  }
  (*app)->Stop();
  return 0;
}

}  // namespace tideslice::service
