// The compute-share control law against a simulated card with an injected clock: one FIFO
// engine shared by every container (as the fake device and a time-sliced GPU behave), each
// container saturating it or bursting, measured exactly every 50 ms as the limiter's sampler
// does. Deterministic: no threads, no wall time.
#include "device-plugin/limiter/share_governor.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

namespace tideslice::limiter {
namespace {

constexpr uint64_t kMs = 1000000;
constexpr uint64_t kSamplePeriod = 50 * kMs;
constexpr uint64_t kContentionWindow = 5 * kMs;  // as compute.cc

struct Interval {
  uint64_t start, end;
};

struct Container {
  GovernorParams params;
  std::shared_ptr<ComputeBook> book = std::make_shared<ComputeBook>();  // atomics: not copyable
  uint64_t kernel_ns = 1 * kMs;
  int max_inflight = 4;
  bool inference = false;
  // bursty: `burst` kernels every `period`, else saturating
  int burst = 0;
  uint64_t period = 0;
  // state
  uint64_t next_action = 0;
  std::deque<uint64_t> inflight_ends;
  std::vector<Interval> executed;
  uint64_t last_launch = 0, queued_until = 0;
  int burst_left = 0;
  uint64_t next_burst = 0;
  std::vector<uint64_t> delays;  // queueing delay of each kernel: start − when it wanted to launch
  uint64_t wanted_at = 0;
  bool waiting = false;
};

struct Card {
  uint64_t engine_free = 0;
};

uint64_t BusyIn(const Container& c, uint64_t from, uint64_t to) {
  uint64_t busy = 0;
  for (auto it = c.executed.rbegin(); it != c.executed.rend(); ++it) {
    if (it->end <= from) break;
    uint64_t s = std::max(it->start, from), e = std::min(it->end, to);
    if (e > s) busy += e - s;
  }
  return busy;
}

PeerView PeersOf(const std::vector<Container>& all, size_t self, uint64_t now) {
  PeerView v;
  v.contention = false;
  for (size_t i = 0; i < all.size(); ++i) {
    if (i == self) continue;
    const Container& p = all[i];
    if (p.queued_until > now || p.last_launch + kContentionWindow > now) v.contention = true;
    if (p.inference) v.inference_present = true;
    v.queued_until_ns = std::max(v.queued_until_ns, p.queued_until);
    if (p.inference && p.queued_until > now) v.inference_pending = true;
  }
  return v;
}

// Runs the containers for `duration` of simulated time; returns each one's share of it.
std::vector<double> Simulate(std::vector<Container>& cs, uint64_t duration) {
  Card card;
  for (auto& c : cs) {
    c.next_action = 1;
    c.next_burst = 1;
  }
  for (;;) {
    size_t i = 0;
    for (size_t k = 1; k < cs.size(); ++k)
      if (cs[k].next_action < cs[i].next_action) i = k;
    Container& c = cs[i];
    const uint64_t now = c.next_action;
    if (now >= duration) break;
    while (!c.inflight_ends.empty() && c.inflight_ends.front() <= now) c.inflight_ends.pop_front();
    if (c.burst) {  // bursty: wait for the next burst once the last one finished
      if (c.burst_left == 0) {
        if (!c.inflight_ends.empty()) {
          c.next_action = c.inflight_ends.back();
          continue;
        }
        if (now < c.next_burst) {
          c.next_action = c.next_burst;
          continue;
        }
        c.burst_left = c.burst;
        c.next_burst += c.period;
      }
    } else if (static_cast<int>(c.inflight_ends.size()) >= c.max_inflight) {
      c.next_action = c.inflight_ends.front();
      continue;
    }
    if (!c.waiting) {
      c.wanted_at = now;
      c.waiting = true;
    }
    // The limiter's sampler: measure the container's device time every period.
    if (c.book->sample_ns == 0 || now - c.book->sample_ns >= kSamplePeriod) {
      uint64_t from = c.book->sample_ns;
      if (from) ApplySample(*c.book, c.params, BusyIn(c, from, now), now);
      else c.book->sample_ns = now;
    }
    const PeerView peers = PeersOf(cs, i, now);
    const uint64_t queued_until = std::max(c.queued_until, peers.queued_until_ns);  // as compute.cc
    uint64_t own_queued = queued_until > now ? queued_until - now : 0;
    GateDecision d = AdmitLaunch(*c.book, c.params, peers, own_queued, now);
    if (d.gate != Gate::kGo) {
      c.next_action = now + d.wait_ns;
      continue;
    }
    const uint64_t start = std::max({now, card.engine_free, c.inflight_ends.empty() ? 0 : c.inflight_ends.back()});
    const uint64_t end = start + c.kernel_ns;
    card.engine_free = end;
    c.executed.push_back({start, end});
    c.inflight_ends.push_back(end);
    c.delays.push_back(start - c.wanted_at);
    c.waiting = false;
    c.last_launch = now;
    c.queued_until = std::max(queued_until, now) + d.charge_ns;
    if (c.burst) --c.burst_left;
    c.next_action = now + 1000;  // the next launch call, 1 µs later
  }
  std::vector<double> shares;
  const uint64_t warmup = 2000 * kMs;  // convergence: judge the rest
  for (auto& c : cs) shares.push_back(static_cast<double>(BusyIn(c, warmup, duration)) / (duration - warmup));
  return shares;
}

Container Saturating(uint32_t share, bool work_conserving = false, bool training = true) {
  Container c;
  c.params.share_permille = share;
  c.params.work_conserving = work_conserving;
  c.params.training = training;
  return c;
}

uint64_t P99(std::vector<uint64_t> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() * 99 / 100];
}

TEST(ShareGovernor, OneContainerAloneGetsItsShare) {
  std::vector<Container> cs = {Saturating(300)};
  auto shares = Simulate(cs, 22000 * kMs);
  EXPECT_NEAR(shares[0], 0.30, 0.03);
}

TEST(ShareGovernor, TwoSaturatingContainersGetTheirShares) {
  std::vector<Container> cs = {Saturating(300), Saturating(600)};
  auto shares = Simulate(cs, 22000 * kMs);
  EXPECT_NEAR(shares[0], 0.30, 0.05);
  EXPECT_NEAR(shares[1], 0.60, 0.05);
}

TEST(ShareGovernor, EstimatesFollowMeasuredTimeWhateverTheKernelLength) {
  // 7 ms kernels (one "graph" of many kernels) against a 1 ms default estimate.
  std::vector<Container> cs = {Saturating(300), Saturating(600)};
  cs[0].kernel_ns = 7 * kMs;
  cs[1].kernel_ns = 3 * kMs;
  auto shares = Simulate(cs, 22000 * kMs);
  EXPECT_NEAR(shares[0], 0.30, 0.05);
  EXPECT_NEAR(shares[1], 0.60, 0.05);
  EXPECT_NEAR(static_cast<double>(cs[0].book->estimate_ns), 7.0 * kMs, 1.0 * kMs);
}

TEST(ShareGovernor, AWorkConservingSliceAloneUsesTheIdleCard) {
  std::vector<Container> cs = {Saturating(300, /*work_conserving=*/true)};
  auto shares = Simulate(cs, 22000 * kMs);
  EXPECT_GE(shares[0], 0.90);
}

TEST(ShareGovernor, AWorkConservingSliceGetsItsShareUnderContention) {
  std::vector<Container> cs = {Saturating(300, true), Saturating(600)};
  auto shares = Simulate(cs, 22000 * kMs);
  EXPECT_GE(shares[0], 0.30 - 0.05);
  EXPECT_NEAR(shares[1], 0.60, 0.05);  // the capped neighbour keeps its share
}

TEST(ShareGovernor, TrainingYieldsToInferenceAndGetsTheRest) {
  auto bursty = [] {
    Container c = Saturating(300, false, /*training=*/false);
    c.inference = true;
    c.burst = 10;
    c.period = 50 * kMs;  // 10 × 1 ms every 50 ms: 20 % on average
    return c;
  };
  std::vector<Container> alone = {bursty()};
  Simulate(alone, 22000 * kMs);
  const uint64_t p99_alone = P99(alone[0].delays);

  std::vector<Container> cs = {bursty(), Saturating(600, /*work_conserving=*/true)};
  auto shares = Simulate(cs, 22000 * kMs);
  const uint64_t p99_beside = P99(cs[0].delays);
  EXPECT_LE(p99_beside, 2 * p99_alone) << "alone " << p99_alone << " ns, beside training " << p99_beside << " ns";
  EXPECT_NEAR(shares[0], 0.20, 0.02);
  EXPECT_GE(shares[1], 0.70) << "training gets the rest of the card";
}

TEST(ShareGovernor, AMeasurementGlitchCannotStarveASliceForever) {
  ComputeBook b{};
  GovernorParams p;
  p.share_permille = 300;
  AdmitLaunch(b, p, PeerView{}, 0, 1);
  ApplySample(b, p, 1000000 * kMs, 10 * kMs);  // absurd: 1000 s of device time in 10 ms
  EXPECT_GE(b.tokens_ns, -10 * static_cast<int64_t>(BurstOf(p)));
  // It recovers within the debt's refill time.
  uint64_t now = 10 * kMs;
  while (AdmitLaunch(b, p, PeerView{}, 0, now).gate != Gate::kGo) now += 10 * kMs;
  EXPECT_LE(now, 10 * kMs + 10 * BurstOf(p) * 1000 / 300 + 20 * kMs);
}

TEST(ShareGovernor, APeriodWithoutMeasurementIsNotComparedLater) {
  ComputeBook b{};
  GovernorParams p;
  p.share_permille = 500;
  for (int i = 0; i < 10; ++i) AdmitLaunch(b, p, PeerView{}, 0, 1000 + i);  // 10 launches charged
  SkipSample(b);  // nothing measured this period
  EXPECT_EQ(b.charged_since_sample, 0u);
  const int64_t before = b.tokens_ns;
  ApplySample(b, p, 0, 2000);  // the next period measured nothing: nothing to correct
  EXPECT_LE(b.tokens_ns - before, 1000);  // only the refill over 1 µs, no refund of old charges
}

TEST(ShareGovernor, UnlimitedSlicesAreNeverHeld) {
  ComputeBook b{};
  GovernorParams p;  // share 0
  for (uint64_t t = 1; t < 1000; ++t) EXPECT_EQ(AdmitLaunch(b, p, PeerView{}, 0, t * 1000).gate, Gate::kGo);
}

}  // namespace
}  // namespace tideslice::limiter
