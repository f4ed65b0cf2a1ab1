#include "common/quantity.h"

#include <cctype>
#include <cmath>
#include <string>

namespace tideslice {
namespace {

Status Bad(std::string_view text, const char* why) {
  return Status::InvalidArgument("", "\"" + std::string(text) + "\" is not a valid quantity: " + why);
}

}  // namespace

StatusOr<long double> ParseQuantity(std::string_view text) {
  if (text.empty()) return Bad(text, "empty");
  if (text.size() > 64) return Bad(text, "too long");
  size_t i = 0;
  bool negative = false;
  if (text[i] == '+' || text[i] == '-') {
    negative = text[i] == '-';
    ++i;
  }
  long double value = 0;
  size_t digits = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    value = value * 10 + (text[i] - '0');
    ++i;
    ++digits;
  }
  if (i < text.size() && text[i] == '.') {
    ++i;
    long double scale = 0.1L;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      value += (text[i] - '0') * scale;
      scale /= 10;
      ++i;
      ++digits;
    }
  }
  if (digits == 0) return Bad(text, "expected a number such as 8Gi, 8192Mi or 500M");
  std::string_view suffix = text.substr(i);
  long double multiplier = 1;
  if (suffix.empty()) {
    multiplier = 1;
  } else if (suffix == "Ki") {
    multiplier = 1024.0L;
  } else if (suffix == "Mi") {
    multiplier = 1024.0L * 1024;
  } else if (suffix == "Gi") {
    multiplier = 1024.0L * 1024 * 1024;
  } else if (suffix == "Ti") {
    multiplier = 1024.0L * 1024 * 1024 * 1024;
  } else if (suffix == "Pi") {
    multiplier = 1024.0L * 1024 * 1024 * 1024 * 1024;
  } else if (suffix == "Ei") {
    multiplier = 1024.0L * 1024 * 1024 * 1024 * 1024 * 1024;
  } else if (suffix == "n") {
    multiplier = 1e-9L;
  } else if (suffix == "u") {
    multiplier = 1e-6L;
  } else if (suffix == "m") {
    multiplier = 1e-3L;
  } else if (suffix == "k") {
    multiplier = 1e3L;
  } else if (suffix == "M") {
    multiplier = 1e6L;
  } else if (suffix == "G") {
    multiplier = 1e9L;
  } else if (suffix == "T") {
    multiplier = 1e12L;
  } else if (suffix == "P") {
    multiplier = 1e15L;
  } else if (suffix == "E") {
    multiplier = 1e18L;
  } else if (suffix[0] == 'e' || suffix[0] == 'E') {
    std::string_view exp = suffix.substr(1);
    bool exp_negative = false;
    if (!exp.empty() && (exp[0] == '+' || exp[0] == '-')) {
      exp_negative = exp[0] == '-';
      exp = exp.substr(1);
    }
    if (exp.empty() || exp.size() > 3) return Bad(text, "bad exponent");
    int e = 0;
    for (char c : exp) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return Bad(text, "bad exponent");
      e = e * 10 + (c - '0');
    }
    multiplier = std::pow(10.0L, exp_negative ? -e : e);
  } else {
    return Bad(text, "unknown unit (use Ki, Mi, Gi, Ti, k, M, G, T, m or none)");
  }
  long double result = value * multiplier;
  if (!std::isfinite(static_cast<double>(result))) return Bad(text, "out of range");
  return negative ? -result : result;
}

StatusOr<int64_t> ParseMemoryMiB(std::string_view text) {
  auto q = ParseQuantity(text);
  if (!q.ok()) return q.status();
  long double v = *q;
  if (v <= 0) return Status::InvalidArgument("", "memory must be positive, got \"" + std::string(text) + "\"");
  bool has_unit = !text.empty() && !std::isdigit(static_cast<unsigned char>(text.back())) && text.back() != '.';
  long double mib = has_unit ? v / (1024.0L * 1024.0L) : v;
  if (mib > 1e12L) return Status::InvalidArgument("", "memory \"" + std::string(text) + "\" is out of range");
  return static_cast<int64_t>(std::ceil(static_cast<double>(mib) - 1e-9));
}

StatusOr<int64_t> ParseCount(std::string_view text) {
  auto q = ParseQuantity(text);
  if (!q.ok()) return q.status();
  long double v = *q;
  if (v < 0) return Status::InvalidArgument("", "count must not be negative, got \"" + std::string(text) + "\"");
  if (v > 1e9L) return Status::InvalidArgument("", "count \"" + std::string(text) + "\" is out of range");
  long double whole = std::floor(v);
  if (whole != v) return Status::InvalidArgument("", "count must be a whole number, got \"" + std::string(text) + "\"");
  return static_cast<int64_t>(whole);
}

StatusOr<int64_t> ParseMilliCpu(std::string_view text) {
  auto q = ParseQuantity(text);
  if (!q.ok()) return q.status();
  long double v = *q;
  if (v < 0) return Status::InvalidArgument("", "cpu must not be negative, got \"" + std::string(text) + "\"");
  if (v > 1e9L) return Status::InvalidArgument("", "cpu \"" + std::string(text) + "\" is out of range");
  return static_cast<int64_t>(std::ceil(static_cast<double>(v * 1000) - 1e-9));
}

}  // namespace tideslice
