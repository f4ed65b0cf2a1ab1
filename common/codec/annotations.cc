#include "common/codec/annotations.h"

#include <set>

#include <google/protobuf/util/json_util.h>

namespace tideslice::codec {
namespace {

template <typename Message>
StatusOr<Message> Decode(std::string_view json, std::string_view what) {
  if (json.size() > kMaxAnnotationBytes)
    return Status::InvalidArgument(std::string(what), "is larger than " + std::to_string(kMaxAnnotationBytes) + " bytes");
  Message message;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(std::string(json), &message, options);
  if (!status.ok()) {
    return Status::InvalidArgument(std::string(what),
                                   "is not a valid " + std::string(Message::descriptor()->full_name()) + ": " +
                                       std::string(status.message()));
  }
  return message;
}

template <typename Message>
std::string Encode(const Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = false;  // lowerCamelCase, the protobuf JSON default
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

}  // namespace

StatusOr<v1::NodeInventory> DecodeInventory(std::string_view json) {
  auto inv = Decode<v1::NodeInventory>(json, kInventoryAnnotation);
  if (!inv.ok()) return inv;
  TS_RETURN_IF_ERROR(ValidateInventory(*inv));
  return inv;
}

StatusOr<v1::PodAssignment> DecodeAssignment(std::string_view json) {
  auto a = Decode<v1::PodAssignment>(json, kAssignmentAnnotation);
  if (!a.ok()) return a;
  TS_RETURN_IF_ERROR(ValidateAssignment(*a));
  return a;
}

StatusOr<v1::SchedulerConfig> DecodeSchedulerConfig(std::string_view json) {
  return Decode<v1::SchedulerConfig>(json, "scheduler config");
}

std::string EncodeInventory(const v1::NodeInventory& inventory) { return Encode(inventory); }
std::string EncodeAssignment(const v1::PodAssignment& assignment) { return Encode(assignment); }

Status ValidateInventory(const v1::NodeInventory& inventory) {
  const std::string where(kInventoryAnnotation);
  std::set<std::string> uuids;
  std::set<int> indexes;
  for (int i = 0; i < inventory.cards_size(); ++i) {
    const auto& card = inventory.cards(i);
    std::string at = where + ".cards[" + std::to_string(i) + "]";
    if (card.uuid().empty()) return Status::InvalidArgument(at + ".uuid", "must not be empty");
    if (!uuids.insert(card.uuid()).second) return Status::InvalidArgument(at + ".uuid", "duplicates " + card.uuid());
    if (card.index() < 0) return Status::InvalidArgument(at + ".index", "must not be negative");
    if (!indexes.insert(card.index()).second)
      return Status::InvalidArgument(at + ".index", "duplicates index " + std::to_string(card.index()));
    if (card.memory_mib() <= 0) return Status::InvalidArgument(at + ".memoryMib", "must be positive");
    if (card.model().empty()) return Status::InvalidArgument(at + ".model", "must not be empty");
  }
  return Status::Ok();
}

Status ValidateAssignment(const v1::PodAssignment& assignment) {
  const std::string where(kAssignmentAnnotation);
  if (assignment.node_name().empty()) return Status::InvalidArgument(where + ".nodeName", "must not be empty");
  std::set<std::string> names;
  for (int i = 0; i < assignment.containers_size(); ++i) {
    const auto& c = assignment.containers(i);
    std::string at = where + ".containers[" + std::to_string(i) + "]";
    if (c.name().empty()) return Status::InvalidArgument(at + ".name", "must not be empty");
    if (!names.insert(std::string(c.init_container() ? "init:" : "") + c.name()).second)
      return Status::InvalidArgument(at + ".name", "duplicates container " + c.name());
    std::set<std::string> cards;
    for (int j = 0; j < c.slices_size(); ++j) {
      const auto& s = c.slices(j);
      std::string sat = at + ".slices[" + std::to_string(j) + "]";
      if (s.card_uuid().empty()) return Status::InvalidArgument(sat + ".cardUuid", "must not be empty");
      if (!cards.insert(s.card_uuid()).second)
        return Status::InvalidArgument(sat + ".cardUuid", "a container gets at most one slice per card");
      if (s.memory_mib() < 0) return Status::InvalidArgument(sat + ".memoryMib", "must not be negative");
      if (s.compute_permille() < 0 || s.compute_permille() > 1000)
        return Status::InvalidArgument(sat + ".computePermille", "must be 0..1000");
    }
  }
  return Status::Ok();
}

}  // namespace tideslice::codec
