// Where the in-container limiter's files live, on the host and inside a container. Header-only
// so that the Allocate side (plugin/limiter_setup.*) and the exporter (exporter/limiter_metrics.*)
// share one definition without linking each other.
//
// Host (the agent's --limiter-dir, default /var/lib/tideslice/limiter):
//   lib/libtideslice-limiter.so                      the library, installed at agent start
//   ld.so.preload                                    one line: the library's path in the container
//   containers/<pod uid>/<container>/config.json     tideslice.v1.LimiterConfig (proto3 JSON)
//   containers/<pod uid>/<container>/region/region   the accounting region (limiter/region_layout.h)
//   containers/<pod uid>/<container>/seats.json      the agent's own record of the container's
//                                                    slots in card rosters (never mounted)
//   cards/<card uuid>/roster                         who holds a compute share on the card
//   cards/<card uuid>/entry-<slot>                   one per container there, written by its limiter
//                                                    (limiter/card_coordination.h)
// Container: the library at kLimiterLibraryInContainer (read-only), ld.so.preload at
// /etc/ld.so.preload (read-only), the config at kLimiterConfigInContainer (read-only) and the
// region's directory at kLimiterRegionDirInContainer (read-write: every process maps the region).
// A container holding a compute share on a card also gets that card's directory read-only at
// kLimiterCardsInContainer/<region card> and its own entry there read-write.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "device-plugin/limiter/card_coordination.h"

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
inline constexpr const char* kLimiterCardsInContainer = "/var/run/tideslice/cards";
inline constexpr const char* kLimiterSeatsFileName = "seats.json";

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
  std::string SeatsPath(const std::string& pod_uid, const std::string& container) const {
    return ContainerDir(pod_uid, container) + "/" + kLimiterSeatsFileName;
  }
  // Card directories are named by the card's UUID on the node (DeviceInfo::uuid), which must pass
  // IsLimiterPathSegment.
  std::string CardsDir() const { return root + "/cards"; }
  std::string CardDir(const std::string& card_uuid) const { return CardsDir() + "/" + card_uuid; }
  std::string RosterPath(const std::string& card_uuid) const { return CardDir(card_uuid) + "/" + limiter::kRosterFileName; }
  std::string EntryPath(const std::string& card_uuid, uint32_t slot) const {
    return CardDir(card_uuid) + "/" + limiter::kEntryFilePrefix + std::to_string(slot);
  }
};

}  // namespace tideslice::deviceplugin
