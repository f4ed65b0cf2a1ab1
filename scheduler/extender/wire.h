// The scheduler extender's wire format (k8s.io/kube-scheduler/extender/v1), exactly as
// kube-scheduler speaks it (KUBE-WIRE.md §3): capitalised Go field names, nulls rather than
// omitted fields, keys emitted in Go's declaration order, parsed case-insensitively like Go's
// encoding/json. The embedded Pod is ordinary Kubernetes JSON and goes through kube::PodSpec.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/kube/pod_spec.h"
#include "common/status.h"

namespace tideslice::extender {

struct ExtenderArgs {
  kube::PodSpec pod;
  // nodeCacheCapable: true -> NodeNames; false -> Nodes.items (we keep each item's JSON to echo).
  bool cache_capable = true;
  std::vector<std::string> node_names;
  std::vector<std::string> node_items_json;  // parallel to node_names when !cache_capable
};

struct FilterResult {
  std::vector<std::string> passed;                     // in request order
  std::map<std::string, std::string> failed;           // node -> reason (preemption may help)
  std::map<std::string, std::string> unresolvable;     // node -> reason (it will not)
  std::string error;
};

struct HostPriority {
  std::string host;
  int64_t score = 0;  // 0..10
};

struct BindingArgs {
  std::string pod_name, pod_namespace, pod_uid, node;
};

struct MetaVictims {
  std::vector<std::string> pod_uids;
  int64_t num_pdb_violations = 0;
};

struct PreemptionArgs {
  kube::PodSpec pod;
  std::map<std::string, MetaVictims> node_to_victims;  // from NodeNameToMetaVictims or NodeNameToVictims
};

// Request bodies are external input: parsed with depth and size limits (codec::BoundedParse;
// nlohmann recurses once per nesting level when copying or dumping), read with type checks.
// ExtenderArgs decodes the node names without a JSON DOM (a flat scan of the body, a DOM for the
// pod only); a body it is not sure of goes to the DOM decoder, which gives the same result and
// writes the errors. The two agree on every input (fuzz target "extender").
StatusOr<ExtenderArgs> ParseExtenderArgs(std::string_view body);
StatusOr<ExtenderArgs> ParseExtenderArgsWithDom(std::string_view body);
StatusOr<BindingArgs> ParseBindingArgs(std::string_view body);
StatusOr<PreemptionArgs> ParsePreemptionArgs(std::string_view body);

// `text` cut to at most `max_bytes` bytes, ending in "..." when cut, never inside a UTF-8
// character (replies quote request content, and kube-scheduler reads them as JSON strings).
std::string BoundedText(std::string_view text, size_t max_bytes);

// `args` says how to answer: NodeNames for a cache-capable config, Nodes for the other.
std::string EncodeFilterResult(const FilterResult& result, const ExtenderArgs& args);
std::string EncodeHostPriorityList(const std::vector<HostPriority>& list);
std::string EncodeBindingResult(const std::string& error);
std::string EncodePreemptionResult(const std::map<std::string, MetaVictims>& node_to_victims);

}  // namespace tideslice::extender
