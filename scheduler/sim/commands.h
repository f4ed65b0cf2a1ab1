// tideslice-sim's command line: demo, replay, sweep, offline and tidal (usage in commands.cc).
#pragma once

namespace tideslice::sim {

// Runs the command argv names; returns the process's exit code (2 for a usage error).
int RunSimCommandLine(int argc, char** argv);

}  // namespace tideslice::sim
