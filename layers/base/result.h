// Errors as values: Result<T> holds either a T or an Errno. Nothing below the FUSE boundary
// reports failure through the global errno or through exceptions.
//
// An Errno is an errno code and, where someone will read it, what failed: the step and the path
// ("upperdir '/x': not a directory"). Low-level calls return the bare code (the FUSE replies
// need nothing more); callers that report to people add context on the way out:
//   LAYERFS_TRY(sys::make_dir_at(dir, name, 0700));          // return the error as it is
//   return r.context("workdir", path);                         // "workdir 'path': <error>"
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace layerfs {

struct Errno {
  int code = 0;
  std::string what;  // for people: what failed and why; empty means strerror(code) says it

  std::string message() const { return what.empty() ? std::strerror(code) : what; }
  // The same error, said of `step` (and `path`): "step 'path': <message>".
  Errno context(std::string_view step, std::string_view path = {}) const {
    std::string prefix(step);
    if (!path.empty()) {
      prefix += " '";
      prefix += path;
      prefix += "'";
    }
    return Errno{code, prefix + ": " + message()};
  }
};

// An error whose reason is not the code's strerror text ("in use by another layerfs mount").
inline Errno failure(int code, std::string reason) { return Errno{code, std::move(reason)}; }

namespace detail {
[[noreturn]] inline void bad_access(const char* what) {
  std::fprintf(stderr, "layerfs: internal error: %s\n", what);
  std::abort();
}
}  // namespace detail

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Errno err) : v_(std::move(err)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  // The value; reading it from an error is a bug, which aborts (it never throws).
  T& value() & { return *get(); }
  const T& value() const& { return *get(); }
  T&& value() && { return std::move(*get()); }
  T* operator->() { return get(); }
  const T* operator->() const { return get(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  int error() const { return ok() ? 0 : std::get_if<1>(&v_)->code; }
  Errno err() const { return ok() ? Errno{} : *std::get_if<1>(&v_); }
  // The error said of `step` and `path` (the value passes unchanged).
  Result context(std::string_view step, std::string_view path = {}) && {
    if (ok()) return std::move(*this);
    return std::get_if<1>(&v_)->context(step, path);
  }

 private:
  T* get() {
    if (!ok()) detail::bad_access("value of a failed Result");
    return std::get_if<0>(&v_);
  }
  const T* get() const {
    if (!ok()) detail::bad_access("value of a failed Result");
    return std::get_if<0>(&v_);
  }
  std::variant<T, Errno> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Errno err) : err_(std::move(err)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return err_.code == 0; }
  explicit operator bool() const { return ok(); }
  int error() const { return err_.code; }
  Errno err() const { return err_; }
  Result context(std::string_view step, std::string_view path = {}) && {
    if (ok()) return {};
    return err_.context(step, path);
  }

 private:
  Errno err_;
};

// The errno of the last failed libc call, as a value.
inline Errno last_errno() { return Errno{errno}; }

}  // namespace layerfs

// Returns the error of `expr` (a Result) from the enclosing function, if it failed.
#define LAYERFS_TRY(expr)                               \
  do {                                                  \
    if (auto try_result_ = (expr); !try_result_.ok()) { \
      return try_result_.err();                         \
    }                                                   \
  } while (0)
