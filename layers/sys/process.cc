#include "layers/sys/process.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "layers/sys/fs.h"

namespace layerfs::sys {

unsigned terminal_columns(int fd) {
  struct winsize ws {};
  if (ioctl(fd, TIOCGWINSZ, &ws) != 0) return 0;
  return ws.ws_col;
}

pid_t process_id() { return ::getpid(); }

bool running_as_root() { return ::geteuid() == 0; }

uid_t effective_uid() { return ::geteuid(); }

gid_t effective_gid() { return ::getegid(); }

bool admin_of_initial_user_namespace() {
  std::ifstream map("/proc/self/uid_map");
  uint64_t inside = 1, outside = 1, count = 0;
  if (!(map >> inside >> outside >> count) || inside != 0 || outside != 0 ||
      count != 4294967295ULL) {
    return false;
  }
  std::ifstream status("/proc/self/status");
  constexpr int kSysAdmin = 21;  // CAP_SYS_ADMIN
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("CapEff:", 0) != 0) continue;
    const uint64_t caps = std::strtoull(line.c_str() + 7, nullptr, 16);
    return (caps >> kSysAdmin) & 1;
  }
  return false;
}

mode_t set_umask(mode_t mask) { return ::umask(mask); }

bool path_exists(const char* path) { return ::access(path, F_OK) == 0; }

Result<int> run_program(const std::vector<std::string>& argv) {
  if (argv.empty()) return Errno{EINVAL};
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ);
  if (rc != 0) return Errno{rc};
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return last_errno();
  }
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

Result<std::string> real_path(const char* path) {
  char* real = ::realpath(path, nullptr);
  if (real == nullptr) return last_errno();
  std::string out(real);
  free(real);
  return out;
}

size_t count_open_fds() {
  auto dir = open_at(kCwd, "/proc/self/fd", O_RDONLY | O_DIRECTORY);
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
