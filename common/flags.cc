#include "common/flags.h"

#include "common/quantity.h"

namespace tideslice {

StatusOr<ParsedFlags> ParseFlags(int argc, const char* const* argv, const std::set<std::string>& known,
                                 const std::set<std::string>& switches) {
  ParsedFlags out;
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    if (f == "--help" || f == "-h") {
      out.help = true;
      continue;
    }
    if (switches.count(f)) {
      out.values[f] = "true";
      continue;
    }
    std::string value;
    if (auto eq = f.find('='); eq != std::string::npos) {
      value = f.substr(eq + 1);
      f = f.substr(0, eq);
    } else {
      if (!known.count(f)) return Status::InvalidArgument(f, "unknown flag " + f);
      if (i + 1 >= argc) return Status::InvalidArgument(f, "needs a value");
      value = argv[++i];
    }
    if (!known.count(f) && !switches.count(f)) return Status::InvalidArgument(f, "unknown flag " + f);
    out.values[f] = value;
  }
  return out;
}

}  // namespace tideslice

namespace tideslice {
namespace {

std::string Quote(const std::string& v) { return "\"" + (v.size() > 200 ? v.substr(0, 200) + "..." : v) + "\""; }

// Whole decimal numbers only: "10", "-3"; not "10s", "1e3", " 5" or "".
bool ParseWhole(const std::string& v, int64_t* out) {
  if (v.empty() || v.size() > 19) return false;
  size_t i = v[0] == '-' ? 1 : 0;
  if (i == v.size()) return false;
  int64_t x = 0;
  for (; i < v.size(); ++i) {
    if (v[i] < '0' || v[i] > '9') return false;
    x = x * 10 + (v[i] - '0');
  }
  *out = v[0] == '-' ? -x : x;
  return true;
}

// 68719476736 -> "64Gi": limits read as people write them.
std::string BytesText(uint64_t bytes) {
  if (bytes != 0 && bytes % (1ull << 30) == 0) return std::to_string(bytes >> 30) + "Gi";
  if (bytes != 0 && bytes % (1ull << 20) == 0) return std::to_string(bytes >> 20) + "Mi";
  return std::to_string(bytes);
}

std::string Join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : sep) + i;
  return out;
}

}  // namespace

FlagSet::FlagSet(std::string program, std::string summary) : program_(std::move(program)), summary_(std::move(summary)) {}

FlagSet& FlagSet::Add(Binding b) {
  bindings_.push_back(std::move(b));
  return *this;
}

FlagSet& FlagSet::String(const std::string& name, std::string* target, const std::string& help, Check check) {
  return Add({name, "VALUE", help, target->empty() ? "" : *target, false, [target, check](const std::string& v) {
                if (check) {
                  std::string why = check(v);
                  if (!why.empty()) return why;
                }
                *target = v;
                return std::string();
              }});
}

FlagSet& FlagSet::Raw(const std::string& name, std::string* target, const std::string& help) {
  return Add({name, "VALUE", help, target->empty() ? "" : *target, false, [target](const std::string& v) {
                *target = v;
                return std::string();
              }});
}

FlagSet& FlagSet::Int(const std::string& name, int* target, int64_t min, int64_t max, const std::string& help) {
  return Add({name, "N", help, std::to_string(*target), false, [target, min, max](const std::string& v) {
                int64_t x = 0;
                if (!ParseWhole(v, &x) || x < min || x > max)
                  return "must be a whole number from " + std::to_string(min) + " to " + std::to_string(max) + ", got " +
                         Quote(v);
                *target = static_cast<int>(x);
                return std::string();
              }});
}

FlagSet& FlagSet::Bytes(const std::string& name, uint64_t* target, uint64_t max, const std::string& help) {
  return Add({name, "QUANTITY", help, std::to_string(*target), false, [target, max](const std::string& v) {
                auto q = ParseQuantity(v);
                if (!q.ok() || *q < 0 || *q > static_cast<long double>(max) ||
                    *q != static_cast<long double>(static_cast<uint64_t>(*q)))
                  return "must be a whole number of bytes from 0 to " + BytesText(max) +
                         " (a quantity such as 512Mi), got " + Quote(v);
                *target = static_cast<uint64_t>(*q);
                return std::string();
              }});
}

std::string FlagSet::NotEmpty(const std::string& value) { return value.empty() ? "must not be empty" : ""; }

std::string FlagSet::AbsolutePath(const std::string& value) {
  return !value.empty() && value.front() == '/' ? "" : "must be an absolute path, got " + Quote(value);
}

FlagSet& FlagSet::Seconds(const std::string& name, std::chrono::seconds* target, int64_t min_s, int64_t max_s,
                          const std::string& help) {
  return Add({name, "SECONDS", help, std::to_string(target->count()), false,
              [target, min_s, max_s](const std::string& v) {
                int64_t x = 0;
                if (!ParseWhole(v, &x) || x < min_s || x > max_s)
                  return "must be whole seconds from " + std::to_string(min_s) + " to " + std::to_string(max_s) +
                         " (no unit), got " + Quote(v);
                *target = std::chrono::seconds(x);
                return std::string();
              }});
}

FlagSet& FlagSet::Bool(const std::string& name, bool* target, const std::string& help) {
  return Add({name, "true|false", help, *target ? "true" : "false", false, [target](const std::string& v) {
                if (v != "true" && v != "false") return "must be true or false, got " + Quote(v);
                *target = v == "true";
                return std::string();
              }});
}

FlagSet& FlagSet::Switch(const std::string& name, bool* target, const std::string& help) {
  return Add({name, "", help, "", true, [target](const std::string& v) {
                // From a file a switch reads as true/false; on the command line it is "true".
                if (v != "true" && v != "false") return "takes no value (or true|false in a file), got " + Quote(v);
                *target = v == "true";
                return std::string();
              }});
}

FlagSet& FlagSet::Choice(const std::string& name, std::string* target, std::vector<std::string> choices,
                         const std::string& help) {
  std::string form = Join(choices, "|");
  return Add({name, form, help, *target, false, [target, choices, form](const std::string& v) {
                for (const auto& c : choices)
                  if (v == c) {
                    *target = v;
                    return std::string();
                  }
                return "must be one of " + form + ", got " + Quote(v);
              }});
}

FlagSet& FlagSet::List(const std::string& name, std::set<std::string>* target, const std::string& help) {
  std::vector<std::string> current(target->begin(), target->end());
  return Add({name, "A,B,...", help, Join(current, ","), false, [target](const std::string& v) {
                std::set<std::string> out;
                size_t start = 0;
                while (start <= v.size()) {
                  size_t comma = v.find(',', start);
                  if (comma == std::string::npos) comma = v.size();
                  std::string item = v.substr(start, comma - start);
                  if (!item.empty()) out.insert(item);
                  start = comma + 1;
                }
                *target = std::move(out);
                return std::string();
              }});
}

Status FlagSet::Apply(const std::string& name, const std::string& value, const std::string& source) {
  for (const auto& b : bindings_) {
    if (b.name != name) continue;
    std::string why = b.apply(value);
    if (!why.empty()) return Status::InvalidArgument(name, (source.empty() ? "" : "(in " + source + ") ") + why);
    given_.insert(name);
    return Status::Ok();
  }
  return Status::InvalidArgument(name, "unknown flag " + name + (source.empty() ? "" : " in " + source) +
                                           "; see " + program_ + " --help");
}

Status FlagSet::Parse(int argc, const char* const* argv) { return Parse(argc, argv, {}, ""); }

Status FlagSet::Parse(int argc, const char* const* argv, const std::map<std::string, std::string>& from_file,
                      const std::string& source) {
  std::set<std::string> known, switches;
  for (const auto& b : bindings_) (b.is_switch ? switches : known).insert(b.name);
  auto parsed = ParseFlags(argc, argv, known, switches);
  if (!parsed.ok()) {
    const Status& s = parsed.status();
    return Status::InvalidArgument(s.field(), s.message() + "; see " + program_ + " --help");
  }
  if (parsed->help) {
    help_ = true;
    return Status::Ok();
  }
  for (const auto& [key, value] : from_file) {
    if (key == "help") return Status::InvalidArgument("--help", source + " cannot set help");
    TS_RETURN_IF_ERROR(Apply("--" + key, value, source));
  }
  for (const auto& [name, value] : parsed->values) TS_RETURN_IF_ERROR(Apply(name, value, ""));
  return Status::Ok();
}

std::string FlagSet::Peek(int argc, const char* const* argv, const std::string& file_flag) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == file_flag && i + 1 < argc) return argv[i + 1];
    if (a.rfind(file_flag + "=", 0) == 0) return a.substr(file_flag.size() + 1);
  }
  return "";
}

std::string FlagSet::Usage() const {
  std::string out = program_ + ": " + summary_ + "\n\nFlags:\n";
  for (const auto& b : bindings_) {
    std::string head = "  " + b.name + (b.form.empty() ? "" : " " + b.form);
    std::string help = b.help;
    if (!b.default_text.empty()) help += " (default " + b.default_text + ")";
    // Help lines continue under a column of their own, as kubectl's do.
    const size_t column = 32;
    std::string indent(column, ' ');
    if (head.size() + 2 > column) {
      out += head + "\n" + indent;
    } else {
      out += head + std::string(column - head.size(), ' ');
    }
    for (char c : help) {
      out += c;
      if (c == '\n') out += indent;
    }
    out += "\n";
  }
  out += "  --help                        this text\n";
  return out;
}

}  // namespace tideslice
