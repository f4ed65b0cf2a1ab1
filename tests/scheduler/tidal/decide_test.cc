// The tidal controller's decisions, without I/O: when the tide moves (clock, load, hold), who
// gets a notice (floors, borrowing, demand; lowest priority, fewest pods, least work lost),
// when a noticed pod is evicted (deadline, acknowledged checkpoint), notices withdrawn, the
// floors of the gate, and the annotation and state formats.
#include "scheduler/tidal/decide.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <date/date.h>

namespace tideslice::tidal {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

TimePoint Utc(int y, unsigned m, unsigned d, int h, int min = 0, int s = 0) {
  return date::sys_days(date::year(y) / m / d) + hours(h) + minutes(min) + seconds(s);
}

// Every day 08:00-20:00 UTC is day (inference first), the rest night (training first).
PoolSpec MakePool(bool day_borrow, int day_floor = 0, int pending_seconds = 0) {
  v1::Pool p;
  p.set_name("tide");
  (*p.mutable_node_selector())["pool"] = "tide";
  p.set_timezone("UTC");
  auto* w = p.add_day_windows();
  w->set_start("08:00");
  w->set_end("20:00");
  p.mutable_day_policy()->set_other_class_may_borrow(day_borrow);
  p.mutable_day_policy()->set_floor_cards_for_other(day_floor);
  p.mutable_night_policy()->set_floor_cards_for_other(2);
  p.mutable_load_trigger()->set_pending_inference_seconds(pending_seconds);
  p.set_notice_seconds(300);
  p.set_grace_seconds(60);
  auto spec = ValidatePool(p, "pools[0]");
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  return *spec;
}

PoolState Known(Tide tide, TimePoint since) {
  PoolState s;
  s.known = true;
  s.tide = tide;
  s.since = since;
  s.cause = "clock";
  return s;
}

Member Train(const std::string& key, std::vector<std::string> cards, int priority = 0,
             TimePoint started = Utc(2026, 11, 23, 0)) {
  Member m;
  m.key = key;
  m.uid = key + "-uid";
  m.cls = v1::WORKLOAD_CLASS_TRAINING;
  m.priority = priority;
  m.started = started;
  m.cards = std::move(cards);
  return m;
}

Member Serve(const std::string& key, std::vector<std::string> cards) {
  Member m = Train(key, std::move(cards));
  m.cls = v1::WORKLOAD_CLASS_INFERENCE;
  return m;
}

PoolView Cards(int n) {
  PoolView v;
  for (int i = 0; i < n; ++i) v.cards.push_back("c" + std::to_string(i));
  return v;
}

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

const TimePoint kMorning = Utc(2026, 11, 23, 8);  // Monday 08:00 UTC: the day begins

TEST(TidalDecide, FirstRoundRecordsTheClockTideWithoutATransition) {
  Decision d = Decide(MakePool(false), {}, Cards(4), Utc(2026, 11, 23, 3));
  EXPECT_FALSE(d.transition);
  EXPECT_TRUE(d.state.known);
  EXPECT_EQ(d.state.tide, Tide::kNight);
  EXPECT_EQ(d.state.cause, "start");
  EXPECT_TRUE(d.notice.empty());
}

TEST(TidalDecide, DaySwitchWithoutBorrowingNoticesTrainingAboveTheFloor) {
  PoolView v = Cards(6);
  v.members = {Train("ml/a", {"c0", "c1"}), Train("ml/b", {"c2"}), Train("ml/c", {"c3"}, /*priority=*/10),
               Serve("ml/s", {"c4"})};
  // dayPolicy keeps 1 card for training: of the 4 training cards 3 must be freed.
  Decision d = Decide(MakePool(false, /*day_floor=*/1), Known(Tide::kNight, Utc(2026, 11, 22, 20)), v, kMorning);
  EXPECT_TRUE(d.transition);
  EXPECT_EQ(d.from, Tide::kNight);
  EXPECT_EQ(d.state.tide, Tide::kDay);
  EXPECT_EQ(d.state.cause, "clock");
  EXPECT_EQ(d.state.transition, "tide@2026-11-23T08:00:00Z");
  EXPECT_EQ(d.cards_needed, 3);
  EXPECT_EQ(Sorted(d.notice), (std::vector<std::string>{"ml/a", "ml/b"}));  // the priority-10 pod stays
  EXPECT_TRUE(d.evict.empty());

  // The next round: those two are under notice, nothing more to do until their deadline.
  for (auto& m : v.members)
    if (m.key == "ml/a" || m.key == "ml/b") m.notice = Notice{"tide", d.state.transition, kMorning, kMorning + seconds(300)};
  Decision again = Decide(MakePool(false, 1), d.state, v, kMorning + seconds(5));
  EXPECT_FALSE(again.transition);
  EXPECT_TRUE(again.notice.empty());
  EXPECT_TRUE(again.evict.empty());
}

TEST(TidalDecide, VictimsLowestPriorityThenFewestThenLeastWorkLost) {
  PoolView v = Cards(8);
  v.members = {Train("ml/high", {"c0", "c1"}, 5), Train("ml/old", {"c2"}, 0, Utc(2026, 11, 20, 0)),
               Train("ml/young", {"c3"}, 0, Utc(2026, 11, 23, 7)), Train("ml/wide", {"c4", "c5"}, 0)};
  // Two cards: the one low-priority pod holding two goes, alone.
  EXPECT_EQ(ChooseVictims(v, 2, kMorning), (std::vector<std::string>{"ml/wide"}));
  // One card among equals: the one started most recently loses the least.
  v.members.pop_back();
  EXPECT_EQ(ChooseVictims(v, 1, kMorning), (std::vector<std::string>{"ml/young"}));
  // ...unless the older one has just checkpointed.
  v.members[1].checkpointed_at = Utc(2026, 11, 23, 7, 59);
  EXPECT_EQ(ChooseVictims(v, 1, kMorning), (std::vector<std::string>{"ml/old"}));
  // Three cards: the low-priority pods hold only two, so the high-priority one must go too; with
  // it one low-priority pod is enough, and the one with the most work at risk is spared.
  EXPECT_EQ(Sorted(ChooseVictims(v, 3, kMorning)), (std::vector<std::string>{"ml/high", "ml/old"}));
}

TEST(TidalDecide, SharedCardsCountHalfAndCardsWithInferenceNeverFree) {
  PoolView v = Cards(4);
  v.members = {Train("ml/x", {"c0"}), Train("ml/y", {"c0"}), Train("ml/z", {"c1"}), Train("ml/t", {"c2"}),
               Serve("ml/s", {"c2"})};
  // One card: z frees one alone; x or y would each free half of c0.
  EXPECT_EQ(ChooseVictims(v, 1, kMorning), (std::vector<std::string>{"ml/z"}));
  // Two cards: z and both x and y; t shares its card with inference and never helps.
  EXPECT_EQ(Sorted(ChooseVictims(v, 2, kMorning)), (std::vector<std::string>{"ml/x", "ml/y", "ml/z"}));
  EXPECT_EQ(Sorted(ChooseVictims(v, 5, kMorning)), (std::vector<std::string>{"ml/x", "ml/y", "ml/z"}));
}

TEST(TidalDecide, PruneDropsAVictimTheOthersMadeUnnecessary) {
  PoolView v = Cards(3);
  // Greedy takes p (priority 0, one card) first, then q (priority 1, two cards); q alone would do.
  v.members = {Train("ml/p", {"c0"}, 0), Train("ml/q", {"c1", "c2"}, 1)};
  EXPECT_EQ(ChooseVictims(v, 2, kMorning), (std::vector<std::string>{"ml/q"}));
}

TEST(TidalDecide, BorrowingTrainingIsDisplacedOnlyOnDemand) {
  PoolSpec pool = MakePool(true, 0, /*pending_seconds=*/30);
  PoolView v = Cards(4);
  v.members = {Train("ml/a", {"c0"}), Train("ml/b", {"c1"}), Train("ml/c", {"c2", "c3"})};
  const PoolState day = Known(Tide::kDay, kMorning);
  const TimePoint t = Utc(2026, 11, 23, 10);
  EXPECT_TRUE(Decide(pool, day, v, t).notice.empty());  // nobody waits: training keeps borrowing
  v.waiting = {{"ml/serve-1", v1::WORKLOAD_CLASS_INFERENCE, t - seconds(10), 1}};
  EXPECT_TRUE(Decide(pool, day, v, t).notice.empty());  // waiting, but not longer than the trigger's 30 s
  v.waiting[0].since = t - seconds(45);
  v.waiting.push_back({"ml/train-2", v1::WORKLOAD_CLASS_TRAINING, t - seconds(600), 4});  // does not count
  Decision d = Decide(pool, day, v, t);
  EXPECT_EQ(d.cards_needed, 1);
  // One card is needed: a, b and c would each free it with as much work lost; c would take two
  // cards from training, so a goes (b ties with a and loses on name only).
  ASSERT_EQ(d.notice, (std::vector<std::string>{"ml/a"}));
  // Once one is leaving, the same demand asks for nothing more.
  for (auto& m : v.members)
    if (m.key == d.notice[0]) m.notice = Notice{"tide", "x", t, t + seconds(300)};
  EXPECT_TRUE(Decide(pool, day, v, t + seconds(5)).notice.empty());
  // A free card covers demand: nothing to displace.
  PoolView roomy = Cards(5);
  roomy.members = {Train("ml/a", {"c0"})};
  roomy.waiting = {{"ml/serve-1", v1::WORKLOAD_CLASS_INFERENCE, t - seconds(45), 1}};
  EXPECT_TRUE(Decide(pool, day, roomy, t).notice.empty());
}

TEST(TidalDecide, HeadroomIsKeptFreeWhileTrainingBorrows) {
  v1::Pool p;
  p.set_name("h");
  (*p.mutable_node_selector())["pool"] = "h";
  p.set_timezone("UTC");
  auto* w = p.add_day_windows();
  w->set_start("08:00");
  w->set_end("20:00");
  p.mutable_day_policy()->set_other_class_may_borrow(true);
  p.mutable_day_policy()->set_headroom_cards(2);
  p.set_notice_seconds(300);
  auto pool = ValidatePool(p, "pools[0]");
  ASSERT_TRUE(pool.ok());
  PoolView v = Cards(6);
  v.members = {Train("ml/a", {"c0", "c1"}), Train("ml/b", {"c2"}), Serve("ml/s", {"c3"})};
  const TimePoint t = Utc(2026, 11, 23, 12);
  // Two cards are free: the headroom holds, nobody is displaced.
  EXPECT_TRUE(Decide(*pool, Known(Tide::kDay, kMorning), v, t).notice.empty());
  // One more inference replica took a card: one short of the headroom.
  v.members.push_back(Serve("ml/s2", {"c4"}));
  Decision d = Decide(*pool, Known(Tide::kDay, kMorning), v, t);
  EXPECT_EQ(d.cards_needed, 1);
  EXPECT_EQ(d.notice, (std::vector<std::string>{"ml/b"}));
  // The gate keeps borrowers from eating the headroom.
  TideNow now{Tide::kDay, false, {}, 6, 2, 3, /*free_cards=*/3};
  EXPECT_TRUE(Gate(*pool, v1::WORKLOAD_CLASS_TRAINING, now, 1, t).allowed);
  GateVerdict g = Gate(*pool, v1::WORKLOAD_CLASS_TRAINING, now, 2, t);
  EXPECT_FALSE(g.allowed);
  EXPECT_NE(g.reason.find("dayPolicy.headroomCards"), std::string::npos) << g.reason;
}

TEST(TidalDecide, NoticesGoOutAheadOfAClockSwitchWithTheSwitchAsDeadline) {
  PoolSpec pool = MakePool(false);  // notice 300 s
  PoolView v = Cards(2);
  v.members = {Train("ml/a", {"c0", "c1"})};
  const PoolState night = Known(Tide::kNight, Utc(2026, 11, 22, 20));
  EXPECT_TRUE(Decide(pool, night, v, Utc(2026, 11, 23, 7, 54)).notice.empty());  // 6 min before: not yet
  Decision d = Decide(pool, night, v, Utc(2026, 11, 23, 7, 56));
  EXPECT_FALSE(d.transition);  // still night until 08:00
  EXPECT_EQ(d.state.tide, Tide::kNight);
  EXPECT_EQ(d.notice, (std::vector<std::string>{"ml/a"}));
  EXPECT_EQ(d.deadline, kMorning);
  // The next round (still night) keeps the notice instead of withdrawing it.
  v.members[0].notice = Notice{"tide", "x", Utc(2026, 11, 23, 7, 56), kMorning};
  Decision next = Decide(pool, night, v, Utc(2026, 11, 23, 7, 58));
  EXPECT_TRUE(next.withdraw.empty());
  EXPECT_TRUE(next.notice.empty());
  EXPECT_TRUE(Decide(pool, night, v, kMorning).evict.size() == 1);
}

TEST(TidalDecide, EvictionAtTheDeadlineOrEarlierOnAnAcknowledgedCheckpoint) {
  PoolSpec pool = MakePool(false);
  const TimePoint issued = kMorning;
  PoolView v = Cards(2);
  v.members = {Train("ml/a", {"c0"}), Train("ml/b", {"c1"})};
  for (auto& m : v.members) m.notice = Notice{"tide", "t1", issued, issued + seconds(300)};
  const PoolState day = Known(Tide::kDay, kMorning);

  Decision d = Decide(pool, day, v, issued + seconds(100));
  EXPECT_TRUE(d.evict.empty());
  // A checkpoint from before the notice acknowledges nothing; one after it does.
  v.members[0].checkpointed_at = issued - seconds(1);
  v.members[1].checkpointed_at = issued + seconds(50);
  d = Decide(pool, day, v, issued + seconds(100));
  ASSERT_EQ(d.evict.size(), 1u);
  EXPECT_EQ(d.evict[0].key, "ml/b");
  EXPECT_EQ(d.evict[0].uid, "ml/b-uid");
  EXPECT_TRUE(d.evict[0].acknowledged);

  d = Decide(pool, day, v, issued + seconds(300));
  ASSERT_EQ(d.evict.size(), 2u);
  EXPECT_FALSE(d.evict[0].acknowledged);
  EXPECT_NE(d.evict[0].why.find("deadline 2026-11-23T08:05:00Z passed"), std::string::npos) << d.evict[0].why;
  EXPECT_EQ(d.overdue, 0);
  // Still there after deadline + grace (60 s) + slack: overdue, e.g. blocked by a PDB.
  EXPECT_EQ(Decide(pool, day, v, issued + seconds(300 + 60 + 31)).overdue, 2);
}

TEST(TidalDecide, NoticesAreWithdrawnWhenTheTideTurnsBack) {
  PoolSpec pool = MakePool(false);
  PoolView v = Cards(2);
  v.members = {Train("ml/a", {"c0"})};
  v.members[0].notice = Notice{"tide", "t1", Utc(2026, 11, 23, 19, 58), Utc(2026, 11, 23, 20, 3)};
  Decision d = Decide(pool, Known(Tide::kDay, kMorning), v, Utc(2026, 11, 23, 20, 1));
  EXPECT_TRUE(d.transition);
  EXPECT_EQ(d.state.tide, Tide::kNight);
  EXPECT_EQ(d.withdraw, (std::vector<std::string>{"ml/a"}));
  EXPECT_TRUE(d.evict.empty());
}

TEST(TidalDecide, PendingInferenceMovesTheTideEarlyAndHoldsIt) {
  PoolSpec pool = MakePool(false, 0, /*pending_seconds=*/120);
  const TimePoint night = Utc(2026, 11, 23, 2);
  PoolView v = Cards(2);
  v.members = {Train("ml/a", {"c0", "c1"})};
  v.waiting = {{"ml/serve", v1::WORKLOAD_CLASS_INFERENCE, night - seconds(60), 1}};
  const PoolState at_night = Known(Tide::kNight, Utc(2026, 11, 22, 20));
  EXPECT_FALSE(Decide(pool, at_night, v, night).transition);  // 60 s: patience left

  Decision d = Decide(pool, at_night, v, night + seconds(60));
  EXPECT_TRUE(d.transition);
  EXPECT_EQ(d.state.tide, Tide::kDay);
  EXPECT_EQ(d.state.cause, "load");
  EXPECT_EQ(d.state.load_hold_until, night + seconds(60) + LoadHold(pool));
  EXPECT_NE(d.reason.find("1 inference pod(s) waiting longer than 120 s"), std::string::npos) << d.reason;
  EXPECT_EQ(d.notice, (std::vector<std::string>{"ml/a"}));

  // The pod got its cards; the hold keeps the tide until it runs out, then the clock wins.
  v.waiting.clear();
  Decision held = Decide(pool, d.state, v, night + minutes(20));
  EXPECT_FALSE(held.transition);
  EXPECT_EQ(held.state.tide, Tide::kDay);
  Decision back = Decide(pool, d.state, v, night + seconds(60) + LoadHold(pool));
  EXPECT_TRUE(back.transition);
  EXPECT_EQ(back.state.tide, Tide::kNight);
  EXPECT_EQ(back.state.cause, "clock");
}

TEST(TidalDecide, PrometheusDemandAboveItsThresholdMovesTheTide) {
  v1::Pool p;
  p.set_name("q");
  (*p.mutable_node_selector())["pool"] = "q";
  p.set_timezone("Europe/Berlin");
  auto* w = p.add_day_windows();
  w->set_start("08:00");
  w->set_end("20:00");
  p.mutable_load_trigger()->set_prometheus_query("sum(rate(requests_total[5m]))");
  p.mutable_load_trigger()->set_prometheus_threshold(500);
  p.mutable_load_trigger()->set_hold_seconds(600);
  auto pool = ValidatePool(p, "pools[0]");
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  const TimePoint night = Utc(2026, 11, 23, 3);
  PoolView v = Cards(1);
  v.demand = 400;
  EXPECT_FALSE(Decide(*pool, Known(Tide::kNight, night - hours(5)), v, night).transition);
  v.demand = 650;
  Decision d = Decide(*pool, Known(Tide::kNight, night - hours(5)), v, night);
  EXPECT_TRUE(d.transition);
  EXPECT_EQ(d.state.load_hold_until, night + seconds(600));
}

TEST(TidalDecide, DstDayStartIsAClockTransition) {
  // New York springs forward on 2027-03-14: the day of a 09:00-17:00 window begins at 13:00 UTC
  // (09:00 EDT), where the day before it began at 14:00 UTC (09:00 EST).
  v1::Pool p;
  p.set_name("ny");
  (*p.mutable_node_selector())["pool"] = "ny";
  p.set_timezone("America/New_York");
  auto* w = p.add_day_windows();
  w->set_start("09:00");
  w->set_end("17:00");
  auto pool = ValidatePool(p, "pools[0]");
  ASSERT_TRUE(pool.ok());
  PoolState s = Known(Tide::kNight, Utc(2027, 3, 13, 22));
  EXPECT_FALSE(Decide(*pool, s, Cards(1), Utc(2027, 3, 14, 12, 59)).transition);  // 08:59 EDT
  Decision d = Decide(*pool, s, Cards(1), Utc(2027, 3, 14, 13, 0));               // 09:00 EDT
  EXPECT_TRUE(d.transition);
  EXPECT_EQ(d.state.tide, Tide::kDay);
}

TEST(TidalGate, FloorsBoundEachClass) {
  PoolSpec pool = MakePool(false);  // night: training first, 2 of the cards kept for inference
  TideNow t;
  t.tide = Tide::kNight;
  t.pool_cards = 8;
  t.first_class_cards = 5;
  t.other_class_cards = 1;
  const TimePoint now = Utc(2026, 11, 23, 2);
  EXPECT_TRUE(Gate(pool, v1::WORKLOAD_CLASS_TRAINING, t, 1, now).allowed);
  GateVerdict v = Gate(pool, v1::WORKLOAD_CLASS_TRAINING, t, 2, now);
  EXPECT_FALSE(v.allowed);
  EXPECT_NE(v.reason.find("keeps 2 of its 8 cards for the other class in its night tide (nightPolicy.floorCardsForOther)"),
            std::string::npos)
      << v.reason;
  EXPECT_TRUE(Gate(pool, v1::WORKLOAD_CLASS_INFERENCE, t, 1, now).allowed);  // within the floor
  t.other_class_cards = 2;
  v = Gate(pool, v1::WORKLOAD_CLASS_INFERENCE, t, 1, now);
  EXPECT_FALSE(v.allowed);
  EXPECT_NE(v.reason.find("the 2 cards kept for inference are taken"), std::string::npos) << v.reason;
  // Held by load: the reason names the hold instead of the clock.
  t.tide = Tide::kDay;
  t.held_by_load = true;
  t.hold_until = Utc(2026, 11, 23, 2, 30);
  v = Gate(pool, v1::WORKLOAD_CLASS_TRAINING, t, 1, now);
  EXPECT_FALSE(v.allowed);
  EXPECT_NE(v.reason.find("until the load that holds it ends (at least until Mon 02:30 UTC)"), std::string::npos) << v.reason;
}

TEST(TidalFormats, NoticeAndStateRoundTripAndBadTextIsExplained) {
  Notice n{"tide", "tide@2026-11-23T08:00:00Z", Utc(2026, 11, 23, 8), Utc(2026, 11, 23, 8, 5)};
  auto back = ParseNotice(FormatNotice(n));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->deadline, n.deadline);
  EXPECT_EQ(back->transition, n.transition);
  EXPECT_EQ(ParseNotice("{}").status().field(), kNoticeAnnotation);
  EXPECT_FALSE(ParseNotice("not json").ok());
  EXPECT_FALSE(ParseNotice(R"({"pool":"p","transition":"t","issued":"yesterday","deadline":"x"})").ok());

  PoolState s = Known(Tide::kDay, Utc(2026, 11, 23, 8));
  s.cause = "load";
  s.load_hold_until = Utc(2026, 11, 23, 9);
  s.transition = "tide@x";
  auto sb = ParsePoolState(FormatPoolState(s));
  ASSERT_TRUE(sb.ok());
  EXPECT_EQ(sb->tide, Tide::kDay);
  EXPECT_EQ(sb->load_hold_until, s.load_hold_until);
  EXPECT_EQ(sb->cause, "load");
  EXPECT_FALSE(ParsePoolState(R"({"tide":"dusk","since":"2026-11-23T08:00:00Z","loadHoldUntil":"2026-11-23T08:00:00Z"})").ok());
  EXPECT_FALSE(ParsePoolState(R"({"tide":"day","since":5})").ok());

  auto t = ParseTime("x", "2026-11-23T16:00:00.250+08:00");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(std::chrono::floor<seconds>(*t), Utc(2026, 11, 23, 8));
  EXPECT_FALSE(ParseTime("x", "2026-11-23 08:00").ok());
  EXPECT_FALSE(ParseTime("x", "2026-11-23T08:00:00Zjunk").ok());
  EXPECT_NE(ParseTime("x", "-1743-01-01T00:00:00Z").status().message().find("between 1970 and 2200"), std::string::npos);
  EXPECT_FALSE(ParseTime("x", "9999-12-31T23:59:59Z").ok());
}

}  // namespace
}  // namespace tideslice::tidal
