// The extender wire format, checked against the encodings kube-scheduler's own compatibility
// test asserts (KUBE-WIRE.md §3.1) and against Go's case-insensitive, null-tolerant decoding.
#include "scheduler/extender/wire.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tideslice::extender {
namespace {

using ::testing::HasSubstr;

TEST(ExtenderWire, EncodingsMatchUpstreamByteForByte) {
  EXPECT_EQ(EncodePreemptionResult({{"foo", {{"myuid"}, 1}}}),
            R"({"NodeNameToMetaVictims":{"foo":{"Pods":[{"UID":"myuid"}],"NumPDBViolations":1}}})");
  EXPECT_EQ(EncodeBindingResult("myerror"), R"({"Error":"myerror"})");
  EXPECT_EQ(EncodeHostPriorityList({{"myhost", 1}}), R"([{"Host":"myhost","Score":1}])");
  EXPECT_EQ(EncodeHostPriorityList({}), "[]");
}

TEST(ExtenderWire, CacheCapableFilterAnswersWithNodeNamesAndNulls) {
  ExtenderArgs args;
  args.node_names = {"n1", "n2"};
  FilterResult r;
  r.passed = {"n1"};
  r.failed = {{"n2", "insufficient example.com/gpu"}};
  EXPECT_EQ(EncodeFilterResult(r, args),
            R"({"Nodes":null,"NodeNames":["n1"],"FailedNodes":{"n2":"insufficient example.com/gpu"},)"
            R"("FailedAndUnresolvableNodes":null,"Error":""})");
  FilterResult none;  // nothing passes: an empty list, never null (null would filter out every node too, but say nothing)
  EXPECT_THAT(EncodeFilterResult(none, args), HasSubstr(R"("NodeNames":[])"));
}

TEST(ExtenderWire, NonCacheCapableFilterEchoesTheNodeObjects) {
  auto args = ParseExtenderArgs(R"({"Pod":{"metadata":{"name":"p"}},"Nodes":{"metadata":{},"items":[
      {"metadata":{"name":"a"},"status":{"daemonEndpoints":{"kubeletEndpoint":{"Port":10250}}}},
      {"metadata":{"name":"b"}}]},"NodeNames":null})");
  ASSERT_TRUE(args.ok()) << args.status().ToString();
  EXPECT_FALSE(args->cache_capable);
  EXPECT_EQ(args->node_names, (std::vector<std::string>{"a", "b"}));
  FilterResult r;
  r.passed = {"a"};
  std::string out = EncodeFilterResult(r, *args);
  EXPECT_THAT(out, HasSubstr(R"("Nodes":{"metadata":{},"items":[{"metadata":{"name":"a"})"));
  EXPECT_THAT(out, HasSubstr(R"("Port":10250)"));  // the capitalised core API quirk survives
  EXPECT_THAT(out, HasSubstr(R"("NodeNames":null)"));
}

TEST(ExtenderWire, ParsesCaseInsensitivelyLikeGo) {
  auto args = ParseExtenderArgs(R"({"pod":{"metadata":{"name":"p","namespace":"ml"},"spec":{"containers":null}},
                                    "nodes":null,"nodenames":["n1","n2"]})");
  ASSERT_TRUE(args.ok()) << args.status().ToString();
  EXPECT_EQ(args->pod.Key(), "ml/p");
  EXPECT_EQ(args->node_names.size(), 2u);
  auto bind = ParseBindingArgs(R"({"podname":"p","PODNAMESPACE":"ml","PodUID":"u","node":"n1"})");
  ASSERT_TRUE(bind.ok()) << bind.status().ToString();
  EXPECT_EQ(bind->pod_namespace, "ml");
  EXPECT_EQ(bind->node, "n1");
  // An exact match wins over a case-insensitive one, as in encoding/json.
  auto exact = ParseBindingArgs(R"({"podname":"wrong","PodName":"right","Node":"n"})");
  EXPECT_EQ(exact->pod_name, "right");
}

TEST(ExtenderWire, PreemptionArgsInBothForms) {
  auto meta = ParsePreemptionArgs(R"({"Pod":{"metadata":{"name":"p"}},"NodeNameToVictims":null,
      "NodeNameToMetaVictims":{"n1":{"Pods":[{"UID":"u1"},{"UID":"u2"}],"NumPDBViolations":1}}})");
  ASSERT_TRUE(meta.ok()) << meta.status().ToString();
  EXPECT_EQ(meta->node_to_victims.at("n1").pod_uids, (std::vector<std::string>{"u1", "u2"}));
  EXPECT_EQ(meta->node_to_victims.at("n1").num_pdb_violations, 1);
  auto full = ParsePreemptionArgs(R"({"Pod":{"metadata":{"name":"p"}},"NodeNameToMetaVictims":null,
      "NodeNameToVictims":{"n2":{"Pods":[{"metadata":{"name":"v","uid":"u9"}}],"NumPDBViolations":0}}})");
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  EXPECT_EQ(full->node_to_victims.at("n2").pod_uids, std::vector<std::string>{"u9"});
}

TEST(ExtenderWire, BadBodiesNameTheField) {
  EXPECT_EQ(ParseExtenderArgs("nope").status().field(), "ExtenderArgs");
  EXPECT_EQ(ParseExtenderArgs(R"({"NodeNames":["a"]})").status().field(), "ExtenderArgs.Pod");
  EXPECT_EQ(ParseExtenderArgs(R"({"Pod":{},"NodeNames":"a"})").status().field(), "ExtenderArgs.NodeNames");
  EXPECT_THAT(ParseExtenderArgs(R"({"Pod":{}})").status().message(), HasSubstr("neither NodeNames nor Nodes"));
  EXPECT_EQ(ParseExtenderArgs(R"({"Pod":{"metadata":{"name":1}},"NodeNames":[]})").status().field(),
            "ExtenderArgs.Pod.metadata.name");
  EXPECT_EQ(ParseBindingArgs(R"({"PodName":"p"})").status().field(), "ExtenderBindingArgs.Node");
  EXPECT_THAT(ParsePreemptionArgs(R"({"Pod":{},"NodeNameToMetaVictims":{"n":{"Pods":[{}]}}})").status().message(),
              HasSubstr("needs a UID"));
}

// nlohmann copies and dumps recursively: 100k nested brackets in a node item (echoed with
// dump()) or anywhere else used to exhaust the stack. Bodies are refused past the depth limit.
TEST(ExtenderWire, DeepNestingIsRefusedBeforeAnyRecursion) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::vector<std::string> bodies = {
      R"({"Pod":{},"Nodes":{"items":[{"metadata":{"name":"n"},"x":)" + deep + "}]}}",
      R"({"Pod":{},"Nodes":{"items":)" + deep + "}}",
      R"({"Pod":{"metadata":{"labels":{"a":)" + deep + R"(}}},"NodeNames":["n"]})"};
  for (const auto& body : bodies) {
    auto args = ParseExtenderArgs(body);
    ASSERT_FALSE(args.ok());
    EXPECT_THAT(args.status().message(), HasSubstr("nests deeper than"));
  }
  EXPECT_FALSE(ParseBindingArgs(R"({"PodName":)" + deep + "}").ok());
  EXPECT_FALSE(ParsePreemptionArgs(R"({"Pod":{},"NodeNameToVictims":{"n":)" + deep + "}}").ok());
  // Real node objects nest far less: an item 20 levels deep is still echoed.
  const std::string nested = std::string(20, '[') + std::string(20, ']');
  auto ok = ParseExtenderArgs(R"({"Pod":{},"Nodes":{"items":[{"metadata":{"name":"n"},"x":)" + nested + "}]}}");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  FilterResult r;
  r.passed = {"n"};
  EXPECT_THAT(EncodeFilterResult(r, *ok), HasSubstr(nested));
}

TEST(ExtenderWire, BoundedTextCutsOnCharacterBoundaries) {
  EXPECT_EQ(BoundedText("short", 10), "short");
  EXPECT_EQ(BoundedText("0123456789", 8), "01234...");
  // "é" is two bytes: a cut never leaves half of one.
  EXPECT_EQ(BoundedText("aaaa\xc3\xa9zzzz", 8), "aaaa...");
  EXPECT_EQ(BoundedText("aaa\xc3\xa9zzzz", 8), "aaa\xc3\xa9...");
  EXPECT_EQ(BoundedText("abcdef", 2), "..");
}

}  // namespace
}  // namespace tideslice::extender
