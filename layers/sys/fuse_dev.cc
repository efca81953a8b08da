#include "layers/sys/fuse_dev.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>

namespace layerfs::sys {
namespace {

constexpr unsigned kDevMagic = 229;  // FUSE_DEV_IOC_MAGIC
const unsigned long kBackingOpen = _IOW(kDevMagic, 1, fuse_abi::BackingMap);
const unsigned long kBackingClose = _IOW(kDevMagic, 2, uint32_t);

}  // namespace

ssize_t read_dev(BorrowedFd fd, void* buf, size_t size) { return ::read(fd, buf, size); }

ssize_t writev_dev(BorrowedFd fd, const struct iovec* iov, int count) {
  return ::writev(fd, iov, count);
}

ssize_t splice_fds(BorrowedFd in, off_t* in_off, BorrowedFd out, off_t* out_off, size_t len,
                   unsigned flags) {
  return ::splice(in, in_off, out, out_off, len, flags);
}

Result<int32_t> backing_open(BorrowedFd dev, BorrowedFd file) {
  fuse_abi::BackingMap map{file, 0, 0};
  int id = ::ioctl(dev, kBackingOpen, &map);
  if (id < 0) return last_errno();
  return static_cast<int32_t>(id);
}

Result<void> backing_close(BorrowedFd dev, int32_t id) {
  uint32_t arg = static_cast<uint32_t>(id);
  if (::ioctl(dev, kBackingClose, &arg) < 0) return last_errno();
  return {};
}

}  // namespace layerfs::sys
