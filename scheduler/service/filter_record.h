// Why a pending pod fits no node, as the scheduler found it: the extender filter's per-node
// reasons, recorded on the pod as the annotation tideslice.io/filter-reasons so that people (and
// `kubectl tideslice why POD`) can read them. kube-scheduler's own FailedScheduling event only
// counts reasons ("3 node(s) had ..."); this keeps which node said what.
//
// The value is JSON: {"since": RFC 3339, "nodes": {"<node>": "<reason>", ...}, "omitted": N}.
// "since" is when the scheduler first saw these reasons (the record is rewritten only when they
// change). Bounded: at most kMaxRecordedNodes nodes (the rest counted in "omitted"), reasons cut
// to kMaxReasonBytes, so the annotation stays far below the API's 256 KiB per object.
// Pure: formatting and parsing only; scheduler/service/filter_recorder.h writes it.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "common/status.h"

namespace tideslice::service {

inline constexpr char kFilterReasonsAnnotation[] = "tideslice.io/filter-reasons";
inline constexpr size_t kMaxRecordedNodes = 50;
inline constexpr size_t kMaxReasonBytes = 300;
inline constexpr size_t kMaxNodeNameBytes = 253;  // a DNS subdomain, as Kubernetes names nodes

struct FilterRecord {
  std::chrono::system_clock::time_point since{};
  std::map<std::string, std::string> nodes;  // node -> why the pod does not fit there
  int omitted = 0;                           // nodes with a reason beyond kMaxRecordedNodes
};

// The bounded record of `reasons` (node -> reason): the first kMaxRecordedNodes by node name.
FilterRecord BoundedRecord(const std::map<std::string, std::string>& reasons,
                           std::chrono::system_clock::time_point since);
std::string FormatFilterRecord(const FilterRecord& record);
// Errors name the field that is wrong (the value is external input: anyone who may update the pod
// can write it).
StatusOr<FilterRecord> ParseFilterRecord(const std::string& text);

}  // namespace tideslice::service
