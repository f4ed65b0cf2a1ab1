#include "scheduler/sim/tidal.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <map>
#include <optional>
#include <random>

#include <date/date.h>
#include <date/tz.h>

#include "scheduler/sim/svg.h"
#include "scheduler/tidal/decide.h"

namespace tideslice::sim {

using std::chrono::seconds;
using std::chrono::system_clock;
using tidal::TimePoint;

namespace {

constexpr double kPi = 3.14159265358979323846;

struct Job {
  int id = 0;
  int cards = 1;
  double duration_s = 0;      // work to do
  double work_s = 0;          // work done
  double saved_s = 0;         // work done as of its last checkpoint
  bool running = false;
  std::vector<int> held;
  TimePoint started{};
  std::optional<tidal::Notice> notice;
  bool checkpointing = false;
  double checkpoint_left_s = 0;
  std::optional<TimePoint> acknowledged;
};

struct Replica {
  int id = 0;
  TimePoint since{};
  bool running = false;
  int card = -1;
};

enum class Mode { kStatic, kTidal, kNoNotice };

class PoolSim {
 public:
  PoolSim(const TidalSimOptions& o, Mode mode) : o_(o), mode_(mode), owner_(static_cast<size_t>(o.cards), kFree), rng_(o.seed) {
    for (int c = 0; c < o.cards; ++c) card_names_.push_back("card-" + std::to_string(c));
    run_.mode = mode == Mode::kStatic ? "static" : mode == Mode::kTidal ? "tidal" : "no-notice";
  }

  TidalRun Run() {
    const int steps = static_cast<int>(o_.days * 86400 / o_.step_seconds);
    const double dt = o_.step_seconds;
    // Day starts, for the waits around them.
    for (int i = 1; i <= steps; ++i) {
      TimePoint a = o_.start + seconds((i - 1) * o_.step_seconds), b = o_.start + seconds(i * o_.step_seconds);
      if (tidal::ClockTide(o_.pool, a) == tidal::Tide::kNight && tidal::ClockTide(o_.pool, b) == tidal::Tide::kDay)
        day_starts_.push_back(b);
    }
    double held_card_s = 0;
    for (int i = 0; i < steps; ++i) {
      const TimePoint t = o_.start + seconds(i * o_.step_seconds);
      ScaleInference(t);
      Progress(t, dt);
      if (mode_ != Mode::kStatic) {
        Decide(t);
        tide_ = tidal::TideNowOf(o_.pool, state_, View(t), t);
      }
      StartInference(t);
      for (const auto& r : replicas_) run_.inference_unserved_card_h += r.running ? 0 : dt / 3600.0;
      StartTraining(t);
      int held = 0, inference = 0, training = 0;
      for (int owner : owner_) {
        held += owner != kFree;
        inference += owner <= kReplicaBase;
        training += owner >= 0;
      }
      held_card_s += held * dt;
      if (i % (900 / o_.step_seconds) == 0) {
        const double h = i * dt / 3600.0;
        run_.inference_cards.push_back({h, inference});
        run_.training_cards.push_back({h, training});
      }
    }
    run_.utilisation = held_card_s / (static_cast<double>(o_.cards) * steps * dt);
    // Replicas still waiting at the end waited at least this long.
    const TimePoint end = o_.start + seconds(steps * o_.step_seconds);
    for (const auto& r : replicas_)
      if (!r.running) RecordWait(r, end);
    auto& waits = waits_;
    // Progress kept: finished jobs, and what running or queued jobs hold at the end.
    for (const auto& [id, j] : jobs_) run_.training_done_card_h += j.work_s * j.cards / 3600.0;
    run_.training_done_card_h += finished_card_h_;
    std::sort(waits.begin(), waits.end());
    auto pct = [&](double q) { return waits.empty() ? 0.0 : waits[static_cast<size_t>(q * (waits.size() - 1))]; };
    run_.inference_wait_p50_s = pct(0.5);
    run_.inference_wait_p99_s = pct(0.99);
    run_.inference_wait_max_s = waits.empty() ? 0 : waits.back();
    return run_;
  }

 private:
  static constexpr int kFree = -1;
  static constexpr int kReplicaBase = -2;  // replica r owns a card as kReplicaBase - r

  std::vector<int> FreeCards(int n) {
    std::vector<int> out;
    for (int c = 0; c < o_.cards && static_cast<int>(out.size()) < n; ++c)
      if (owner_[static_cast<size_t>(c)] == kFree) out.push_back(c);
    return out;
  }
  int CardsHeld(bool training) const {
    int n = 0;
    for (int owner : owner_) n += training ? owner >= 0 : owner <= kReplicaBase;
    return n;
  }

  void ScaleInference(TimePoint t) {
    // Like a HorizontalPodAutoscaler with its default scale-down stabilisation (300 s): up at
    // once, down to the highest recommendation of the last five minutes.
    recent_.push_back({t, static_cast<int>(std::ceil(InferenceDemand(o_, t) - 1e-9))});
    while (t - recent_.front().first > std::chrono::seconds(300)) recent_.pop_front();
    int desired = 0;
    for (const auto& [when, n] : recent_) desired = std::max(desired, n);
    int alive = static_cast<int>(replicas_.size());
    for (; alive < desired; ++alive) {
      Replica r;
      r.id = next_replica_++;
      r.since = t;
      replicas_.push_back(r);
    }
    // Scale down: waiting replicas first, then the newest running ones.
    while (alive > desired) {
      auto it = std::find_if(replicas_.rbegin(), replicas_.rend(), [](const Replica& r) { return !r.running; });
      if (it == replicas_.rend()) it = replicas_.rbegin();
      if (it->running) owner_[static_cast<size_t>(it->card)] = kFree;
      else RecordWait(*it, t);  // never served: it waited all its life
      replicas_.erase(std::next(it).base());
      --alive;
    }
  }

  void Progress(TimePoint t, double dt) {
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      Job& j = it->second;
      if (!j.running) {
        ++it;
        continue;
      }
      if (j.checkpointing) {
        j.checkpoint_left_s -= dt;
        run_.checkpoint_card_h += j.cards * dt / 3600.0;
        if (j.checkpoint_left_s <= 0) {
          j.checkpointing = false;
          j.saved_s = j.work_s;
          j.acknowledged = t;  // sets tideslice.io/checkpointed-at
        }
      } else if (!j.acknowledged) {
        j.work_s += dt;
        if (j.work_s - j.saved_s >= o_.periodic_checkpoint_minutes * 60.0) j.saved_s = j.work_s;
      }
      if (j.work_s >= j.duration_s) {
        for (int c : j.held) owner_[static_cast<size_t>(c)] = kFree;
        finished_card_h_ += j.duration_s * j.cards / 3600.0;
        run_.jobs_finished++;
        it = jobs_.erase(it);
        continue;
      }
      ++it;
    }
  }

  tidal::PoolView View(TimePoint) const {
    tidal::PoolView v;
    v.cards = card_names_;
    for (const auto& [id, j] : jobs_) {
      if (!j.running) continue;
      tidal::Member m;
      m.key = "job-" + std::to_string(id);
      m.uid = m.key;
      m.cls = v1::WORKLOAD_CLASS_TRAINING;
      m.started = j.started;
      m.checkpointed_at = j.acknowledged;
      m.notice = j.notice;
      for (int c : j.held) m.cards.push_back(card_names_[static_cast<size_t>(c)]);
      v.members.push_back(std::move(m));
    }
    for (const auto& r : replicas_) {
      if (r.running) {
        tidal::Member m;
        m.key = "replica-" + std::to_string(r.id);
        m.cls = v1::WORKLOAD_CLASS_INFERENCE;
        m.cards = {card_names_[static_cast<size_t>(r.card)]};
        v.members.push_back(std::move(m));
      } else {
        v.waiting.push_back({"replica-" + std::to_string(r.id), v1::WORKLOAD_CLASS_INFERENCE, r.since, 1});
      }
    }
    return v;
  }

  Job* JobOf(const std::string& key) {
    auto it = jobs_.find(std::stoi(key.substr(4)));
    return it == jobs_.end() ? nullptr : &it->second;
  }

  void Evict(Job& j) {
    run_.training_lost_card_h += (j.work_s - j.saved_s) * j.cards / 3600.0;
    j.work_s = j.saved_s;  // it resumes from its checkpoint
    for (int c : j.held) owner_[static_cast<size_t>(c)] = kFree;
    j.held.clear();
    j.running = false;
    j.notice.reset();
    j.checkpointing = false;
    j.acknowledged.reset();
    queue_.push_front(j.id);
    run_.evictions++;
  }

  void Decide(TimePoint t) {
    tidal::Decision d = tidal::Decide(o_.pool, state_, View(t), t);
    if (d.transition) {
      run_.switches++;
      if (d.state.cause == "load") run_.load_switches++;
      if (o_.log_transitions)
        std::fprintf(stderr, "%s %s %s -> %s: %s\n", run_.mode.c_str(), tidal::FormatTime(t).c_str(),
                     tidal::TideName(d.from), tidal::TideName(d.state.tide), d.reason.c_str());
    }
    state_ = d.state;
    for (const auto& key : d.withdraw)
      if (Job* j = JobOf(key)) {
        j->notice.reset();
        j->checkpointing = false;
        j->acknowledged.reset();
      }
    for (const auto& order : d.evict)
      if (Job* j = JobOf(order.key)) Evict(*j);
    for (const auto& key : d.notice) {
      Job* j = JobOf(key);
      if (!j) continue;
      if (mode_ == Mode::kNoNotice) {
        Evict(*j);
        continue;
      }
      run_.notices++;
      j->notice = tidal::Notice{o_.pool.name, d.state.transition, t, d.deadline};
      j->checkpointing = true;
      j->checkpoint_left_s = o_.checkpoint_seconds;
    }
  }

  // The gate, as the extender applies it. `tide_` is the pool's TideNow for this step, kept up to
  // date as pods start (Started) so that it is built once per step, not once per pod.
  bool Allowed(TimePoint t, v1::WorkloadClass cls, int cards) const {
    if (mode_ == Mode::kStatic) {
      if (cls == v1::WORKLOAD_CLASS_INFERENCE) return CardsHeld(false) + cards <= o_.static_inference_cards;
      return CardsHeld(true) + cards <= o_.cards - o_.static_inference_cards;
    }
    return tidal::Gate(o_.pool, cls, tide_, cards, t).allowed;
  }
  void Started(v1::WorkloadClass cls, int cards) {
    tide_.free_cards -= cards;
    (cls == tidal::FirstClass(o_.pool, tide_.tide) ? tide_.first_class_cards : tide_.other_class_cards) += cards;
  }

  void RecordWait(const Replica& r, TimePoint served_or_gone) {
    const double wait = std::chrono::duration<double>(served_or_gone - r.since).count();
    waits_.push_back(wait);
    for (TimePoint s : day_starts_)
      if (r.since >= s - std::chrono::minutes(30) && r.since <= s + std::chrono::hours(2))
        run_.day_start_wait_max_s = std::max(run_.day_start_wait_max_s, wait);
  }

  void StartInference(TimePoint t) {
    for (auto& r : replicas_) {
      if (r.running) continue;
      auto free = FreeCards(1);
      if (free.empty() || !Allowed(t, v1::WORKLOAD_CLASS_INFERENCE, 1)) break;  // first come, first served
      r.running = true;
      r.card = free[0];
      owner_[static_cast<size_t>(r.card)] = kReplicaBase - r.id;
      Started(v1::WORKLOAD_CLASS_INFERENCE, 1);
      RecordWait(r, t);
      run_.inference_starts++;
    }
  }

  void StartTraining(TimePoint t) {
    // A training backlog that never runs dry: top the queue up from the seeded generator.
    std::discrete_distribution<int> size({40, 25, 25, 10});
    std::uniform_real_distribution<double> hours(2, 12);
    const int sizes[] = {1, 2, 4, 8};
    while (queue_.size() < 32) {
      Job j;
      j.id = next_job_++;
      j.cards = sizes[size(rng_)];
      j.duration_s = hours(rng_) * 3600;
      jobs_[j.id] = j;
      queue_.push_back(j.id);
    }
    // First come first served, with backfill: a job that fits may pass a bigger one.
    for (auto it = queue_.begin(); it != queue_.end();) {
      Job& j = jobs_[*it];
      auto free = FreeCards(j.cards);
      if (static_cast<int>(free.size()) < j.cards || !Allowed(t, v1::WORKLOAD_CLASS_TRAINING, j.cards)) {
        ++it;
        continue;
      }
      j.running = true;
      j.held = free;
      j.started = t;
      for (int c : free) owner_[static_cast<size_t>(c)] = j.id;
      Started(v1::WORKLOAD_CLASS_TRAINING, j.cards);
      it = queue_.erase(it);
    }
  }

  const TidalSimOptions& o_;
  Mode mode_;
  std::vector<int> owner_;
  std::vector<std::string> card_names_;
  std::map<int, Job> jobs_;
  std::deque<int> queue_;
  std::vector<Replica> replicas_;
  std::deque<std::pair<TimePoint, int>> recent_;  // the autoscaler's recommendations
  std::vector<TimePoint> day_starts_;
  std::vector<double> waits_;                       // every replica's wait, served or not
  int next_job_ = 0, next_replica_ = 0;
  tidal::PoolState state_;
  tidal::TideNow tide_;
  std::mt19937_64 rng_;
  double finished_card_h_ = 0;
  TidalRun run_;
};

}  // namespace

tidal::PoolSpec DefaultTidalPool() {
  v1::Pool p;
  p.set_name("tidal-default");
  (*p.mutable_node_selector())["tideslice.io/pool"] = "tidal-default";
  p.set_timezone("UTC");
  auto* weekdays = p.add_day_windows();
  for (const char* d : {"Mon", "Tue", "Wed", "Thu", "Fri"}) weekdays->add_weekdays(d);
  weekdays->set_start("08:00");
  weekdays->set_end("00:00");  // to midnight: the evening's demand stays far above the night floor
  auto* weekend = p.add_day_windows();
  for (const char* d : {"Sat", "Sun"}) weekend->add_weekdays(d);
  weekend->set_start("09:00");
  weekend->set_end("00:00");
  p.mutable_day_policy()->set_other_class_may_borrow(true);
  p.mutable_day_policy()->set_headroom_cards(4);
  p.mutable_night_policy()->set_other_class_may_borrow(true);
  p.mutable_night_policy()->set_floor_cards_for_other(16);
  p.mutable_load_trigger()->set_pending_inference_seconds(60);
  p.set_notice_seconds(300);
  p.set_grace_seconds(60);
  auto spec = tidal::ValidatePool(p, "default pool");
  return *spec;  // a fixed, valid configuration
}

double InferenceDemand(const TidalSimOptions& o, TimePoint t) {
  auto local = date::make_zoned(o.pool.zone, date::floor<seconds>(t)).get_local_time();
  auto day = date::floor<date::days>(local);
  const double hour = std::chrono::duration<double>(local - day).count() / 3600.0;
  const unsigned weekday = date::weekday(day).c_encoding();
  // Trough at 04:00 (15 % of the peak), peak at 16:00; a raised cosine, sharpened.
  const double wave = std::pow(0.5 - 0.5 * std::cos(2 * kPi * (hour - 4) / 24), 1.5);
  double demand = o.inference_peak_cards * (0.15 + 0.85 * wave);
  if (weekday == 0 || weekday == 6) demand *= o.weekend_factor;
  // +-4 % noise, constant within each 10-minute bucket, reproducible from the seed.
  const auto bucket = static_cast<uint64_t>(std::chrono::duration_cast<seconds>(t.time_since_epoch()).count() / 600);
  std::mt19937_64 rng(o.seed * 1000003ULL + bucket);
  std::uniform_real_distribution<double> noise(-0.04, 0.04);
  return std::min<double>(o.cards, demand * (1 + noise(rng)));
}

StatusOr<std::vector<TidalRun>> RunTidalSim(const TidalSimOptions& in) {
  TidalSimOptions o = in;
  if (!o.pool.zone) o.pool = DefaultTidalPool();
  if (o.cards < 1 || o.cards > 4096) return Status::InvalidArgument("--cards", "must be 1..4096");
  if (!(o.days > 0 && o.days <= 366)) return Status::InvalidArgument("--days", "must be more than 0 and at most 366");
  if (o.step_seconds < 1 || o.step_seconds > 600 || 900 % o.step_seconds != 0)
    return Status::InvalidArgument("--step", "must divide 900 (15 minutes), e.g. 30");
  if (!(o.inference_peak_cards > 0 && o.inference_peak_cards <= o.cards))
    return Status::InvalidArgument("--peak", "must be more than 0 and at most --cards");
  if (o.static_inference_cards < 0 || o.static_inference_cards > o.cards)
    return Status::InvalidArgument("--static-inference", "must be 0..--cards");
  Status floor = tidal::ValidateFloor(o.pool, o.cards);
  if (!floor.ok()) return floor;
  if (o.start == TimePoint{}) {
    // Monday 2026-11-23 00:00 local time of the pool.
    o.start = o.pool.zone->to_sys(date::local_days(date::year(2026) / 11 / 23), date::choose::earliest);
  }
  std::vector<TidalRun> runs;
  for (Mode m : {Mode::kStatic, Mode::kTidal, Mode::kNoNotice}) runs.push_back(PoolSim(o, m).Run());
  return runs;
}

std::string TidalReportMarkdown(const TidalSimOptions& o, const std::vector<TidalRun>& runs) {
  std::string out;
  char line[512];
  std::snprintf(line, sizeof line,
                "# Tidal pool: %d cards, %.1f days\n\nInference peak %.0f cards (weekends x%.2f); training backlog of "
                "1/2/4/8-card jobs of 2-12 h; notice %lld s, checkpoint %d s, periodic checkpoints every %d min; static "
                "split keeps %d cards for inference.\n\n",
                o.cards, o.days, o.inference_peak_cards, o.weekend_factor,
                static_cast<long long>(o.pool.notice.count()), o.checkpoint_seconds, o.periodic_checkpoint_minutes,
                o.static_inference_cards);
  out += line;
  out += "| mode | utilisation | inference wait p50 / p99 / max (s) | max wait at day start (s) | inference unserved (card-h) | training kept (card-h) | "
         "lost (card-h) | lost % | checkpointing (card-h) | jobs done | notices | evictions | switches (load) |\n";
  out += "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : runs) {
    std::snprintf(line, sizeof line,
                  "| %s | %.1f %% | %.0f / %.0f / %.0f | %.0f | %.1f | %.0f | %.1f | %.2f %% | %.1f | %d | %d | %d | %d (%d) |\n",
                  r.mode.c_str(), 100 * r.utilisation, r.inference_wait_p50_s, r.inference_wait_p99_s,
                  r.inference_wait_max_s, r.day_start_wait_max_s, r.inference_unserved_card_h, r.training_done_card_h, r.training_lost_card_h,
                  r.LostPercent(), r.checkpoint_card_h, r.jobs_finished, r.notices, r.evictions, r.switches,
                  r.load_switches);
    out += line;
  }
  const TidalRun* tidal = nullptr;
  for (const auto& r : runs)
    if (r.mode == "tidal") tidal = &r;
  if (tidal) {
    out += "\nGoals (tidal): utilisation >= 85 %: ";
    out += tidal->utilisation >= 0.85 ? "met" : "NOT met";
    out += "; inference wait at the switch <= 60 s: ";
    out += tidal->day_start_wait_max_s <= 60 ? "met" : "NOT met";
    out += "; training work lost <= 2 %: ";
    out += tidal->LostPercent() <= 2 ? "met" : "NOT met";
    out += ".\n";
  }
  return out;
}

std::string TidalSvg(const TidalSimOptions& o, const std::vector<TidalRun>& runs) {
  ChartOptions c;
  c.title = "Tidal pool: cards held over time (" + std::to_string(o.cards) + " cards)";
  c.x_label = "hours since Monday 00:00";
  c.y_label = "cards";
  c.x_min = 0;
  c.x_max = o.days * 24;
  c.y_min = 0;
  c.y_max = o.cards;
  for (int d = 0; d < static_cast<int>(std::ceil(o.days)); ++d) c.x_marks.push_back({d * 24.0, "day " + std::to_string(d + 1)});
  std::vector<Series> series;
  for (const auto& r : runs) {
    if (r.mode == "no-notice") continue;
    series.push_back({r.mode + ": inference", r.inference_cards});
    series.push_back({r.mode + ": training", r.training_cards});
    Series total{r.mode + ": all", {}};
    for (size_t i = 0; i < r.inference_cards.size(); ++i)
      total.points.push_back({r.inference_cards[i].first, r.inference_cards[i].second + r.training_cards[i].second});
    series.push_back(std::move(total));
  }
  return LineChartSvg(c, series);
}

}  // namespace tideslice::sim
