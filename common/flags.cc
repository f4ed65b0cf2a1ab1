#include "common/flags.h"

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
      if (i + 1 >= argc) return Status::InvalidArgument(f, f + " needs a value");
      value = argv[++i];
    }
    if (!known.count(f) && !switches.count(f)) return Status::InvalidArgument(f, "unknown flag " + f);
    out.values[f] = value;
  }
  return out;
}

}  // namespace tideslice
