// The calls a container launcher makes: processes in new namespaces, the mount table of a
// new root, identities, signals and the small files of /proc and cgroupfs. Errors are values,
// as everywhere in layers/sys; none of these follows a symlink unless its comment says so.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "layers/base/result.h"
#include "layers/base/unique_fd.h"

namespace layerfs::sys {

// Processes.
// A child process in the new namespaces `ns_flags` (CLONE_NEW*), fork-like: 0 in the child,
// the child's pid in the parent. The caller must be single-threaded.
Result<pid_t> clone_process(int ns_flags);
// fork(2).
Result<pid_t> fork_process();
// unshare(2).
Result<void> unshare_namespaces(int ns_flags);
struct ChildStatus {
  pid_t pid = 0;  // 0: none ready (WNOHANG)
  int status = 0;
};
// waitpid(2), retried on EINTR.
Result<ChildStatus> wait_child(pid_t pid, int options = 0);
// kill(2).
Result<void> send_signal(pid_t pid, int sig);
// The process's parent's pid, and its real ids.
pid_t parent_id();
uid_t real_uid();
gid_t real_gid();
// setsid(2).
Result<void> new_session();
// Execs `file` with `argv` and `env`. A name without '/' is searched in `path` (colon-separated,
// as execvp but with the given PATH, not the caller's). Returns only on failure: ENOENT when no
// candidate exists, otherwise the most telling errno (EACCES over ENOENT, as execvp).
Errno exec_program(const std::string& file, const std::vector<std::string>& argv,
                   const std::vector<std::string>& env, std::string_view path);
// Closes every fd from `first` up, but those in `keep` (close_range, with a loop where the
// kernel lacks it).
void close_fds_from(int first, const std::vector<int>& keep = {});

// Pipes (close-on-exec) and whole reads and writes on them.
struct Pipe {
  UniqueFd read;
  UniqueFd write;
};
Result<Pipe> make_pipe();
// write(2) until all of `data` is written.
Result<void> write_all(BorrowedFd fd, std::string_view data);
// read(2) once (retried on EINTR); 0 at end of file.
Result<size_t> read_some(BorrowedFd fd, void* buf, size_t size);

// Small text files (/proc/PID/uid_map, cgroupfs knobs): the whole file, written in one write(2)
// as the kernel wants them, or read whole.
Result<void> write_text(const char* path, std::string_view text);
Result<std::string> read_text(const char* path);

// Mounts.
// openat2(2) with RESOLVE_IN_ROOT: `path` resolved as if `root` were "/" (absolute symlinks
// and ".." stay inside it), no magic links. How a container's mount destinations are found.
Result<UniqueFd> open_in_root(BorrowedFd root, const char* path, int flags);
// mount(2).
Result<void> mount_at(const char* source, const char* target, const char* type, unsigned long flags,
                      const char* data = nullptr);
// mount_setattr(2) on `path` (AT_RECURSIVE with `recursive`): adds the MOUNT_ATTR_* in `set`,
// removes those in `clear`, and leaves every other flag (the locked ones of a mount made in
// another user namespace among them) as it is. Follows symlinks (a /proc/self/fd/N link names
// the mount it holds).
Result<void> set_mount_attributes(const char* path, uint64_t set, uint64_t clear, bool recursive);
// umount2(2).
Result<void> unmount(const char* path, int flags);
// pivot_root(2).
Result<void> pivot_root_into(const char* new_root, const char* put_old);
// chdir(2) (follows symlinks).
Result<void> change_dir(const char* path);

// Identity inside a new user namespace.
Result<void> set_hostname(std::string_view name);
// setgroups(2), setresgid(2), setresuid(2), in that order (an empty group list where
// setgroups is denied is no error).
Result<void> set_identity(uid_t uid, gid_t gid, const std::vector<gid_t>& groups);
// prctl: PR_SET_NO_NEW_PRIVS; PR_SET_PDEATHSIG; PR_SET_KEEPCAPS; PR_SET_DUMPABLE.
Result<void> set_no_new_privs();
Result<bool> no_new_privs();
Result<void> set_parent_death_signal(int sig);
Result<void> set_keep_capabilities(bool keep);
// PR_SET_DUMPABLE: a process that is not dumpable cannot be ptraced by one without
// CAP_SYS_PTRACE over it, and its /proc files belong to root.
Result<void> set_dumpable(bool dumpable);
// setrlimit(2).
Result<void> set_resource_limit(int resource, rlim_t soft, rlim_t hard);

// Network: brings the loopback interface up (a new network namespace has it down).
Result<void> loopback_up();

}  // namespace layerfs::sys
