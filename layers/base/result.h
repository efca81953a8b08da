// Errors as values: Result<T> holds either a T or an errno. Nothing below the FUSE boundary
// reports failure through the global errno or through exceptions.
#pragma once

#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace layerfs {

struct Errno {
  int code = 0;
  std::string message() const { return std::strerror(code); }
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Errno err) : v_(err) {}             // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  int error() const { return std::get<1>(v_).code; }
  Errno err() const { return std::get<1>(v_); }

 private:
  std::variant<T, Errno> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Errno err) : code_(err.code) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return code_ == 0; }
  explicit operator bool() const { return ok(); }
  int error() const { return code_; }
  Errno err() const { return Errno{code_}; }

 private:
  int code_ = 0;
};

// The errno of the last failed libc call, as a value.
inline Errno last_errno() { return Errno{errno}; }

}  // namespace layerfs
