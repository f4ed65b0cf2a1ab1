// Real per-pod use of card memory: the driver reports processes (PID, bytes, card), the PID's
// cgroup names its pod (kubelet puts every container under .../pod<uid>/... or
// ...-pod<uid with underscores>.slice/...), and the assignments name the pod. Needs the host's
// PID namespace (the DaemonSet runs with hostPID) to read /proc/<pid>/cgroup.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "device-plugin/backends/device_backend.h"

namespace tideslice::deviceplugin {

// The pod UID in a /proc/<pid>/cgroup text (cgroup v1 or v2, cgroupfs or systemd driver).
std::optional<std::string> PodUidFromCgroup(std::string_view cgroup_text);

// Bytes per (pod UID, card UUID). `read_cgroup(pid)` returns the text of /proc/<pid>/cgroup
// (nullopt if the process is gone); processes outside pods are not counted.
std::map<std::pair<std::string, std::string>, int64_t> UsageByPod(
    const std::vector<ProcessUsage>& processes,
    const std::function<std::optional<std::string>(uint32_t pid)>& read_cgroup);

// Reads /proc/<pid>/cgroup under `proc_root` (default "/proc").
std::optional<std::string> ReadProcCgroup(uint32_t pid, const std::string& proc_root = "/proc");

}  // namespace tideslice::deviceplugin
