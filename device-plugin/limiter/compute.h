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

// The config card of the calling thread's current Ascend device.
int CardOfCurrentAscendDevice();

}  // namespace tideslice::limiter::compute
