// Compute shares at run time: the gate every launch hook calls, the card coordination files, and
// the measurement of the container's device time (docs/isolation.md, "Compute shares").
#pragma once

#include <stdint.h>

namespace tideslice::limiter::compute {

// True when some card of this container has a compute share (else launches pass straight by).
bool Enabled();

// Before a launch on config card `card` (kNoCard: not one of the slice's cards, passes):
// waits as the share, the mode and inference peers require, then charges the launch.
void BeforeLaunch(int card);

// After a launch went to the driver (CUDA): records a completion event on `stream`, so that a
// training container knows how much of its work has not run yet (its queue beside inference).
void AfterLaunch(int card, void* stream);
// How many of this process's launches on `card` have not completed; false when not tracked.
bool PendingLaunches(int card, uint64_t* pending);

// The config card of the calling thread's current Ascend device.
int CardOfCurrentAscendDevice();

}  // namespace tideslice::limiter::compute
