#include "scheduler/extender/service.h"

namespace tideslice::extender {

Verb ParseVerb(std::string_view verb) {
  for (Verb v : {Verb::kFilter, Verb::kPrioritize, Verb::kPreempt, Verb::kBind})
    if (verb == VerbName(v)) return v;
  return Verb::kUnknown;
}

const char* VerbName(Verb verb) {
  switch (verb) {
    case Verb::kFilter: return "filter";
    case Verb::kPrioritize: return "prioritize";
    case Verb::kPreempt: return "preempt";
    case Verb::kBind: return "bind";
    case Verb::kUnknown: break;
  }
  return "unknown";
}

Dispatched Dispatch(ExtenderVerbs& verbs, std::string_view verb, std::string_view body) {
  Dispatched d;
  d.verb = ParseVerb(verb);
  switch (d.verb) {
    case Verb::kFilter: {
      auto args = ParseExtenderArgs(body);
      FilterResult r;
      if (!args.ok()) {
        d.undecodable = true;
        r.error = BoundedText(args.status().ToString(), kMaxReasonBytes);  // it may quote the body
        d.reply = {200, EncodeFilterResult(r, ExtenderArgs{})};
      } else {
        r = verbs.Filter(*args);
        d.reply = {200, EncodeFilterResult(r, *args)};
      }
      d.failed = !r.error.empty();
      return d;
    }
    case Verb::kPrioritize: {
      auto args = ParseExtenderArgs(body);
      d.undecodable = !args.ok();
      // kube-scheduler ignores prioritize errors: an undecodable request gets no opinion.
      d.reply = {200, args.ok() ? EncodeHostPriorityList(verbs.Prioritize(*args)) : "[]"};
      return d;
    }
    case Verb::kPreempt: {
      auto args = ParsePreemptionArgs(body);
      d.undecodable = !args.ok();
      if (!args.ok()) {
        d.reply = {200, EncodePreemptionResult({})};
        return d;
      }
      auto victims = verbs.Preempt(*args);
      d.reply = {200, EncodePreemptionResult(victims.ok() ? *victims : std::map<std::string, MetaVictims>{})};
      return d;
    }
    case Verb::kBind: {
      auto args = ParseBindingArgs(body);
      if (!args.ok()) {
        d.undecodable = d.failed = true;
        d.reply = {200, EncodeBindingResult(BoundedText(args.status().ToString(), kMaxReasonBytes))};
        return d;
      }
      Status s = verbs.Bind(*args);
      d.failed = !s.ok();
      d.reply = {200, EncodeBindingResult(s.ok() ? "" : s.ToString())};
      return d;
    }
    case Verb::kUnknown: break;
  }
  d.failed = true;
  d.reply = {404, R"({"Error":"unknown verb"})"};
  return d;
}

Status PlacementVerbs::Bind(const BindingArgs&) {
  return Status::FailedPrecondition(
      "bind is not available on this endpoint: it serves filter, prioritize and preempt over a cluster snapshot; "
      "tideslice-scheduler binds through its scheduler service");
}

http::HttpReply ServeVerb(const Verbs& verbs, const SnapshotSource& snapshot, const std::string& verb, const std::string& body) {
  PlacementVerbs placement(verbs, snapshot);
  return Dispatch(placement, verb, body).reply;
}

}  // namespace tideslice::extender
