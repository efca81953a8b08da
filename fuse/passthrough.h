// FUSE passthrough (Linux 6.9+): the kernel reads, writes and maps an open file's backing file
// itself, with no request to the daemon.
//
// libfuse 3.14 knows nothing of it, so the session's device traffic goes through a custom io
// that asks for it in the reply to FUSE_INIT (and sets the mount's stack depth to 1), and opens
// are answered with raw replies that carry the backing id.
//
// The kernel keeps one io mode per inode: while a passthrough open lives every open of the
// inode must be passthrough with the same backing file, and while a cached open lives none may
// be (either mistake fails the open with EIO). So opens are counted per inode, and a backing
// id is shared by an inode's passthrough opens and closed with the last of them.
//
// Which opens use it. Files in the upper, files just created and every file of a read-only
// mount cannot change under a handle: always passed through. A lower file opened read-only on
// a writable mount is passed through too (passthrough=1, the default), on the lower file: the
// kernel then reads, and maps, the lower file itself, which is where a container's reads go.
// Such a handle cannot move to the upper copy once another handle copies the file up, so:
// - An open that would see the inode's data differ from its lower backing (an open for write,
//   after its copy-up) gets the inode superseded: the daemon's inode leaves the table (pinned
//   to its upper copy), the open fails with ESTALE, and the kernel, which retries a path walk
//   once on ESTALE with revalidation, looks the name up again and gets a new node id for the
//   upper copy. Every later open of the old node id fails the same way (a name the kernel had
//   cached leads there), so no new open ever reads the lower data of a file that changed. A
//   truncate by path supersedes the inode the same way, before its change. Opens reaching the
//   old node id by no name (a reopen through /proc/PID/fd of an old handle) get ESTALE.
// - The handles opened before keep reading the data they opened, as kernel overlayfs does for a
//   read-only handle's MAP_SHARED maps (and did for read(2) before Linux 4.19). passthrough=safe
//   keeps those opens on the daemon's path, where the handle moves to the upper copy as kernel
//   overlayfs's read(2) does today.
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

  // What the file of an open is to the handle.
  enum class File : uint8_t {
    kFixed,  // cannot change under the handle: an upper or new file, or a read-only mount
    kLower,  // a lower file opened read-only on a writable mount
  };
  // open(): the inode must be superseded, and the open fail with ESTALE.
  static constexpr int32_t kStale = -1;

  // `wanted`: the daemon may register backing files; `lower`: for kLower files too.
  void want(bool wanted, bool lower) {
    wanted_ = wanted;
    lower_ = lower;
  }
  void set_device(BorrowedFd dev) { dev_ = dev; }
  // At init: the kernel offered passthrough and the daemon may use it.
  bool will_pass_through() const { return wanted_ && offered_; }
  // The kernel agreed at init, and no registration has been refused.
  bool on() const { return on_.load(std::memory_order_relaxed); }
  // Opens passed through so far.
  uint64_t opens() {
    std::lock_guard lock(mu_);
    return opens_;
  }

  // An open of `inode` through `fd`; `writes`: for write or truncate. Gives the backing id to
  // answer with (> 0), 0 for an open through the daemon, or kStale.
  int32_t open(const Inode& inode, BorrowedFd fd, File file, bool writes, Io* io);
  // The data of `inode` changes without the open that would notice it (a truncate by path, an
  // open for write before its copy-up): true when handles on its lower file live, and the
  // caller must supersede it.
  bool changed(const Inode& inode);
  // The open ended (released, or its reply failed).
  void close(const Inode& inode, Io io);

  // Replies to OPEN and CREATE whose handle is passed through.
  static int reply_open(fuse_req_t req, uint64_t fh, int32_t backing_id);
  static int reply_create(fuse_req_t req, const fuse_entry_param& e, uint64_t fh,
                          int32_t backing_id);

  // The custom io's view of the device: the FUSE_INIT request, and each reply before it goes.
  // The reply to FUSE_INIT asks for what libfuse 3.14 does not know: passthrough where the
  // daemon may use it, and FUSE_HANDLE_KILLPRIV_V2.
  void saw_init(const void* buf, size_t n);
  void before_reply(struct iovec* iov, int count);

 private:
  struct Use {
    int32_t backing_id = 0;
    uint32_t passthrough = 0;
    uint32_t cached = 0;
    bool lower = false;       // the backing file is the lower file
    bool superseded = false;  // a newer node id shows the file: opens fail with ESTALE
  };

  bool wanted_ = false;
  bool lower_ = false;
  BorrowedFd dev_;
  std::atomic<bool> on_{false};
  // FUSE_INIT: its unique id while its reply is due, and whether the kernel offered passthrough.
  std::atomic<uint64_t> init_unique_{0};
  std::atomic<bool> offered_{false};
  std::atomic<bool> kill_offered_{false};  // FUSE_HANDLE_KILLPRIV_V2
  uint64_t opens_ = 0;                     // guarded by mu_
  // Taken before an inode's lock (open reads the inode's layer under it), after no other; the
  // backing ids are registered and closed under it, so that an inode never has two.
  std::mutex mu_;
  std::unordered_map<const Inode*, Use> uses_;
};

}  // namespace layerfs
