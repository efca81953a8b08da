#include "tests/support/mounts.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace layerfs::test {
namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Decodes the octal escapes of /proc/self/mountinfo fields.
std::string unescape_mountinfo(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

int wait_status(int raw) {
  if (WIFEXITED(raw)) return WEXITSTATUS(raw);
  if (WIFSIGNALED(raw)) return 128 + WTERMSIG(raw);
  return -1;
}

// Waits for pid up to `limit`; returns its status or nullopt if it still runs.
std::optional<int> wait_for(pid_t pid, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    int raw = 0;
    pid_t r = waitpid(pid, &raw, WNOHANG);
    if (r == pid) return wait_status(raw);
    if (r < 0) return -1;
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

TempDir::TempDir(const std::string& tag) {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/layerfs-" + tag + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp: " + tmpl);
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::optional<std::string> fuse_unavailable() {
  if (access("/dev/fuse", R_OK | W_OK) != 0) return "/dev/fuse is not usable here";
  if (access(LAYERFS_BIN, X_OK) != 0) return std::string("no layerfs binary at ") + LAYERFS_BIN;
  if (geteuid() != 0 && run({"sh", "-c", "command -v fusermount3"}).status != 0) {
    return "fusermount3 is not installed";
  }
  return std::nullopt;
}

std::optional<std::string> kernel_overlay_unavailable() {
  static std::optional<std::string> cached = []() -> std::optional<std::string> {
    if (geteuid() != 0) return "kernel overlayfs mounts need root";
    if (read_file("/proc/filesystems").find("\toverlay\n") == std::string::npos) {
      return "the kernel has no overlay filesystem";
    }
    return std::nullopt;
  }();
  return cached;
}

RunResult run(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  TempDir io("run");
  fs::path out = io / "out", err = io / "err";
  pid_t pid = fork();
  if (pid == 0) {
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int in = open("/dev/null", O_RDONLY);
    dup2(in, 0);
    dup2(o, 1);
    dup2(e, 2);
    for (const auto& kv : env) putenv(const_cast<char*>(kv.c_str()));
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  RunResult r;
  int raw = 0;
  waitpid(pid, &raw, 0);
  r.status = wait_status(raw);
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

ScopedEnv::ScopedEnv(const char* name, const char* value) : name_(name), set_(value != nullptr) {
  if (!set_) return;
  if (const char* old = getenv(name)) old_ = old;
  setenv(name, value, 1);
}

ScopedEnv::~ScopedEnv() {
  if (!set_) return;
  if (old_) {
    setenv(name_.c_str(), old_->c_str(), 1);
  } else {
    unsetenv(name_.c_str());
  }
}

std::string mountinfo_line(const fs::path& path, const std::string& fstype_prefix) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line, found;
  // Only the parent is resolved: the mount point itself may answer ENOTCONN while a daemon
  // shuts down (libfuse closes /dev/fuse just before its lazy unmount).
  const std::string want = (fs::weakly_canonical(path.parent_path()) / path.filename()).string();
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, devno, root, mnt;
    ls >> id >> parent >> devno >> root >> mnt;
    std::string tok;
    while (ls >> tok && tok != "-") {
    }
    std::string fstype;
    ls >> fstype;
    if (unescape_mountinfo(mnt) == want && fstype.rfind(fstype_prefix, 0) == 0) found = line;
  }
  return found;  // the last one listed is the one on top
}

bool is_mounted(const fs::path& path, const std::string& fstype_prefix) {
  return !mountinfo_line(path, fstype_prefix).empty();
}

void unmount(const fs::path& path) {
  for (int i = 0; i < 50 && is_mounted(path); ++i) {
    if (umount2(path.c_str(), 0) == 0) continue;
    if (errno == EPERM) {
      run({"fusermount3", "-u", "-z", path.string()});
    } else if (errno == EBUSY) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (i > 10) umount2(path.c_str(), MNT_DETACH);
    } else {
      break;
    }
  }
}

std::string lowerdir_option(const std::vector<fs::path>& lowers) {
  std::string v = "lowerdir=";
  for (size_t i = 0; i < lowers.size(); ++i) {
    if (i) v += ':';
    for (char c : lowers[i].string()) {
      if (c == ':' || c == '\\' || c == ',') v += '\\';
      v += c;
    }
  }
  return v;
}

LayerfsMount::LayerfsMount(const std::vector<fs::path>& lowers, const fs::path& mountpoint,
                           const std::vector<std::string>& extra_args,
                           const std::vector<std::string>& wrapper)
    : mountpoint_(mountpoint) {
  char tmpl[] = "/tmp/layerfs-daemon-err-XXXXXX";
  int efd = mkstemp(tmpl);
  stderr_path_ = tmpl;
  std::vector<std::string> argv = wrapper;
  for (const std::string& a :
       {std::string(LAYERFS_BIN), std::string("-f"), std::string("-o"), lowerdir_option(lowers)}) {
    argv.push_back(a);
  }
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  argv.push_back(mountpoint.string());
  pid_ = fork();
  if (pid_ == 0) {
    dup2(efd, 2);
    int in = open("/dev/null", O_RDONLY);
    dup2(in, 0);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(efd);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (is_mounted(mountpoint_, "fuse")) {
      ok_ = true;
      return;
    }
    if (auto st = wait_for(pid_, std::chrono::milliseconds(10))) {
      status_ = *st;
      pid_ = -1;
      error_ =
          "layerfs exited with status " + std::to_string(status_) + ": " + read_file(stderr_path_);
      return;
    }
  }
  error_ = "layerfs did not mount within 20 s: " + read_file(stderr_path_);
}

int LayerfsMount::stop() {
  unmount(mountpoint_);
  if (pid_ > 0) {
    auto st = wait_for(pid_, std::chrono::seconds(10));
    if (!st) {
      kill(pid_, SIGTERM);
      st = wait_for(pid_, std::chrono::seconds(5));
    }
    if (!st) {
      kill(pid_, SIGKILL);
      st = wait_for(pid_, std::chrono::seconds(5));
    }
    status_ = st.value_or(-1);
    pid_ = -1;
  }
  return status_;
}

LayerfsMount::~LayerfsMount() {
  // A daemon that was live must exit cleanly on unmount: a crash, a leak report or a sanitizer
  // finding in it fails the test that mounted it.
  bool was_live = ok_ && pid_ > 0;
  int status = stop();
  if (was_live && status != 0) {
    ADD_FAILURE() << "layerfs exited with status " << status
                  << " after unmount: " << read_file(stderr_path_);
  }
  std::error_code ec;
  fs::remove(stderr_path_, ec);
}

KernelOverlay::KernelOverlay(const std::vector<fs::path>& lowers, const fs::path& mountpoint,
                             const std::string& extra_opts)
    : mountpoint_(mountpoint) {
  std::string opts = lowerdir_option(lowers);
  // The kernel takes '\:' but not '\,' in its own option string.
  if (!extra_opts.empty()) opts += "," + extra_opts;
  const unsigned long flags = extra_opts.find("upperdir=") == std::string::npos ? MS_RDONLY : 0;
  if (mount("overlay", mountpoint.c_str(), "overlay", flags, opts.c_str()) == 0) {
    ok_ = true;
  } else {
    error_ = std::string("mount -t overlay: ") + strerror(errno);
  }
}

KernelOverlay::~KernelOverlay() {
  if (ok_) unmount(mountpoint_);
}

}  // namespace layerfs::test

namespace layerfs::test {

std::vector<pid_t> layerfs_daemons(const std::string& needle) {
  std::vector<pid_t> out;
  const fs::path want = fs::canonical(LAYERFS_BIN);
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    std::error_code lec;
    fs::path exe = fs::read_symlink(e.path() / "exe", lec);
    if (lec || exe != want) continue;
    std::string cmdline = read_file(e.path() / "cmdline");
    if (cmdline.find(needle) == std::string::npos) continue;
    pid_t pid = std::stoi(name);
    if (!process_gone(pid)) out.push_back(pid);
  }
  return out;
}

bool process_gone(pid_t pid) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return true;
  size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

bool DaemonGuard::wait_exit(int seconds) {
  for (int i = 0; i < seconds * 100; ++i) {
    if (layerfs_daemons(needle_).empty()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

DaemonGuard::~DaemonGuard() {
  unmount(mountpoint_);
  if (wait_exit(5)) return;
  for (pid_t pid : layerfs_daemons(needle_)) kill(pid, SIGTERM);
  if (wait_exit(5)) return;
  for (pid_t pid : layerfs_daemons(needle_)) kill(pid, SIGKILL);
}

std::optional<uid_t> test_user() {
  if (passwd* pw = getpwnam(kUserName)) return pw->pw_uid;
  run({"useradd", "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin",
       kUserName});
  if (passwd* pw = getpwnam(kUserName)) return pw->pw_uid;
  return std::nullopt;
}

DevFuseForEveryone::DevFuseForEveryone() {
  lock_fd_ = open("/tmp/layerfs-test-dev-fuse.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ >= 0) flock(lock_fd_, LOCK_EX);
  struct stat st {};
  if (stat("/dev/fuse", &st) == 0 && (st.st_mode & 0666) != 0666) {
    old_mode_ = st.st_mode & 07777;
    changed_ = chmod("/dev/fuse", 0666) == 0;
  }
}

DevFuseForEveryone::~DevFuseForEveryone() {
  if (changed_) chmod("/dev/fuse", old_mode_);
  if (lock_fd_ >= 0) close(lock_fd_);  // releases the lock
}

}  // namespace layerfs::test
