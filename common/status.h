// The one error type of TideSlice (leveldb/absl style): a code, a message a person can act on,
// and optionally the input field it is about. "Does not fit" is never a Status; it is a verdict.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace tideslice {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // bad input: names the field and what to change
  kNotFound,
  kAlreadyExists,
  kFailedPrecondition,
  kResourceExhausted,
  kUnavailable,
  kInternal,
  kAborted,             // lost a race (HTTP 409 conflict): re-read and retry
  kExpired,             // a resource version is too old (HTTP 410): re-list
  kPermissionDenied,    // HTTP 401/403: credentials or RBAC
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string field, std::string message) {
    return Status(StatusCode::kInvalidArgument, std::move(message), std::move(field));
  }
  static Status NotFound(std::string message) { return Status(StatusCode::kNotFound, std::move(message)); }
  static Status AlreadyExists(std::string message) {
    return Status(StatusCode::kAlreadyExists, std::move(message));
  }
  static Status FailedPrecondition(std::string message) {
    return Status(StatusCode::kFailedPrecondition, std::move(message));
  }
  static Status Unavailable(std::string message) { return Status(StatusCode::kUnavailable, std::move(message)); }
  static Status Internal(std::string message) { return Status(StatusCode::kInternal, std::move(message)); }
  static Status Aborted(std::string message) { return Status(StatusCode::kAborted, std::move(message)); }
  static Status Expired(std::string message) { return Status(StatusCode::kExpired, std::move(message)); }
  static Status PermissionDenied(std::string message) {
    return Status(StatusCode::kPermissionDenied, std::move(message));
  }
  static Status ResourceExhausted(std::string message) {
    return Status(StatusCode::kResourceExhausted, std::move(message));
  }

  Status(StatusCode code, std::string message, std::string field = {})
      : code_(code), message_(std::move(message)), field_(std::move(field)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // The input field the error is about ("tideslice.io/vnpu-cores", "nodes[3].gpu"), or empty.
  const std::string& field() const { return field_; }
  // "invalid argument: tideslice.io/vnpu-cores: must be 1..100, got 150"
  std::string ToString() const;
  // Adds context in front of the message, keeping code and field.
  Status WithContext(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  std::string field_;
};

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}             // NOLINT: implicit by design
  StatusOr(Status status) : value_(std::move(status)) {}      // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(value_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(value_);
  }
  T& value() & { return std::get<T>(value_); }
  const T& value() const& { return std::get<T>(value_); }
  T&& value() && { return std::get<T>(std::move(value_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> value_;
};

}  // namespace tideslice

#define TS_RETURN_IF_ERROR(expr)            \
  do {                                      \
    ::tideslice::Status ts_status_ = (expr); \
    if (!ts_status_.ok()) return ts_status_; \
  } while (0)
