// Tidal pool validation and the clock: time zones, DST changes in both directions, windows past
// midnight and into the next week, weekends and a leap day.
#include "scheduler/tidal/pool.h"

#include <gtest/gtest.h>

#include <date/date.h>

namespace tideslice::tidal {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::system_clock;

GateVerdict ClockGate(const PoolSpec& pool, v1::WorkloadClass cls, system_clock::time_point now) {
  return Gate(pool, cls, ClockTideNow(pool, now), 1, now);
}

system_clock::time_point Utc(int y, unsigned m, unsigned d, int h, int min = 0) {
  return date::sys_days(date::year(y) / m / d) + hours(h) + minutes(min);
}

v1::Pool Pool(const std::string& tz, std::vector<std::tuple<std::vector<std::string>, std::string, std::string>> windows) {
  v1::Pool p;
  p.set_name("p");
  (*p.mutable_node_selector())["pool"] = "p";
  p.set_timezone(tz);
  for (const auto& [days, start, end] : windows) {
    auto* w = p.add_day_windows();
    for (const auto& d : days) w->add_weekdays(d);
    w->set_start(start);
    w->set_end(end);
  }
  return p;
}

PoolSpec Valid(const v1::Pool& p) {
  auto spec = ValidatePool(p, "pools[0]");
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  return *spec;
}

TEST(TidalClock, WeekdayDaysInShanghai) {
  PoolSpec p = Valid(Pool("Asia/Shanghai", {{{"Mon", "Tue", "Wed", "Thu", "Fri"}, "08:00", "20:00"}}));
  // Monday 2026-11-23 09:00 in Shanghai is 01:00 UTC.
  EXPECT_EQ(ClockTide(p, Utc(2026, 11, 23, 1)), Tide::kDay);
  EXPECT_EQ(ClockTide(p, Utc(2026, 11, 22, 23, 59)), Tide::kNight);  // 07:59 local
  EXPECT_EQ(ClockTide(p, Utc(2026, 11, 23, 12)), Tide::kNight);      // 20:00 local: the window has ended
  EXPECT_EQ(NextSwitch(p, Utc(2026, 11, 23, 1)), Utc(2026, 11, 23, 12));
  EXPECT_EQ(ClockTide(p, Utc(2026, 11, 28, 4)), Tide::kNight);  // Saturday noon: weekend
  // From Friday evening the next day starts on Monday morning.
  EXPECT_EQ(NextSwitch(p, Utc(2026, 11, 27, 13)), Utc(2026, 11, 30, 0));
  EXPECT_EQ(DescribeSwitch(p, Utc(2026, 11, 23, 1)), "Mon 20:00 Asia/Shanghai (in 11h0m)");
}

TEST(TidalClock, WindowsPastMidnightAndIntoTheNextWeek) {
  PoolSpec p = Valid(Pool("UTC", {{{"Sat"}, "22:00", "06:00"}}));
  EXPECT_EQ(ClockTide(p, Utc(2026, 11, 28, 23)), Tide::kDay);   // Saturday 23:00
  EXPECT_EQ(ClockTide(p, Utc(2026, 11, 29, 5, 59)), Tide::kDay);  // Sunday 05:59, spilled over the week's end
  EXPECT_EQ(ClockTide(p, Utc(2026, 11, 29, 6)), Tide::kNight);
  EXPECT_EQ(NextSwitch(p, Utc(2026, 11, 29, 1)), Utc(2026, 11, 29, 6));
}

TEST(TidalClock, DaylightSavingBothWays) {
  // New York springs forward on 2026-03-08 at 02:00 (to 03:00): a window starting at 02:30 starts
  // when the clocks jump, 07:00 UTC.
  PoolSpec spring = Valid(Pool("America/New_York", {{{}, "02:30", "05:00"}}));
  EXPECT_EQ(ClockTide(spring, Utc(2026, 3, 8, 6, 30)), Tide::kNight);  // 01:30 EST
  EXPECT_EQ(NextSwitch(spring, Utc(2026, 3, 8, 6, 30)), Utc(2026, 3, 8, 7));
  EXPECT_EQ(ClockTide(spring, Utc(2026, 3, 8, 7, 10)), Tide::kDay);    // 03:10 EDT
  EXPECT_EQ(ClockTide(spring, Utc(2026, 3, 8, 9)), Tide::kNight);      // 05:00 EDT
  // It falls back on 2026-11-01 at 02:00 (to 01:00): 01:30 happens twice; the window starts at
  // the first, and by the local clock the repeated hour before 01:30 is night again.
  PoolSpec fall = Valid(Pool("America/New_York", {{{}, "01:30", "03:00"}}));
  EXPECT_EQ(NextSwitch(fall, Utc(2026, 11, 1, 5)), Utc(2026, 11, 1, 5, 30));  // 01:30 EDT
  EXPECT_EQ(ClockTide(fall, Utc(2026, 11, 1, 5, 45)), Tide::kDay);            // 01:45 EDT
  EXPECT_EQ(ClockTide(fall, Utc(2026, 11, 1, 6, 10)), Tide::kNight);          // 01:10 EST
  EXPECT_EQ(ClockTide(fall, Utc(2026, 11, 1, 6, 40)), Tide::kDay);            // 01:40 EST
}

TEST(TidalClock, LeapDay) {
  PoolSpec p = Valid(Pool("Europe/Berlin", {{{"Tue"}, "10:00", "11:00"}}));
  // 2028-02-29 is a Tuesday; Berlin is UTC+1 in February.
  EXPECT_EQ(ClockTide(p, Utc(2028, 2, 29, 9, 30)), Tide::kDay);
  EXPECT_EQ(NextSwitch(p, Utc(2028, 2, 29, 8)), Utc(2028, 2, 29, 9));
  EXPECT_EQ(NextSwitch(p, Utc(2028, 2, 29, 9, 30)), Utc(2028, 2, 29, 10));
}

TEST(TidalPools, InvalidConfigNamesTheField) {
  auto field = [](const v1::Pool& p) { return ValidatePool(p, "pools[0]").status().field(); };
  EXPECT_EQ(field(Pool("Mars/Olympus", {{{}, "08:00", "20:00"}})), "pools[0].timezone");
  EXPECT_EQ(field(Pool("UTC", {{{}, "8:00", "20:00"}})), "pools[0].dayWindows[0].start");
  EXPECT_EQ(field(Pool("UTC", {{{}, "08:00", "24:00"}})), "pools[0].dayWindows[0].end");
  EXPECT_EQ(field(Pool("UTC", {{{"Funday"}, "08:00", "20:00"}})), "pools[0].dayWindows[0].weekdays");
  EXPECT_EQ(field(Pool("UTC", {})), "pools[0].dayWindows");
  // Overlaps, including one that only overlaps after midnight.
  Status overlap = ValidatePool(Pool("UTC", {{{}, "08:00", "20:00"}, {{"Mon"}, "19:00", "21:00"}}), "pools[0]").status();
  EXPECT_EQ(overlap.field(), "pools[0].dayWindows[1]");
  EXPECT_NE(overlap.message().find("overlaps dayWindows[0]"), std::string::npos);
  EXPECT_FALSE(ValidatePool(Pool("UTC", {{{"Fri"}, "22:00", "06:00"}, {{"Sat"}, "05:00", "07:00"}}), "p").ok());
  EXPECT_TRUE(ValidatePool(Pool("UTC", {{{"Fri"}, "22:00", "06:00"}, {{"Sat"}, "06:00", "07:00"}}), "p").ok());
  v1::Pool no_selector = Pool("UTC", {{{}, "08:00", "20:00"}});
  no_selector.clear_node_selector();
  EXPECT_EQ(field(no_selector), "pools[0].nodeSelector");
  v1::SchedulerConfig config;
  *config.add_pools() = Pool("UTC", {{{}, "08:00", "20:00"}});
  *config.add_pools() = Pool("UTC", {{{}, "08:00", "20:00"}});
  EXPECT_EQ(ValidatePools(config).status().field(), "pools[1].name");
  v1::Pool floor = Pool("UTC", {{{}, "08:00", "20:00"}});
  floor.mutable_night_policy()->set_floor_cards_for_other(9);
  PoolSpec spec = Valid(floor);
  EXPECT_EQ(ValidateFloor(spec, 8).field(), "pools.p.nightPolicy.floorCardsForOther");
  EXPECT_TRUE(ValidateFloor(spec, 16).ok());
  EXPECT_EQ(spec.day_policy.first(), v1::WORKLOAD_CLASS_INFERENCE);   // defaults
  EXPECT_EQ(spec.night_policy.first(), v1::WORKLOAD_CLASS_TRAINING);
}

}  // namespace
}  // namespace tideslice::tidal

namespace tideslice::tidal {
namespace {

TEST(TidalGate, TheOtherClassWaitsWithTheTimeItMayStartOrBorrows) {
  v1::Pool p = Pool("Asia/Shanghai", {{{"Mon", "Tue", "Wed", "Thu", "Fri"}, "08:00", "20:00"}});
  PoolSpec strict = Valid(p);
  auto monday_10 = Utc(2026, 11, 23, 2);  // 10:00 in Shanghai: day, inference first
  EXPECT_TRUE(ClockGate(strict, v1::WORKLOAD_CLASS_INFERENCE, monday_10).allowed);
  EXPECT_TRUE(ClockGate(strict, v1::WORKLOAD_CLASS_UNSPECIFIED, monday_10).allowed);
  GateVerdict v = ClockGate(strict, v1::WORKLOAD_CLASS_TRAINING, monday_10);
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(v.reason, "pool p serves inference first in its day tide until Mon 20:00 Asia/Shanghai (in 10h0m); "
                      "training pods wait for it (dayPolicy.otherClassMayBorrow is off)");
  EXPECT_TRUE(ClockGate(strict, v1::WORKLOAD_CLASS_TRAINING, Utc(2026, 11, 23, 13)).allowed);  // 21:00: night
  EXPECT_FALSE(ClockGate(strict, v1::WORKLOAD_CLASS_INFERENCE, Utc(2026, 11, 23, 13)).allowed);
  p.mutable_day_policy()->set_other_class_may_borrow(true);
  EXPECT_TRUE(ClockGate(Valid(p), v1::WORKLOAD_CLASS_TRAINING, monday_10).allowed);

  std::vector<PoolSpec> pools = {strict};
  EXPECT_EQ(PoolOfNode(pools, {{"pool", "p"}, {"zone", "a"}}), &pools[0]);
  EXPECT_EQ(PoolOfNode(pools, {{"pool", "q"}}), nullptr);
}

}  // namespace
}  // namespace tideslice::tidal
