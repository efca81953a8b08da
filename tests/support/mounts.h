// Test helpers that make real mounts. Every helper that mounts unmounts in its destructor and
// stops the daemon it started (by its pid), whatever the test's outcome.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace layerfs::test {

namespace fs = std::filesystem;

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "t");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& rel) const { return path_ / rel; }

 private:
  fs::path path_;
};

// Why FUSE mounts cannot run here, or nullopt when they can.
std::optional<std::string> fuse_unavailable();
// Why kernel overlayfs cannot be mounted here, or nullopt when it can.
std::optional<std::string> kernel_overlay_unavailable();

// The result of running a program to completion.
struct RunResult {
  int status = -1;  // exit status, or 128+signal
  std::string out;
  std::string err;
};
// Runs argv (argv[0] searched in PATH) with optional extra environment, capturing output.
RunResult run(const std::vector<std::string>& argv, const std::vector<std::string>& env = {});

// Sets (value non-null) or leaves alone an environment variable while it lives, for the
// daemons and commands forked meanwhile; the old value comes back afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
  bool set_ = false;
};

// Whether path is a mount point of the given fs type (prefix match, e.g. "fuse").
bool is_mounted(const fs::path& path, const std::string& fstype_prefix = "");
// The /proc/self/mountinfo line of the topmost such mount at path (its per-mount flags and
// superblock options), or "".
std::string mountinfo_line(const fs::path& path, const std::string& fstype_prefix = "");

// Unmounts whatever is mounted at path (lazily if busy). Safe to call when nothing is.
void unmount(const fs::path& path);

// A layerfs daemon run in the foreground (-f) as a child of the test; returns once the mount
// is live. Extra options are appended after lowerdir. `wrapper` (e.g. setpriv and its
// arguments) runs the daemon: it must exec it, so that the child stays the daemon.
class LayerfsMount {
 public:
  LayerfsMount(const std::vector<fs::path>& lowers, const fs::path& mountpoint,
               const std::vector<std::string>& extra_args = {},
               const std::vector<std::string>& wrapper = {});
  ~LayerfsMount();
  LayerfsMount(const LayerfsMount&) = delete;
  LayerfsMount& operator=(const LayerfsMount&) = delete;

  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  pid_t pid() const { return pid_; }
  const fs::path& path() const { return mountpoint_; }
  // Unmounts and waits for the daemon; returns its exit status.
  int stop();

 private:
  fs::path mountpoint_;
  pid_t pid_ = -1;
  bool ok_ = false;
  std::string error_;
  int status_ = -1;
  fs::path stderr_path_;
};

// A kernel overlayfs mount of the same lowers: read-only, or writable when extra_opts names an
// upperdir.
class KernelOverlay {
 public:
  KernelOverlay(const std::vector<fs::path>& lowers, const fs::path& mountpoint,
                const std::string& extra_opts = "");
  ~KernelOverlay();
  KernelOverlay(const KernelOverlay&) = delete;
  KernelOverlay& operator=(const KernelOverlay&) = delete;
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }

 private:
  fs::path mountpoint_;
  bool ok_ = false;
  std::string error_;
};

// lowerdir= value for the paths (top first), with colons escaped.
std::string lowerdir_option(const std::vector<fs::path>& lowers);

}  // namespace layerfs::test

namespace layerfs::test {

// Pids of running layerfs daemons whose command line contains `needle` (a unique temp path):
// how a test finds the daemon that a daemonizing layerfs or mount(8) started for it.
std::vector<pid_t> layerfs_daemons(const std::string& needle);

// Whether a pid is gone or a zombie.
bool process_gone(pid_t pid);

// Unmounts `mountpoint` and stops every layerfs daemon whose command line has `needle`, on
// destruction: for daemons the test did not fork itself.
class DaemonGuard {
 public:
  DaemonGuard(fs::path mountpoint, std::string needle)
      : mountpoint_(std::move(mountpoint)), needle_(std::move(needle)) {}
  ~DaemonGuard();
  DaemonGuard(const DaemonGuard&) = delete;
  DaemonGuard& operator=(const DaemonGuard&) = delete;
  // Waits up to `seconds` for those daemons to exit by themselves; true if they did.
  bool wait_exit(int seconds);

 private:
  fs::path mountpoint_;
  std::string needle_;
};

// The unprivileged user the rootless tests run as ("layerfs-test"), created if missing; nullopt
// where it cannot be made.
inline constexpr const char* kUserName = "layerfs-test";
std::optional<uid_t> test_user();

// /dev/fuse readable and writable by every user while it lives (Debian's default is 0666; a
// sandbox may have made it 0600), restored afterwards. Tests that need it hold a lock, so that
// one restoring the mode never pulls it from under another running in parallel (ctest -j).
class DevFuseForEveryone {
 public:
  DevFuseForEveryone();
  ~DevFuseForEveryone();
  DevFuseForEveryone(const DevFuseForEveryone&) = delete;
  DevFuseForEveryone& operator=(const DevFuseForEveryone&) = delete;

 private:
  int lock_fd_ = -1;
  mode_t old_mode_ = 0;
  bool changed_ = false;
};

}  // namespace layerfs::test
