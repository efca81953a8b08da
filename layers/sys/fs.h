// Thin wrappers over the filesystem syscalls layerfs makes. This is the only place raw
// syscalls are issued; every wrapper returns its error as a value and never follows a symlink
// unless the caller asks for it by flag.
#pragma once

#include <dirent.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "layers/base/result.h"
#include "layers/base/unique_fd.h"

namespace layerfs::sys {

// openat(2) with O_CLOEXEC always added.
Result<UniqueFd> open_at(BorrowedFd dirfd, const char* name, int flags, mode_t mode = 0);

// openat2(2) confined below dirfd: no "..", no absolute paths, no magic links, and (unless
// allow_symlinks) no symlinks at all. The way paths given from outside reach a layer.
Result<UniqueFd> open_beneath(BorrowedFd dirfd, const char* path, int flags,
                              bool allow_symlinks = false);

// An O_PATH handle on the object itself (never follows a trailing symlink).
Result<UniqueFd> open_path(BorrowedFd dirfd, const char* name);

// Reopens an O_PATH handle with real access flags, through /proc/self/fd (the object the
// handle names, whatever its path is now).
Result<UniqueFd> reopen(BorrowedFd path_fd, int flags);

// A second fd on the same open file (close-on-exec).
Result<UniqueFd> dup_fd(BorrowedFd fd);

// fstatat(2) with AT_SYMLINK_NOFOLLOW; name "" stats dirfd itself.
Result<struct stat> stat_at(BorrowedFd dirfd, const char* name);
Result<struct stat> stat_fd(BorrowedFd fd);

Result<std::string> read_link_at(BorrowedFd dirfd, const char* name);
// chmod of the object behind an fd of any kind (O_PATH included), through /proc/self/fd.
Result<void> chmod_fd(BorrowedFd fd, mode_t mode);
Result<struct statfs> stat_fs(BorrowedFd fd);

// Making, linking and removing names (the *at calls; none follows a symlink in `name`).
Result<void> make_dir_at(BorrowedFd dirfd, const char* name, mode_t mode);
Result<void> make_node_at(BorrowedFd dirfd, const char* name, mode_t mode, dev_t dev);
Result<void> make_symlink_at(const char* target, BorrowedFd dirfd, const char* name);
// linkat(2) without following; link_fd links the object behind an fd of any kind.
Result<void> link_at(BorrowedFd from_dir, const char* from, BorrowedFd to_dir, const char* to);
Result<void> link_fd(BorrowedFd fd, BorrowedFd to_dir, const char* to);
// unlinkat(2); flags AT_REMOVEDIR for a directory.
Result<void> unlink_at(BorrowedFd dirfd, const char* name, int flags = 0);
// renameat2(2): flags RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT or 0.
Result<void> rename_at(BorrowedFd from_dir, const char* from, BorrowedFd to_dir, const char* to,
                       unsigned flags = 0);

// Metadata. The *_fd calls take an fd of any kind, O_PATH included, and never follow a
// symlink it names; chown -1 leaves that id.
Result<void> chown_fd(BorrowedFd fd, uid_t uid, gid_t gid);
Result<void> chown_at(BorrowedFd dirfd, const char* name, uid_t uid, gid_t gid);
Result<void> chmod_at(BorrowedFd dirfd, const char* name, mode_t mode);
// times[0] atime, times[1] mtime (UTIME_NOW, UTIME_OMIT as utimensat(2)).
Result<void> set_times_fd(BorrowedFd fd, const struct timespec times[2]);
// faccessat(2) with the effective ids.
Result<void> access_at(BorrowedFd dirfd, const char* name, int mode);
Result<struct statvfs> stat_vfs(BorrowedFd fd);

// Data. truncate_fd takes any fd (an O_PATH one is truncated through its /proc path).
Result<size_t> pread_fd(BorrowedFd fd, void* buf, size_t size, off_t off);
Result<size_t> pwrite_fd(BorrowedFd fd, const void* buf, size_t size, off_t off);
Result<off_t> seek(BorrowedFd fd, off_t off, int whence);
Result<void> truncate_fd(BorrowedFd fd, off_t size);
Result<void> sync_fd(BorrowedFd fd, bool data_only = false);
Result<void> allocate(BorrowedFd fd, int mode, off_t off, off_t len);
// copy_file_range(2) from the current offsets' replacements *in and *out, advanced.
Result<size_t> copy_range(BorrowedFd in_fd, off_t* in, BorrowedFd out_fd, off_t* out, size_t len);
// A reflink of all of `src` into `dst` (FICLONE).
Result<void> clone_file(BorrowedFd dst, BorrowedFd src);
// An exclusive advisory lock, not waiting (EWOULDBLOCK where another holds it).
Result<void> lock_exclusive(BorrowedFd fd);

// One directory entry as getdents64 returns it.
struct DirEntry {
  std::string_view name;
  uint64_t ino;
  unsigned char type;  // DT_*
};

// Reads every entry of the directory behind dir_fd (any fd on a directory, O_PATH included),
// "." and ".." excluded. The callback returns false to stop early.
Result<void> read_dir(BorrowedFd dir_fd, const std::function<bool(const DirEntry&)>& fn);

}  // namespace layerfs::sys
