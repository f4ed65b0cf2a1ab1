#include "device-plugin/limiter/config.h"

#include "device-plugin/limiter/card_coordination.h"

#include <stdio.h>
#include <string.h>

namespace tideslice::limiter {
namespace {

constexpr int kMaxDepth = 16;

class Parser {
 public:
  Parser(const char* text, size_t length, char* error, size_t error_size)
      : begin_(text), p_(text), end_(text + length), error_(error), error_size_(error_size) {}

  bool failed() const { return failed_; }

  bool Fail(const char* what, const char* field = nullptr) {
    if (!failed_) {
      failed_ = true;
      if (field)
        snprintf(error_, error_size_, "%s: %s (at byte %zu)", field, what, Offset());
      else
        snprintf(error_, error_size_, "%s (at byte %zu)", what, Offset());
    }
    return false;
  }

  void SkipSpace() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool AtEnd() {
    SkipSpace();
    return p_ == end_;
  }
  bool Consume(char c) {
    SkipSpace();
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  bool Peek(char c) {
    SkipSpace();
    return p_ < end_ && *p_ == c;
  }

  // A JSON string into `out` (NUL-terminated, at most cap-1 bytes). Only ASCII escapes.
  bool String(char* out, size_t cap, const char* field) {
    SkipSpace();
    if (p_ >= end_ || *p_ != '"') return Fail("expected a string", field);
    ++p_;
    size_t n = 0;
    while (p_ < end_ && *p_ != '"') {
      char c = *p_++;
      if (static_cast<unsigned char>(c) < 0x20) return Fail("control character in string", field);
      if (c == '\\') {
        if (p_ >= end_) break;
        char e = *p_++;
        switch (e) {
          case '"': c = '"'; break;
          case '\\': c = '\\'; break;
          case '/': c = '/'; break;
          case 'b': c = '\b'; break;
          case 'f': c = '\f'; break;
          case 'n': c = '\n'; break;
          case 'r': c = '\r'; break;
          case 't': c = '\t'; break;
          case 'u': {
            if (end_ - p_ < 4) return Fail("short \\u escape", field);
            unsigned v = 0;
            for (int i = 0; i < 4; ++i) {
              char h = *p_++;
              v <<= 4;
              if (h >= '0' && h <= '9') v |= static_cast<unsigned>(h - '0');
              else if (h >= 'a' && h <= 'f') v |= static_cast<unsigned>(h - 'a' + 10);
              else if (h >= 'A' && h <= 'F') v |= static_cast<unsigned>(h - 'A' + 10);
              else return Fail("bad \\u escape", field);
            }
            if (v == 0 || v >= 0x80) return Fail("only printable ASCII is allowed in \\u escapes", field);
            c = static_cast<char>(v);
            break;
          }
          default: return Fail("unknown escape", field);
        }
      }
      if (out) {
        if (n + 1 >= cap) return Fail("string too long", field);
        out[n++] = c;
      }
    }
    if (p_ >= end_) return Fail("unterminated string", field);
    ++p_;
    if (out) out[n] = '\0';
    return true;
  }

  // An unsigned integer, as a JSON number or a decimal string (proto3 JSON writes 64-bit
  // integers as strings).
  bool Unsigned(uint64_t max, uint64_t* out, const char* field) {
    SkipSpace();
    bool quoted = p_ < end_ && *p_ == '"';
    if (quoted) ++p_;
    if (p_ >= end_ || *p_ < '0' || *p_ > '9') return Fail("expected a non-negative integer", field);
    uint64_t v = 0;
    const char* start = p_;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
      uint64_t d = static_cast<uint64_t>(*p_ - '0');
      if (v > (UINT64_MAX - d) / 10) return Fail("integer too large", field);
      v = v * 10 + d;
      ++p_;
    }
    if (p_ - start > 1 && *start == '0') return Fail("leading zero", field);
    if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) return Fail("expected an integer", field);
    if (quoted) {
      if (p_ >= end_ || *p_ != '"') return Fail("unterminated integer string", field);
      ++p_;
    }
    if (v > max) return Fail("integer out of range", field);
    *out = v;
    return true;
  }

  // Skips any JSON value (for fields this version does not know).
  bool SkipValue(int depth) {
    if (depth > kMaxDepth) return Fail("nesting too deep");
    SkipSpace();
    if (p_ >= end_) return Fail("unexpected end");
    char c = *p_;
    if (c == '"') return String(nullptr, 0, nullptr);
    if (c == '{' || c == '[') {
      char close = c == '{' ? '}' : ']';
      ++p_;
      if (Consume(close)) return true;
      for (;;) {
        if (c == '{') {
          if (!String(nullptr, 0, nullptr)) return false;
          if (!Consume(':')) return Fail("expected ':'");
        }
        if (!SkipValue(depth + 1)) return false;
        if (Consume(close)) return true;
        if (!Consume(',')) return Fail("expected ',' or end of container");
      }
    }
    if (c == 't' || c == 'f' || c == 'n') {
      const char* word = c == 't' ? "true" : c == 'f' ? "false" : "null";
      size_t len = strlen(word);
      if (static_cast<size_t>(end_ - p_) < len || memcmp(p_, word, len) != 0) return Fail("bad literal");
      p_ += len;
      return true;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      ++p_;
      while (p_ < end_ && ((*p_ >= '0' && *p_ <= '9') || *p_ == '.' || *p_ == 'e' || *p_ == 'E' || *p_ == '+' ||
                           *p_ == '-'))
        ++p_;
      return true;
    }
    return Fail("unexpected character");
  }

 private:
  size_t Offset() const { return static_cast<size_t>(p_ - begin_); }
  const char* begin_;

 public:
  const char* p_;
  const char* end_;
  char* error_;
  size_t error_size_;
  bool failed_ = false;
};

bool Is(const char* key, const char* camel, const char* proto) {
  return strcmp(key, camel) == 0 || strcmp(key, proto) == 0;
}

bool ParseCard(Parser& ps, CardLimit* card, bool* seen_uuid) {
  if (!ps.Consume('{')) return ps.Fail("expected an object", "cards[]");
  if (ps.Consume('}')) return true;
  for (;;) {
    char key[64];
    if (!ps.String(key, sizeof key, "cards[] key")) return false;
    if (!ps.Consume(':')) return ps.Fail("expected ':'", key);
    uint64_t v = 0;
    if (strcmp(key, "uuid") == 0) {
      if (!ps.String(card->uuid, sizeof card->uuid, "cards[].uuid")) return false;
      *seen_uuid = true;
    } else if (Is(key, "visibleIndex", "visible_index")) {
      if (!ps.Unsigned(1023, &v, "cards[].visibleIndex")) return false;
      card->visible_index = static_cast<uint32_t>(v);
    } else if (Is(key, "memoryLimitBytes", "memory_limit_bytes")) {
      if (!ps.Unsigned(UINT64_MAX, &v, "cards[].memoryLimitBytes")) return false;
      card->memory_limit_bytes = v;
    } else if (Is(key, "computePermille", "compute_permille")) {
      if (!ps.Unsigned(1000, &v, "cards[].computePermille")) return false;
      card->compute_permille = static_cast<uint32_t>(v);
    } else if (Is(key, "regionCard", "region_card")) {
      if (!ps.Unsigned(kRegionMaxCards - 1, &v, "cards[].regionCard")) return false;
      card->region_card = static_cast<uint32_t>(v);
    } else if (Is(key, "coordinationDir", "coordination_dir")) {
      if (!ps.String(card->coordination_dir, sizeof card->coordination_dir, "cards[].coordinationDir")) return false;
      if (card->coordination_dir[0] != '\0' && card->coordination_dir[0] != '/')
        return ps.Fail("must be an absolute path", "cards[].coordinationDir");
    } else if (Is(key, "coordinationSlot", "coordination_slot")) {
      if (!ps.Unsigned(kRosterMaxEntries - 1, &v, "cards[].coordinationSlot")) return false;
      card->coordination_slot = static_cast<uint32_t>(v);
    } else if (!ps.SkipValue(2)) {
      return false;
    }
    if (ps.Consume('}')) return true;
    if (!ps.Consume(',')) return ps.Fail("expected ',' or '}'", "cards[]");
  }
}

}  // namespace

bool ParseConfig(const char* text, size_t length, Config* out, char* error, size_t error_size) {
  memset(out, 0, sizeof *out);
  if (error_size) error[0] = '\0';
  Parser ps(text, length, error, error_size);
  if (length > kConfigMaxBytes) return ps.Fail("configuration larger than 64 KiB");
  bool seen_version = false, seen_vendor = false, seen_region = false;
  if (!ps.Consume('{')) return ps.Fail("expected a JSON object");
  if (!ps.Consume('}')) {
    for (;;) {
      char key[64];
      if (!ps.String(key, sizeof key, "key")) return false;
      if (!ps.Consume(':')) return ps.Fail("expected ':'", key);
      uint64_t v = 0;
      if (strcmp(key, "version") == 0) {
        if (!ps.Unsigned(UINT32_MAX, &v, "version")) return false;
        out->version = static_cast<uint32_t>(v);
        seen_version = true;
      } else if (Is(key, "podNamespace", "pod_namespace")) {
        if (!ps.String(out->pod_namespace, sizeof out->pod_namespace, "podNamespace")) return false;
      } else if (Is(key, "podName", "pod_name")) {
        if (!ps.String(out->pod_name, sizeof out->pod_name, "podName")) return false;
      } else if (Is(key, "podUid", "pod_uid")) {
        if (!ps.String(out->pod_uid, sizeof out->pod_uid, "podUid")) return false;
      } else if (strcmp(key, "container") == 0) {
        if (!ps.String(out->container, sizeof out->container, "container")) return false;
      } else if (strcmp(key, "vendor") == 0) {
        char vendor[16];
        if (!ps.String(vendor, sizeof vendor, "vendor")) return false;
        if (strcmp(vendor, "nvidia") == 0) out->vendor = Vendor::kNvidia;
        else if (strcmp(vendor, "huawei") == 0) out->vendor = Vendor::kHuawei;
        else return ps.Fail("must be \"nvidia\" or \"huawei\"", "vendor");
        seen_vendor = true;
      } else if (Is(key, "regionPath", "region_path")) {
        if (!ps.String(out->region_path, sizeof out->region_path, "regionPath")) return false;
        seen_region = true;
      } else if (Is(key, "workloadClass", "workload_class")) {
        char cls[16];
        if (!ps.String(cls, sizeof cls, "workloadClass")) return false;
        if (strcmp(cls, "inference") == 0) out->workload_class = kClassInference;
        else if (strcmp(cls, "training") == 0) out->workload_class = kClassTraining;
        else if (cls[0] == '\0') out->workload_class = kClassUnspecified;
        else return ps.Fail("must be \"inference\" or \"training\"", "workloadClass");
      } else if (Is(key, "workConserving", "work_conserving")) {
        ps.SkipSpace();
        if (ps.end_ - ps.p_ >= 4 && memcmp(ps.p_, "true", 4) == 0) {
          out->work_conserving = true;
          ps.p_ += 4;
        } else if (ps.end_ - ps.p_ >= 5 && memcmp(ps.p_, "false", 5) == 0) {
          out->work_conserving = false;
          ps.p_ += 5;
        } else {
          return ps.Fail("expected true or false", "workConserving");
        }
      } else if (Is(key, "contextReserveBytes", "context_reserve_bytes")) {
        if (!ps.Unsigned(UINT64_MAX, &v, "contextReserveBytes")) return false;
        out->context_reserve_bytes = v;
      } else if (strcmp(key, "cards") == 0) {
        if (!ps.Consume('[')) return ps.Fail("expected an array", "cards");
        if (!ps.Consume(']')) {
          for (;;) {
            if (out->card_count == kConfigMaxCards) return ps.Fail("more than 16 cards", "cards");
            bool seen_uuid = false;
            CardLimit* card = &out->cards[out->card_count];
            if (!ParseCard(ps, card, &seen_uuid)) return false;
            if (!seen_uuid || card->uuid[0] == '\0') return ps.Fail("every card needs a uuid", "cards[].uuid");
            ++out->card_count;
            if (ps.Consume(']')) break;
            if (!ps.Consume(',')) return ps.Fail("expected ',' or ']'", "cards");
          }
        }
      } else if (!ps.SkipValue(1)) {
        return false;
      }
      if (ps.Consume('}')) break;
      if (!ps.Consume(',')) return ps.Fail("expected ',' or '}'");
    }
  }
  if (!ps.AtEnd()) return ps.Fail("trailing data after the object");
  if (!seen_version) return ps.Fail("missing", "version");
  if (out->version != kConfigVersion) {
    snprintf(error, error_size, "version: %u is not supported (this limiter reads version %u)", out->version,
             kConfigVersion);
    return false;
  }
  if (!seen_vendor) return ps.Fail("missing", "vendor");
  if (!seen_region || out->region_path[0] != '/') return ps.Fail("must be an absolute path", "regionPath");
  if (out->card_count == 0) return ps.Fail("at least one card is needed", "cards");
  for (uint32_t i = 0; i < out->card_count; ++i)
    for (uint32_t j = 0; j < i; ++j) {
      if (out->cards[i].region_card == out->cards[j].region_card)
        return ps.Fail("two cards share one region book", "cards[].regionCard");
      if (out->cards[i].visible_index == out->cards[j].visible_index)
        return ps.Fail("two cards share one visible index", "cards[].visibleIndex");
    }
  return true;
}

}  // namespace tideslice::limiter
