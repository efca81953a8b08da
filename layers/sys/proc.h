// Paths through /proc/self/fd: how a call that takes only a path reaches the object behind an
// fd of any kind (O_PATH included), whatever its name is now. The one place such paths are
// built.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

#include "layers/base/unique_fd.h"

namespace layerfs::sys {

class FdPath {
 public:
  // The object behind `fd` itself.
  explicit FdPath(BorrowedFd fd) { std::snprintf(buf_, sizeof buf_, "/proc/self/fd/%d", fd.raw()); }
  // The entry `name` of the directory behind `dir_fd` (a call on it follows no symlink in
  // `name` unless the call itself does).
  FdPath(BorrowedFd dir_fd, std::string_view name) : FdPath(dir_fd) {
    long_ = buf_;
    long_ += '/';
    long_ += name;
  }
  const char* c_str() const { return long_.empty() ? buf_ : long_.c_str(); }

 private:
  char buf_[32];
  std::string long_;
};

}  // namespace layerfs::sys
