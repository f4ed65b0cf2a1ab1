#include "device-plugin/app/launch.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <map>

#include "common/flags.h"
#include "device-plugin/backends/nvml_backend.h"
#include "device-plugin/plugin/mig_mode.h"

namespace tideslice::deviceplugin {
namespace {

constexpr const char* kAfterFlags = R"(
Allocation hand-off: a container gets exactly the slices the TideSlice scheduler assigned in the
pod's tideslice.io/assignment annotation (phase ALLOCATING); the agent acknowledges them (phase
ALLOCATED) through the Kubernetes API. Allocate fails with a reason, and never guesses, when no
pod or more than one pod on the node is waiting for devices.
)";

// --config FILE: a map of flag names (without dashes) to single values.
StatusOr<std::map<std::string, std::string>> ReadFlagFile(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const std::exception& e) {
    return Status::InvalidArgument("--config", path + ": " + e.what());
  }
  if (!root.IsMap()) return Status::InvalidArgument("--config", path + " must be a map of flag names to values");
  std::map<std::string, std::string> out;
  for (const auto& kv : root) {
    if (!kv.first.IsScalar()) return Status::InvalidArgument("--config", path + ": a key is not a flag name");
    const std::string key = kv.first.as<std::string>();
    if (key == "config") return Status::InvalidArgument("--config", path + " cannot name another config file");
    if (!kv.second.IsScalar())
      return Status::InvalidArgument("--config", path + ": \"" + key + "\" must be a single value");
    out[key] = kv.second.as<std::string>();
  }
  return out;
}

std::string ResourceName(const std::string& v) {
  if (v.find('/') == std::string::npos || v.find("kubernetes.io/") != std::string::npos)
    return "must be an extended resource name such as tideslice.io/vnpu";
  return "";
}

std::string Xids(const std::string& v) {
  auto xids = nvml::ParseXidList(v);
  return xids.ok() ? "" : xids.status().message();
}

}  // namespace

StatusOr<DevicePluginCommandLine> ParseDevicePluginCommandLine(int argc, const char* const* argv) {
  DevicePluginCommandLine out;
  DevicePluginLaunch& l = out.launch;
  AgentOptions& a = l.agent;
  a.plugin.socket_dir = "/var/lib/kubelet/device-plugins";
  a.plugin.resource_name = "tideslice.io/vnpu";
  std::chrono::seconds health_poll{5};
  std::string limiter = "on", mig_mode = "leave", config_file;

  FlagSet flags("tideslice-device-plugin", "TideSlice's node agent (kubelet device plugin API v1beta1).");
  flags.Choice("--backend", &l.backend, {"nvml", "dcmi", "mock"},
               "where cards come from. nvml loads libnvidia-ml.so.1 and dcmi\nloads libdcmi.so at run time; mock "
               "reads --mock-config")
      .Raw("--mock-config", &l.mock_config, "JSON or YAML list of fake cards, e.g. deploy/examples/mock-cards.json")
      .String("--device-plugin-dir", &a.plugin.socket_dir, "kubelet's device plugin directory")
      .String("--resource-name", &a.plugin.resource_name, "extended resource to advertise", ResourceName)
      .Int("--replicas-per-card", &a.plugin.replicas_per_card, 1, 100, "how many pods may share one card")
      .Raw("--node-name", &l.node_name, "this node's name (default: $NODE_NAME, else the host name)")
      .String("--metrics-address", &l.metrics_address, "where /metrics is served as HOST:PORT; \"off\" disables")
      .Seconds("--health-poll-seconds", &health_poll, 1, 3600, "how often cards are re-read")
      .Seconds("--heartbeat-seconds", &l.heartbeat, 1, 3600,
               "the inventory annotation is re-published at least this often\n(the scheduler drops nodes whose "
               "heartbeat is stale)")
      .String("--pod-resources-socket", &l.pod_resources_socket,
              "kubelet PodResources API, used to release partitions of pods that\nare gone")
      .Raw("--kubeconfig", &l.kubeconfig, "Kubernetes access from a kubeconfig (default: in-cluster service account)")
      .Switch("--standalone", &l.standalone,
              "run without Kubernetes: no inventory, and Allocate is refused\n(for trying the kubelet side and the "
              "metrics on a laptop)")
      .Raw("--catalog", &l.catalog_file, "accelerator catalog overrides (JSON, the built-in catalog's format)")
      .Raw("--assignment-verify-key", &l.verify_key_file,
           "the scheduler's Ed25519 public key (PEM, from ConfigMap\ntideslice-assignment-key); an assignment is "
           "honoured only with a\nvalid signature. Re-read when the file changes. Default: off (warned)")
      .Raw("--lease-name", &l.lease_name,
           "the scheduler's leader Lease; an assignment is honoured only if it\nwas sealed in the Lease's current "
           "term. Default: off")
      .Raw("--lease-namespace", &l.lease_namespace, "the Lease's namespace (default: $POD_NAMESPACE)")
      .Choice("--limiter", &limiter, {"on", "off"},
              "the in-container limiter for soft slices. on: every container\nholding a soft slice (neither a whole "
              "card nor a MIG/vNPU partition)\ngets libtideslice-limiter.so preloaded through a read-only\n"
              "/etc/ld.so.preload, its config and a per-container accounting\nregion (memory), and a compute "
              "share takes a slot in its card's\nroster. off: the node group opted out; soft slices are\naccounting "
              "only (docs/isolation.md)")
      .String("--limiter-dir", &l.limiter_dir,
              "host directory for the limiter's library, ld.so.preload, the\nper-container files and the per-card "
              "rosters; a container's files\nand roster slots are removed once its pod is gone from the node",
              FlagSet::AbsolutePath)
      .String("--limiter-library", &l.limiter_library, "the library copied into --limiter-dir/lib at start")
      .Bytes("--limiter-context-reserve", &l.limiter_context_reserve, 1ull << 36,
              "bytes charged once per process and card when the process creates\nits first context there (a "
              "quantity such as 512Mi). The context's own\nmemory is reported by no allocation call: with 0 it is "
              "not counted\n(leave headroom in slice sizes); with the context size every process\nthat touches a "
              "card costs its slice that much")
      .Choice("--mig-mode", &mig_mode, {"off", "on", "leave"},
              "MIG mode of this node group's NVIDIA cards. off/on: set on every\nMIG-capable card that is empty (no "
              "processes, no partitions,\nnothing allocated); busy cards wait until they are empty; a change\nthe "
              "driver holds for the next GPU reset is logged as pending\n(drain the card, nvidia-smi -r). leave: "
              "never touched")
      .String("--critical-xids", &l.critical_xids,
              "XIDs that take a card out of service besides the built-in list\n(docs/hardware.md), e.g. 94,140",
              Xids)
      .String("--sysfs-root", &l.sysfs_root, "where the kernel's sysfs is mounted (NUMA node, CPU affinity)",
              FlagSet::AbsolutePath)
      .Raw("--config", &config_file,
           "YAML/JSON map of these flags without the dashes (e.g. \"backend: mock\");\ncommand-line flags win");

  std::map<std::string, std::string> from_file;
  const std::string file = FlagSet::Peek(argc, argv, "--config");
  if (!file.empty()) {
    auto read = ReadFlagFile(file);
    if (!read.ok()) return read.status();
    from_file = std::move(*read);
  }
  TS_RETURN_IF_ERROR(flags.Parse(argc, argv, from_file, file));
  out.usage = flags.Usage() + kAfterFlags;
  if (flags.help_requested()) {
    out.help = true;
    return out;
  }

  a.health_poll = health_poll;
  std::string sock = a.plugin.resource_name;
  for (char& c : sock)
    if (c == '/' || c == '.') c = '-';
  a.plugin.socket_name = sock + ".sock";
  std::error_code ec;
  if (!std::filesystem::is_directory(a.plugin.socket_dir, ec))
    return Status::InvalidArgument("--device-plugin-dir", a.plugin.socket_dir + " is not a directory");
  l.limiter = limiter == "on";
  a.mig_mode = *ParseMigModePolicy(mig_mode);
  if (l.node_name.empty()) {
    const char* env = std::getenv("NODE_NAME");
    if (env && *env) {
      l.node_name = env;
    } else {
      char host[256] = {};
      gethostname(host, sizeof host - 1);
      l.node_name = host;
    }
  }
  if (!l.lease_name.empty() && l.lease_namespace.empty()) {
    const char* pod_ns = std::getenv("POD_NAMESPACE");
    if (pod_ns && *pod_ns) l.lease_namespace = pod_ns;
    else return Status::InvalidArgument("--lease-name", "needs a namespace: pass --lease-namespace or set POD_NAMESPACE");
  }
  return out;
}

}  // namespace tideslice::deviceplugin
