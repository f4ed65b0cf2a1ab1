#include "common/log/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace tideslice::log {
namespace {

std::mutex g_mu;
Level g_min = Level::kInfo;
Sink g_sink = nullptr;
void* g_user = nullptr;

const char* LevelName(Level l) {
  switch (l) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

// JSON string escaping (RFC 8259): quotes, backslash and control characters; other bytes pass
// (a field is logged as given, never truncated or reinterpreted).
void AppendQuoted(std::string* out, const std::string& s) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          *out += buf;
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

std::string Now() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

}  // namespace

void Write(Level level, const std::string& event, const std::string& message, const Fields& fields) {
  {
    std::lock_guard<std::mutex> lock(g_mu);
    if (level < g_min) return;
  }
  // Messages quoting untrusted input stay bounded: a log line is for a person, not a copy.
  constexpr size_t kMaxValue = 2048;
  std::string line = "{\"ts\":";
  AppendQuoted(&line, Now());
  line += ",\"level\":";
  AppendQuoted(&line, LevelName(level));
  line += ",\"component\":";
  AppendQuoted(&line, event.substr(0, event.find('.')));
  line += ",\"event\":";
  AppendQuoted(&line, event);
  line += ",\"msg\":";
  AppendQuoted(&line, message.size() > kMaxValue ? message.substr(0, kMaxValue) + "..." : message);
  for (const auto& [k, v] : fields) {
    line += ',';
    AppendQuoted(&line, k);
    line += ':';
    AppendQuoted(&line, v.size() > kMaxValue ? v.substr(0, kMaxValue) + "..." : v);
  }
  line += "}\n";
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_sink) g_sink(line, g_user);
  else std::fwrite(line.data(), 1, line.size(), stderr);
}

void SetMinimumLevel(Level level) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_min = level;
}

void SetSink(Sink sink, void* user) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_sink = sink;
  g_user = user;
}

bool ChangeLog::Record(const std::string& key, const std::string& state, Level level, const std::string& event,
                       const std::string& message, const Fields& fields, bool log_first) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = last_.find(key);
    if (it == last_.end()) {
      last_.emplace(key, state);
      if (!log_first) return false;
    } else {
      if (it->second == state) return false;
      it->second = state;
    }
  }
  Write(level, event, message, fields);
  return true;
}

}  // namespace tideslice::log
