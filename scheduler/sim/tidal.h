// tideslice-sim tidal: a week (or any span) of one tidal pool, stepped every 30 s, serving a
// diurnal inference demand and a training backlog three ways:
//   static      a fixed split: inference keeps enough cards for its peak, training the rest;
//   tidal       TideSlice: the very tidal::Decide and tidal::Gate the controller and the
//               extender run, with checkpoint notices (jobs checkpoint, acknowledge, go);
//   no-notice   the same tides, but displaced training is killed at once (what a scheduler
//               without notices does): the work since its last periodic checkpoint is lost.
// The pool is card-granular (a job needs N whole cards, a replica one): what is compared is how
// the tides share cards over time, not packing on nodes (the replay and sweep commands do that).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/status.h"
#include "scheduler/tidal/pool.h"

namespace tideslice::sim {

struct TidalSimOptions {
  int cards = 64;
  double days = 7;
  std::chrono::system_clock::time_point start;  // default: Monday 2026-11-23 00:00 in the pool's zone
  int step_seconds = 30;
  double inference_peak_cards = 56;             // replicas at the weekday peak
  double weekend_factor = 0.7;
  int checkpoint_seconds = 120;                 // a job's checkpoint after a notice
  int periodic_checkpoint_minutes = 30;         // and its regular ones
  int static_inference_cards = 56;              // the static split: inference keeps its peak
  uint64_t seed = 42;
  bool log_transitions = false;                 // each tide change on stderr
  tidal::PoolSpec pool;                         // DefaultTidalPool() unless given
};

// The default pool: Mon-Fri from 08:00 and Sat-Sun from 09:00 to midnight (UTC) are day: inference first,
// training borrows idle cards keeping 4 free; night: training first, 16 cards kept for
// inference; notice 300 s, grace 60 s; waiting inference moves the tide after 60 s.
tidal::PoolSpec DefaultTidalPool();

// Inference demand in cards at `t` (see docs/simulator-validation.md, "Tidal"): a diurnal
// curve with its trough at 04:00 (15 % of the peak) and its peak at 16:00, lower at weekends,
// with +-4 % noise per 10-minute bucket from `seed`.
double InferenceDemand(const TidalSimOptions& o, std::chrono::system_clock::time_point t);

struct TidalRun {
  std::string mode;                      // "static", "tidal", "no-notice"
  double utilisation = 0;                // card-time held by a replica or a job / card-time
  // Every replica's wait: until it got a card, or (never served) until it was scaled away or the run ended.
  double inference_wait_p50_s = 0, inference_wait_p99_s = 0, inference_wait_max_s = 0;
  double day_start_wait_max_s = 0;       // replicas asked for within 30 min before to 2 h after a day switch
  int inference_starts = 0;
  double inference_unserved_card_h = 0;  // replica-time spent waiting for a card
  double training_done_card_h = 0;       // progress kept (finished or checkpointed)
  double training_lost_card_h = 0;       // progress lost to evictions
  double checkpoint_card_h = 0;          // card-time spent checkpointing on notice
  int jobs_finished = 0, notices = 0, evictions = 0, switches = 0, load_switches = 0;
  // Cards held over time, one point per 15 minutes: (hours since start, cards).
  std::vector<std::pair<double, double>> inference_cards, training_cards;
  double LostPercent() const {
    double total = training_done_card_h + training_lost_card_h;
    return total > 0 ? 100.0 * training_lost_card_h / total : 0;
  }
};

StatusOr<std::vector<TidalRun>> RunTidalSim(const TidalSimOptions& options);
std::string TidalReportMarkdown(const TidalSimOptions& options, const std::vector<TidalRun>& runs);
std::string TidalSvg(const TidalSimOptions& options, const std::vector<TidalRun>& runs);

}  // namespace tideslice::sim
