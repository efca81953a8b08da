// FUSE passthrough (Linux 6.9+): the kernel reads, writes and maps an open file's backing file
// itself, with no request to the daemon.
//
// libfuse 3.14 knows nothing of it, so the session's device traffic goes through a custom io
// that asks for it in the reply to FUSE_INIT (and sets the mount's stack depth to 1), and opens
// are answered with raw replies that carry the backing id.
//
// Which opens may use it: only those whose file cannot change under the handle. A handle on a
// lower file of a writable mount moves to the upper copy once another handle copies the file
// up (kernel overlayfs reopens its real file the same way), and a passthrough handle cannot
// move; so those stay on the daemon's path. Files in the upper, files just created and every
// file of a read-only mount are passed through.
//
// The kernel keeps one io mode per inode: while a passthrough open lives every open of the
// inode must be passthrough with the same backing file, and while a cached open lives none may
// be (either mistake fails the open with EIO). So opens are counted per inode, and a backing
// id is shared by an inode's passthrough opens and closed with the last of them.
#pragma once

#include <fuse_lowlevel.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "layers/base/unique_fd.h"

namespace layerfs {

class Inode;

class Passthrough {
 public:
  // How an open was answered, for its release.
  enum class Io : uint8_t {
    kUncounted,    // passthrough was never on
    kCached,       // through the daemon
    kPassthrough,  // on the inode's backing file
  };

  // The session's device io (userdata: the Daemon): it counts the requests (Daemon::requests)
  // and shows FUSE_INIT and its reply to the daemon's Passthrough.
  static const fuse_custom_io kDeviceIo;

  // `wanted`: -o passthrough=1 and the daemon may register backing files.
  void want(bool wanted) { wanted_ = wanted; }
  void set_device(BorrowedFd dev) { dev_ = dev; }
  // The kernel agreed at init, and no registration has been refused.
  bool on() const { return on_.load(std::memory_order_relaxed); }
  // Opens passed through so far.
  uint64_t opens() {
    std::lock_guard lock(mu_);
    return opens_;
  }

  // An open of `inode` through `fd`; `safe`: the file cannot change under the handle. Gives
  // the backing id to answer with (> 0), or 0 for an open through the daemon.
  int32_t open(const Inode& inode, BorrowedFd fd, bool safe, Io* io);
  // The open ended (released, or its reply failed).
  void close(const Inode& inode, Io io);

  // Replies to OPEN and CREATE whose handle is passed through.
  static int reply_open(fuse_req_t req, uint64_t fh, int32_t backing_id);
  static int reply_create(fuse_req_t req, const fuse_entry_param& e, uint64_t fh,
                          int32_t backing_id);

  // The custom io's view of the device: the FUSE_INIT request, and each reply before it goes.
  void saw_init(const void* buf, size_t n);
  void before_reply(struct iovec* iov, int count);

 private:
  struct Use {
    int32_t backing_id = 0;
    uint32_t passthrough = 0;
    uint32_t cached = 0;
  };

  bool wanted_ = false;
  BorrowedFd dev_;
  std::atomic<bool> on_{false};
  // FUSE_INIT: its unique id while its reply is due, and whether the kernel offered passthrough.
  std::atomic<uint64_t> init_unique_{0};
  std::atomic<bool> offered_{false};
  uint64_t opens_ = 0;  // guarded by mu_
  std::mutex mu_;       // a leaf lock
  std::unordered_map<const Inode*, Use> uses_;
};

}  // namespace layerfs
