// The tidal controller's decisions, pure: from a pool's spec, its last recorded state and what
// runs and waits on its cards now, which tide the pool is in, whether that is a transition,
// which training pods get a checkpoint notice, which are evicted, and which notices are
// withdrawn. No clocks, no I/O: the controller (controller.h) feeds it and carries it out, and
// the simulator (tideslice-sim tidal) runs the very same function over a simulated week.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "scheduler/tidal/pool.h"

namespace tideslice::tidal {

using TimePoint = std::chrono::system_clock::time_point;

// Pod annotations and node labels of the tide. The notice's deadline is also on its own, as a
// bare RFC 3339 time, so a downward-API volume shows the container a file it can read as is.
inline constexpr char kNoticeAnnotation[] = "tideslice.io/checkpoint-notice";      // JSON, see FormatNotice
inline constexpr char kDeadlineAnnotation[] = "tideslice.io/checkpoint-deadline";  // RFC 3339
// Set by the workload (or its operator) once it has saved its state: RFC 3339 time of the last
// checkpoint. At or after the notice it allows eviction before the deadline; before a notice
// it tells the controller how much work an eviction would lose.
inline constexpr char kCheckpointedAnnotation[] = "tideslice.io/checkpointed-at";
inline constexpr char kPoolLabel[] = "tideslice.io/pool";
inline constexpr char kTideLabel[] = "tideslice.io/tide";

// What the controller records per pool (in a ConfigMap) so that a restart, or a new leader,
// carries on where the last one stopped.
struct PoolState {
  bool known = false;               // false: never recorded (first start)
  Tide tide = Tide::kNight;
  TimePoint since{};                // when this tide began
  std::string cause;                // "clock", "load" or "start"
  TimePoint load_hold_until{};      // a load switch holds the inference tide until then
  std::string transition;           // id of the transition that began this tide
};

struct Notice {
  std::string pool, transition;
  TimePoint issued{}, deadline{};
};

// A pod holding slices on one of the pool's nodes.
struct Member {
  std::string key, uid, node;
  v1::WorkloadClass cls = v1::WORKLOAD_CLASS_UNSPECIFIED;
  int32_t priority = 0;
  TimePoint started{};                        // when it got its cards
  std::optional<TimePoint> checkpointed_at;   // the workload's last checkpoint
  std::optional<Notice> notice;
  std::vector<std::string> cards;             // uuids of the cards it holds
  bool deleting = false;
};

// A pod waiting for cards that this pool could serve.
struct Waiting {
  std::string key;
  v1::WorkloadClass cls = v1::WORKLOAD_CLASS_UNSPECIFIED;
  TimePoint since{};                          // created
  int cards = 1;                              // whole cards it would need at most
};

struct PoolView {
  std::vector<std::string> cards;             // healthy card uuids of the pool's nodes
  std::vector<Member> members;
  std::vector<Waiting> waiting;
  std::optional<double> demand;               // the Prometheus demand figure, when configured and read
};

struct EvictOrder {
  std::string key, uid;
  std::string why;                            // for the Event: the deadline passed, or the checkpoint came
  bool acknowledged = false;                  // evicted early on the workload's acknowledgement
};

struct Decision {
  PoolState state;                            // what to record (changed() tells whether to write)
  bool transition = false;                    // the tide changed now
  Tide from = Tide::kNight;
  std::string reason;                         // why the tide is what it is (set with a transition or notices)
  std::vector<std::string> notice;            // member keys to notice now, with `deadline`
  TimePoint deadline{};                       // for new notices: now + notice, or the coming clock switch
  std::vector<EvictOrder> evict;
  std::vector<std::string> withdraw;          // notices no longer needed
  int cards_needed = 0;                       // cards the first class is short of
  int overdue = 0;                            // noticed pods past deadline + grace, still there
};

// The class a tide serves first (inference when the policy leaves it unset by day, training by night).
v1::WorkloadClass FirstClass(const PoolSpec& pool, Tide tide);
// The tide a load trigger moves the pool to: the one whose first class is inference.
std::optional<Tide> InferenceTide(const PoolSpec& pool);
// How long a load switch holds the inference tide after the last sign of demand.
std::chrono::seconds LoadHold(const PoolSpec& pool);

// A clock switch into the inference tide is known ahead: notices go out up to `notice` before it,
// with the switch as their deadline, so that the cards are free when the day begins.
Decision Decide(const PoolSpec& pool, const PoolState& last, const PoolView& view, TimePoint now);

// Which of `candidates` (training members without a notice) to displace so that `needed` more
// cards end up with no holder, given the cards already free and the members already leaving:
// lowest priority first; among equals the one that frees the most of the cards still needed (so
// the fewest pods go), then the one that would lose the least work (time since its last
// checkpoint or start), then the one holding fewer cards (less training capacity lost). A last
// pass drops any victim the others make unnecessary. Returns member keys.
std::vector<std::string> ChooseVictims(const PoolView& view, int needed, TimePoint now);

// The tide the gate applies, from the recorded state (the clock's if none) and what holds the
// pool's cards now.
TideNow TideNowOf(const PoolSpec& pool, const PoolState& state, const PoolView& view, TimePoint now);

// The notice annotation's JSON and its inverse (errors say what is wrong with the text).
std::string FormatNotice(const Notice& notice);
StatusOr<Notice> ParseNotice(const std::string& text);
std::string FormatTime(TimePoint t);             // RFC 3339, seconds, UTC
StatusOr<TimePoint> ParseTime(const std::string& field, const std::string& text);

// The PoolState record (one ConfigMap key per pool) and its inverse.
std::string FormatPoolState(const PoolState& state);
StatusOr<PoolState> ParsePoolState(const std::string& text);

}  // namespace tideslice::tidal
