// The process itself: who it runs as, its umask, its fd limit, paths as it sees them.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "layers/base/result.h"

namespace layerfs::sys {

// Whether the process runs with effective uid 0.
bool running_as_root();
// geteuid(2), getegid(2).
uid_t effective_uid();
gid_t effective_gid();
// CAP_SYS_ADMIN in the effective set, in the initial user namespace: what the kernel asks of
// a FUSE daemon for passthrough and of whoever mounts without a user namespace.
bool admin_of_initial_user_namespace();
// The process's pid.
pid_t process_id();
// Sets the umask; returns the previous one.
mode_t set_umask(mode_t mask);
// Whether `path` exists (access F_OK, following symlinks); for probing the machine.
bool path_exists(const char* path);
// realpath(3): the absolute path, symlinks resolved.
Result<std::string> real_path(const char* path);

// Runs a program (found in PATH) with `argv` and waits for it; its exit status (128 + the
// signal that ended it).
Result<int> run_program(const std::vector<std::string>& argv);

// The width of the terminal on `fd` in columns; 0 when it is not a terminal.
unsigned terminal_columns(int fd);

// How many fds the process has open now.
size_t count_open_fds();
// Raises RLIMIT_NOFILE as far as the process may; returns the soft limit in force after.
uint64_t raise_fd_limit();

}  // namespace layerfs::sys
