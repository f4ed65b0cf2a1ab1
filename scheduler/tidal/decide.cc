#include "scheduler/tidal/decide.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include <date/date.h>
#include <nlohmann/json.hpp>

namespace tideslice::tidal {

using std::chrono::seconds;
using std::chrono::system_clock;

namespace {

constexpr seconds kDefaultHold{1800};
// A noticed pod still there this long after deadline + grace is overdue: eviction is blocked
// (a PodDisruptionBudget) or the pod does not terminate.
constexpr seconds kOverdueSlack{30};

const v1::TidePolicy& PolicyOf(const PoolSpec& pool, Tide tide) {
  return tide == Tide::kDay ? pool.day_policy : pool.night_policy;
}

bool Leaving(const Member& m) { return m.deleting || m.notice.has_value(); }

// Cards no member holds, and cards whose every holder is in `gone`.
struct CardBook {
  std::map<std::string, std::vector<const Member*>> holders;  // healthy pool cards only
  int free = 0;

  explicit CardBook(const PoolView& view) {
    for (const auto& c : view.cards) holders[c];
    for (const auto& m : view.members)
      for (const auto& c : m.cards)
        if (auto it = holders.find(c); it != holders.end()) it->second.push_back(&m);
    for (const auto& [c, h] : holders)
      if (h.empty()) free++;
  }

  int Freed(const std::set<const Member*>& gone) const {
    int n = 0;
    for (const auto& [c, h] : holders) {
      if (h.empty()) continue;
      bool all = true;
      for (const Member* m : h)
        if (!gone.count(m)) {
          all = false;
          break;
        }
      n += all;
    }
    return n;
  }
};

int CardsHeldBy(const PoolView& view, v1::WorkloadClass cls) {
  std::set<std::string> pool(view.cards.begin(), view.cards.end()), held;
  for (const auto& m : view.members)
    if (m.cls == cls && !Leaving(m))
      for (const auto& c : m.cards)
        if (pool.count(c)) held.insert(c);
  return static_cast<int>(held.size());
}

}  // namespace

v1::WorkloadClass FirstClass(const PoolSpec& pool, Tide tide) { return PolicyOf(pool, tide).first(); }

std::optional<Tide> InferenceTide(const PoolSpec& pool) {
  if (pool.day_policy.first() == v1::WORKLOAD_CLASS_INFERENCE) return Tide::kDay;
  if (pool.night_policy.first() == v1::WORKLOAD_CLASS_INFERENCE) return Tide::kNight;
  return std::nullopt;
}

std::chrono::seconds LoadHold(const PoolSpec& pool) {
  return pool.load_trigger.hold_seconds() > 0 ? seconds(pool.load_trigger.hold_seconds()) : kDefaultHold;
}

std::vector<std::string> ChooseVictims(const PoolView& view, int needed, TimePoint now) {
  if (needed <= 0) return {};
  CardBook book(view);
  std::set<const Member*> gone;
  for (const auto& m : view.members)
    if (Leaving(m)) gone.insert(&m);
  const int target = book.Freed(gone) + needed;

  std::vector<const Member*> candidates;
  for (const auto& m : view.members)
    if (m.cls == v1::WORKLOAD_CLASS_TRAINING && !Leaving(m)) candidates.push_back(&m);

  // A candidate's share of each card it holds: 1 / (holders still staying). A card any pod of
  // another class holds can never be freed by training leaving, so it counts nothing.
  auto gain = [&](const Member* c) {
    double g = 0;
    for (const auto& card : c->cards) {
      auto it = book.holders.find(card);
      if (it == book.holders.end()) continue;
      int staying = 0;
      bool blocked = false;
      for (const Member* h : it->second) {
        if (gone.count(h)) continue;
        if (h->cls != v1::WORKLOAD_CLASS_TRAINING) blocked = true;
        staying++;
      }
      if (!blocked && staying > 0) g += 1.0 / staying;
    }
    return g;
  };
  auto at_risk = [&](const Member* c) {
    TimePoint since = c->started;
    if (c->checkpointed_at && *c->checkpointed_at > since) since = *c->checkpointed_at;
    return now - since;
  };

  std::vector<const Member*> chosen;
  int freed = book.Freed(gone);
  while (freed < target) {
    // Gain beyond what is still needed frees cards nobody asked for: it does not count.
    const double wanted = target - freed;
    const Member* best = nullptr;
    double best_gain = 0;
    for (const Member* c : candidates) {
      if (gone.count(c)) continue;
      const double g = std::min(gain(c), wanted);
      if (g <= 0) continue;
      auto rank = [&](const Member* m, double mg) {
        return std::make_tuple(m->priority, -mg, at_risk(m), m->cards.size(), m->key);
      };
      if (!best || rank(c, g) < rank(best, best_gain)) {
        best = c;
        best_gain = g;
      }
    }
    if (!best) break;  // nothing left that frees a card: do what can be done
    gone.insert(best);
    chosen.push_back(best);
    freed = book.Freed(gone);
  }
  // Drop victims the others make unnecessary, most protected (last chosen) first.
  for (size_t i = chosen.size(); i-- > 0;) {
    gone.erase(chosen[i]);
    if (book.Freed(gone) >= target) {
      chosen.erase(chosen.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      gone.insert(chosen[i]);
    }
  }
  std::vector<std::string> keys;
  for (const Member* m : chosen) keys.push_back(m->key);
  return keys;
}

Decision Decide(const PoolSpec& pool, const PoolState& last, const PoolView& view, TimePoint now) {
  Decision d;
  d.state = last;
  const Tide clock = ClockTide(pool, now);
  d.from = last.known ? last.tide : clock;

  // Load: inference waiting too long, or the demand figure above its threshold, holds the
  // inference tide for LoadHold after the last time it was seen.
  const std::optional<Tide> inference_tide = InferenceTide(pool);
  std::string load_why;
  if (inference_tide) {
    const auto& trigger = pool.load_trigger;
    if (trigger.pending_inference_seconds() > 0) {
      int waiting = 0;
      for (const auto& w : view.waiting)
        if (w.cls == v1::WORKLOAD_CLASS_INFERENCE && now - w.since >= seconds(trigger.pending_inference_seconds()))
          waiting++;
      if (waiting > 0)
        load_why = std::to_string(waiting) + " inference pod(s) waiting longer than " +
                   std::to_string(trigger.pending_inference_seconds()) + " s";
    }
    if (!trigger.prometheus_query().empty() && view.demand && *view.demand > trigger.prometheus_threshold()) {
      if (!load_why.empty()) load_why += ", ";
      load_why += "demand " + std::to_string(*view.demand) + " above " + std::to_string(trigger.prometheus_threshold());
    }
    if (!load_why.empty()) d.state.load_hold_until = std::max(d.state.load_hold_until, now + LoadHold(pool));
  }
  const bool held = inference_tide && now < d.state.load_hold_until && clock != *inference_tide;
  const Tide tide = held ? *inference_tide : clock;

  if (!last.known || tide != last.tide) {
    d.transition = last.known;
    d.state.known = true;
    d.state.tide = tide;
    d.state.since = now;
    d.state.cause = !last.known ? "start" : held ? "load" : "clock";
    d.state.transition = pool.name + "@" + FormatTime(now);
  }
  // Why, for Events and notices; only built when something is said (it reads the clock ahead).
  auto explain = [&] {
    if (held)
      return "held in the " + std::string(TideName(tide)) + " tide by load (" +
             (load_why.empty() ? "recent demand" : load_why) + ") until " + FormatTime(d.state.load_hold_until);
    return std::string("the clock's ") + TideName(tide) + " tide; next switch " + DescribeSwitch(pool, now);
  };
  std::string ahead;

  // Displacement follows the tide, or the coming one when a clock switch into the inference
  // tide is less than a notice away.
  Tide acting = tide;
  d.deadline = now + pool.notice;
  // (The cheap test first: the clock at now + notice already in the inference tide. A day window
  // shorter than the notice could hide between the two; windows are hours long.)
  if (!held && inference_tide && tide != *inference_tide && pool.notice.count() > 0 &&
      ClockTide(pool, now + pool.notice) == *inference_tide) {
    const TimePoint next = NextSwitch(pool, now);
    if (next != TimePoint::max() && next - now <= pool.notice && ClockTide(pool, next) == *inference_tide) {
      acting = *inference_tide;
      d.deadline = next;
      ahead = " (notices go out " + std::to_string(std::chrono::duration_cast<seconds>(next - now).count()) +
              " s ahead of the switch)";
    }
  }
  const v1::TidePolicy& policy = PolicyOf(pool, acting);
  // Training is the class the controller displaces: it checkpoints. Inference serves requests
  // and scales with its own autoscaler; it is never evicted here.
  for (const auto& m : view.members) {
    if (!m.notice || m.deleting) continue;
    if (policy.first() == v1::WORKLOAD_CLASS_TRAINING || m.cls != v1::WORKLOAD_CLASS_TRAINING) {
      d.withdraw.push_back(m.key);
      continue;
    }
    if (now >= m.notice->deadline)
      d.evict.push_back({m.key, m.uid, "its checkpoint deadline " + FormatTime(m.notice->deadline) + " passed"});
    else if (m.checkpointed_at && *m.checkpointed_at >= m.notice->issued)
      d.evict.push_back({m.key, m.uid, "it acknowledged its checkpoint at " + FormatTime(*m.checkpointed_at), true});
  }
  for (const auto& m : view.members)
    if (m.notice && now > m.notice->deadline + pool.grace + kOverdueSlack) d.overdue++;

  if (policy.first() != v1::WORKLOAD_CLASS_INFERENCE) {
    if (d.transition) d.reason = explain();
    return d;
  }
  const int floor = policy.floor_cards_for_other();  // cards training keeps even now
  const int training_cards = CardsHeldBy(view, v1::WORKLOAD_CLASS_TRAINING);
  int needed = 0;
  if (!policy.other_class_may_borrow()) {
    needed = training_cards - floor;
  } else {
    // Training borrows until inference asks: free enough cards for the inference pods waiting
    // (longer than the trigger's patience, when one is set) and keep the headroom free, beyond
    // the cards already free or leaving.
    int demand = 0;
    const seconds patience(pool.load_trigger.pending_inference_seconds());
    for (const auto& w : view.waiting)
      if (w.cls == v1::WORKLOAD_CLASS_INFERENCE && now - w.since >= patience) demand += std::max(1, w.cards);
    CardBook book(view);
    std::set<const Member*> gone;
    for (const auto& m : view.members)
      if (Leaving(m)) gone.insert(&m);
    const int available = book.free + book.Freed(gone);
    needed = std::min(demand + policy.headroom_cards() - available, training_cards - floor);
  }
  d.cards_needed = std::max(0, needed);
  d.notice = ChooseVictims(view, d.cards_needed, now);
  if (d.transition || !d.notice.empty()) d.reason = explain() + ahead;
  return d;
}

TideNow TideNowOf(const PoolSpec& pool, const PoolState& state, const PoolView& view, TimePoint now) {
  TideNow t;
  const Tide clock = ClockTide(pool, now);
  t.tide = state.known ? state.tide : clock;
  t.held_by_load = state.known && now < state.load_hold_until && t.tide != clock;
  t.hold_until = state.load_hold_until;
  t.pool_cards = static_cast<int>(view.cards.size());
  const v1::WorkloadClass first = FirstClass(pool, t.tide);
  std::set<std::string> pool_cards(view.cards.begin(), view.cards.end()), held, first_held, other_held;
  for (const auto& m : view.members)
    for (const auto& c : m.cards) {
      if (!pool_cards.count(c)) continue;
      held.insert(c);
      if (m.cls == first) first_held.insert(c);
      else if (m.cls != v1::WORKLOAD_CLASS_UNSPECIFIED) other_held.insert(c);
    }
  t.first_class_cards = static_cast<int>(first_held.size());
  t.other_class_cards = static_cast<int>(other_held.size());
  t.free_cards = t.pool_cards - static_cast<int>(held.size());
  return t;
}

std::string FormatTime(TimePoint t) {
  return date::format("%FT%TZ", std::chrono::floor<seconds>(t));
}

StatusOr<TimePoint> ParseTime(const std::string& field, const std::string& text) {
  // RFC 3339: a "Z" or a numeric offset, fractional seconds optional.
  std::istringstream in(text);
  date::sys_time<std::chrono::microseconds> t;
  if (!text.empty() && (text.back() == 'Z' || text.back() == 'z')) {
    in >> date::parse("%FT%TZ", t);
  } else {
    in >> date::parse("%FT%T%Ez", t);
  }
  if (in.fail() || (in.peek(), !in.eof()))
    return Status::InvalidArgument(field, "must be an RFC 3339 time such as 2026-11-24T20:00:00Z, got \"" + text + "\"");
  // system_clock counts nanoseconds in 64 bits: about 1678..2262. Keep well inside.
  static const auto kFirst = date::sys_days(date::year(1970) / 1 / 1), kLast = date::sys_days(date::year(2200) / 1 / 1);
  if (t < kFirst || t >= kLast)
    return Status::InvalidArgument(field, "must be a time between 1970 and 2200, got \"" + text + "\"");
  return TimePoint(std::chrono::duration_cast<system_clock::duration>(t.time_since_epoch()));
}

std::string FormatNotice(const Notice& n) {
  nlohmann::json j = {{"pool", n.pool}, {"transition", n.transition}, {"issued", FormatTime(n.issued)},
                      {"deadline", FormatTime(n.deadline)}};
  return j.dump();
}

StatusOr<Notice> ParseNotice(const std::string& text) {
  const std::string field = kNoticeAnnotation;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Status::InvalidArgument(field, "is not a JSON object; remove the annotation to let the controller rewrite it");
  Notice n;
  for (const char* key : {"pool", "transition", "issued", "deadline"})
    if (!j.contains(key) || !j[key].is_string())
      return Status::InvalidArgument(field, std::string("lacks the string field \"") + key + "\"");
  n.pool = j["pool"].get<std::string>();
  n.transition = j["transition"].get<std::string>();
  auto issued = ParseTime(field + ".issued", j["issued"].get<std::string>());
  if (!issued.ok()) return issued.status();
  auto deadline = ParseTime(field + ".deadline", j["deadline"].get<std::string>());
  if (!deadline.ok()) return deadline.status();
  n.issued = *issued;
  n.deadline = *deadline;
  return n;
}

std::string FormatPoolState(const PoolState& s) {
  nlohmann::json j = {{"tide", TideName(s.tide)},
                      {"since", FormatTime(s.since)},
                      {"cause", s.cause},
                      {"transition", s.transition},
                      {"loadHoldUntil", FormatTime(s.load_hold_until)}};
  return j.dump();
}

StatusOr<PoolState> ParsePoolState(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::InvalidArgument("pool state", "is not a JSON object");
  PoolState s;
  s.known = true;
  const std::string tide = j.contains("tide") && j["tide"].is_string() ? j["tide"].get<std::string>() : "";
  if (tide == "day") s.tide = Tide::kDay;
  else if (tide == "night") s.tide = Tide::kNight;
  else return Status::InvalidArgument("pool state.tide", "must be \"day\" or \"night\", got \"" + tide + "\"");
  for (const char* key : {"since", "loadHoldUntil"}) {
    if (!j.contains(key) || !j[key].is_string())
      return Status::InvalidArgument(std::string("pool state.") + key, "must be an RFC 3339 time");
    auto t = ParseTime(std::string("pool state.") + key, j[key].get<std::string>());
    if (!t.ok()) return t.status();
    (std::string(key) == "since" ? s.since : s.load_hold_until) = *t;
  }
  for (auto [key, out] : {std::pair<const char*, std::string*>{"cause", &s.cause}, {"transition", &s.transition}})
    if (j.contains(key) && j[key].is_string()) *out = j[key].get<std::string>();
  return s;
}

}  // namespace tideslice::tidal
