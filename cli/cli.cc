#include "cli/cli.h"

#include <sys/stat.h>

#include <algorithm>

#include "cli/render.h"
#include "common/kube/client.h"
#include "common/kube/json_fields.h"
#include "common/kube/objects.h"

namespace tideslice::cli {

namespace {

bool FileExists(const std::string& path) {
  struct stat st {};
  return !path.empty() && ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Kubernetes names: what -n, POD and POOL may hold (DNS labels / subdomains, 253 bytes at most).
bool ValidName(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || (c >= 'A' && c <= 'Z') || c == '_';
  });
}

}  // namespace

std::string Usage() {
  return R"(kubectl tideslice: TideSlice's view of the cluster's accelerators.

Usage:
  kubectl tideslice nodes                 per node and card: model, memory allocated/total, compute
                                          granted, slices, health, pool and tide
  kubectl tideslice pods [-n NS | -A]     which node, card and slice each TideSlice pod holds
  kubectl tideslice why POD [-n NS]       why a pending pod fits no node, per node
  kubectl tideslice tide [POOL]           each tidal pool's tide, next switch, pods under notice

Options:
  -o json                   JSON instead of a table
  -n, --namespace NS        the namespace (default: the kubeconfig context's)
  -A, --all-namespaces      pods of every namespace
  --kubeconfig FILE         default: $KUBECONFIG, then ~/.kube/config, then in-cluster
  --context NAME            a kubeconfig context other than the current one
  --tideslice-namespace NS  where TideSlice runs (default tideslice-system)
  --scheduler-config NAME   the scheduler's ConfigMap with the pools (default tideslice-scheduler;
                            <release>-scheduler when the Helm release is not named tideslice)
  -h, --help                this text
)";
}

StatusOr<CliArgs> ParseArgs(const std::vector<std::string>& args) {
  CliArgs a;
  std::vector<std::string> positional;
  auto usage = [](const std::string& what) { return Status::InvalidArgument("", what); };
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    std::string value;
    bool has_inline = false;
    if (arg.rfind("--", 0) == 0 && arg.find('=') != std::string::npos) {
      value = arg.substr(arg.find('=') + 1);
      arg = arg.substr(0, arg.find('='));
      has_inline = true;
    } else if (arg.size() > 2 && (arg.rfind("-n", 0) == 0 || arg.rfind("-o", 0) == 0) && arg[1] != '-') {
      value = arg.substr(2);
      arg = arg.substr(0, 2);
      has_inline = true;
    }
    auto take = [&](std::string* out) -> Status {
      if (has_inline) {
        *out = value;
      } else {
        if (i + 1 >= args.size()) return usage(arg + " needs a value");
        *out = args[++i];
      }
      if (out->empty()) return usage(arg + " needs a value");
      return Status::Ok();
    };
    if (arg == "-h" || arg == "--help") {
      a.command = "help";
      return a;
    } else if (arg == "-A" || arg == "--all-namespaces") {
      a.all_namespaces = true;
    } else if (arg == "-n" || arg == "--namespace") {
      TS_RETURN_IF_ERROR(take(&a.ns));
      if (!ValidName(a.ns)) return usage("-n: \"" + a.ns.substr(0, 64) + "\" is not a namespace name");
    } else if (arg == "-o" || arg == "--output") {
      std::string format;
      TS_RETURN_IF_ERROR(take(&format));
      if (format != "json") return usage("-o " + format.substr(0, 32) + ": only -o json is supported (leave -o out for a table)");
      a.json = true;
    } else if (arg == "--kubeconfig") {
      TS_RETURN_IF_ERROR(take(&a.kubeconfig));
    } else if (arg == "--context") {
      TS_RETURN_IF_ERROR(take(&a.context));
    } else if (arg == "--tideslice-namespace") {
      TS_RETURN_IF_ERROR(take(&a.tideslice_namespace));
      if (!ValidName(a.tideslice_namespace)) return usage("--tideslice-namespace: not a namespace name");
    } else if (arg == "--scheduler-config") {
      TS_RETURN_IF_ERROR(take(&a.scheduler_configmap));
      if (!ValidName(a.scheduler_configmap)) return usage("--scheduler-config: not a ConfigMap name");
    } else if (!arg.empty() && arg[0] == '-' && arg != "-") {
      return usage("unknown option " + arg.substr(0, 64) + " (see kubectl tideslice --help)");
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.empty()) return usage("name a command: nodes, pods, why POD or tide [POOL]");
  a.command = positional[0];
  const size_t extra = positional.size() - 1;
  if (a.command == "help") return a;
  if (a.command == "nodes") {
    if (extra) return usage("nodes takes no arguments, got \"" + positional[1].substr(0, 64) + "\"");
  } else if (a.command == "pods") {
    if (extra) return usage("pods takes no arguments (use -n NS or -A), got \"" + positional[1].substr(0, 64) + "\"");
  } else if (a.command == "why") {
    if (extra != 1) return usage("why needs exactly one pod name: kubectl tideslice why POD [-n NS]");
    a.pod = positional[1];
    if (!ValidName(a.pod)) return usage("why: \"" + a.pod.substr(0, 64) + "\" is not a pod name");
  } else if (a.command == "tide") {
    if (extra > 1) return usage("tide takes at most one pool name");
    if (extra == 1) a.pool = positional[1];
  } else {
    return usage("unknown command \"" + a.command.substr(0, 64) + "\"; use nodes, pods, why POD or tide [POOL]");
  }
  if (a.all_namespaces && a.command != "pods") return usage("-A applies to pods only");
  if (a.all_namespaces && !a.ns.empty()) return usage("give either -n NS or -A, not both");
  return a;
}

StatusOr<kube::KubeAccess> ResolveCliAccess(const std::string& kubeconfig_flag, const std::string& context,
                                            const char* kubeconfig_env, const char* home_env) {
  if (!kubeconfig_flag.empty()) return kube::LoadKubeconfig(kubeconfig_flag, context);
  if (kubeconfig_env && *kubeconfig_env) {
    std::string list = kubeconfig_env;
    size_t start = 0;
    while (start <= list.size()) {
      size_t end = list.find(':', start);
      if (end == std::string::npos) end = list.size();
      std::string path = list.substr(start, end - start);
      if (FileExists(path)) return kube::LoadKubeconfig(path, context);
      start = end + 1;
    }
  }
  if (home_env && *home_env) {
    const std::string path = std::string(home_env) + "/.kube/config";
    if (FileExists(path)) return kube::LoadKubeconfig(path, context);
  }
  auto in_cluster = kube::InClusterAccess();
  if (in_cluster.ok()) return in_cluster;
  return Status::NotFound("no kubeconfig found (--kubeconfig, $KUBECONFIG, ~/.kube/config) and not running in a pod (" +
                          in_cluster.status().message() + ")");
}

int RunCli(const std::vector<std::string>& argv, const CliEnv& env, std::ostream& out, std::ostream& err) {
  auto args = ParseArgs(argv);
  if (!args.ok()) {
    err << "error: " << args.status().message() << "\nRun 'kubectl tideslice --help' for usage.\n";
    return 2;
  }
  if (args->command == "help") {
    out << Usage();
    return 0;
  }
  auto fail = [&](const Status& s) {
    err << "error: " << s.ToString() << "\n";
    return 1;
  };
  auto access = env.access(args->kubeconfig, args->context);
  if (!access.ok()) return fail(access.status());
  auto transport = kube::NewCppRestTransport(*access, /*request_timeout_s=*/30);
  if (!transport.ok()) return fail(transport.status());
  kube::KubeClient client(*transport);
  const std::string ns = args->ns.empty() ? access->default_namespace : args->ns;
  RenderOptions ro;
  ro.colour = env.colour && !args->json;
  ro.all_namespaces = args->all_namespaces;
  ro.now = env.now();
  auto list = [&](const std::string& path, const std::string& query = "") -> StatusOr<std::vector<json>> {
    auto r = client.List(path, query);
    if (!r.ok()) return r.status();
    return std::move(r->items);
  };
  // A ConfigMap that may be missing (or unreadable under the caller's RBAC): null with a note.
  auto optional_configmap = [&](const std::string& name, std::string* note) -> std::optional<json> {
    auto cm = client.Get("/api/v1/namespaces/" + kube::PathSegment(args->tideslice_namespace) + "/configmaps/" +
                         kube::PathSegment(name));
    if (cm.ok()) return std::move(*cm);
    *note = "configmap " + args->tideslice_namespace + "/" + name + ": " + cm.status().message();
    return std::nullopt;
  };

  if (args->command == "nodes") {
    auto nodes = list("/api/v1/nodes");
    if (!nodes.ok()) return fail(nodes.status());
    auto pods = list("/api/v1/pods");
    if (!pods.ok()) return fail(pods.status());
    auto view = NodesView(*nodes, *pods);
    if (args->json) out << NodesJson(view).dump(2) << "\n";
    else out << RenderNodes(view, ro);
    return 0;
  }
  if (args->command == "pods") {
    auto pods = list(args->all_namespaces ? "/api/v1/pods" : "/api/v1/namespaces/" + kube::PathSegment(ns) + "/pods");
    if (!pods.ok()) return fail(pods.status());
    auto view = PodsView(*pods, args->scheduler_name);
    if (args->json) out << PodsJson(view).dump(2) << "\n";
    else if (view.empty() && !args->all_namespaces) out << "No TideSlice pods found in namespace " << ns << ".\n";
    else out << RenderPods(view, ro);
    return 0;
  }
  if (args->command == "why") {
    auto pod = client.Get(kube::PodPath(ns, args->pod));
    if (!pod.ok()) {
      if (pod.status().code() == StatusCode::kNotFound)
        return fail(Status::NotFound("pod " + ns + "/" + args->pod + " not found (wrong namespace? use -n NS)"));
      return fail(pod.status());
    }
    auto events = list("/api/v1/namespaces/" + kube::PathSegment(ns) + "/events",
                       "fieldSelector=" + kube::QueryEscape("involvedObject.name=" + args->pod));
    std::vector<json> pod_events;
    if (events.ok()) pod_events = std::move(*events);
    else err << "note: kube-scheduler's events are not shown: " << events.status().message() << "\n";
    // Events of an earlier pod under the same name are not about this one.
    const std::string uid = kube::UidOf(*pod);
    std::vector<json> own;
    for (auto& e : pod_events) {
      const json* involved = kube::Child(&e, "involvedObject");
      const std::string euid = kube::StringOr(involved, "uid");
      if (euid.empty() || uid.empty() || euid == uid) own.push_back(std::move(e));
    }
    WhyView view = Why(*pod, own);
    if (args->json) out << WhyJson(view).dump(2) << "\n";
    else out << RenderWhy(view, ro);
    return 0;
  }
  // tide [POOL]
  std::string tides_note, config_note;
  std::optional<json> tides = optional_configmap(args->tides_configmap, &tides_note);
  std::optional<json> config = optional_configmap(args->scheduler_configmap, &config_note);
  auto nodes = list("/api/v1/nodes");
  if (!nodes.ok()) return fail(nodes.status());
  auto pods = list("/api/v1/pods");
  if (!pods.ok()) return fail(pods.status());
  std::string schedule_error;
  auto pools = TideView(tides ? &*tides : nullptr, config ? &*config : nullptr, *nodes, *pods, ro.now, &schedule_error);
  if (!args->pool.empty()) {
    std::vector<PoolRow> one;
    std::string names;
    for (auto& p : pools) {
      names += (names.empty() ? "" : ", ") + p.name;
      if (p.name == args->pool) one.push_back(std::move(p));
    }
    if (one.empty())
      return fail(Status::NotFound("no pool named \"" + args->pool.substr(0, 64) + "\"" +
                                   (names.empty() ? std::string(" (no pools found)") : "; pools: " + names)));
    pools = std::move(one);
  }
  if (!config && !pools.empty())
    err << "note: next switches are not shown: " << config_note
        << " (use --scheduler-config NAME when the Helm release is not named tideslice)\n";
  if (!schedule_error.empty()) err << "note: the pools' schedules are unreadable: " << schedule_error << "\n";
  if (!tides && tides_note.find("not found") == std::string::npos) err << "note: " << tides_note << "\n";
  if (args->json) out << TideJson(pools, ro.now).dump(2) << "\n";
  else out << RenderTide(pools, ro);
  return 0;
}

}  // namespace tideslice::cli
