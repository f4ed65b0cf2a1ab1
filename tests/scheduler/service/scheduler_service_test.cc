// SchedulerService through its one dispatcher: the request stages run once per verb, the tidal
// gate is a filter stage, bind reaches the binder path (here: refused, not the leader), counters
// follow the verbs.
#include "scheduler/service/scheduler_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <date/date.h>

#include "tests/support/inventory_node.h"

namespace tideslice::service {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

std::string PodArgs(const std::string& workload, std::vector<std::string> nodes) {
  json pod = {{"metadata", {{"name", "p"}, {"namespace", "ml"}, {"uid", "u-p"}, {"labels", {{"tideslice.io/workload", workload}}}}},
              {"spec",
               {{"containers",
                 {{{"name", "c"},
                   {"resources", {{"limits", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "8Gi"},
                                              {"tideslice.io/vnpu-cores", "30"}}}}}}}}}}};
  return json{{"Pod", pod}, {"Nodes", nullptr}, {"NodeNames", nodes}}.dump();
}

tidal::PoolSpec DayPool() {
  v1::Pool p;
  p.set_name("day");
  (*p.mutable_node_selector())["pool"] = "day";
  p.set_timezone("UTC");
  auto* w = p.add_day_windows();
  w->set_start("08:00");
  w->set_end("20:00");
  p.mutable_day_policy()->set_first(v1::WORKLOAD_CLASS_INFERENCE);
  p.mutable_day_policy()->set_other_class_may_borrow(false);
  p.mutable_night_policy()->set_first(v1::WORKLOAD_CLASS_TRAINING);
  p.set_notice_seconds(300);
  p.set_grace_seconds(30);
  auto spec = tidal::ValidatePool(p, "pools[0]");
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  return *spec;
}

class SchedulerServiceVerbs : public ::testing::Test {
 protected:
  SchedulerServiceVerbs() {
    CacheOptions o;
    o.now = [this] { return now_; };
    cache_ = std::make_unique<ClusterCache>(catalog::Catalog::Builtin(), o);
    cache_->ReplaceNodes({testsupport::InventoryNode("in-pool", 2, now_, true, {{"pool", "day"}}),
                          testsupport::InventoryNode("outside", 2, now_)});
    cache_->ReplacePods({});
    service_ = std::make_unique<SchedulerService>(catalog::Catalog::Builtin(), cache_.get(), nullptr, nullptr,
                                                  [] { return false; });
  }
  // Noon UTC: the day tide, inference first, training may not borrow.
  std::chrono::system_clock::time_point now_ = date::sys_days(date::year(2026) / 3 / 4) + std::chrono::hours(12);
  std::unique_ptr<ClusterCache> cache_;
  std::unique_ptr<SchedulerService> service_;
};

TEST_F(SchedulerServiceVerbs, FilterRunsTheRequestStagesOnce) {
  auto reply = service_->Serve("filter", PodArgs("inference", {"in-pool", "outside"}));
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(json::parse(reply.body)["NodeNames"], json({"in-pool", "outside"}));
  EXPECT_EQ(service_->stage_counts().validity, 1u);
  EXPECT_EQ(service_->stage_counts().cluster, 1u);
  EXPECT_EQ(service_->stage_counts().fit_requests, 1u);
  service_->Serve("prioritize", PodArgs("inference", {"in-pool", "outside"}));
  EXPECT_EQ(service_->stage_counts().validity, 2u);
  EXPECT_EQ(service_->stage_counts().fit_memo_hits, 2u) << "prioritize reads filter's verdicts";
  EXPECT_EQ(service_->counters().filter, 1u);
  EXPECT_EQ(service_->counters().prioritize, 1u);
}

TEST_F(SchedulerServiceVerbs, TheTideIsAFilterStage) {
  service_->set_pools({DayPool()}, [this] { return now_; });
  auto reply = json::parse(service_->Serve("filter", PodArgs("training", {"in-pool", "outside"})).body);
  EXPECT_EQ(reply["NodeNames"], json({"outside"}));
  EXPECT_FALSE(reply["FailedNodes"]["in-pool"].get<std::string>().empty());
  EXPECT_EQ(service_->stage_counts().gate_nodes, 2u) << "both nodes fit, both reach the gate";
  EXPECT_EQ(service_->stage_counts().validity, 1u);
  // Inference is what the day tide serves first: both nodes.
  reply = json::parse(service_->Serve("filter", PodArgs("inference", {"in-pool", "outside"})).body);
  EXPECT_EQ(reply["NodeNames"], json({"in-pool", "outside"}));
}

TEST_F(SchedulerServiceVerbs, BindGoesToTheBinderPathAndUnknownVerbsAre404) {
  auto bind = service_->Serve("bind", R"({"PodName":"p","PodNamespace":"ml","PodUID":"u-p","Node":"outside"})");
  EXPECT_EQ(bind.status, 200);
  EXPECT_THAT(json::parse(bind.body)["Error"].get<std::string>(), HasSubstr("not the leader"));
  EXPECT_EQ(service_->counters().bind, 1u);
  EXPECT_EQ(service_->counters().bind_errors, 1u);
  auto bad = service_->Serve("bind", R"({"Node":"outside"})");
  EXPECT_THAT(json::parse(bad.body)["Error"].get<std::string>(), HasSubstr("PodName"));
  EXPECT_EQ(service_->counters().errors, 1u);
  auto unknown = service_->Serve("explode", "{}");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(service_->counters().errors, 2u);
  EXPECT_EQ(service_->stage_counts().validity, 0u) << "neither bind nor an unknown verb ran the placement stages";
}

}  // namespace
}  // namespace tideslice::service
