// CDI (Container Device Interface) spec files for prepared claims: one file per claim in the
// dynamic spec directory (/var/run/cdi), written atomically, removed at unprepare. The container
// edits are the device plugin's own (BuildContainerResponse + the limiter's mounts), so a DRA
// container sees exactly what a device-plugin container sees.
//
// Names (docs/dra.md, "CDI"): kind "k8s.<driver>/card"; one CDI device per base request of the
// claim, named "<claim uid>-<request>", which carries the edits of every device of that request
// (one NVIDIA_VISIBLE_DEVICES / ASCEND_VISIBLE_DEVICES listing them all); file
// "k8s.<driver>-card_<claim uid>.json". cdiVersion is the minimum the fields need (0.5.0: device
// names starting with a digit and deviceNodes.hostPath), so containerd 1.7.0+ and CRI-O 1.27+
// load it.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "deviceplugin/v1beta1/api.pb.h"

namespace tideslice::dra {

inline constexpr const char* kDefaultCdiDir = "/var/run/cdi";
inline constexpr const char* kCdiVersion = "0.5.0";

struct CdiRequestEdits {
  std::string base_request;
  v1beta1::ContainerAllocateResponse edits;   // envs, devices, mounts (annotations are not carried)
};

std::string CdiKind(const std::string& driver);                                        // k8s.<driver>/card
std::string CdiDeviceName(const std::string& claim_uid, const std::string& request);   // <uid>-<request>
std::string CdiDeviceId(const std::string& driver, const std::string& claim_uid, const std::string& request);
std::string CdiSpecFileName(const std::string& driver, const std::string& claim_uid);

// The spec for one claim. Refuses a claim UID or request name that would not make a valid CDI
// device name, and edits with relative paths.
StatusOr<nlohmann::json> BuildCdiSpec(const std::string& driver, const std::string& claim_uid,
                                      const std::vector<CdiRequestEdits>& requests);

// Writes `spec` to <dir>/<file> through a temporary file in the same directory (not named
// *.json, so a runtime never reads it half-written), synced, then renamed.
Status WriteCdiSpec(const std::string& dir, const std::string& file, const nlohmann::json& spec);
// Removes <dir>/<file>; a file already gone is success.
Status RemoveCdiSpec(const std::string& dir, const std::string& file);

}  // namespace tideslice::dra
