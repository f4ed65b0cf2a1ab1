// The extender's one dispatcher: for each verb kube-scheduler posts, decode the body, run the
// verb, encode the answer it expects (HTTP 200 with an Error field on failure; 404 for a verb
// that does not exist). What a verb does is the ExtenderVerbs implementation's business: the
// running scheduler's SchedulerService (bind included), or PlacementVerbs over a snapshot.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/http/server.h"
#include "common/status.h"
#include "scheduler/extender/verbs.h"
#include "scheduler/extender/wire.h"

namespace tideslice::extender {

enum class Verb { kFilter, kPrioritize, kPreempt, kBind, kUnknown };
Verb ParseVerb(std::string_view verb);
const char* VerbName(Verb verb);

class ExtenderVerbs {
 public:
  virtual ~ExtenderVerbs() = default;
  virtual FilterResult Filter(const ExtenderArgs& args) = 0;
  virtual std::vector<HostPriority> Prioritize(const ExtenderArgs& args) = 0;
  virtual StatusOr<std::map<std::string, MetaVictims>> Preempt(const PreemptionArgs& args) = 0;
  virtual Status Bind(const BindingArgs& args) = 0;
};

struct Dispatched {
  http::HttpReply reply;
  Verb verb = Verb::kUnknown;
  bool undecodable = false;  // the body did not decode; the reply says why
  bool failed = false;       // the reply carries an Error
};

// decode -> run -> encode, for every verb.
Dispatched Dispatch(ExtenderVerbs& verbs, std::string_view verb, std::string_view body);

using SnapshotSource = std::function<std::shared_ptr<const core::ClusterState>()>;

// Filter, prioritize and preempt over the snapshot of the moment; no binder, so bind answers
// with an Error saying so (tideslice-scheduler binds through SchedulerService).
class PlacementVerbs final : public ExtenderVerbs {
 public:
  PlacementVerbs(const Verbs& verbs, SnapshotSource snapshot) : verbs_(verbs), snapshot_(std::move(snapshot)) {}
  FilterResult Filter(const ExtenderArgs& args) override { return verbs_.Filter(args, *snapshot_()); }
  std::vector<HostPriority> Prioritize(const ExtenderArgs& args) override { return verbs_.Prioritize(args, *snapshot_()); }
  StatusOr<std::map<std::string, MetaVictims>> Preempt(const PreemptionArgs& args) override {
    return verbs_.Preempt(args, *snapshot_());
  }
  Status Bind(const BindingArgs& args) override;

 private:
  const Verbs& verbs_;
  SnapshotSource snapshot_;
};

// Dispatch over PlacementVerbs.
http::HttpReply ServeVerb(const Verbs& verbs, const SnapshotSource& snapshot, const std::string& verb, const std::string& body);

}  // namespace tideslice::extender
