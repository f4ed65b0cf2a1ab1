#include "device-plugin/kube/inventory_publisher.h"

#include "common/codec/annotations.h"
#include "device-plugin/plugin/inventory.h"

namespace tideslice::deviceplugin {
namespace {

// A label name part: alphanumerics, '-', '_', '.', at most 63, alphanumeric at both ends.
std::string LabelName(const std::string& prefix, const std::string& value) {
  std::string out = prefix;
  for (char c : value) out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ? c : '-';
  if (out.size() > 63) out.resize(63);
  while (!out.empty() && !std::isalnum(static_cast<unsigned char>(out.back()))) out.pop_back();
  return out;
}

// Telemetry changes every poll; only what placement depends on triggers a publish.
bool SameForPlacement(const std::vector<DeviceInfo>& a, const std::vector<DeviceInfo>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].uuid != b[i].uuid || a[i].model != b[i].model || a[i].healthy != b[i].healthy ||
        a[i].memory_mib != b[i].memory_mib || a[i].index != b[i].index)
      return false;
  return true;
}

}  // namespace

std::map<std::string, std::string> CardLabels(const std::vector<DeviceInfo>& cards) {
  std::map<std::string, int> counts;
  for (const auto& c : cards) {
    counts["tideslice.io/" + LabelName("vendor.", c.vendor)]++;
    counts["tideslice.io/" + LabelName("model.", c.model)]++;
  }
  std::map<std::string, std::string> out;
  for (const auto& [k, n] : counts) out[k] = std::to_string(n);
  return out;
}

Status InventoryPublisher::Update(const std::vector<DeviceInfo>& cards, bool force) {
  std::lock_guard<std::mutex> lock(mu_);
  auto now = std::chrono::steady_clock::now();
  if (!force && published_ && SameForPlacement(cards, last_cards_) && now - last_publish_ < heartbeat_)
    return Status::Ok();
  v1::NodeInventory inv = BuildInventory(node_, backend_, cards, catalog_, std::chrono::system_clock::now());
  inv.set_dra_driver(dra_driver_);
  auto labels = CardLabels(cards);
  kube::json patch;
  patch["metadata"]["annotations"][std::string(codec::kInventoryAnnotation)] = codec::EncodeInventory(inv);
  for (const auto& [k, v] : labels) patch["metadata"]["labels"][k] = v;
  for (const auto& [k, v] : last_labels_)
    if (!labels.count(k)) patch["metadata"]["labels"][k] = nullptr;  // a model that left the node
  auto r = client_->MergePatch(kube::NodePath(node_), patch);
  if (!r.ok()) return r.status().WithContext("publishing the inventory of node " + node_);
  last_cards_ = cards;
  last_labels_ = labels;
  last_publish_ = now;
  published_ = true;
  ++publishes_;
  return Status::Ok();
}

}  // namespace tideslice::deviceplugin
