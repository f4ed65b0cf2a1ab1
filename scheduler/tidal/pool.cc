#include "scheduler/tidal/pool.h"

#include <date/tz.h>

#include <algorithm>
#include <set>

namespace tideslice::tidal {

namespace {

using std::chrono::minutes;
using std::chrono::system_clock;

StatusOr<int> ParseHhMm(const std::string& text, const std::string& field) {
  if (text.size() != 5 || text[2] != ':' || !std::isdigit(static_cast<unsigned char>(text[0])) ||
      !std::isdigit(static_cast<unsigned char>(text[1])) || !std::isdigit(static_cast<unsigned char>(text[3])) ||
      !std::isdigit(static_cast<unsigned char>(text[4])))
    return Status::InvalidArgument(field, "must be HH:MM (24-hour local time), got \"" + text + "\"");
  int h = (text[0] - '0') * 10 + (text[1] - '0'), m = (text[3] - '0') * 10 + (text[4] - '0');
  if (h > 23 || m > 59) return Status::InvalidArgument(field, "must be a time of day 00:00..23:59, got \"" + text + "\"");
  return h * 60 + m;
}

int WeekdayBit(const std::string& day) {
  static const char* names[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  for (int i = 0; i < 7; ++i)
    if (day == names[i]) return i;
  return -1;
}

// The window's minutes of the week [from, to) it covers, as up to two intervals per start day
// (a window past midnight spills into the next day, and Saturday's into Sunday).
std::vector<std::pair<int, int>> WeekIntervals(const Window& w) {
  std::vector<std::pair<int, int>> out;
  const int week = 7 * 1440;
  for (int d = 0; d < 7; ++d) {
    if (!(w.weekday_mask & (1 << d))) continue;
    int from = d * 1440 + w.start_minute;
    int to = d * 1440 + w.end_minute + (w.end_minute <= w.start_minute ? 1440 : 0);
    if (to <= week) {
      out.push_back({from, to});
    } else {
      out.push_back({from, week});
      out.push_back({0, to - week});
    }
  }
  return out;
}

bool InWindows(const PoolSpec& pool, int minute_of_week) {
  for (const auto& w : pool.day_windows)
    for (const auto& [from, to] : WeekIntervals(w))
      if (minute_of_week >= from && minute_of_week < to) return true;
  return false;
}

}  // namespace

const char* TideName(Tide t) { return t == Tide::kDay ? "day" : "night"; }

StatusOr<PoolSpec> ValidatePool(const v1::Pool& pool, const std::string& where) {
  PoolSpec p;
  p.name = pool.name();
  if (p.name.empty()) return Status::InvalidArgument(where + ".name", "must not be empty");
  p.node_selector.insert(pool.node_selector().begin(), pool.node_selector().end());
  if (p.node_selector.empty())
    return Status::InvalidArgument(where + ".nodeSelector", "must select the pool's nodes (at least one label)");
  p.timezone = pool.timezone();
  if (p.timezone.empty()) return Status::InvalidArgument(where + ".timezone", "must be an IANA time zone such as Asia/Shanghai");
  try {
    p.zone = date::locate_zone(p.timezone);
  } catch (const std::exception&) {
    return Status::InvalidArgument(where + ".timezone", "\"" + p.timezone +
                                                            "\" is not an IANA time zone (e.g. Asia/Shanghai, Europe/Berlin, UTC)");
  }
  for (int i = 0; i < pool.day_windows_size(); ++i) {
    const auto& dw = pool.day_windows(i);
    const std::string at = where + ".dayWindows[" + std::to_string(i) + "]";
    Window w;
    if (dw.weekdays_size() > 0) {
      w.weekday_mask = 0;
      for (const auto& d : dw.weekdays()) {
        int bit = WeekdayBit(d);
        if (bit < 0) return Status::InvalidArgument(at + ".weekdays", "\"" + d + "\" is not one of Mon Tue Wed Thu Fri Sat Sun");
        w.weekday_mask |= 1 << bit;
      }
    }
    auto start = ParseHhMm(dw.start(), at + ".start");
    if (!start.ok()) return start.status();
    auto end = ParseHhMm(dw.end(), at + ".end");
    if (!end.ok()) return end.status();
    if (*start == *end) return Status::InvalidArgument(at, "start and end are equal; a window must have a length");
    w.start_minute = *start;
    w.end_minute = *end;
    // Overlapping windows would make "when does the day end" ambiguous: reject them.
    for (size_t j = 0; j < p.day_windows.size(); ++j)
      for (const auto& a : WeekIntervals(w))
        for (const auto& b : WeekIntervals(p.day_windows[j]))
          if (a.first < b.second && b.first < a.second)
            return Status::InvalidArgument(at, "overlaps dayWindows[" + std::to_string(j) + "]; merge them into one window");
    p.day_windows.push_back(w);
  }
  if (p.day_windows.empty())
    return Status::InvalidArgument(where + ".dayWindows", "must list at least one window (e.g. start 08:00, end 20:00)");
  p.day_policy = pool.day_policy();
  p.night_policy = pool.night_policy();
  if (p.day_policy.first() == v1::WORKLOAD_CLASS_UNSPECIFIED) p.day_policy.set_first(v1::WORKLOAD_CLASS_INFERENCE);
  if (p.night_policy.first() == v1::WORKLOAD_CLASS_UNSPECIFIED) p.night_policy.set_first(v1::WORKLOAD_CLASS_TRAINING);
  if (p.day_policy.floor_cards_for_other() < 0)
    return Status::InvalidArgument(where + ".dayPolicy.floorCardsForOther", "must not be negative");
  if (p.day_policy.headroom_cards() < 0)
    return Status::InvalidArgument(where + ".dayPolicy.headroomCards", "must not be negative");
  if (p.night_policy.headroom_cards() < 0)
    return Status::InvalidArgument(where + ".nightPolicy.headroomCards", "must not be negative");
  if (p.night_policy.floor_cards_for_other() < 0)
    return Status::InvalidArgument(where + ".nightPolicy.floorCardsForOther", "must not be negative");
  p.load_trigger = pool.load_trigger();
  if (p.load_trigger.pending_inference_seconds() < 0)
    return Status::InvalidArgument(where + ".loadTrigger.pendingInferenceSeconds", "must not be negative");
  if (!p.load_trigger.prometheus_query().empty() && p.load_trigger.prometheus_threshold() <= 0)
    return Status::InvalidArgument(where + ".loadTrigger.prometheusThreshold", "must be positive when prometheusQuery is set");
  if (p.load_trigger.hold_seconds() < 0)
    return Status::InvalidArgument(where + ".loadTrigger.holdSeconds", "must not be negative (0 = the default, 1800)");
  if (pool.notice_seconds() < 0) return Status::InvalidArgument(where + ".noticeSeconds", "must not be negative");
  if (pool.grace_seconds() < 0) return Status::InvalidArgument(where + ".graceSeconds", "must not be negative");
  p.notice = std::chrono::seconds(pool.notice_seconds());
  p.grace = std::chrono::seconds(pool.grace_seconds());
  return p;
}

StatusOr<std::vector<PoolSpec>> ValidatePools(const v1::SchedulerConfig& config) {
  std::vector<PoolSpec> out;
  std::set<std::string> names;
  for (int i = 0; i < config.pools_size(); ++i) {
    const std::string where = "pools[" + std::to_string(i) + "]";
    auto p = ValidatePool(config.pools(i), where);
    if (!p.ok()) return p.status();
    if (!names.insert(p->name).second)
      return Status::InvalidArgument(where + ".name", "\"" + p->name + "\" is used by another pool");
    out.push_back(std::move(*p));
  }
  return out;
}

Status ValidateFloor(const PoolSpec& pool, int cards_in_pool) {
  for (const auto* policy : {&pool.day_policy, &pool.night_policy})
    if (policy->floor_cards_for_other() > cards_in_pool)
      return Status::InvalidArgument(
          "pools." + pool.name + (policy == &pool.day_policy ? ".dayPolicy" : ".nightPolicy") + ".floorCardsForOther",
          "keeps " + std::to_string(policy->floor_cards_for_other()) + " cards for the other class, but the pool has " +
              std::to_string(cards_in_pool));
  return Status::Ok();
}

Tide ClockTide(const PoolSpec& pool, system_clock::time_point now) {
  auto local = date::make_zoned(pool.zone, date::floor<minutes>(now)).get_local_time();
  auto day = date::floor<date::days>(local);
  int weekday = static_cast<int>(date::weekday(day).c_encoding());  // 0 = Sunday
  int minute = static_cast<int>(std::chrono::duration_cast<minutes>(local - day).count());
  return InWindows(pool, weekday * 1440 + minute) ? Tide::kDay : Tide::kNight;
}

system_clock::time_point NextSwitch(const PoolSpec& pool, system_clock::time_point now) {
  // Candidates: every window edge in local time over the next 8 days, mapped to UTC (a local
  // time skipped by DST maps to the instant the clocks jump; a repeated one to its first
  // occurrence). The earliest candidate after `now` where the tide differs is the switch.
  const Tide current = ClockTide(pool, now);
  auto local_now = date::make_zoned(pool.zone, date::floor<minutes>(now)).get_local_time();
  auto today = date::floor<date::days>(local_now);
  std::vector<system_clock::time_point> candidates;
  for (int d = -1; d <= 8; ++d)
    for (const auto& w : pool.day_windows)
      for (int edge : {w.start_minute, w.end_minute}) {
        auto local = today + date::days(d) + minutes(edge);
        system_clock::time_point t;
        try {
          t = pool.zone->to_sys(local, date::choose::earliest);
        } catch (const date::nonexistent_local_time&) {
          auto info = pool.zone->get_info(local);
          t = info.first.end;  // the moment the clocks jump over the skipped local time
        }
        if (t > now) candidates.push_back(t);
      }
  std::sort(candidates.begin(), candidates.end());
  for (auto t : candidates)
    if (ClockTide(pool, t) != current) return t;
  return system_clock::time_point::max();
}

std::string DescribeSwitch(const PoolSpec& pool, system_clock::time_point now) {
  auto next = NextSwitch(pool, now);
  if (next == system_clock::time_point::max()) return "never (its windows cover the whole week)";
  auto local = date::make_zoned(pool.zone, date::floor<minutes>(next));
  auto in = std::chrono::duration_cast<minutes>(next - now);
  std::string when = date::format("%a %H:%M", local);
  return when + " " + pool.timezone + " (in " + std::to_string(in.count() / 60) + "h" + std::to_string(in.count() % 60) + "m)";
}

}  // namespace tideslice::tidal

namespace tideslice::tidal {

const PoolSpec* PoolOfNode(const std::vector<PoolSpec>& pools, const std::map<std::string, std::string>& labels) {
  for (const auto& p : pools) {
    bool match = true;
    for (const auto& [k, v] : p.node_selector) {
      auto it = labels.find(k);
      if (it == labels.end() || it->second != v) {
        match = false;
        break;
      }
    }
    if (match) return &p;
  }
  return nullptr;
}

TideNow ClockTideNow(const PoolSpec& pool, std::chrono::system_clock::time_point now) {
  TideNow t;
  t.tide = ClockTide(pool, now);
  return t;
}

GateVerdict Gate(const PoolSpec& pool, v1::WorkloadClass cls, const TideNow& tide, int cards,
                 std::chrono::system_clock::time_point now) {
  if (cls == v1::WORKLOAD_CLASS_UNSPECIFIED) return {};
  const v1::TidePolicy& policy = tide.tide == Tide::kDay ? pool.day_policy : pool.night_policy;
  const char* policy_name = tide.tide == Tide::kDay ? "dayPolicy" : "nightPolicy";
  const int floor = policy.floor_cards_for_other();
  const bool counted = tide.pool_cards >= 0;
  const char* served = policy.first() == v1::WORKLOAD_CLASS_INFERENCE ? "inference" : "training";
  const char* mine = cls == v1::WORKLOAD_CLASS_INFERENCE ? "inference" : "training";
  // When the tide changes, for the reason; only built for a refusal (it reads the clock ahead).
  auto until = [&] {
    return tide.held_by_load ? "the load that holds it ends (at least until " +
                                   date::format("%a %H:%M UTC", date::floor<std::chrono::minutes>(tide.hold_until)) + ")"
                             : DescribeSwitch(pool, now);
  };
  if (cls == policy.first()) {
    if (counted && floor > 0 && tide.first_class_cards + cards > tide.pool_cards - floor)
      return {false, std::string("pool ") + pool.name + " keeps " + std::to_string(floor) + " of its " +
                         std::to_string(tide.pool_cards) + " cards for the other class in its " + TideName(tide.tide) +
                         " tide (" + policy_name + ".floorCardsForOther) and " + mine + " holds " +
                         std::to_string(tide.first_class_cards) + "; this pod needs " + std::to_string(cards) + " more"};
    return {};
  }
  if (counted && floor > 0 && tide.other_class_cards + cards <= floor) return {};
  if (policy.other_class_may_borrow()) {
    const int headroom = policy.headroom_cards();
    if (!counted || headroom == 0 || tide.free_cards < 0 || tide.free_cards - cards >= headroom) return {};
    return {false, std::string("pool ") + pool.name + " lends idle cards to " + mine + " in its " + TideName(tide.tide) +
                       " tide but keeps " + std::to_string(headroom) + " free for " + served + " to grow into (" +
                       policy_name + ".headroomCards); " + std::to_string(tide.free_cards) + " are free and this pod needs " +
                       std::to_string(cards)};
  }
  return {false, std::string("pool ") + pool.name + " serves " + served + " first in its " + TideName(tide.tide) +
                     " tide until " + until() + "; " + mine + " pods wait for it (" + policy_name +
                     ".otherClassMayBorrow is off" +
                     (floor > 0 ? ", and the " + std::to_string(floor) + " cards kept for " + mine + " are taken" : "") + ")"};
}

}  // namespace tideslice::tidal
