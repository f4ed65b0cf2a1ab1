#include "scheduler/extender/service.h"

namespace tideslice::extender {

http::HttpReply ServeVerb(const Verbs& verbs, const SnapshotSource& snapshot, const std::string& verb, const std::string& body) {
  auto cluster = snapshot();
  if (verb == "filter") {
    auto args = ParseExtenderArgs(body);
    if (!args.ok()) {
      ExtenderArgs empty;
      FilterResult r;
      r.error = BoundedText(args.status().ToString(), kMaxReasonBytes);  // it may quote the body
      return {200, EncodeFilterResult(r, empty)};
    }
    return {200, EncodeFilterResult(verbs.Filter(*args, *cluster), *args)};
  }
  if (verb == "prioritize") {
    auto args = ParseExtenderArgs(body);
    if (!args.ok()) return {200, "[]"};  // kube-scheduler ignores prioritize errors; give no opinion
    return {200, EncodeHostPriorityList(verbs.Prioritize(*args, *cluster))};
  }
  if (verb == "preempt") {
    auto args = ParsePreemptionArgs(body);
    if (!args.ok()) return {200, EncodePreemptionResult({})};
    auto victims = verbs.Preempt(*args, *cluster);
    return {200, EncodePreemptionResult(victims.ok() ? *victims : std::map<std::string, MetaVictims>{})};
  }
  if (verb == "bind") {
    auto args = ParseBindingArgs(body);
    if (!args.ok()) return {200, EncodeBindingResult(BoundedText(args.status().ToString(), kMaxReasonBytes))};
    return {200, EncodeBindingResult("bind is not available in this build: TideSlice binds through the Kubernetes "
                                     "API with the assignment annotation, which this build does not include yet")};
  }
  return {404, R"({"Error":"unknown verb"})"};
}

}  // namespace tideslice::extender
