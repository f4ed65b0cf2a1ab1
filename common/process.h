// What every binary's main does around its app: stop on SIGINT/SIGTERM, and report a start that
// failed in one line that names the program and points at --help.
#pragma once

#include <atomic>
#include <string>

#include "common/status.h"

namespace tideslice::process {

// Installs SIGINT and SIGTERM handlers (once) that set the returned flag.
const std::atomic<bool>& TerminationRequested();
// Blocks until SIGINT or SIGTERM arrives.
void WaitForTermination();
// "<program>: <status>\n(see --help)\n" on stderr; returns the exit code of a usage or start
// failure (2).
int StartFailed(const std::string& program, const Status& status);
// The usage text on stdout; returns 0.
int PrintUsage(const std::string& usage);

}  // namespace tideslice::process
