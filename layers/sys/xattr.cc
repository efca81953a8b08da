#include "layers/sys/xattr.h"

#include <sys/xattr.h>

#include "layers/sys/proc.h"

namespace layerfs::sys {
namespace {

Result<size_t> sized(ssize_t n) {
  if (n < 0) return last_errno();
  return static_cast<size_t>(n);
}

// Reads a value of unknown size: asks again with the size the object reports.
template <class Call>
Result<std::string> grow(Call call, size_t first) {
  std::string out(first, '\0');
  for (;;) {
    auto n = call(out.data(), out.size());
    if (n.ok()) {
      out.resize(*n);
      return out;
    }
    if (n.error() != ERANGE) return n.err();
    auto need = call(nullptr, 0);
    if (!need.ok()) return need.err();
    out.resize(*need + 1);
  }
}

}  // namespace

Result<size_t> get_xattr(BorrowedFd fd, const char* name, void* value, size_t size) {
  return sized(::getxattr(FdPath(fd).c_str(), name, value, size));
}

Result<std::string> get_xattr(BorrowedFd fd, const char* name) {
  return grow([&](char* buf, size_t size) { return get_xattr(fd, name, buf, size); }, 64);
}

Result<size_t> list_xattr(BorrowedFd fd, char* list, size_t size) {
  return sized(::listxattr(FdPath(fd).c_str(), list, size));
}

Result<std::string> list_xattr(BorrowedFd fd) {
  return grow([&](char* buf, size_t size) { return list_xattr(fd, buf, size); }, 256);
}

Result<void> set_xattr(BorrowedFd fd, const char* name, std::string_view value, int flags) {
  if (::setxattr(FdPath(fd).c_str(), name, value.data(), value.size(), flags) != 0) {
    return last_errno();
  }
  return {};
}

Result<void> remove_xattr(BorrowedFd fd, const char* name) {
  if (::removexattr(FdPath(fd).c_str(), name) != 0) return last_errno();
  return {};
}

Result<size_t> get_xattr_at(BorrowedFd dir_fd, const char* entry, const char* name, void* value,
                            size_t size) {
  return sized(::lgetxattr(FdPath(dir_fd, entry).c_str(), name, value, size));
}

Result<size_t> list_xattr_at(BorrowedFd dir_fd, const char* entry, char* list, size_t size) {
  return sized(::llistxattr(FdPath(dir_fd, entry).c_str(), list, size));
}

Result<size_t> list_xattr_open(BorrowedFd fd, char* list, size_t size) {
  return sized(::flistxattr(fd, list, size));
}

Result<std::string> get_xattr_open(BorrowedFd fd, const char* name) {
  for (size_t size = 256;; size *= 4) {
    std::string out(size, '\0');
    auto n = sized(::fgetxattr(fd, name, out.data(), out.size()));
    if (n.ok()) {
      out.resize(*n);
      return out;
    }
    if (n.error() != ERANGE || size > (1u << 20)) return n.err();
  }
}

}  // namespace layerfs::sys
