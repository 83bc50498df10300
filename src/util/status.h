// Status and Result<T>: how every kiln module reports failure.
//
// A Status carries a code that callers branch on and a message a person can
// act on (what was expected, what was found, where). Result<T> holds either a
// value or a non-OK Status. Neither throws; exceptions raised by libraries are
// caught where the library is called and turned into a Status.
//
// Thread-safety: plain values; safe to copy between threads.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace kiln {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // the caller's input is malformed
  kNotFound,            // a blob, reference, file or key does not exist
  kAlreadyExists,       // creating something that is already there
  kDigestMismatch,      // bytes do not hash to the digest they claim
  kUnauthorized,        // credentials missing or refused
  kExecFailed,          // a process exited non-zero (see Status::exit_code)
  kCancelled,           // interrupted by the user or a signal
  kIOError,             // the operating system refused a read, write or rename
  kFailedPrecondition,  // the state does not allow the operation
  kResourceExhausted,   // a size or count limit was exceeded
  kUnimplemented,       // a valid request kiln does not support
  kInternal,            // a broken invariant; a bug in kiln
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message, int exit_code = 0)
      : code_(code), message_(std::move(message)), exit_code_(exit_code) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) {
    return {StatusCode::kInvalidArgument, std::move(m)};
  }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
  static Status DigestMismatch(std::string m) {
    return {StatusCode::kDigestMismatch, std::move(m)};
  }
  static Status Unauthorized(std::string m) { return {StatusCode::kUnauthorized, std::move(m)}; }
  static Status ExecFailed(std::string m, int exit_code) {
    return {StatusCode::kExecFailed, std::move(m), exit_code};
  }
  static Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
  static Status IOError(std::string m) { return {StatusCode::kIOError, std::move(m)}; }
  static Status FailedPrecondition(std::string m) {
    return {StatusCode::kFailedPrecondition, std::move(m)};
  }
  static Status ResourceExhausted(std::string m) {
    return {StatusCode::kResourceExhausted, std::move(m)};
  }
  static Status Unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // Only meaningful for kExecFailed: the process's exit code.
  int exit_code() const { return exit_code_; }

  // Returns a copy whose message is "<prefix>: <message>"; the code is kept.
  Status Annotate(std::string_view prefix) const;
  // "<code name>: <message>", or "OK".
  std::string ToString() const;

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  int exit_code_ = 0;
};

// strerror in Go's style, lower-case first letter: "no such file or directory".
std::string ErrnoText(int err);
// The code callers branch on for an errno: ENOENT kNotFound, EEXIST
// kAlreadyExists, ENOTDIR/EISDIR/ELOOP/ENOTEMPTY/EXDEV kFailedPrecondition,
// EINVAL kInvalidArgument, anything else kIOError.
StatusCode CodeForErrno(int err);

// Aborts with a message: for broken invariants only, never for bad input.
[[noreturn]] void CheckFailed(const char* file, int line, const char* cond, std::string_view msg);

#define KILN_CHECK(cond, msg)                                           \
  do {                                                                  \
    if (!(cond)) ::kiln::CheckFailed(__FILE__, __LINE__, #cond, (msg)); \
  } while (0)

// Result<T>: a T, or a non-OK Status explaining why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    KILN_CHECK(!std::get<Status>(v_).ok(), "Result constructed from an OK Status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  // The error; OK when a value is held.
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }

  const T& value() const& {
    KILN_CHECK(ok(), "Result::value() on error: " + std::get<Status>(v_).ToString());
    return std::get<T>(v_);
  }
  T& value() & {
    KILN_CHECK(ok(), "Result::value() on error: " + std::get<Status>(v_).ToString());
    return std::get<T>(v_);
  }
  T&& value() && {
    KILN_CHECK(ok(), "Result::value() on error: " + std::get<Status>(v_).ToString());
    return std::get<T>(std::move(v_));
  }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

 private:
  std::variant<T, Status> v_;
};

#define KILN_CONCAT_INNER_(a, b) a##b
#define KILN_CONCAT_(a, b) KILN_CONCAT_INNER_(a, b)

#define KILN_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::kiln::Status kiln_status_ = (expr);        \
    if (!kiln_status_.ok()) return kiln_status_; \
  } while (0)

#define KILN_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

// KILN_ASSIGN_OR_RETURN(auto x, F()); returns F()'s status on error.
#define KILN_ASSIGN_OR_RETURN(lhs, expr) \
  KILN_ASSIGN_OR_RETURN_IMPL_(KILN_CONCAT_(kiln_result_, __LINE__), lhs, expr)

}  // namespace kiln
