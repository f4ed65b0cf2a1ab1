// The compute-share control law, free of I/O and clocks (the caller passes `now`), so that unit
// tests drive it with an injected clock. It runs under the container's ComputeBook lock for one
// card, on every launch of any of the container's processes.
//
// A token bucket in device time: the container earns share × wall time, up to `burst`. A launch
// may go while the bucket is positive and is charged the expected device time of one launch
// (`estimate`). Every sampling period the bucket is corrected by what was really measured
// (estimates charged − device time measured), so the long-run share is exact however wrong the
// estimates are, and the estimate follows measured time per launch. Work-conserving slices are
// not held back while no other container uses the card; training slices wait while an inference
// slice on the same card has work queued, and keep their own queue short so that they can
// get out of the way quickly (docs/isolation.md, "Compute shares").
#pragma once

#include <stdint.h>

#include "device-plugin/limiter/region_layout.h"

namespace tideslice::limiter {

struct GovernorParams {
  uint32_t share_permille = 0;          // 0 or >= 1000: not limited
  bool work_conserving = false;
  bool training = false;                // yields to inference peers
  uint64_t burst_ns = 0;                // bucket capacity; 0 = default (share × 100 ms, >= 5 ms)
  uint64_t default_estimate_ns = 1000000;
  uint64_t training_queue_ns = 2000000; // a training container keeps at most this much queued
};

struct PeerView {
  bool contention = true;          // another container has work queued or running on this card
  bool inference_pending = false;  // an inference container has work queued on this card
  bool inference_present = false;  // an inference container holds a slot on this card
  uint64_t queued_until_ns = 0;    // latest end of the work the other containers have queued
};

enum class Gate { kGo, kWaitBudget, kYield, kWaitQueue };

struct GateDecision {
  Gate gate = Gate::kGo;
  uint64_t wait_ns = 0;    // for the waits: how long to sleep before asking again
  uint64_t charge_ns = 0;  // for kGo: device time charged to this launch
};

uint64_t BurstOf(const GovernorParams& p);

// Decides one launch at `now`; on kGo the book is charged. `own_queued_ns` = how much work the
// container has queued already (its entry's queued_until − now, 0 if none).
GateDecision AdmitLaunch(ComputeBook& book, const GovernorParams& p, const PeerView& peers, uint64_t own_queued_ns,
                         uint64_t now);

// Applies a measurement: `busy_ns` of device time used by the container's processes since the
// previous sample. Corrects the bucket and the per-launch estimate; `learn_estimate` false = the
// measurement was derived from the estimates themselves (a device-wide figure split by charges)
// and teaches them only slowly, or its noise would walk the containers' ratios away.
void ApplySample(ComputeBook& book, const GovernorParams& p, uint64_t busy_ns, uint64_t now,
                 bool learn_estimate = true);

// A sample period passed without a measurement: the charges stand as they are (no correction)
// and the next period starts afresh, so that a later measurement is never compared with charges
// from periods it did not measure.
void SkipSample(ComputeBook& book);

}  // namespace tideslice::limiter
