#include "common/kube/objects.h"

#include "common/codec/annotations.h"

namespace tideslice::kube {
namespace {

std::optional<std::string> Annotation(const nlohmann::json& obj, std::string_view key) {
  auto meta = obj.find("metadata");
  if (meta == obj.end() || !meta->is_object()) return std::nullopt;
  auto ann = meta->find("annotations");
  if (ann == meta->end() || !ann->is_object()) return std::nullopt;
  auto it = ann->find(std::string(key));
  if (it == ann->end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

std::string Str(const nlohmann::json& obj, const char* a, const char* b) {
  auto x = obj.find(a);
  if (x == obj.end() || !x->is_object()) return "";
  auto y = x->find(b);
  return y != x->end() && y->is_string() ? y->get<std::string>() : "";
}

}  // namespace

std::string PodKey(const nlohmann::json& pod) {
  std::string ns = Str(pod, "metadata", "namespace");
  return (ns.empty() ? "default" : ns) + "/" + Str(pod, "metadata", "name");
}

std::string NodeNameOf(const nlohmann::json& pod) { return Str(pod, "spec", "nodeName"); }
std::string UidOf(const nlohmann::json& object) { return Str(object, "metadata", "uid"); }

StatusOr<std::optional<v1::PodAssignment>> AssignmentOf(const nlohmann::json& pod) {
  auto text = Annotation(pod, codec::kAssignmentAnnotation);
  if (!text) return std::optional<v1::PodAssignment>();
  auto a = codec::DecodeAssignment(*text);
  if (!a.ok()) return a.status().WithContext("pod " + PodKey(pod) + " annotation " + std::string(codec::kAssignmentAnnotation));
  return std::optional<v1::PodAssignment>(std::move(*a));
}

StatusOr<std::optional<v1::NodeInventory>> InventoryOf(const nlohmann::json& node) {
  auto text = Annotation(node, codec::kInventoryAnnotation);
  if (!text) return std::optional<v1::NodeInventory>();
  auto inv = codec::DecodeInventory(*text);
  if (!inv.ok())
    return inv.status().WithContext("node " + Str(node, "metadata", "name") + " annotation " +
                                    std::string(codec::kInventoryAnnotation));
  return std::optional<v1::NodeInventory>(std::move(*inv));
}

bool PodIsTerminal(const nlohmann::json& pod) {
  std::string phase = Str(pod, "status", "phase");
  return phase == "Succeeded" || phase == "Failed";
}

bool PodIsFinished(const nlohmann::json& pod) {
  std::string phase = Str(pod, "status", "phase");
  if (phase == "Succeeded" || phase == "Failed") return true;
  auto meta = pod.find("metadata");
  return meta != pod.end() && meta->is_object() && meta->contains("deletionTimestamp");
}

}  // namespace tideslice::kube
