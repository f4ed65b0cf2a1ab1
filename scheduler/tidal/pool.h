// Tidal pools: which cards serve inference first and which training first, by the clock of the
// pool's time zone (IANA, DST-aware through Howard Hinnant's date/tz on the system tz database).
// This file holds the validated pool and the clock; the controller that notices and evicts
// builds on it.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "tideslice/v1/tideslice.pb.h"

namespace date {
class time_zone;
}

namespace tideslice::tidal {

enum class Tide { kDay, kNight };
const char* TideName(Tide t);

struct Window {
  int weekday_mask = 0x7f;  // bit 0 = Sunday ... bit 6 = Saturday (the days the window starts on)
  int start_minute = 0;     // local minutes after midnight
  int end_minute = 0;       // end <= start: the window runs past midnight into the next day
};

struct PoolSpec {
  std::string name;
  std::map<std::string, std::string> node_selector;
  std::string timezone;
  const date::time_zone* zone = nullptr;
  std::vector<Window> day_windows;     // outside them it is night
  v1::TidePolicy day_policy, night_policy;
  v1::LoadTrigger load_trigger;
  std::chrono::seconds notice{0}, grace{0};
};

// Checks one pool; errors name the field ("pools[1].dayWindows[0].start") and say what to change.
StatusOr<PoolSpec> ValidatePool(const v1::Pool& pool, const std::string& where);
// All pools of a SchedulerConfig: each valid, names unique.
StatusOr<std::vector<PoolSpec>> ValidatePools(const v1::SchedulerConfig& config);
// Known only once the pool's nodes are: a floor of cards kept for the other class cannot exceed
// the cards the pool has.
Status ValidateFloor(const PoolSpec& pool, int cards_in_pool);

// The tide by the clock at `now`.
Tide ClockTide(const PoolSpec& pool, std::chrono::system_clock::time_point now);
// The next instant after `now` at which the clock tide changes (within 8 days; a pool whose
// windows never change the tide gets time_point::max()).
std::chrono::system_clock::time_point NextSwitch(const PoolSpec& pool, std::chrono::system_clock::time_point now);
// "20:00 Asia/Shanghai (in 3h12m)", for reasons a person reads.
std::string DescribeSwitch(const PoolSpec& pool, std::chrono::system_clock::time_point now);

}  // namespace tideslice::tidal

namespace tideslice::tidal {

// The pool whose nodeSelector the node's labels satisfy (the first, in config order), or null.
const PoolSpec* PoolOfNode(const std::vector<PoolSpec>& pools, const std::map<std::string, std::string>& labels);

struct GateVerdict {
  bool allowed = true;
  std::string reason;  // why not, for kubectl describe
};

// A pool's tide as the scheduler applies it: the clock's, or the tidal controller's (which may
// hold the inference tide early under load), with what each class holds for the floors.
struct TideNow {
  Tide tide = Tide::kNight;
  bool held_by_load = false;
  std::chrono::system_clock::time_point hold_until{};
  int pool_cards = -1;          // healthy cards in the pool; -1 = not known (floors not checked)
  int first_class_cards = 0;    // cards holding pods of the class the tide serves first
  int other_class_cards = 0;
  int free_cards = -1;          // cards nobody holds; -1 = not known (headroom not checked)
};
TideNow ClockTideNow(const PoolSpec& pool, std::chrono::system_clock::time_point now);

// May a pod of workload class `cls`, needing `cards` cards, start on a node of `pool`? The class
// the tide serves first may, up to the pool's cards less the floor kept for the other class;
// the other class may use the floor, and beyond it only if the tide lets it borrow idle cards
// and headroomCards stay free after it (the tidal controller displaces borrowers when the first
// class needs them). Pods of no
// declared class are not gated.
GateVerdict Gate(const PoolSpec& pool, v1::WorkloadClass cls, const TideNow& tide, int cards,
                 std::chrono::system_clock::time_point now);

}  // namespace tideslice::tidal
