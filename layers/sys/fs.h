// Thin wrappers over the filesystem syscalls layerfs makes. This is the only place raw
// syscalls are issued; every wrapper returns its error as a value and never follows a symlink
// unless the caller asks for it by flag.
#pragma once

#include <dirent.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "layers/base/result.h"
#include "layers/base/unique_fd.h"

namespace layerfs::sys {

// openat(2) with O_CLOEXEC always added.
Result<UniqueFd> open_at(int dirfd, const char* name, int flags, mode_t mode = 0);

// openat2(2) confined below dirfd: no "..", no absolute paths, no magic links, and (unless
// allow_symlinks) no symlinks at all. The way paths given from outside reach a layer.
Result<UniqueFd> open_beneath(int dirfd, const char* path, int flags, bool allow_symlinks = false);

// An O_PATH handle on the object itself (never follows a trailing symlink).
Result<UniqueFd> open_path(int dirfd, const char* name);

// Reopens an O_PATH handle with real access flags, through /proc/self/fd (the object the
// handle names, whatever its path is now).
Result<UniqueFd> reopen(int path_fd, int flags);

// A second fd on the same open file (close-on-exec).
Result<UniqueFd> dup_fd(int fd);

// fstatat(2) with AT_SYMLINK_NOFOLLOW; name "" stats dirfd itself.
Result<struct stat> stat_at(int dirfd, const char* name);
Result<struct stat> stat_fd(int fd);

Result<std::string> read_link_at(int dirfd, const char* name);
// chmod of the object behind an fd of any kind (O_PATH included), through /proc/self/fd.
Result<void> chmod_fd(int fd, mode_t mode);
Result<struct statfs> stat_fs(int fd);

// Extended attributes of the object behind an fd of any kind (O_PATH included, symlinks too).
// get_xattr returns the value size; with size 0 only the size is asked.
Result<size_t> get_xattr(int fd, const char* name, void* value, size_t size);
Result<std::string> get_xattr(int fd, const char* name);
Result<size_t> list_xattr(int fd, char* list, size_t size);
Result<std::string> list_xattr(int fd);
Result<void> set_xattr(int fd, const char* name, std::string_view value, int flags = 0);

// One directory entry as getdents64 returns it.
struct DirEntry {
  std::string_view name;
  uint64_t ino;
  unsigned char type;  // DT_*
};

// Reads every entry of the directory behind dir_fd (any fd on a directory, O_PATH included),
// "." and ".." excluded. The callback returns false to stop early.
Result<void> read_dir(int dir_fd, const std::function<bool(const DirEntry&)>& fn);

// How many fds the process has open now.
size_t count_open_fds();

// Raises RLIMIT_NOFILE as far as the process may; returns the soft limit in force after.
uint64_t raise_fd_limit();

}  // namespace layerfs::sys
