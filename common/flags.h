// Command-line flags of the binaries, turned into typed options in one place.
//
// A FlagSet binds each flag to the field of an options struct it sets, with its type, its range
// and its help line; the field's value before Parse is the default (and is shown as such in the
// usage text). "--name value" and "--name=value" are both accepted; switches take no value. Every
// error names the flag and says what to write instead: unknown flags, missing values, a number
// out of range, a word outside its choices.
//
// Flags may also come from a file (the device plugin's --config: a map of flag names without the
// dashes); the command line wins over the file.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"

namespace tideslice {

// The low-level split of argv into flag -> value; FlagSet uses it. Unknown flags and missing values
// are errors that name the flag.
struct ParsedFlags {
  std::map<std::string, std::string> values;  // switches given are "true"
  bool help = false;                           // --help or -h was given
};

StatusOr<ParsedFlags> ParseFlags(int argc, const char* const* argv, const std::set<std::string>& known,
                                 const std::set<std::string>& switches = {});

class FlagSet {
 public:
  // Checks a value beyond its type; returns the error text ("must be ...") or "" when fine.
  using Check = std::function<std::string(const std::string& value)>;

  FlagSet(std::string program, std::string summary);

  // A word or path. `check`, when given, refuses values (e.g. "must not be empty").
  FlagSet& String(const std::string& name, std::string* target, const std::string& help, Check check = nullptr);
  // A whole number in [min, max].
  FlagSet& Int(const std::string& name, int* target, int64_t min, int64_t max, const std::string& help);
  // Whole bytes written as a Kubernetes quantity ("512Mi", "1G", "0"), at most `max`.
  FlagSet& Bytes(const std::string& name, uint64_t* target, uint64_t max, const std::string& help);
  // Whole seconds in [min_s, max_s].
  FlagSet& Seconds(const std::string& name, std::chrono::seconds* target, int64_t min_s, int64_t max_s,
                   const std::string& help);
  // "true" or "false".
  FlagSet& Bool(const std::string& name, bool* target, const std::string& help);
  // Present or not; takes no value.
  FlagSet& Switch(const std::string& name, bool* target, const std::string& help);
  // One of `choices`.
  FlagSet& Choice(const std::string& name, std::string* target, std::vector<std::string> choices,
                  const std::string& help);
  // A comma-separated list (empty items dropped); replaces the default when given.
  FlagSet& List(const std::string& name, std::set<std::string>* target, const std::string& help);
  // A flag whose value only the caller can interpret (a file to load, a URL to resolve): it is
  // stored verbatim in `target` and `given` reports whether it was set.
  FlagSet& Raw(const std::string& name, std::string* target, const std::string& help);

  // Applies argv. With --help, help_requested() is true and nothing is applied.
  Status Parse(int argc, const char* const* argv);
  // As Parse, after applying `from_file` (flag names without the dashes -> values) read from
  // `source`; the command line wins. The file cannot name the file flag itself or --help.
  Status Parse(int argc, const char* const* argv, const std::map<std::string, std::string>& from_file,
               const std::string& source);
  // The path given to `file_flag` on the command line, "" when absent; for binaries whose flags
  // may come from a file, read before Parse.
  static std::string Peek(int argc, const char* const* argv, const std::string& file_flag);

  // Checks for String(): "" when fine, else what is wrong.
  static std::string NotEmpty(const std::string& value);
  static std::string AbsolutePath(const std::string& value);

  bool help_requested() const { return help_; }
  bool given(const std::string& name) const { return given_.count(name) > 0; }
  // The usage text: summary, then every flag with its value form, help and default.
  std::string Usage() const;

 private:
  struct Binding {
    std::string name;
    std::string form;       // "N", "true|false", "a|b|c", "" for a switch
    std::string help;
    std::string default_text;
    bool is_switch = false;
    std::function<std::string(const std::string& value)> apply;   // "" = applied, else the error
  };
  FlagSet& Add(Binding b);
  Status Apply(const std::string& name, const std::string& value, const std::string& source);

  std::string program_, summary_;
  std::vector<Binding> bindings_;
  std::set<std::string> given_;
  bool help_ = false;
};

}  // namespace tideslice
