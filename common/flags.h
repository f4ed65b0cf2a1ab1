// Command-line flags of the binaries: "--name value" or "--name=value"; switches (in `switches`)
// take no value. Unknown flags and missing values are errors that name the flag.
#pragma once

#include <map>
#include <set>
#include <string>

#include "common/status.h"

namespace tideslice {

struct ParsedFlags {
  std::map<std::string, std::string> values;  // switches given are "true"
  bool help = false;                           // --help or -h was given
};

StatusOr<ParsedFlags> ParseFlags(int argc, const char* const* argv, const std::set<std::string>& known,
                                 const std::set<std::string>& switches = {});

}  // namespace tideslice
