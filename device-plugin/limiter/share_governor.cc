#include "device-plugin/limiter/share_governor.h"

namespace tideslice::limiter {
namespace {

constexpr uint64_t kMinWaitNs = 50000;     // sleeping less than this costs more than it saves
constexpr uint64_t kYieldPollNs = 250000;  // how often a yielding training slice looks again

bool Limited(const GovernorParams& p) { return p.share_permille > 0 && p.share_permille < 1000; }

void Refill(ComputeBook& b, const GovernorParams& p, uint64_t now) {
  const int64_t burst = static_cast<int64_t>(BurstOf(p));
  if (b.refill_ns == 0) {  // first use of this book
    b.tokens_ns = burst;
    b.refill_ns = now;
    if (b.estimate_ns == 0) b.estimate_ns = p.default_estimate_ns;
    return;
  }
  if (now > b.refill_ns) {
    const uint64_t earned = (now - b.refill_ns) * (Limited(p) ? p.share_permille : 1000) / 1000;
    b.tokens_ns += static_cast<int64_t>(earned > static_cast<uint64_t>(INT64_MAX / 2) ? INT64_MAX / 2 : earned);
    if (b.tokens_ns > burst) b.tokens_ns = burst;
    b.refill_ns = now;
  }
}

void Charge(ComputeBook& b, uint64_t charge) {
  b.tokens_ns -= static_cast<int64_t>(charge);
  b.charged_since_sample += charge;
  b.launches_since_sample += 1;
}

}  // namespace

uint64_t BurstOf(const GovernorParams& p) {
  if (p.burst_ns) return p.burst_ns;
  const uint64_t share = Limited(p) ? p.share_permille : 1000;
  const uint64_t burst = share * 100000;  // share × 100 ms
  return burst < 5000000 ? 5000000 : burst;
}

GateDecision AdmitLaunch(ComputeBook& b, const GovernorParams& p, const PeerView& peers, uint64_t own_queued_ns,
                         uint64_t now) {
  Refill(b, p, now);
  GateDecision d;
  const uint64_t estimate = b.estimate_ns ? b.estimate_ns : p.default_estimate_ns;
  if (p.training && peers.inference_pending) {
    d.gate = Gate::kYield;
    d.wait_ns = kYieldPollNs;
    return d;
  }
  // Beside inference (or anyone else) training keeps its queue short, so that a burst never
  // finds more than that much training work ahead of it on the card.
  if (p.training && peers.inference_present && own_queued_ns > p.training_queue_ns) {
    d.gate = Gate::kWaitQueue;
    d.wait_ns = own_queued_ns - p.training_queue_ns;
    if (d.wait_ns < kMinWaitNs) d.wait_ns = kMinWaitNs;
    return d;
  }
  const bool free_ride = !Limited(p) || (p.work_conserving && !peers.contention);
  if (free_ride || b.tokens_ns > 0) {
    Charge(b, estimate);
    // Using idle capacity builds no debt that would starve the slice once others come back.
    const int64_t floor = -static_cast<int64_t>(BurstOf(p));
    if (free_ride && b.tokens_ns < floor) b.tokens_ns = floor;
    d.gate = Gate::kGo;
    d.charge_ns = estimate;
    return d;
  }
  // Out of budget: wait until the bucket is positive again.
  d.gate = Gate::kWaitBudget;
  d.wait_ns = (static_cast<uint64_t>(-b.tokens_ns) + 1) * 1000 / p.share_permille;
  if (d.wait_ns < kMinWaitNs) d.wait_ns = kMinWaitNs;
  return d;
}

void ApplySample(ComputeBook& b, const GovernorParams& p, uint64_t busy_ns, uint64_t now, bool learn_estimate) {
  Refill(b, p, now);
  // What the launches really cost replaces what they were expected to cost.
  b.tokens_ns += static_cast<int64_t>(b.charged_since_sample) - static_cast<int64_t>(busy_ns);
  const int64_t burst = static_cast<int64_t>(BurstOf(p));
  if (b.tokens_ns > burst) b.tokens_ns = burst;
  if (b.tokens_ns < -10 * burst) b.tokens_ns = -10 * burst;  // a measurement glitch must not starve it
  if (b.launches_since_sample > 0 && busy_ns > 0) {
    // Exact measurements move the estimate by a quarter; derived ones (a device-wide figure split
    // by charges, which preserves the containers' ratios but carries window noise) by 1/16, so
    // that the noise cannot walk the ratios away.
    const uint64_t per_launch = busy_ns / b.launches_since_sample;
    const uint64_t weight = learn_estimate ? 4 : 16;
    b.estimate_ns = b.estimate_ns ? ((weight - 1) * b.estimate_ns + per_launch) / weight : per_launch;
    if (b.estimate_ns < 1000) b.estimate_ns = 1000;
  }
  b.busy_ns += busy_ns;
  b.charged_since_sample = 0;
  b.launches_since_sample = 0;
  b.sample_ns = now;
}

void SkipSample(ComputeBook& b) {
  b.charged_since_sample = 0;
  b.launches_since_sample = 0;
}

}  // namespace tideslice::limiter
