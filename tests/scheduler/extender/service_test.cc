// The one dispatcher: every verb decoded, run once on its handler, encoded; bind reaches the
// implementation's Bind; undecodable bodies and unknown verbs reach no handler.
#include "scheduler/extender/service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace tideslice::extender {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class Recording final : public ExtenderVerbs {
 public:
  FilterResult Filter(const ExtenderArgs& args) override {
    calls.push_back("filter:" + args.pod.name);
    FilterResult r;
    r.passed = args.node_names;
    return r;
  }
  std::vector<HostPriority> Prioritize(const ExtenderArgs& args) override {
    calls.push_back("prioritize:" + args.pod.name);
    return {{args.node_names.at(0), 7}};
  }
  StatusOr<std::map<std::string, MetaVictims>> Preempt(const PreemptionArgs& args) override {
    calls.push_back("preempt:" + args.pod.name);
    return std::map<std::string, MetaVictims>{{"n1", {{"uid-v"}, 0}}};
  }
  Status Bind(const BindingArgs& args) override {
    calls.push_back("bind:" + args.pod_namespace + "/" + args.pod_name + "@" + args.node);
    return bind_result;
  }
  std::vector<std::string> calls;
  Status bind_result = Status::Ok();
};

const char* kArgs = R"({"Pod":{"metadata":{"name":"p","namespace":"ml"}},"Nodes":null,"NodeNames":["n1","n2"]})";

TEST(ExtenderDispatch, EachVerbRunsItsHandlerOnce) {
  Recording v;
  Dispatched f = Dispatch(v, "filter", kArgs);
  EXPECT_EQ(f.verb, Verb::kFilter);
  EXPECT_EQ(f.reply.status, 200);
  EXPECT_EQ(nlohmann::json::parse(f.reply.body)["NodeNames"], nlohmann::json({"n1", "n2"}));
  Dispatched p = Dispatch(v, "prioritize", kArgs);
  EXPECT_EQ(p.reply.body, R"([{"Host":"n1","Score":7}])");
  Dispatched e = Dispatch(v, "preempt", R"({"Pod":{"metadata":{"name":"p"}},"NodeNameToMetaVictims":{}})");
  EXPECT_THAT(e.reply.body, HasSubstr("uid-v"));
  Dispatched b = Dispatch(v, "bind", R"({"PodName":"p","PodNamespace":"ml","PodUID":"u","Node":"n1"})");
  EXPECT_EQ(b.verb, Verb::kBind);
  EXPECT_FALSE(b.failed);
  EXPECT_EQ(nlohmann::json::parse(b.reply.body)["Error"], "");
  EXPECT_THAT(v.calls, ElementsAre("filter:p", "prioritize:p", "preempt:p", "bind:ml/p@n1"));
}

TEST(ExtenderDispatch, BindFailuresAndUndecodableBodiesAnswerWithAnError) {
  Recording v;
  v.bind_result = Status::Unavailable("not the leader");
  Dispatched b = Dispatch(v, "bind", R"({"PodName":"p","Node":"n1"})");
  EXPECT_TRUE(b.failed);
  EXPECT_FALSE(b.undecodable);
  EXPECT_THAT(nlohmann::json::parse(b.reply.body)["Error"].get<std::string>(), HasSubstr("not the leader"));
  Dispatched bad = Dispatch(v, "bind", R"({"Node":"n1"})");
  EXPECT_TRUE(bad.undecodable);
  EXPECT_THAT(nlohmann::json::parse(bad.reply.body)["Error"].get<std::string>(), HasSubstr("PodName"));
  Dispatched f = Dispatch(v, "filter", "{not json");
  EXPECT_TRUE(f.undecodable);
  EXPECT_TRUE(f.failed);
  EXPECT_FALSE(nlohmann::json::parse(f.reply.body)["Error"].get<std::string>().empty());
  EXPECT_EQ(Dispatch(v, "prioritize", "[]").reply.body, "[]");
  EXPECT_THAT(v.calls, ElementsAre("bind:default/p@n1"));
}

TEST(ExtenderDispatch, UnknownVerbIs404AndReachesNoHandler) {
  Recording v;
  for (const char* verb : {"", "Filter", "bindx", "../filter"}) {
    Dispatched d = Dispatch(v, verb, kArgs);
    EXPECT_EQ(d.verb, Verb::kUnknown) << verb;
    EXPECT_EQ(d.reply.status, 404) << verb;
    EXPECT_TRUE(d.failed);
  }
  EXPECT_TRUE(v.calls.empty());
  for (Verb verb : {Verb::kFilter, Verb::kPrioritize, Verb::kPreempt, Verb::kBind}) EXPECT_EQ(ParseVerb(VerbName(verb)), verb);
}

TEST(ExtenderDispatch, PlacementVerbsSayThatTheyDoNotBind) {
  Verbs verbs(catalog::Catalog::Builtin(), core::Context{});
  auto snapshot = std::make_shared<const core::ClusterState>();
  http::HttpReply r = ServeVerb(verbs, [&] { return snapshot; }, "bind", R"({"PodName":"p","Node":"n1"})");
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(nlohmann::json::parse(r.body)["Error"].get<std::string>(), HasSubstr("bind is not available on this endpoint"));
}

}  // namespace
}  // namespace tideslice::extender
