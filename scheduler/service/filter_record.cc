#include "scheduler/service/filter_record.h"

#include <nlohmann/json.hpp>

#include "common/codec/bounded_json.h"
#include "common/kube/client.h"

namespace tideslice::service {

namespace {

// Cut at a UTF-8 character boundary, marked with "...".
std::string Cut(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  size_t end = max - 3;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end) + "...";
}

}  // namespace

FilterRecord BoundedRecord(const std::map<std::string, std::string>& reasons, std::chrono::system_clock::time_point since) {
  FilterRecord r;
  r.since = std::chrono::time_point_cast<std::chrono::seconds>(since);
  for (const auto& [node, reason] : reasons) {
    if (r.nodes.size() >= kMaxRecordedNodes || node.size() > kMaxNodeNameBytes) {
      ++r.omitted;
      continue;
    }
    r.nodes[node] = Cut(reason, kMaxReasonBytes);
  }
  return r;
}

std::string FormatFilterRecord(const FilterRecord& record) {
  nlohmann::json nodes = nlohmann::json::object();
  for (const auto& [node, reason] : record.nodes) nodes[node] = reason;
  nlohmann::json j = {{"since", kube::MicroTimeFrom(record.since).substr(0, 19) + "Z"}, {"nodes", nodes}};
  if (record.omitted > 0) j["omitted"] = record.omitted;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

StatusOr<FilterRecord> ParseFilterRecord(const std::string& text) {
  const std::string field = kFilterReasonsAnnotation;
  if (text.size() > 64 * 1024) return Status::InvalidArgument(field, "is larger than 64 KiB");
  auto parsed = codec::BoundedParse(text, field);
  if (!parsed.ok()) return parsed.status();
  const nlohmann::json& j = *parsed;
  if (!j.is_object()) return Status::InvalidArgument(field, "is not a JSON object");
  FilterRecord r;
  auto since = j.find("since");
  if (since == j.end() || !since->is_string()) return Status::InvalidArgument(field + ".since", "must be an RFC 3339 time");
  auto t = kube::ParseRfc3339(field + ".since", since->get<std::string>());
  if (!t.ok()) return t.status();
  r.since = *t;
  auto nodes = j.find("nodes");
  if (nodes == j.end() || !nodes->is_object()) return Status::InvalidArgument(field + ".nodes", "must be an object of node: reason");
  for (const auto& [node, reason] : nodes->items()) {
    if (!reason.is_string()) return Status::InvalidArgument(field + ".nodes." + Cut(node, 64), "must be a string");
    if (r.nodes.size() >= kMaxRecordedNodes) {
      ++r.omitted;
      continue;
    }
    r.nodes[Cut(node, kMaxNodeNameBytes)] = Cut(reason.get<std::string>(), kMaxReasonBytes);
  }
  if (auto omitted = j.find("omitted"); omitted != j.end()) {
    if (!omitted->is_number_integer() || omitted->get<int64_t>() < 0 || omitted->get<int64_t>() > 1'000'000)
      return Status::InvalidArgument(field + ".omitted", "must be a count of nodes");
    r.omitted += static_cast<int>(omitted->get<int64_t>());
  }
  return r;
}

}  // namespace tideslice::service
