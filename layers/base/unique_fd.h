// File descriptors: UniqueFd owns one, BorrowedFd is one lent by its owner.
//
// Move-only owner of a file descriptor. close() never retries on EINTR (on Linux the fd is
// released either way) and errno is preserved across it, so callers can report the error that
// made them give up on the fd.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace layerfs {

// A descriptor someone else owns, lent for a call or for as long as the owner keeps it; never
// closed through this. Made from a UniqueFd (get()), or explicitly from a number that comes
// from outside (libfuse, a test, AT_FDCWD as kCwd); it converts back to the number only for
// the libc and libfuse calls that take one. -1: none.
class BorrowedFd {
 public:
  constexpr BorrowedFd() = default;
  constexpr explicit BorrowedFd(int fd) : fd_(fd) {}
  constexpr operator int() const { return fd_; }  // NOLINT(google-explicit-constructor)
  constexpr int raw() const { return fd_; }
  constexpr bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// The current directory, for the *_at calls on a path.
inline constexpr BorrowedFd kCwd{AT_FDCWD};

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  ~UniqueFd() { reset(); }

  BorrowedFd get() const { return BorrowedFd(fd_); }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }

  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) {
      int saved = errno;
      ::close(fd_);
      errno = saved;
    }
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace layerfs
