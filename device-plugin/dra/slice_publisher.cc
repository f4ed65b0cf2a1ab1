#include "device-plugin/dra/slice_publisher.h"

#include <algorithm>

#include "common/log/log.h"

namespace tideslice::dra {

using nlohmann::json;

namespace {
const char* kSlices = "/apis/resource.k8s.io/v1/resourceslices";
}

Status SlicePublisher::Sync(const NodeInventory& inventory) {
  if (node_uid_.empty()) {
    // The Node's UID makes it the slices' owner, so they go with it. Without it the slices
    // are still published (and the kubelet still wipes them with the node).
    auto node = client_.Get(kube::NodePath(node_));
    if (node.ok() && (*node)["metadata"].contains("uid") && (*node)["metadata"]["uid"].is_string())
      node_uid_ = (*node)["metadata"]["uid"].get<std::string>();
  }
  auto existing = client_.List(kSlices, "fieldSelector=" + kube::QueryEscape("spec.driver=" + driver_ + ",spec.nodeName=" + node_));
  if (!existing.ok()) return existing.status().WithContext("listing this node's ResourceSlices");
  std::map<std::string, json> by_name;
  int64_t max_gen = generation_;
  for (auto& s : existing->items) {
    const std::string name = s["metadata"].value("name", "");
    if (s.contains("spec") && s["spec"].contains("pool") && s["spec"]["pool"].contains("generation") &&
        s["spec"]["pool"]["generation"].is_number_integer())
      max_gen = std::max(max_gen, s["spec"]["pool"]["generation"].get<int64_t>());
    by_name[name] = std::move(s);
  }

  SliceTarget target{driver_, node_, node_uid_, generation_};
  auto desired = BuildResourceSlices(inventory, target);
  if (!desired.ok()) return desired.status();
  json desired_all = *desired;

  bool unchanged = generation_ > 0 && desired_all == last_desired_ && by_name.size() == desired->size();
  for (const auto& s : *desired) {
    if (!unchanged) break;
    const std::string name = s["metadata"]["name"];
    auto it = by_name.find(name);
    auto w = written_.find(name);
    unchanged = it != by_name.end() && w != written_.end() && it->second["spec"] == w->second;
  }
  if (unchanged) return Status::Ok();

  generation_ = max_gen + 1;
  target.generation = generation_;
  desired = BuildResourceSlices(inventory, target);
  if (!desired.ok()) return desired.status();
  written_.clear();
  Status failed = Status::Ok();
  for (const auto& s : *desired) {
    const std::string name = s["metadata"]["name"];
    auto it = by_name.find(name);
    StatusOr<json> out = Status::Internal("unset");
    if (it != by_name.end()) {
      json put = s;
      put["metadata"]["resourceVersion"] = it->second["metadata"].value("resourceVersion", "");
      out = client_.Replace(std::string(kSlices) + "/" + kube::PathSegment(name), put);
      by_name.erase(it);
    } else {
      out = client_.Create(kSlices, s);
    }
    if (!out.ok()) {
      failed = out.status().WithContext("writing ResourceSlice " + name);
      continue;
    }
    writes_++;
    written_[name] = (*out)["spec"];
  }
  for (const auto& [name, s] : by_name) {
    Status d = client_.Delete(std::string(kSlices) + "/" + kube::PathSegment(name));
    if (!d.ok()) failed = d.WithContext("deleting ResourceSlice " + name);
  }
  if (!failed.ok()) {
    last_desired_ = json();  // write everything again next time
    return failed;
  }
  // Compared with the next build at this generation.
  last_desired_ = *desired;
  log::Info("dra_slices_published", "ResourceSlices written",
            {{"generation", std::to_string(generation_)}, {"slices", std::to_string(desired->size())},
             {"devices", std::to_string(inventory.devices.size())}});
  return Status::Ok();
}

}  // namespace tideslice::dra
