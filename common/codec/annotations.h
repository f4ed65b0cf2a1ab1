// The annotation contracts between the scheduler and the node agent: JSON forms of the
// tideslice.v1 messages, produced and parsed with protobuf's JSON mapping. Unknown fields are
// rejected and every failure is a Status naming the annotation, never a crash.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "tideslice/v1/tideslice.pb.h"

namespace tideslice::codec {

inline constexpr std::string_view kInventoryAnnotation = "tideslice.io/inventory";
inline constexpr std::string_view kAssignmentAnnotation = "tideslice.io/assignment";
// Upper bound on what we accept in one annotation (the apiserver caps all annotations of an
// object at 256 KiB together).
inline constexpr size_t kMaxAnnotationBytes = 256 * 1024;

StatusOr<v1::NodeInventory> DecodeInventory(std::string_view json);
StatusOr<v1::PodAssignment> DecodeAssignment(std::string_view json);
StatusOr<v1::SchedulerConfig> DecodeSchedulerConfig(std::string_view json);

std::string EncodeInventory(const v1::NodeInventory& inventory);
std::string EncodeAssignment(const v1::PodAssignment& assignment);

// Structural checks beyond what the schema says (unique card uuids, sane numbers, ...).
Status ValidateInventory(const v1::NodeInventory& inventory);
Status ValidateAssignment(const v1::PodAssignment& assignment);

}  // namespace tideslice::codec
