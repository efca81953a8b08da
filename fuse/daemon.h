// State shared by every request handler, and the pieces the op files have in common.
// fuse/op_*.cc only translate FUSE requests into calls on layers/ and reply.
#pragma once

#include <fcntl.h>
#include <fuse_lowlevel.h>

#include <array>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "fuse/inode_table.h"
#include "fuse/passthrough.h"
#include "fuse/requests.h"
#include "layers/attributes.h"
#include "layers/idmap.h"
#include "layers/layer_stack.h"
#include "layers/stat_override.h"
#include "layers/upper.h"

namespace layerfs {

// One place for what the kernel may cache and for how long. Lower layers are immutable while
// mounted and the upper changes only through the mount (the kernel overlayfs contract), so
// everything is cached long; the kernel drops what a change through the mount invalidates.
struct CachePolicy {
  double entry_timeout;  // positive and negative lookups
  double attr_timeout;
  bool keep_page_cache;  // keep file pages across opens
  bool cache_readdir;    // let the kernel cache directory listings
};

// Who asks: new objects belong to the caller, as on any filesystem.
struct Caller {
  uid_t uid;
  gid_t gid;
  mode_t umask = 0;  // what to apply to a new object's mode when ACLs are on
};

// What a caller already knows about a name: the parent's listing it came from and its entry
// there (readdirplus), so that the merge need not look in the layers above it.
struct LookupHint {
  const Listing* listing = nullptr;
  const ListEntry* entry = nullptr;
};

// A handle the kernel holds (an open file or directory): freed on release, or with the
// session where the kernel never sent the release (a mount ended with files still open).
struct Handle {
  virtual ~Handle() = default;
};

class OpenHandles {
 public:
  OpenHandles() = default;
  OpenHandles(const OpenHandles&) = delete;
  OpenHandles& operator=(const OpenHandles&) = delete;
  ~OpenHandles() {
    for (Handle* h : live_) delete h;
  }
  template <class H>
  H* track(H* h) {
    std::lock_guard lock(mu_);
    live_.insert(h);
    return h;
  }
  void drop(Handle* h) {
    {
      std::lock_guard lock(mu_);
      live_.erase(h);
    }
    delete h;
  }

 private:
  std::mutex mu_;  // a leaf lock
  std::unordered_set<Handle*> live_;
};

// What a mount is, fixed when it starts: fuse/session builds it once from the options and
// nothing changes it while the mount lives.
struct MountConfig {
  std::shared_ptr<const LayerStack> stack;  // with an upper, layer 0 is the upper
  CachePolicy cache{};
  bool fsync_copy_up = true;
  bool writeback_wanted = true;  // Options::writeback
  // POSIX ACLs asked for (not noacl) where the layer filesystem has them; they are on once the
  // kernel agrees at init (Daemon::acl).
  bool acl_wanted = false;
  // How owners, modes and link counts show (uidmapping=, gidmapping=, squash_to_*,
  // static_nlink, xattr_permissions, containers-storage's override).
  Presentation view;
  // Redirects (redirect_dir=): followed where kernel overlayfs would follow them, written
  // when a directory with lower copies is renamed only with redirect_dir=on (up to
  // redirect::kMax bytes, the kernel's redirect_max; beyond it the tree is copied).
  bool follow_redirects = true;
  bool write_redirects = false;
  std::vector<DirRef> roots;  // every layer's root, top first, with the layers' fds
  // What the root answers for getxattr(kLayersXattr): the layers, for the tools.
  std::string layers_answer;
  Redirects redirects() const { return Redirects{follow_redirects, roots}; }
};

// Everything a request handler reaches: the mount's configuration and its runtime state (the
// upper, the inodes and handles the kernel holds). The overlay operations on inodes are in
// fuse/merged_tree.h, the rules they follow in layers/.
struct Daemon {
  Daemon(MountConfig c, std::unique_ptr<Upper> u, std::shared_ptr<Inode> root)
      : config(std::move(c)),
        upper(std::move(u)),
        table(std::make_unique<InodeTable>(std::move(root))),
        upper_prefix_(upper ? upper->xattr_prefix() : std::string()) {}

  const MountConfig config;
  const std::unique_ptr<Upper> upper;  // null: a read-only mount
  const std::unique_ptr<InodeTable> table;
  OpenHandles handles;
  // ACLs are on: config.acl_wanted and the kernel agreed (set once, at init, before any other
  // request). When on, the kernel enforces them and leaves the umask to the daemon, which
  // applies it or the directory's default ACL to new objects.
  bool acl = false;
  // The kernel caches writes (set at init, as `acl`): size and mtime are the kernel's, and it
  // may read a page before it writes part of it, so files are opened for reading too, without
  // O_APPEND (the kernel gives every write its offset).
  bool writeback = false;
  // How the daemon opens a file the caller opens with `flags` under the writeback cache.
  static int flags_under_writeback(int flags) {
    flags &= ~(O_APPEND | O_DIRECT);
    return (flags & O_ACCMODE) == O_WRONLY ? (flags & ~O_ACCMODE) | O_RDWR : flags;
  }
  // Under the writeback cache: held by a page written back and by a SETATTR of times, so that
  // the mtime the kernel sends is the one the file keeps (striped by inode).
  std::mutex& time_lock(const Inode& inode) {
    return time_locks_[std::hash<const Inode*>{}(&inode) % time_locks_.size()];
  }
  fuse_session* session = nullptr;  // for notifications to the kernel; set before serving
  Passthrough passthrough;          // set up before serving
  Requests requests;                // counted by the session's device io

  static Daemon& of(fuse_req_t req) { return *static_cast<Daemon*>(fuse_req_userdata(req)); }
  Inode& inode(fuse_ino_t id) { return table->from_id(id); }
  bool writable() const { return upper != nullptr; }
  // The upper's xattr prefix; empty for a read-only mount.
  const std::string& upper_prefix() const { return upper_prefix_; }

  // The attributes of `inode` as the mount shows them: an owner-and-mode override applied, ids
  // mapped or squashed, link counts.
  void present(const Inode& inode, struct stat& st) const;
  // The owner-and-mode override `inode` carries, if overrides are read at all.
  std::optional<StatOverride> stat_override(const Inode& inode) const;
  // An owner given through the mount (a caller, a chown) as it is stored on disk.
  uid_t disk_uid(uid_t shown) const { return config.view.disk_uid(shown); }
  gid_t disk_gid(gid_t shown) const { return config.view.disk_gid(shown); }
  // Fills `e` for an inode the kernel is told about (counts a lookup).
  void fill_entry(const std::shared_ptr<Inode>& inode, const struct stat& st, fuse_entry_param* e);
  // Tells the kernel that the attributes it caches for `inode` changed behind its back (a
  // copy-up grows the parent directory in the upper, may give the object a new inode number).
  // Attributes only: this takes no inode lock in the kernel, so it is safe inside a request.
  void attributes_changed(const Inode& inode);
  // Under FUSE_HANDLE_KILLPRIV_V2, for a write or truncate the kernel asked it of
  // (Requests::kill_suidgid), whose caller lacks CAP_FSETID: the file loses its set-user-ID
  // bit, and its set-group-ID bit if it is group-executable or the caller is not in its group,
  // as the kernel's VFS does (the daemon's own write would keep them). `fd`: the file as the
  // request reaches it, or none.
  Result<void> kill_suidgid(fuse_req_t req, Inode& inode, BorrowedFd fd);
  // Gives the file `inode` shows a new node id: `inode` leaves the table, pinned to the object
  // it shows, and the next lookup of its name makes a new inode (see fuse/passthrough.h).
  void supersede(Inode& inode);
  // A directory's upper copy was removed: the fd cache must not give its identity, which the
  // filesystem may reuse, to a new directory.
  void forget_upper_copy(const Inode& dir) {
    if (auto up = dir.copy_ref(0)) Inode::dir_fds->forget(*up);
  }

 private:
  const std::string upper_prefix_;
  std::array<std::mutex, 64> time_locks_;
};

// Request handlers run through guarded<op>: no exception leaves one (libfuse is C; one would
// end the process). A failed allocation is answered ENOMEM, anything else EIO; requests that
// take no reply (forget) get none.
template <auto Op>
struct Guard;
template <class... A, void (*Op)(fuse_req_t, A...)>
struct Guard<Op> {
  static void call(fuse_req_t req, A... a) noexcept {
    try {
      Op(req, a...);
    } catch (const std::bad_alloc&) {
      fuse_reply_err(req, ENOMEM);
    } catch (...) {
      fuse_reply_err(req, EIO);
    }
  }
  static void call_no_reply(fuse_req_t req, A... a) noexcept {
    try {
      Op(req, a...);
    } catch (...) {
      fuse_reply_none(req);
    }
  }
};
template <auto Op>
constexpr auto guarded = &Guard<Op>::call;
template <auto Op>
constexpr auto guarded_no_reply = &Guard<Op>::call_no_reply;

void add_entry_ops(fuse_lowlevel_ops& ops);
void add_dir_ops(fuse_lowlevel_ops& ops);
void add_file_ops(fuse_lowlevel_ops& ops);
void add_xattr_ops(fuse_lowlevel_ops& ops);
void add_write_ops(fuse_lowlevel_ops& ops);

fuse_lowlevel_ops make_ops();

}  // namespace layerfs
