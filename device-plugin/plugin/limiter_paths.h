// Where the in-container limiter's files live, on the host and inside a container. Header-only
// so that the Allocate side (plugin/limiter_setup.*) and the exporter (exporter/limiter_metrics.*)
// share one definition without linking each other.
//
// Host (the agent's --limiter-dir, default /var/lib/tideslice/limiter):
//   lib/libtideslice-limiter.so                      the library, installed at agent start
//   ld.so.preload                                    one line: the library's path in the container
//   containers/<pod uid>/<container>/config.json     tideslice.v1.LimiterConfig (proto3 JSON)
//   containers/<pod uid>/<container>/region/region   the accounting region (limiter/region_layout.h)
// Container: the library at kLimiterLibraryInContainer (read-only), ld.so.preload at
// /etc/ld.so.preload (read-only), the config at kLimiterConfigInContainer (read-only) and the
// region's directory at kLimiterRegionDirInContainer (read-write: every process maps the region).
#pragma once

#include <string>
#include <string_view>

namespace tideslice::deviceplugin {

inline constexpr const char* kDefaultLimiterDir = "/var/lib/tideslice/limiter";
// The copy inside the agent's image (deploy/docker/Dockerfile.device-plugin).
inline constexpr const char* kDefaultLimiterLibrary = "/usr/local/lib/tideslice/libtideslice-limiter.so";
inline constexpr const char* kLimiterLibraryName = "libtideslice-limiter.so";

inline constexpr const char* kLimiterLibraryInContainer = "/usr/local/tideslice/lib/libtideslice-limiter.so";
inline constexpr const char* kLimiterPreloadInContainer = "/etc/ld.so.preload";
inline constexpr const char* kLimiterConfigInContainer = "/etc/tideslice/limiter/config.json";
inline constexpr const char* kLimiterRegionDirInContainer = "/var/run/tideslice/limiter";
inline constexpr const char* kLimiterRegionInContainer = "/var/run/tideslice/limiter/region";

// A pod UID or container name that may name one directory under containers/: 1..253 characters
// from the set kube::PathSegment leaves unescaped ([A-Za-z0-9-._~]), not starting with '.' (so
// never "." or "..", and never one of the writer's own ".tmp-"/".old-" names). Anything else is
// refused rather than escaped: these names come from an annotation, and a directory outside
// containers/ must never be reachable through one.
inline bool IsLimiterPathSegment(std::string_view s) {
  if (s.empty() || s.size() > 253 || s.front() == '.') return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
              c == '_' || c == '~';
    if (!ok) return false;
  }
  return true;
}

// The host layout under one limiter directory.
struct LimiterLayout {
  std::string root;

  std::string LibraryDir() const { return root + "/lib"; }
  std::string LibraryPath() const { return LibraryDir() + "/" + kLimiterLibraryName; }
  std::string PreloadPath() const { return root + "/ld.so.preload"; }
  std::string ContainersDir() const { return root + "/containers"; }
  std::string PodDir(const std::string& pod_uid) const { return ContainersDir() + "/" + pod_uid; }
  std::string ContainerDir(const std::string& pod_uid, const std::string& container) const {
    return PodDir(pod_uid) + "/" + container;
  }
  std::string ConfigPath(const std::string& pod_uid, const std::string& container) const {
    return ContainerDir(pod_uid, container) + "/config.json";
  }
  std::string RegionDir(const std::string& pod_uid, const std::string& container) const {
    return ContainerDir(pod_uid, container) + "/region";
  }
  std::string RegionPath(const std::string& pod_uid, const std::string& container) const {
    return RegionDir(pod_uid, container) + "/region";
  }
};

}  // namespace tideslice::deviceplugin
