#include "layers/sys/fuse_dev.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace layerfs::sys {
namespace {

constexpr unsigned kDevMagic = 229;  // FUSE_DEV_IOC_MAGIC
const unsigned long kBackingOpen = _IOW(kDevMagic, 1, fuse_abi::BackingMap);
const unsigned long kBackingClose = _IOW(kDevMagic, 2, uint32_t);

static_assert(fuse_abi::kHandleKillprivV2 == FUSE_HANDLE_KILLPRIV_V2);
static_assert(sizeof(fuse_abi::InHeader) == sizeof(fuse_in_header));

// The request's own struct after its header, when the request is long enough to carry it.
template <typename In>
bool body_of(const void* buf, size_t n, In* in) {
  if (n < sizeof(fuse_in_header) + sizeof(In)) return false;
  std::memcpy(in, static_cast<const char*>(buf) + sizeof(fuse_in_header), sizeof(In));
  return true;
}

}  // namespace

bool asks_kill_suidgid(const void* buf, size_t n) {
  fuse_in_header h;
  if (n < sizeof h) return false;
  std::memcpy(&h, buf, sizeof h);
  switch (h.opcode) {
    case FUSE_WRITE: {
      fuse_write_in in;
      return body_of(buf, n, &in) && (in.write_flags & FUSE_WRITE_KILL_SUIDGID) != 0;
    }
    case FUSE_OPEN: {
      fuse_open_in in;
      return body_of(buf, n, &in) && (in.open_flags & FUSE_OPEN_KILL_SUIDGID) != 0;
    }
    case FUSE_SETATTR: {
      fuse_setattr_in in;
      return body_of(buf, n, &in) && (in.valid & FATTR_KILL_SUIDGID) != 0;
    }
    default:
      return false;
  }
}

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
