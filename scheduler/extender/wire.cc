#include "scheduler/extender/wire.h"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "common/codec/bounded_json.h"
#include "common/kube/pod_json.h"

namespace tideslice::extender {
namespace {

using nlohmann::json;
using ordered = nlohmann::ordered_json;  // keeps Go's field order in what we emit

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(x) == std::tolower(y); });
}

// Go's encoding/json: an exact key match wins, otherwise the first case-insensitive one.
const json* Field(const json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto exact = obj.find(std::string(key));
  if (exact != obj.end()) return exact->is_null() ? nullptr : &*exact;
  for (auto it = obj.begin(); it != obj.end(); ++it)
    if (IEquals(it.key(), key)) return it->is_null() ? nullptr : &*it;
  return nullptr;
}

StatusOr<json> ParseObject(std::string_view body, const char* what) {
  auto j = codec::BoundedParse(body, what);
  if (!j.ok()) return Status::InvalidArgument(what, "request body " + j.status().message());
  if (!j->is_object()) return Status::InvalidArgument(what, "request body is not a JSON object");
  return j;
}

StatusOr<kube::PodSpec> ParsePod(const json& root, const char* what) {
  const json* pod = Field(root, "Pod");
  if (!pod) return Status::InvalidArgument(std::string(what) + ".Pod", "is missing");
  auto spec = kube::PodSpecFromJson(*pod);
  if (!spec.ok()) return Status::InvalidArgument(std::string(what) + ".Pod." + spec.status().field(), spec.status().message());
  return spec;
}

StatusOr<std::string> ReadString(const json& root, std::string_view key, const std::string& where) {
  const json* v = Field(root, key);
  if (!v) return std::string();
  if (!v->is_string()) return Status::InvalidArgument(where + "." + std::string(key), "must be a string");
  return v->get<std::string>();
}

// Answers quote request content: invalid UTF-8 is replaced rather than thrown on (the same
// bytes as dump() for valid text).
std::string Dump(const ordered& j) { return j.dump(-1, ' ', false, ordered::error_handler_t::replace); }

ordered StringMapOrNull(const std::map<std::string, std::string>& m) {
  if (m.empty()) return nullptr;
  ordered o = ordered::object();
  for (const auto& [k, v] : m) o[k] = v;
  return o;
}

}  // namespace

std::string BoundedText(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  static constexpr std::string_view kEllipsis = "...";
  size_t keep = max_bytes > kEllipsis.size() ? max_bytes - kEllipsis.size() : 0;
  // Back off to the start of a character: continuation bytes are 10xxxxxx.
  while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xC0) == 0x80) --keep;
  std::string out(text.substr(0, keep));
  out += kEllipsis.substr(0, std::min(kEllipsis.size(), max_bytes));
  return out;
}

StatusOr<ExtenderArgs> ParseExtenderArgs(std::string_view body) {
  auto root = ParseObject(body, "ExtenderArgs");
  if (!root.ok()) return root.status();
  ExtenderArgs args;
  auto pod = ParsePod(*root, "ExtenderArgs");
  if (!pod.ok()) return pod.status();
  args.pod = std::move(*pod);
  const json* names = Field(*root, "NodeNames");
  const json* nodes = Field(*root, "Nodes");
  if (names) {
    if (!names->is_array()) return Status::InvalidArgument("ExtenderArgs.NodeNames", "must be a list of node names");
    for (const auto& n : *names) {
      if (!n.is_string()) return Status::InvalidArgument("ExtenderArgs.NodeNames", "must hold strings");
      args.node_names.push_back(n.get<std::string>());
    }
    args.cache_capable = true;
  } else if (nodes) {
    const json* items = Field(*nodes, "items");
    if (!nodes->is_object() || (items && !items->is_array()))
      return Status::InvalidArgument("ExtenderArgs.Nodes", "must be a NodeList with items");
    args.cache_capable = false;
    if (items) {
      for (const auto& item : *items) {
        const json* meta = Field(item, "metadata");
        const json* name = meta ? Field(*meta, "name") : nullptr;
        if (!name || !name->is_string())
          return Status::InvalidArgument("ExtenderArgs.Nodes.items", "every node needs metadata.name");
        args.node_names.push_back(name->get<std::string>());
        args.node_items_json.push_back(item.dump());
      }
    }
  } else {
    return Status::InvalidArgument("ExtenderArgs", "has neither NodeNames nor Nodes");
  }
  return args;
}

StatusOr<BindingArgs> ParseBindingArgs(std::string_view body) {
  auto root = ParseObject(body, "ExtenderBindingArgs");
  if (!root.ok()) return root.status();
  BindingArgs b;
  const std::string where = "ExtenderBindingArgs";
  for (auto [key, out] : {std::pair<const char*, std::string*>{"PodName", &b.pod_name},
                          {"PodNamespace", &b.pod_namespace}, {"PodUID", &b.pod_uid}, {"Node", &b.node}}) {
    auto v = ReadString(*root, key, where);
    if (!v.ok()) return v.status();
    *out = std::move(*v);
  }
  if (b.pod_name.empty()) return Status::InvalidArgument(where + ".PodName", "is required");
  if (b.node.empty()) return Status::InvalidArgument(where + ".Node", "is required");
  if (b.pod_namespace.empty()) b.pod_namespace = "default";
  return b;
}

StatusOr<PreemptionArgs> ParsePreemptionArgs(std::string_view body) {
  auto root = ParseObject(body, "ExtenderPreemptionArgs");
  if (!root.ok()) return root.status();
  PreemptionArgs p;
  auto pod = ParsePod(*root, "ExtenderPreemptionArgs");
  if (!pod.ok()) return pod.status();
  p.pod = std::move(*pod);
  auto read_victims = [&](const json& map, bool meta) -> Status {
    if (!map.is_object()) return Status::InvalidArgument("ExtenderPreemptionArgs", "victims must be a map of node to victims");
    for (auto it = map.begin(); it != map.end(); ++it) {
      MetaVictims v;
      const json* pods = Field(*it, "Pods");
      if (pods && !pods->is_array()) return Status::InvalidArgument("ExtenderPreemptionArgs." + it.key() + ".Pods", "must be a list");
      if (pods)
        for (const auto& pod_json : *pods) {
          const json* uid = meta ? Field(pod_json, "UID") : nullptr;
          if (!meta) {
            const json* m = Field(pod_json, "metadata");
            uid = m ? Field(*m, "uid") : nullptr;
          }
          if (!uid || !uid->is_string())
            return Status::InvalidArgument("ExtenderPreemptionArgs." + it.key(), "every victim needs a UID");
          v.pod_uids.push_back(uid->get<std::string>());
        }
      if (const json* n = Field(*it, "NumPDBViolations"); n && n->is_number_integer()) v.num_pdb_violations = n->get<int64_t>();
      p.node_to_victims[it.key()] = std::move(v);
    }
    return Status::Ok();
  };
  if (const json* meta = Field(*root, "NodeNameToMetaVictims")) {
    TS_RETURN_IF_ERROR(read_victims(*meta, true));
  } else if (const json* full = Field(*root, "NodeNameToVictims")) {
    TS_RETURN_IF_ERROR(read_victims(*full, false));
  }
  return p;
}

namespace {

// Appends `s` as a JSON string, escaped exactly as nlohmann's dump() escapes (short forms for
// \b \f \n \r \t, \u00xx for other control characters), so that the hand-built answers below
// are byte-identical to the DOM-built ones while skipping a DOM of thousands of node names.
void AppendJsonString(std::string& out, std::string_view s) {
  static const char* hex = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

void AppendStringMapOrNull(std::string& out, const std::map<std::string, std::string>& m) {
  if (m.empty()) {
    out += "null";
    return;
  }
  out += '{';
  bool first = true;
  for (const auto& [k, v] : m) {
    if (!first) out += ',';
    first = false;
    AppendJsonString(out, k);
    out += ':';
    AppendJsonString(out, v);
  }
  out += '}';
}

}  // namespace

std::string EncodeFilterResult(const FilterResult& r, const ExtenderArgs& args) {
  if (args.cache_capable) {
    // The hot path (nodeCacheCapable: true), written directly.
    std::string out;
    out.reserve(64 + r.passed.size() * 16);
    out += R"({"Nodes":null,"NodeNames":[)";
    for (size_t i = 0; i < r.passed.size(); ++i) {
      if (i) out += ',';
      AppendJsonString(out, r.passed[i]);
    }
    out += R"(],"FailedNodes":)";
    AppendStringMapOrNull(out, r.failed);
    out += R"(,"FailedAndUnresolvableNodes":)";
    AppendStringMapOrNull(out, r.unresolvable);
    out += R"(,"Error":)";
    AppendJsonString(out, r.error);
    out += '}';
    return out;
  }
  ordered out;
  if (args.cache_capable) {
    out["Nodes"] = nullptr;
    out["NodeNames"] = r.passed;  // an empty list, not null: null would mean "no answer"
  } else {
    ordered items = ordered::array();
    for (size_t i = 0; i < args.node_names.size(); ++i)
      if (std::find(r.passed.begin(), r.passed.end(), args.node_names[i]) != r.passed.end())
        items.push_back(ordered::parse(args.node_items_json[i]));
    out["Nodes"] = {{"metadata", ordered::object()}, {"items", items}};
    out["NodeNames"] = nullptr;
  }
  out["FailedNodes"] = StringMapOrNull(r.failed);
  out["FailedAndUnresolvableNodes"] = StringMapOrNull(r.unresolvable);
  out["Error"] = r.error;
  return Dump(out);
}

std::string EncodeHostPriorityList(const std::vector<HostPriority>& list) {
  std::string out = "[";
  out.reserve(list.size() * 32 + 2);
  for (size_t i = 0; i < list.size(); ++i) {
    if (i) out += ',';
    out += R"({"Host":)";
    AppendJsonString(out, list[i].host);
    out += R"(,"Score":)";
    out += std::to_string(list[i].score);
    out += '}';
  }
  out += ']';
  return out;
}

std::string EncodeBindingResult(const std::string& error) {
  ordered out;
  out["Error"] = error;
  return Dump(out);
}

std::string EncodePreemptionResult(const std::map<std::string, MetaVictims>& node_to_victims) {
  ordered map = ordered::object();
  for (const auto& [node, v] : node_to_victims) {
    ordered pods = ordered::array();
    for (const auto& uid : v.pod_uids) pods.push_back({{"UID", uid}});
    map[node] = {{"Pods", pods}, {"NumPDBViolations", v.num_pdb_violations}};
  }
  ordered out;
  out["NodeNameToMetaVictims"] = map;
  return Dump(out);
}

}  // namespace tideslice::extender
