// A layerfs mount run in-process: prepared (every check made, layers and upper opened,
// nothing mounted), mounted, then served until it is unmounted or stopped. The daemon's main
// is one user; a launcher that wants the merged tree as a container's root is another: it
// prepares and mounts (success is readiness: the tree is live), serves on a thread of its
// own, and stops the session when its command is done.
//
// One session per process at a time (the directory fd cache is the process's).
#pragma once

#include <fuse_lowlevel.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "fuse/daemon.h"
#include "fuse/dir_fds.h"
#include "fuse/options.h"
#include "layers/base/result.h"

namespace layerfs {

class Session {
 public:
  // Checks everything, opens the layers and the upper and makes the FUSE session; nothing on
  // disk changes yet but the upper's work dir, which a failure removes again. The error says what
  // failed and why
  // ("upperdir '/u': in use by another layerfs mount"). Warnings go to the log.
  static Result<std::unique_ptr<Session>> prepare(const Options& opts);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Mounts at the mount point. On failure nothing is left behind (the reason is the kernel's
  // or fusermount3's, which libfuse prints, and the options tried).
  Result<void> mount();
  // Makes SIGINT, SIGTERM and SIGHUP end serve() (the daemon's way to stop).
  Result<void> handle_signals();
  // Serves requests until the mount goes away or stop() is called; 0 on a clean end.
  int serve();
  // Ends serve() from any thread: the mount is detached (the mount point is free at once).
  void stop();

  const std::string& mountpoint() const { return mountpoint_; }

 private:
  Session() = default;

  Options opts_;
  std::string mountpoint_;
  int64_t workers_ = 1;
  std::unique_ptr<DirFds> dir_fds_;
  std::unique_ptr<Daemon> daemon_;
  std::vector<std::string> fuse_argv_;
  fuse_session* se_ = nullptr;
  bool signals_ = false;
  std::atomic<bool> mounted_{false};
};

}  // namespace layerfs
