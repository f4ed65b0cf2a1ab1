// tideslice-sim tidal: the demand curve's shape, and the week's outcome on the default pool
// against the goals (utilisation >= 85 % where a static split gives 40-75 %, inference waits
// <= 60 s at the switch, training work lost <= 2 %), with notices losing less than none.
#include "scheduler/sim/tidal.h"

#include <gtest/gtest.h>

#include <date/date.h>

namespace tideslice::sim {
namespace {

using std::chrono::hours;

TEST(TidalSim, DemandHasItsTroughAtFourAndItsPeakAtSixteen) {
  TidalSimOptions o;
  o.pool = DefaultTidalPool();
  const auto monday = date::sys_days(date::year(2026) / 11 / 23);
  double low = 1e9, high = 0;
  int low_h = -1, high_h = -1;
  for (int h = 0; h < 24; ++h) {
    double d = InferenceDemand(o, monday + hours(h));
    if (d < low) low = d, low_h = h;
    if (d > high) high = d, high_h = h;
  }
  // The curve is flat at its ends and carries +-4 % noise: within an hour of 04:00 and 16:00.
  EXPECT_NEAR(low_h, 4, 1);
  EXPECT_NEAR(high_h, 16, 1);
  EXPECT_NEAR(low, 0.15 * 56, 0.05 * 56);
  EXPECT_NEAR(high, 56, 0.05 * 56);
  // Saturday is lower; the same instant and seed give the same demand.
  EXPECT_LT(InferenceDemand(o, monday + hours(5 * 24 + 16)), 0.8 * high);
  EXPECT_EQ(InferenceDemand(o, monday + hours(7)), InferenceDemand(o, monday + hours(7)));
}

TEST(TidalSim, AWeekMeetsTheGoalsWhereAStaticSplitDoesNot) {
  TidalSimOptions o;
  o.pool = DefaultTidalPool();
  auto runs = RunTidalSim(o);
  ASSERT_TRUE(runs.ok()) << runs.status().ToString();
  ASSERT_EQ(runs->size(), 3u);
  const TidalRun& statik = (*runs)[0];
  const TidalRun& tidal = (*runs)[1];
  const TidalRun& blind = (*runs)[2];
  EXPECT_EQ(statik.mode, "static");
  EXPECT_GE(statik.utilisation, 0.40);
  EXPECT_LE(statik.utilisation, 0.75);
  EXPECT_GE(tidal.utilisation, 0.85);
  EXPECT_LE(tidal.day_start_wait_max_s, 60);
  EXPECT_LT(tidal.inference_unserved_card_h, 0.5);
  EXPECT_LE(tidal.LostPercent(), 2.0);
  EXPECT_GT(tidal.notices, 0);
  EXPECT_GE(tidal.switches, 13);  // two clock switches a day, the first day's night being the start
  EXPECT_GT(tidal.training_done_card_h, 3 * statik.training_done_card_h);
  // Without notices the same tides lose the work since each job's last periodic checkpoint.
  EXPECT_GT(blind.training_lost_card_h, 10 * tidal.training_lost_card_h + 1);
  EXPECT_EQ(blind.notices, 0);
  // Cards held never exceed the pool.
  for (const auto& r : *runs)
    for (size_t i = 0; i < r.inference_cards.size(); ++i)
      ASSERT_LE(r.inference_cards[i].second + r.training_cards[i].second, o.cards);

  const std::string report = TidalReportMarkdown(o, *runs);
  EXPECT_NE(report.find("| tidal |"), std::string::npos);
  EXPECT_NE(report.find("utilisation >= 85 %: met"), std::string::npos) << report;
  const std::string svg = TidalSvg(o, *runs);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("tidal: training"), std::string::npos);
}

TEST(TidalSim, BadOptionsAreRefusedNamingTheFlag) {
  TidalSimOptions o;
  o.pool = DefaultTidalPool();
  o.step_seconds = 7;
  EXPECT_EQ(RunTidalSim(o).status().field(), "--step");
  o = TidalSimOptions{};
  o.cards = 8;  // the default pool keeps 16 cards for inference at night
  o.inference_peak_cards = 7;
  o.static_inference_cards = 7;
  EXPECT_NE(RunTidalSim(o).status().ToString().find("nightPolicy.floorCardsForOther"), std::string::npos)
      << RunTidalSim(o).status().ToString();
  o = TidalSimOptions{};
  o.inference_peak_cards = 100;
  EXPECT_EQ(RunTidalSim(o).status().field(), "--peak");
}

}  // namespace
}  // namespace tideslice::sim
