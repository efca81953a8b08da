#include "layers/sys/container.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace layerfs::sys {

Result<pid_t> clone_process(int ns_flags) {
  // The raw call with no new stack behaves as fork(2): the child returns from it on a copy of
  // the parent's stack.
  const long pid = ::syscall(SYS_clone, static_cast<unsigned long>(ns_flags | SIGCHLD), nullptr,
                             nullptr, nullptr, 0);
  if (pid < 0) return last_errno();
  return static_cast<pid_t>(pid);
}

Result<pid_t> fork_process() {
  const pid_t pid = ::fork();
  if (pid < 0) return last_errno();
  return pid;
}

Result<void> unshare_namespaces(int ns_flags) {
  if (::unshare(ns_flags) != 0) return last_errno();
  return {};
}

Result<ChildStatus> wait_child(pid_t pid, int options) {
  int status = 0;
  for (;;) {
    const pid_t got = ::waitpid(pid, &status, options);
    if (got >= 0) return ChildStatus{got, status};
    if (errno != EINTR) return last_errno();
  }
}

Result<void> send_signal(pid_t pid, int sig) {
  if (::kill(pid, sig) != 0) return last_errno();
  return {};
}

pid_t parent_id() { return ::getppid(); }
uid_t real_uid() { return ::getuid(); }
gid_t real_gid() { return ::getgid(); }

Result<void> new_session() {
  if (::setsid() < 0) return last_errno();
  return {};
}

Errno exec_program(const std::string& file, const std::vector<std::string>& argv,
                   const std::vector<std::string>& env, std::string_view path) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  if (file.find('/') != std::string::npos) {
    ::execve(file.c_str(), args.data(), envp.data());
    return last_errno();
  }
  int best = ENOENT;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string_view::npos) end = path.size();
    std::string dir(path.substr(start, end - start));
    if (dir.empty()) dir = ".";
    const std::string candidate = dir + "/" + file;
    ::execve(candidate.c_str(), args.data(), envp.data());
    // As execvp: a permission problem is worth more than a miss; anything else ends the search.
    if (errno == EACCES) {
      best = EACCES;
    } else if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP && errno != ENAMETOOLONG) {
      return last_errno();
    }
    start = end + 1;
  }
  return Errno{best};
}

void close_fds_from(int first, const std::vector<int>& keep) {
  int from = first;
  std::vector<int> sorted = keep;
  std::sort(sorted.begin(), sorted.end());
  for (int k : sorted) {
    if (k < from) continue;
    if (k > from && ::syscall(SYS_close_range, from, k - 1, 0) != 0) {
      for (int fd = from; fd < k; ++fd) ::close(fd);
    }
    from = k + 1;
  }
  if (::syscall(SYS_close_range, from, ~0U, 0) != 0) {
    for (int fd = from; fd < 65536; ++fd) ::close(fd);
  }
}

Result<Pipe> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return last_errno();
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

Result<void> write_all(BorrowedFd fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_errno();
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

Result<size_t> read_some(BorrowedFd fd, void* buf, size_t size) {
  for (;;) {
    const ssize_t n = ::read(fd, buf, size);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return last_errno();
  }
}

Result<void> write_text(const char* path, std::string_view text) {
  UniqueFd fd(::open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return last_errno();
  const ssize_t n = ::write(fd.get(), text.data(), text.size());
  if (n < 0) return last_errno();
  if (static_cast<size_t>(n) != text.size()) return Errno{EIO};
  return {};
}

Result<std::string> read_text(const char* path) {
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return last_errno();
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_errno();
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Result<UniqueFd> open_in_root(BorrowedFd root, const char* path, int flags) {
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  const long fd = ::syscall(SYS_openat2, static_cast<int>(root), path, &how, sizeof how);
  if (fd < 0) return last_errno();
  return UniqueFd(static_cast<int>(fd));
}

Result<void> mount_at(const char* source, const char* target, const char* type, unsigned long flags,
                      const char* data) {
  if (::mount(source, target, type, flags, data) != 0) return last_errno();
  return {};
}

Result<void> set_mount_attributes(const char* path, uint64_t set, uint64_t clear, bool recursive) {
  mount_attr attr{};
  attr.attr_set = set;
  attr.attr_clr = clear;
  const unsigned flags = recursive ? AT_RECURSIVE : 0U;
  if (::syscall(SYS_mount_setattr, AT_FDCWD, path, flags, &attr, sizeof attr) != 0) {
    return last_errno();
  }
  return {};
}

Result<void> unmount(const char* path, int flags) {
  if (::umount2(path, flags) != 0) return last_errno();
  return {};
}

Result<void> pivot_root_into(const char* new_root, const char* put_old) {
  if (::syscall(SYS_pivot_root, new_root, put_old) != 0) return last_errno();
  return {};
}

Result<void> change_dir(const char* path) {
  if (::chdir(path) != 0) return last_errno();
  return {};
}

Result<void> set_hostname(std::string_view name) {
  if (::sethostname(name.data(), name.size()) != 0) return last_errno();
  return {};
}

Result<void> set_identity(uid_t uid, gid_t gid, const std::vector<gid_t>& groups) {
  // Where setgroups is denied (a user namespace with a single id) there is nothing to drop.
  if (::setgroups(groups.size(), groups.data()) != 0 && !(errno == EPERM && groups.empty())) {
    return last_errno().context("setgroups");
  }
  if (::setresgid(gid, gid, gid) != 0) return last_errno().context("setresgid");
  if (::setresuid(uid, uid, uid) != 0) return last_errno().context("setresuid");
  return {};
}

Result<void> set_no_new_privs() {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return last_errno();
  return {};
}

Result<bool> no_new_privs() {
  const int r = ::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
  if (r < 0) return last_errno();
  return r == 1;
}

Result<void> set_parent_death_signal(int sig) {
  if (::prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0) return last_errno();
  return {};
}

Result<void> set_keep_capabilities(bool keep) {
  if (::prctl(PR_SET_KEEPCAPS, keep ? 1 : 0, 0, 0, 0) != 0) return last_errno();
  return {};
}

Result<void> set_dumpable(bool dumpable) {
  if (::prctl(PR_SET_DUMPABLE, dumpable ? 1 : 0, 0, 0, 0) != 0) return last_errno();
  return {};
}

Result<void> set_resource_limit(int resource, rlim_t soft, rlim_t hard) {
  const rlimit lim{soft, hard};
  if (::setrlimit(static_cast<__rlimit_resource>(resource), &lim) != 0) return last_errno();
  return {};
}

Result<void> loopback_up() {
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) return last_errno();
  ifreq req{};
  std::strncpy(req.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(s.get(), SIOCGIFFLAGS, &req) != 0) return last_errno();
  req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP | IFF_RUNNING);
  if (::ioctl(s.get(), SIOCSIFFLAGS, &req) != 0) return last_errno();
  return {};
}

}  // namespace layerfs::sys
