// Structured log lines for every binary: one JSON object per line on stderr
// ({"ts":"...","level":"warn","component":"api","event":"api.unreachable","msg":"...", <fields>}),
// so a log pipeline can key on `component` and `event` and an operator can still read `msg`.
// An event is named "<component>.<what>": the component is the part before the first dot
// (api, http, binder, tidal, agent, limiter, ...), written as its own field.
//
// Conditions that persist (an API outage, a lost lease, a listener refusing connections) are
// logged once per change, not once per retry: LogOnChange keeps the last state per key and
// writes only when it differs.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace tideslice::log {

enum class Level { kDebug, kInfo, kWarn, kError };

using Fields = std::vector<std::pair<std::string, std::string>>;

// Writes one line (thread-safe; lines never interleave).
void Write(Level level, const std::string& event, const std::string& message, const Fields& fields = {});

inline void Info(const std::string& event, const std::string& message, const Fields& fields = {}) {
  Write(Level::kInfo, event, message, fields);
}
inline void Warn(const std::string& event, const std::string& message, const Fields& fields = {}) {
  Write(Level::kWarn, event, message, fields);
}
inline void Error(const std::string& event, const std::string& message, const Fields& fields = {}) {
  Write(Level::kError, event, message, fields);
}

// Lines below `level` are dropped (default kInfo).
void SetMinimumLevel(Level level);

// Redirects lines to `sink` (tests); nullptr restores stderr.
using Sink = void (*)(const std::string& line, void* user);
void SetSink(Sink sink, void* user);

// Logs when the state recorded under `key` changes; the first state of a key is logged only when
// `log_first` is true (so "API reachable" is not announced at start, but "unreachable" is).
// Returns true when it wrote a line.
class ChangeLog {
 public:
  bool Record(const std::string& key, const std::string& state, Level level, const std::string& event,
              const std::string& message, const Fields& fields = {}, bool log_first = false);

 private:
  std::mutex mu_;
  std::map<std::string, std::string> last_;
};

}  // namespace tideslice::log
