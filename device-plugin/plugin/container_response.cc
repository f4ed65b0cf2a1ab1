#include "device-plugin/plugin/container_response.h"

#include <algorithm>
#include <set>

namespace tideslice::deviceplugin {
namespace {

void AddDevice(v1beta1::ContainerAllocateResponse& r, const std::string& path) {
  for (const auto& d : r.devices())
    if (d.host_path() == path) return;
  auto* d = r.add_devices();
  d->set_container_path(path);
  d->set_host_path(path);
  d->set_permissions("rw");
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

}  // namespace

std::vector<AssignedSlice> VisibleOrder(const std::vector<AssignedSlice>& slices) {
  std::vector<AssignedSlice> ordered = slices;
  std::stable_sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) { return a.card.index < b.card.index; });
  return ordered;
}

StatusOr<v1beta1::ContainerAllocateResponse> BuildContainerResponse(const std::vector<AssignedSlice>& slices) {
  if (slices.empty()) return Status::InvalidArgument("slices", "a container response needs at least one slice");
  const std::string vendor = slices.front().card.vendor;
  for (const auto& s : slices)
    if (s.card.vendor != vendor)
      return Status::InvalidArgument("slices", "one container cannot mix " + vendor + " and " + s.card.vendor + " cards");
  const std::vector<AssignedSlice> ordered = VisibleOrder(slices);
  v1beta1::ContainerAllocateResponse r;
  auto& env = *r.mutable_envs();
  std::vector<std::string> visible, uuids;
  for (const auto& s : ordered) uuids.push_back(s.card.uuid);
  (*r.mutable_annotations())["tideslice.io/cards"] = Join(uuids);

  if (vendor == "nvidia") {
    for (const auto& s : ordered) {
      if (!s.profile.empty() && s.partition_id.empty())
        return Status::FailedPrecondition("MIG profile " + s.profile + " on " + s.card.uuid + " has no instance yet");
      visible.push_back(s.profile.empty() ? s.card.uuid : s.partition_id);
      AddDevice(r, "/dev/nvidia" + std::to_string(s.card.index));
    }
    env["NVIDIA_VISIBLE_DEVICES"] = Join(visible);
    for (const char* dev : {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"}) AddDevice(r, dev);
    return r;
  }
  if (vendor == "huawei") {
    for (const auto& s : ordered) {
      if (!s.profile.empty() && s.partition_id.empty())
        return Status::FailedPrecondition("vNPU template " + s.profile + " on " + s.card.uuid + " has no vNPU yet");
      std::string id = s.profile.empty() ? std::to_string(s.card.index) : s.partition_id;
      visible.push_back(id);
      AddDevice(r, "/dev/davinci" + id);
    }
    env["ASCEND_VISIBLE_DEVICES"] = Join(visible);
    for (const char* dev : {"/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc"}) AddDevice(r, dev);
    return r;
  }
  return Status::InvalidArgument("slices", "no container layout for vendor \"" + vendor + "\"");
}

}  // namespace tideslice::deviceplugin
