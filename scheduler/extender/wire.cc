#include "scheduler/extender/wire.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>

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

namespace {

bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// The fast decoder's view of the body: the top-level members as byte ranges, found by a flat
// scan that honours strings and escapes and measures nesting. It decides nothing it is not sure
// of: anything unusual (escaped keys, a body too deep or too large, trailing bytes) sends the
// body to the DOM decoder, which also writes the errors.
class TopLevel {
 public:
  // False: let the DOM decoder judge the body.
  bool Scan(std::string_view body, const codec::JsonLimits& limits) {
    if (body.size() > limits.max_bytes) return false;
    size_t i = SkipSpace(body, 0);
    if (i >= body.size() || body[i] != '{') return false;
    i = SkipSpace(body, i + 1);
    if (i < body.size() && body[i] == '}') return SkipSpace(body, i + 1) == body.size();
    while (true) {
      if (i >= body.size() || body[i] != '"') return false;
      const size_t key_start = i + 1;
      size_t key_end = key_start;
      while (key_end < body.size() && body[key_end] != '"') {
        const auto c = static_cast<unsigned char>(body[key_end]);
        if (c == '\\' || c < 0x20 || c > 0x7e) return false;  // escapes, UTF-8: the DOM decoder
        ++key_end;
      }
      if (key_end >= body.size()) return false;
      i = SkipSpace(body, key_end + 1);
      if (i >= body.size() || body[i] != ':') return false;
      i = SkipSpace(body, i + 1);
      const size_t value_start = i;
      if (!SkipValue(body, &i, limits.max_depth)) return false;
      // A repeated key: the last one wins, as in nlohmann's DOM.
      values_.push_back(body.substr(value_start, i - value_start));
      members_[body.substr(key_start, key_end - key_start)] = values_.back();
      i = SkipSpace(body, i);
      if (i >= body.size()) return false;
      if (body[i] == '}') return SkipSpace(body, i + 1) == body.size();
      if (body[i] != ',') return false;
      i = SkipSpace(body, i + 1);
    }
  }

  // Field()'s rule over the members: the exact key, else the first case-insensitive one in key
  // order; a null value counts as absent. Empty view: absent.
  std::string_view Field(std::string_view key) const {
    auto exact = members_.find(key);
    std::string_view v;
    if (exact != members_.end()) {
      v = exact->second;
    } else {
      for (const auto& [k, value] : members_)
        if (IEquals(k, key)) {
          v = value;
          break;
        }
    }
    return v == "null" ? std::string_view() : v;
  }
  // Every member's value in body order, repeated keys included.
  const std::vector<std::string_view>& values() const { return values_; }

 private:
  static size_t SkipSpace(std::string_view s, size_t i) {
    while (i < s.size() && IsJsonSpace(s[i])) ++i;
    return i;
  }
  // Moves past one value (its syntax is checked later: by nlohmann for the pod and unknown
  // members, by ParseNodeNames for the names). Depth counts the top-level object.
  static bool SkipValue(std::string_view s, size_t* pos, int max_depth) {
    size_t i = *pos;
    int depth = 0;
    do {
      if (i >= s.size()) return false;
      const char c = s[i];
      if (c == '"') {
        for (++i; i < s.size() && s[i] != '"'; ++i)
          if (s[i] == '\\') ++i;
        if (i >= s.size()) return false;
        ++i;
      } else if (c == '{' || c == '[') {
        if (++depth + 1 > max_depth) return false;
        ++i;
      } else if (c == '}' || c == ']') {
        if (depth == 0) return false;
        --depth;
        ++i;
      } else if (depth == 0 && (c == ',' || IsJsonSpace(c))) {
        return false;  // an empty value
      } else {
        // A scalar (or, inside a container, its punctuation): up to the next structural byte.
        ++i;
        if (depth == 0)
          while (i < s.size() && s[i] != ',' && s[i] != '}' && !IsJsonSpace(s[i])) ++i;
      }
    } while (depth > 0);
    *pos = i;
    return true;
  }
  std::map<std::string_view, std::string_view> members_;
  std::vector<std::string_view> values_;
};

// `["a","b"]` of plain names (printable ASCII, no escapes) into `out`; false for anything else.
bool ParsePlainNames(std::string_view v, std::vector<std::string>* out) {
  size_t i = 0;
  auto space = [&] {
    while (i < v.size() && IsJsonSpace(v[i])) ++i;
  };
  if (v.empty() || v[0] != '[') return false;
  ++i;
  space();
  if (i < v.size() && v[i] == ']') return i + 1 == v.size();
  out->reserve(v.size() / 8);
  while (true) {
    if (i >= v.size() || v[i] != '"') return false;
    const size_t start = ++i;
    while (i < v.size()) {
      const auto c = static_cast<unsigned char>(v[i]);
      if (c == '"') break;
      if (c == '\\' || c < 0x20 || c > 0x7e) return false;
      ++i;
    }
    if (i >= v.size()) return false;
    out->emplace_back(v.substr(start, i - start));
    ++i;
    space();
    if (i >= v.size()) return false;
    if (v[i] == ']') return i + 1 == v.size();
    if (v[i] != ',') return false;
    ++i;
    space();
  }
}

// The fast decoder: no DOM for the node names (thousands of them), a DOM for the pod only.
// nullopt: the body is for the DOM decoder (which also writes the errors).
std::optional<StatusOr<ExtenderArgs>> ParseExtenderArgsFast(std::string_view body) {
  TopLevel top;
  if (!top.Scan(body, codec::JsonLimits{})) return std::nullopt;
  const std::string_view names = top.Field("NodeNames");
  const std::string_view pod_text = top.Field("Pod");
  if (names.empty() || pod_text.empty()) return std::nullopt;
  // Every other member must be valid JSON too, or the DOM decoder would refuse the body.
  for (std::string_view value : top.values())
    if (value.data() != names.data() && value.data() != pod_text.data() && !json::accept(value)) return std::nullopt;
  ExtenderArgs args;
  args.cache_capable = true;
  if (!ParsePlainNames(names, &args.node_names)) return std::nullopt;
  json pod = json::parse(pod_text, nullptr, /*allow_exceptions=*/false);
  if (pod.is_discarded()) return std::nullopt;
  auto spec = kube::PodSpecFromJson(pod);
  if (!spec.ok())
    return StatusOr<ExtenderArgs>(
        Status::InvalidArgument("ExtenderArgs.Pod." + spec.status().field(), spec.status().message()));
  args.pod = std::move(*spec);
  return StatusOr<ExtenderArgs>(std::move(args));
}

}  // namespace

StatusOr<ExtenderArgs> ParseExtenderArgs(std::string_view body) {
  if (auto fast = ParseExtenderArgsFast(body)) return std::move(*fast);
  return ParseExtenderArgsWithDom(body);
}

StatusOr<ExtenderArgs> ParseExtenderArgsWithDom(std::string_view body) {
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
  // Runs of bytes that need no escape (node names: all of them) are appended at once.
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    const char ch = s[i];
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
  out.append(s.data() + run, s.size() - run);
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
    const int64_t score = list[i].score;
    if (score >= 0 && score <= 9) out += static_cast<char>('0' + score);  // the extender's 0..10
    else out += std::to_string(score);
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
