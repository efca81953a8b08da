#include "layers/sys/fs.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "layers/sys/proc.h"

namespace layerfs::sys {
Result<UniqueFd> open_at(BorrowedFd dirfd, const char* name, int flags, mode_t mode) {
  int fd = ::openat(dirfd, name, flags | O_CLOEXEC, mode);
  if (fd < 0) return last_errno();
  return UniqueFd(fd);
}

Result<UniqueFd> open_beneath(BorrowedFd dirfd, const char* path, int flags, bool allow_symlinks) {
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  if (!allow_symlinks) how.resolve |= RESOLVE_NO_SYMLINKS;
  long fd = ::syscall(SYS_openat2, dirfd, path, &how, sizeof how);
  if (fd < 0) return last_errno();
  return UniqueFd(static_cast<int>(fd));
}

Result<UniqueFd> open_path(BorrowedFd dirfd, const char* name) {
  return open_at(dirfd, name, O_PATH | O_NOFOLLOW);
}

Result<UniqueFd> reopen(BorrowedFd path_fd, int flags) {
  FdPath p(path_fd);
  // The proc link names the object itself; O_NOFOLLOW would refuse the link.
  return open_at(kCwd, p.c_str(), flags & ~O_NOFOLLOW);
}

Result<UniqueFd> dup_fd(BorrowedFd fd) {
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) return last_errno();
  return UniqueFd(d);
}

Result<void> chmod_fd(BorrowedFd fd, mode_t mode) {
  FdPath p(fd);
  if (::chmod(p.c_str(), mode) != 0) return last_errno();
  return {};
}

Result<struct stat> stat_at(BorrowedFd dirfd, const char* name) {
  struct stat st;
  int flags = AT_SYMLINK_NOFOLLOW | (name[0] == '\0' ? AT_EMPTY_PATH : 0);
  if (::fstatat(dirfd, name, &st, flags) < 0) return last_errno();
  return st;
}

Result<struct stat> stat_fd(BorrowedFd fd) { return stat_at(fd, ""); }

Result<std::string> read_link_at(BorrowedFd dirfd, const char* name) {
  std::string out(256, '\0');
  for (;;) {
    ssize_t n = ::readlinkat(dirfd, name, out.data(), out.size());
    if (n < 0) return last_errno();
    if (static_cast<size_t>(n) < out.size()) {
      out.resize(static_cast<size_t>(n));
      return out;
    }
    out.resize(out.size() * 2);
  }
}

Result<struct statfs> stat_fs(BorrowedFd fd) {
  struct statfs sfs;
  if (::fstatfs(fd, &sfs) < 0) return last_errno();
  return sfs;
}

namespace {
Result<void> check(int rc) {
  if (rc != 0) return last_errno();
  return {};
}
}  // namespace

Result<void> make_dir_at(BorrowedFd dirfd, const char* name, mode_t mode) {
  return check(::mkdirat(dirfd, name, mode));
}

Result<void> make_node_at(BorrowedFd dirfd, const char* name, mode_t mode, dev_t dev) {
  return check(::mknodat(dirfd, name, mode, dev));
}

Result<void> make_symlink_at(const char* target, BorrowedFd dirfd, const char* name) {
  return check(::symlinkat(target, dirfd, name));
}

Result<void> link_at(BorrowedFd from_dir, const char* from, BorrowedFd to_dir, const char* to) {
  return check(::linkat(from_dir, from, to_dir, to, 0));
}

Result<void> link_fd(BorrowedFd fd, BorrowedFd to_dir, const char* to) {
  // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the /proc link, followed, works for anyone.
  return check(::linkat(AT_FDCWD, FdPath(fd).c_str(), to_dir, to, AT_SYMLINK_FOLLOW));
}

Result<void> unlink_at(BorrowedFd dirfd, const char* name, int flags) {
  return check(::unlinkat(dirfd, name, flags));
}

Result<void> rename_at(BorrowedFd from_dir, const char* from, BorrowedFd to_dir, const char* to,
                       unsigned flags) {
  return check(::renameat2(from_dir, from, to_dir, to, flags));
}

Result<void> chown_fd(BorrowedFd fd, uid_t uid, gid_t gid) {
  return check(::fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
}

Result<void> chown_at(BorrowedFd dirfd, const char* name, uid_t uid, gid_t gid) {
  return check(::fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW));
}

Result<void> chmod_at(BorrowedFd dirfd, const char* name, mode_t mode) {
  return check(::fchmodat(dirfd, name, mode, 0));
}

Result<void> set_times_fd(BorrowedFd fd, const struct timespec times[2]) {
  return check(::utimensat(fd, "", times, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
}

Result<void> access_at(BorrowedFd dirfd, const char* name, int mode) {
  return check(::faccessat(dirfd, name, mode, AT_EACCESS));
}

Result<struct statvfs> stat_vfs(BorrowedFd fd) {
  struct statvfs sv;
  if (::fstatvfs(fd, &sv) != 0) return last_errno();
  return sv;
}

Result<size_t> pread_fd(BorrowedFd fd, void* buf, size_t size, off_t off) {
  ssize_t n = ::pread(fd, buf, size, off);
  if (n < 0) return last_errno();
  return static_cast<size_t>(n);
}

Result<size_t> pwrite_fd(BorrowedFd fd, const void* buf, size_t size, off_t off) {
  ssize_t n = ::pwrite(fd, buf, size, off);
  if (n < 0) return last_errno();
  return static_cast<size_t>(n);
}

Result<off_t> seek(BorrowedFd fd, off_t off, int whence) {
  off_t r = ::lseek(fd, off, whence);
  if (r < 0) return last_errno();
  return r;
}

Result<void> truncate_fd(BorrowedFd fd, off_t size) {
  if (::ftruncate(fd, size) == 0) return {};
  if (errno != EBADF && errno != EINVAL) return last_errno();
  // An O_PATH fd (or one not open for writing): through its path, as truncate(2) does.
  return check(::truncate(FdPath(fd).c_str(), size));
}

Result<void> sync_fd(BorrowedFd fd, bool data_only) {
  return check(data_only ? ::fdatasync(fd) : ::fsync(fd));
}

Result<void> allocate(BorrowedFd fd, int mode, off_t off, off_t len) {
  return check(::fallocate(fd, mode, off, len));
}

Result<size_t> copy_range(BorrowedFd in_fd, off_t* in, BorrowedFd out_fd, off_t* out, size_t len) {
  ssize_t n = ::copy_file_range(in_fd, in, out_fd, out, len, 0);
  if (n < 0) return last_errno();
  return static_cast<size_t>(n);
}

Result<void> clone_file(BorrowedFd dst, BorrowedFd src) {
  return check(::ioctl(dst, FICLONE, src));
}

Result<void> lock_exclusive(BorrowedFd fd) { return check(::flock(fd, LOCK_EX | LOCK_NB)); }

Result<void> read_dir(BorrowedFd dir_fd, const std::function<bool(const DirEntry&)>& fn) {
  // getdents64 needs a real open; O_PATH handles are reopened by name ".".
  auto fd = open_at(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (!fd.ok()) return fd.err();
  std::vector<char> buf(size_t{64} * 1024);
  for (;;) {
    long n = ::syscall(SYS_getdents64, fd->get(), buf.data(), buf.size());
    if (n < 0) return last_errno();
    if (n == 0) return {};
    for (long pos = 0; pos < n;) {
      // linux_dirent64: ino, off, reclen, type, name.
      const char* rec = buf.data() + pos;
      uint64_t ino;
      unsigned short reclen;
      memcpy(&ino, rec, sizeof ino);
      memcpy(&reclen, rec + 16, sizeof reclen);
      unsigned char type = static_cast<unsigned char>(rec[18]);
      std::string_view name(rec + 19);
      pos += reclen;
      if (name == "." || name == "..") continue;
      if (!fn(DirEntry{name, ino, type})) return {};
    }
  }
}

}  // namespace layerfs::sys
