// The tidal controller against the test API server: a clock switch notices the right training
// pods (annotation + Event), evicts them at the deadline or earlier on an acknowledged
// checkpoint, retries an eviction a PodDisruptionBudget refuses, moves the tide early for
// waiting inference, records its state so that a restart mid-transition resumes without double
// notices, keeps several pools apart, and leaves writing to the leader.
#include "scheduler/service/tidal_controller.h"

#include <gtest/gtest.h>

#include <date/date.h>

#include "common/codec/annotations.h"
#include "tests/support/inventory_node.h"
#include "tests/support/kube_env.h"

namespace tideslice::service {
namespace {

using kube::json;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using tidal::TimePoint;

TimePoint Utc(int y, unsigned m, unsigned d, int h, int min = 0, int s = 0) {
  return date::sys_days(date::year(y) / m / d) + hours(h) + minutes(min) + seconds(s);
}

tidal::PoolSpec MakePool(const std::string& name, const std::string& tz, int pending_seconds = 0) {
  v1::Pool p;
  p.set_name(name);
  (*p.mutable_node_selector())["pool"] = name;
  p.set_timezone(tz);
  auto* w = p.add_day_windows();
  w->set_start("08:00");
  w->set_end("20:00");
  p.mutable_load_trigger()->set_pending_inference_seconds(pending_seconds);
  p.set_notice_seconds(300);
  p.set_grace_seconds(30);
  auto spec = tidal::ValidatePool(p, "pools[0]");
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  return *spec;
}

class TidalControllerTest : public ::testing::Test {
 protected:
  TidalControllerTest() {
    CacheOptions o;
    o.now = [this] { return now_; };
    o.stale_after = hours(24 * 365);  // the fake clock jumps hours; heartbeats are not the subject
    cache_ = std::make_unique<ClusterCache>(catalog::Catalog::Builtin(), o);
  }

  void AddNode(const std::string& name, const std::string& pool, int cards) {
    env_.server->Upsert("nodes", testsupport::InventoryNode(name, cards, now_, true, {{"pool", pool}}));
  }

  // A running pod of `cls` holding whole cards `cards` (indexes) on `node`.
  void AddRunning(const std::string& name, const std::string& cls, const std::string& node, std::vector<int> cards,
                  int priority = 0, json labels = json::object()) {
    v1::PodAssignment a;
    a.set_node_name(node);
    a.set_phase(v1::ASSIGNMENT_PHASE_ALLOCATED);
    a.mutable_allocated_at()->set_seconds(std::chrono::duration_cast<seconds>(now_.time_since_epoch()).count());
    auto* c = a.add_containers();
    c->set_name("c");
    for (int i : cards) {
      auto* s = c->add_slices();
      s->set_card_uuid(node + "-GPU-" + std::to_string(i));
      s->set_card_index(i);
      s->set_whole_card(true);
      s->set_compute_permille(1000);
    }
    labels["tideslice.io/workload"] = cls;
    // Created first, as the API server does, then bound with an assignment naming its UID (the
    // scheduler's cache accounts only an assignment that names the pod it is on).
    json pod = env_.server->Upsert(
        "pods", {{"metadata",
                  {{"name", name},
                   {"namespace", "ml"},
                   {"uid", name + "-uid"},
                   {"labels", labels},
                   {"annotations", {{std::string(codec::kAssignmentAnnotation), codec::EncodeAssignment(a)}}}}},
                 {"spec",
                  {{"schedulerName", "tideslice-scheduler"},
                   {"nodeName", node},
                   {"priority", priority},
                   {"containers", {{{"name", "c"}, {"resources", {{"limits", {{"tideslice.io/vnpu", std::to_string(cards.size())}}}}}}}}}},
                 {"status", {{"phase", "Running"}}}});
    a.set_pod_uid(pod["metadata"]["uid"].get<std::string>());
    pod["metadata"]["annotations"][std::string(codec::kAssignmentAnnotation)] = codec::EncodeAssignment(a);
    env_.server->Upsert("pods", pod);
  }

  void AddWaitingInference(const std::string& name, TimePoint created) {
    env_.server->Upsert("pods", {{"metadata",
                                  {{"name", name},
                                   {"namespace", "ml"},
                                   {"uid", name + "-uid"},
                                   {"creationTimestamp", tidal::FormatTime(created)},
                                   {"labels", {{"tideslice.io/workload", "inference"}}}}},
                                 {"spec",
                                  {{"schedulerName", "tideslice-scheduler"},
                                   {"containers", {{{"name", "c"}, {"resources", {{"limits", {{"tideslice.io/vnpu", "1"}}}}}}}}}},
                                 {"status", {{"phase", "Pending"}}}});
  }

  // The watch catching up: the cache sees what the server holds now.
  void Sync() {
    cache_->ReplaceNodes(env_.server->List("nodes"));
    cache_->ReplacePods(env_.server->List("pods"));
  }

  std::unique_ptr<TidalController> Controller(std::vector<tidal::PoolSpec> pools) {
    TidalControllerOptions o;
    o.now = [this] { return now_; };
    return std::make_unique<TidalController>(env_.client.get(), cache_.get(), std::move(pools), &board_, o);
  }

  std::optional<json> PodObj(const std::string& name) { return env_.server->Get("pods", "ml", name); }
  bool Noticed(const std::string& name) {
    auto p = PodObj(name);
    return p && p->at("metadata").value("annotations", json::object()).contains(tidal::kNoticeAnnotation);
  }
  int Events(const std::string& reason, const std::string& about = "") {
    int n = 0;
    for (const auto& e : env_.server->List("events"))
      if (e.value("reason", std::string()) == reason &&
          (about.empty() || e["involvedObject"].value("name", std::string()) == about))
        n++;
    return n;
  }
  std::string NodeLabel(const std::string& node, const std::string& key) {
    auto n = env_.server->Get("nodes", "", node);
    return n ? n->at("metadata").value("labels", json::object()).value(key, std::string()) : "";
  }
  json State() {
    auto cm = env_.server->Get("configmaps", "tideslice-system", "tideslice-tides");
    return cm ? json::parse(cm->at("data").at("tide").get<std::string>()) : json();
  }

  testsupport::KubeEnv env_;
  TimePoint now_ = Utc(2026, 11, 23, 6);  // Monday 06:00 UTC: night in a UTC pool
  std::unique_ptr<ClusterCache> cache_;
  TideBoard board_;
};

TEST_F(TidalControllerTest, DaySwitchNoticesThenEvictsAtTheDeadlineAndRecordsEverything) {
  AddNode("n1", "tide", 4);
  AddRunning("train-a", "training", "n1", {0, 1});
  AddRunning("train-b", "training", "n1", {2});
  AddRunning("serve", "inference", "n1", {3});
  Sync();
  auto c = Controller({MakePool("tide", "UTC")});
  c->Tick(true);
  EXPECT_EQ(State()["tide"], "night");
  EXPECT_EQ(State()["cause"], "start");
  EXPECT_EQ(NodeLabel("n1", "tideslice.io/tide"), "night");
  EXPECT_EQ(NodeLabel("n1", "tideslice.io/pool"), "tide");
  EXPECT_FALSE(Noticed("train-a"));
  ASSERT_TRUE(board_.Get("tide"));
  EXPECT_EQ(board_.Get("tide")->tide, tidal::Tide::kNight);
  EXPECT_EQ(board_.Get("tide")->first_class_cards, 3);

  now_ = Utc(2026, 11, 23, 8, 0, 2);  // the day begins
  c->Tick(true);
  EXPECT_EQ(State()["tide"], "day");
  EXPECT_EQ(State()["cause"], "clock");
  EXPECT_EQ(NodeLabel("n1", "tideslice.io/tide"), "day");
  EXPECT_TRUE(Noticed("train-a"));
  EXPECT_TRUE(Noticed("train-b"));
  EXPECT_FALSE(Noticed("serve"));
  auto a = PodObj("train-a");
  EXPECT_EQ(a->at("metadata")["annotations"][tidal::kDeadlineAnnotation], "2026-11-23T08:05:02Z");
  EXPECT_EQ(Events("CheckpointNotice", "train-a"), 1);
  EXPECT_EQ(Events("TideChanged"), 1);
  EXPECT_EQ(c->counters("tide").notices, 2u);
  EXPECT_EQ(c->counters("tide").transitions_clock, 1u);
  EXPECT_EQ(c->counters("tide").noticed_now, 2);

  // A round before the watch shows the notices, and one after: nobody is noticed twice.
  now_ += seconds(5);
  c->Tick(true);
  Sync();
  c->Tick(true);
  EXPECT_EQ(Events("CheckpointNotice"), 2);
  EXPECT_EQ(c->counters("tide").notices, 2u);
  EXPECT_TRUE(PodObj("train-a"));

  now_ = Utc(2026, 11, 23, 8, 5, 2);  // the deadline
  c->Tick(true);
  EXPECT_FALSE(PodObj("train-a"));
  EXPECT_FALSE(PodObj("train-b"));
  EXPECT_TRUE(PodObj("serve"));
  EXPECT_EQ(c->counters("tide").evictions_deadline, 2u);
  EXPECT_EQ(Events("TidalEviction"), 2);
  EXPECT_EQ(env_.server->requests("POST pods/eviction"), 2);
}

// A leader whose lease can no longer be proven does not evict (the next leader decides); with
// time left it evicts, each call bounded by that time.
TEST_F(TidalControllerTest, NoEvictionWithoutTimeLeftInTheLease) {
  AddNode("n1", "tide", 2);
  AddRunning("train-a", "training", "n1", {0, 1});
  Sync();
  std::chrono::milliseconds left{0};
  TidalControllerOptions o;
  o.now = [this] { return now_; };
  o.lease_time_left = [&] { return left; };
  TidalController c(env_.client.get(), cache_.get(), {MakePool("tide", "UTC")}, &board_, o);
  c.Tick(true);
  now_ = Utc(2026, 11, 23, 8, 0, 2);  // the day begins: notice
  c.Tick(true);
  Sync();
  ASSERT_TRUE(Noticed("train-a"));
  now_ = Utc(2026, 11, 23, 8, 5, 2);  // the deadline, but the lease has run out
  c.Tick(true);
  EXPECT_TRUE(PodObj("train-a"));
  EXPECT_EQ(env_.server->requests("POST pods/eviction"), 0);
  left = std::chrono::seconds(8);
  c.Tick(true);
  EXPECT_FALSE(PodObj("train-a"));
  EXPECT_EQ(env_.server->requests("POST pods/eviction"), 1);
}

TEST_F(TidalControllerTest, EvictionRefusedByAPodDisruptionBudgetIsRetriedUntilAllowed) {
  AddNode("n1", "tide", 2);
  AddRunning("trainer", "training", "n1", {0, 1}, 0, {{"app", "trainer"}});
  env_.server->Upsert("poddisruptionbudgets", {{"metadata", {{"name", "keep-trainer"}, {"namespace", "ml"}}},
                                               {"spec", {{"minAvailable", 1}, {"selector", {{"matchLabels", {{"app", "trainer"}}}}}}}});
  Sync();
  auto c = Controller({MakePool("tide", "UTC")});
  c->Tick(true);
  now_ = Utc(2026, 11, 23, 8);
  c->Tick(true);
  Sync();
  now_ += seconds(300);
  c->Tick(true);
  now_ += seconds(5);
  c->Tick(true);
  EXPECT_TRUE(PodObj("trainer"));
  EXPECT_EQ(c->counters("tide").evictions_blocked, 2u);
  EXPECT_EQ(c->counters("tide").blocked_now, 1);
  EXPECT_EQ(Events("TidalEvictionBlocked", "trainer"), 1);  // one Event, however many retries
  now_ += seconds(60);
  c->Tick(true);
  EXPECT_EQ(c->counters("tide").overdue_now, 1);  // past deadline + grace + slack: the switch is stuck

  ASSERT_TRUE(env_.server->Remove("poddisruptionbudgets", "ml", "keep-trainer"));
  now_ += seconds(5);
  c->Tick(true);
  EXPECT_FALSE(PodObj("trainer"));
  EXPECT_EQ(c->counters("tide").evictions_deadline, 1u);
  EXPECT_EQ(c->counters("tide").blocked_now, 0);
}

TEST_F(TidalControllerTest, AcknowledgedCheckpointIsEvictedBeforeTheDeadline) {
  AddNode("n1", "tide", 2);
  AddRunning("fast", "training", "n1", {0});
  AddRunning("slow", "training", "n1", {1});
  Sync();
  auto c = Controller({MakePool("tide", "UTC")});
  c->Tick(true);
  now_ = Utc(2026, 11, 23, 8);
  c->Tick(true);
  // The workload saved its state 20 s after the notice and says so.
  json fast = *PodObj("fast");
  fast["metadata"]["annotations"][tidal::kCheckpointedAnnotation] = "2026-11-23T08:00:20Z";
  env_.server->Upsert("pods", fast);
  // A malformed acknowledgement acknowledges nothing.
  json slow = *PodObj("slow");
  slow["metadata"]["annotations"][tidal::kCheckpointedAnnotation] = "soon";
  env_.server->Upsert("pods", slow);
  Sync();
  now_ += seconds(30);
  c->Tick(true);
  EXPECT_FALSE(PodObj("fast"));
  EXPECT_TRUE(PodObj("slow"));
  EXPECT_EQ(c->counters("tide").evictions_acknowledged, 1u);
  EXPECT_EQ(c->counters("tide").evictions_deadline, 0u);
}

TEST_F(TidalControllerTest, RestartMidTransitionResumesWithoutDoubleNotices) {
  AddNode("n1", "tide", 3);
  AddRunning("t1", "training", "n1", {0});
  AddRunning("t2", "training", "n1", {1});
  Sync();
  {
    auto first = Controller({MakePool("tide", "UTC")});
    first->Tick(true);
    now_ = Utc(2026, 11, 23, 8);
    first->Tick(true);  // notices t1 and t2, then "crashes" before the watch shows them
  }
  EXPECT_TRUE(Noticed("t1"));
  EXPECT_TRUE(Noticed("t2"));
  const std::string deadline = PodObj("t1")->at("metadata")["annotations"][tidal::kDeadlineAnnotation];

  // The new leader's cache has not seen the notices yet: it re-decides the same victims, finds
  // their notices on the fresh read, and keeps them as they were.
  now_ += seconds(40);
  auto second = Controller({MakePool("tide", "UTC")});
  second->Tick(true);
  EXPECT_EQ(second->counters("tide").notices, 0u);
  EXPECT_EQ(second->counters("tide").transitions_clock, 0u);  // the recorded state says day already
  EXPECT_EQ(Events("CheckpointNotice"), 2);
  EXPECT_EQ(Events("TideChanged"), 1);
  EXPECT_EQ(PodObj("t1")->at("metadata")["annotations"][tidal::kDeadlineAnnotation], deadline);

  // And it carries out the evictions at the original deadline.
  Sync();
  now_ = Utc(2026, 11, 23, 8, 5);
  second->Tick(true);
  EXPECT_FALSE(PodObj("t1"));
  EXPECT_FALSE(PodObj("t2"));
  EXPECT_EQ(second->counters("tide").evictions_deadline, 2u);
}

TEST_F(TidalControllerTest, WaitingInferenceMovesTheTideEarly) {
  AddNode("n1", "tide", 2);
  AddRunning("night-train", "training", "n1", {0, 1});
  AddWaitingInference("serve", now_ - seconds(30));
  Sync();
  auto c = Controller({MakePool("tide", "UTC", /*pending_seconds=*/120)});
  c->Tick(true);
  EXPECT_EQ(State()["tide"], "night");
  now_ += seconds(100);  // waiting 130 s
  c->Tick(true);
  EXPECT_EQ(State()["tide"], "day");
  EXPECT_EQ(State()["cause"], "load");
  EXPECT_EQ(c->counters("tide").transitions_load, 1u);
  EXPECT_TRUE(board_.Get("tide")->held_by_load);
  EXPECT_TRUE(Noticed("night-train"));
}

TEST_F(TidalControllerTest, PoolsInDifferentTimeZonesMoveApart) {
  AddNode("eu", "berlin", 1);
  AddNode("cn", "shanghai", 1);
  AddRunning("eu-train", "training", "eu", {0});
  AddRunning("cn-train", "training", "cn", {0});
  Sync();
  now_ = Utc(2026, 11, 23, 2);  // 03:00 in Berlin (night), 10:00 in Shanghai (day)
  auto c = Controller({MakePool("berlin", "Europe/Berlin"), MakePool("shanghai", "Asia/Shanghai")});
  c->Tick(true);
  EXPECT_EQ(NodeLabel("eu", "tideslice.io/tide"), "night");
  EXPECT_EQ(NodeLabel("cn", "tideslice.io/tide"), "day");
  EXPECT_FALSE(Noticed("eu-train"));
  EXPECT_TRUE(Noticed("cn-train"));  // day without borrowing: training makes room at once
  EXPECT_EQ(c->counters("shanghai").notices, 1u);
  EXPECT_EQ(c->counters("berlin").notices, 0u);
}

TEST_F(TidalControllerTest, OnlyTheLeaderWritesAndFollowersFollowTheRecord) {
  AddNode("n1", "tide", 1);
  AddRunning("t", "training", "n1", {0});
  Sync();
  now_ = Utc(2026, 11, 23, 9);
  auto follower = Controller({MakePool("tide", "UTC")});
  follower->Tick(false);
  EXPECT_EQ(env_.server->requests("POST configmaps"), 0);
  EXPECT_EQ(env_.server->requests("PUT configmaps"), 0);
  EXPECT_EQ(env_.server->requests("PATCH nodes"), 0);
  EXPECT_FALSE(Noticed("t"));
  EXPECT_EQ(board_.Get("tide")->tide, tidal::Tide::kDay);  // no record yet: the clock

  // The leader's record says night (against the clock): followers apply the record.
  json state = {{"tide", "night"}, {"since", "2026-11-23T08:30:00Z"}, {"cause", "clock"},
                {"transition", "x"}, {"loadHoldUntil", "1970-01-01T00:00:00Z"}};
  env_.server->Upsert("configmaps", {{"metadata", {{"name", "tideslice-tides"}, {"namespace", "tideslice-system"}}},
                                     {"data", {{"tide", state.dump()}}}});
  follower->Tick(false);
  EXPECT_EQ(board_.Get("tide")->tide, tidal::Tide::kNight);
  // A record that cannot be read starts the pool afresh instead of stopping the controller.
  env_.server->Upsert("configmaps", {{"metadata", {{"name", "tideslice-tides"}, {"namespace", "tideslice-system"}}},
                                     {"data", {{"tide", "{broken"}}}});
  follower->Tick(false);
  EXPECT_EQ(board_.Get("tide")->tide, tidal::Tide::kDay);
}

TEST_F(TidalControllerTest, AFloorLargerThanThePoolIsReportedOnce) {
  AddNode("n1", "tide", 2);
  Sync();
  tidal::PoolSpec pool = MakePool("tide", "UTC");
  pool.night_policy.set_floor_cards_for_other(4);
  auto c = Controller({pool});
  c->Tick(true);
  c->Tick(true);
  EXPECT_EQ(Events("PoolFloorTooLarge"), 1);
  AddNode("n2", "tide", 2);  // now the pool has the cards
  Sync();
  c->Tick(true);
  EXPECT_EQ(Events("PoolFloorTooLarge"), 1);
}

TEST(PrometheusAnswer, SumsVectorsAndExplainsEverythingElse) {
  auto v = ParsePrometheusAnswer(
      R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1.7e9,"12.5"]},{"metric":{},"value":[1.7e9,"2.5"]}]}})");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_DOUBLE_EQ(*v, 15);
  auto s = ParsePrometheusAnswer(R"({"status":"success","data":{"resultType":"scalar","result":[1.7e9,"3"]}})");
  ASSERT_TRUE(s.ok());
  EXPECT_DOUBLE_EQ(*s, 3);
  auto empty = ParsePrometheusAnswer(R"({"status":"success","data":{"resultType":"vector","result":[]}})");
  ASSERT_TRUE(empty.ok());
  EXPECT_DOUBLE_EQ(*empty, 0);
  auto error = ParsePrometheusAnswer(R"({"status":"error","errorType":"bad_data","error":"parse error at char 4"})");
  EXPECT_NE(error.status().message().find("parse error at char 4"), std::string::npos);
  auto matrix = ParsePrometheusAnswer(R"({"status":"success","data":{"resultType":"matrix","result":[]}})");
  EXPECT_NE(matrix.status().message().find("sum(...)"), std::string::npos);
  EXPECT_FALSE(ParsePrometheusAnswer(R"({"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}})").ok());
  EXPECT_FALSE(ParsePrometheusAnswer(R"({"status":"success","data":{"resultType":"scalar","result":[1,2]}})").ok());
  EXPECT_FALSE(ParsePrometheusAnswer("<html>").ok());
  EXPECT_FALSE(PrometheusDemand("prometheus:9090").ok());
}

}  // namespace
}  // namespace tideslice::service
