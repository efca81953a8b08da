#include "layers/sys/fs.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

namespace layerfs::sys {
namespace {

struct ProcPath {
  char buf[32];
  explicit ProcPath(int fd) { snprintf(buf, sizeof buf, "/proc/self/fd/%d", fd); }
};

}  // namespace

Result<UniqueFd> open_at(int dirfd, const char* name, int flags, mode_t mode) {
  int fd = ::openat(dirfd, name, flags | O_CLOEXEC, mode);
  if (fd < 0) return last_errno();
  return UniqueFd(fd);
}

Result<UniqueFd> open_beneath(int dirfd, const char* path, int flags, bool allow_symlinks) {
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  if (!allow_symlinks) how.resolve |= RESOLVE_NO_SYMLINKS;
  long fd = ::syscall(SYS_openat2, dirfd, path, &how, sizeof how);
  if (fd < 0) return last_errno();
  return UniqueFd(static_cast<int>(fd));
}

Result<UniqueFd> open_path(int dirfd, const char* name) {
  return open_at(dirfd, name, O_PATH | O_NOFOLLOW);
}

Result<UniqueFd> reopen(int path_fd, int flags) {
  ProcPath p(path_fd);
  // The proc link names the object itself; O_NOFOLLOW would refuse the link.
  return open_at(AT_FDCWD, p.buf, flags & ~O_NOFOLLOW);
}

Result<UniqueFd> dup_fd(int fd) {
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) return last_errno();
  return UniqueFd(d);
}

Result<void> chmod_fd(int fd, mode_t mode) {
  ProcPath p(fd);
  if (::chmod(p.buf, mode) != 0) return last_errno();
  return {};
}

Result<struct stat> stat_at(int dirfd, const char* name) {
  struct stat st;
  int flags = AT_SYMLINK_NOFOLLOW | (name[0] == '\0' ? AT_EMPTY_PATH : 0);
  if (::fstatat(dirfd, name, &st, flags) < 0) return last_errno();
  return st;
}

Result<struct stat> stat_fd(int fd) { return stat_at(fd, ""); }

Result<std::string> read_link_at(int dirfd, const char* name) {
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

Result<struct statfs> stat_fs(int fd) {
  struct statfs sfs;
  if (::fstatfs(fd, &sfs) < 0) return last_errno();
  return sfs;
}

Result<size_t> get_xattr(int fd, const char* name, void* value, size_t size) {
  ProcPath p(fd);
  ssize_t n = ::getxattr(p.buf, name, value, size);
  if (n < 0) return last_errno();
  return static_cast<size_t>(n);
}

Result<void> set_xattr(int fd, const char* name, std::string_view value, int flags) {
  ProcPath p(fd);
  if (::setxattr(p.buf, name, value.data(), value.size(), flags) != 0) return last_errno();
  return {};
}

Result<std::string> get_xattr(int fd, const char* name) {
  std::string out(64, '\0');
  for (;;) {
    auto n = get_xattr(fd, name, out.data(), out.size());
    if (n.ok()) {
      out.resize(*n);
      return out;
    }
    if (n.error() != ERANGE) return n.err();
    auto need = get_xattr(fd, name, nullptr, 0);
    if (!need.ok()) return need.err();
    out.resize(*need + 1);
  }
}

Result<size_t> list_xattr(int fd, char* list, size_t size) {
  ProcPath p(fd);
  ssize_t n = ::listxattr(p.buf, list, size);
  if (n < 0) return last_errno();
  return static_cast<size_t>(n);
}

Result<std::string> list_xattr(int fd) {
  std::string out(256, '\0');
  for (;;) {
    auto n = list_xattr(fd, out.data(), out.size());
    if (n.ok()) {
      out.resize(*n);
      return out;
    }
    if (n.error() != ERANGE) return n.err();
    auto need = list_xattr(fd, nullptr, 0);
    if (!need.ok()) return need.err();
    out.resize(*need + 1);
  }
}

Result<void> read_dir(int dir_fd, const std::function<bool(const DirEntry&)>& fn) {
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

size_t count_open_fds() {
  auto dir = open_at(AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY);
  if (!dir.ok()) return 0;
  size_t n = 0;
  (void)read_dir(dir->get(), [&](const DirEntry&) {
    ++n;
    return true;
  });
  return n > 0 ? n - 1 : 0;  // the directory's own fd
}

uint64_t raise_fd_limit() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return 0;
  // Root may lift the hard limit up to fs.nr_open; anyone may lift the soft one to the hard.
  if (FILE* f = fopen("/proc/sys/fs/nr_open", "re")) {
    unsigned long long nr_open = 0;
    if (fscanf(f, "%llu", &nr_open) == 1 && nr_open > rl.rlim_max) {
      struct rlimit want = {nr_open, nr_open};
      if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
    }
    fclose(f);
  }
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

}  // namespace layerfs::sys
