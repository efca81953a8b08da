// State shared by every request handler, and the pieces the op files have in common.
// fuse/op_*.cc only translate FUSE requests into calls on layers/ and reply.
#pragma once

#include <fuse_lowlevel.h>

#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "fuse/inode_table.h"
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

struct Daemon {
  std::shared_ptr<const LayerStack> stack;  // with an upper, layer 0 is the upper
  std::unique_ptr<Upper> upper;             // null: a read-only mount
  std::unique_ptr<InodeTable> table;
  OpenHandles handles;
  CachePolicy cache;
  bool fsync_copy_up = true;
  // POSIX ACLs: asked for (not noacl, and the layer filesystem has them), and then on once the
  // kernel agrees at init. When on, the kernel enforces ACLs and leaves the umask to the daemon,
  // which applies it or the directory's default ACL to new objects.
  bool acl_wanted = false;
  bool acl = false;
  // How owners, modes and link counts show (uidmapping=, gidmapping=, squash_to_*,
  // static_nlink, xattr_permissions, containers-storage's override).
  Presentation view;
  // Redirects (redirect_dir=): followed where kernel overlayfs would follow them, written
  // when a directory with lower copies is renamed only with redirect_dir=on (up to
  // redirect::kMax bytes, the kernel's redirect_max; beyond it the tree is copied).
  bool follow_redirects = true;
  bool write_redirects = false;
  std::vector<DirRef> roots;  // every layer's root, top first, with the layers' fds
  Redirects redirects() const { return Redirects{follow_redirects, roots}; }
  // The attributes of `inode` as the mount shows them: an owner-and-mode override applied, ids
  // mapped or squashed, link counts.
  void present(const Inode& inode, struct stat& st) const;
  // The owner-and-mode override `inode` carries, if overrides are read at all.
  std::optional<StatOverride> stat_override(const Inode& inode) const;
  // An owner given through the mount (a caller, a chown) as it is stored on disk.
  uid_t disk_uid(uid_t shown) const { return view.disk_uid(shown); }
  gid_t disk_gid(gid_t shown) const { return view.disk_gid(shown); }
  fuse_session* session = nullptr;  // for notifications to the kernel

  // Tells the kernel that the attributes it caches for `inode` changed behind its back (a
  // copy-up grows the parent directory in the upper, may give the object a new inode number).
  // Attributes only: this takes no inode lock in the kernel, so it is safe inside a request.
  void attributes_changed(const Inode& inode);

  static Daemon& of(fuse_req_t req) { return *static_cast<Daemon*>(fuse_req_userdata(req)); }
  Inode& inode(fuse_ino_t id) { return table->from_id(id); }
  bool writable() const { return upper != nullptr; }

  // Directories merged from at least this many layer copies index their listing by name.
  static constexpr size_t kIndexedCopies = 8;
  // Resolves `name` in `parent` and publishes the inode; fills `e` for the reply.
  Result<void> lookup(Inode& parent, const char* name, fuse_entry_param* e,
                      const LookupHint& hint = {});
  // Resolves without publishing: the inode the kernel holds for the name, or a fresh one.
  // `st`, if given, receives the lstat the merge already made of the object.
  Result<std::shared_ptr<Inode>> resolve(Inode& parent, const char* name, struct stat* st = nullptr,
                                         const LookupHint& hint = {});
  // Fills `e` for an inode the kernel is told about (counts a lookup).
  void fill_entry(const std::shared_ptr<Inode>& inode, const struct stat& st, fuse_entry_param* e);

  // Makes sure `inode` lives in the upper, copying it (and its parents first) if not.
  // With `truncate` (an O_TRUNC open), the data is not copied: it is about to go.
  Result<void> copy_up(Inode& inode, bool truncate = false);
  // Copies a directory and everything it shows into the upper and makes the copy opaque, so
  // the directory no longer depends on its lower copies (before it is renamed). Each directory
  // copied then shows its upper inode number, as kernel overlayfs shows an opaque directory.
  Result<void> copy_up_tree(Inode& dir);
  // Before `dir`, which has lower copies, is renamed from `from` to `to`: copies the directory
  // alone up and records in its upper copy where its lower copies are (kernel overlayfs's
  // ovl_set_redirect), and has the inode keep their fds. EXDEV where the redirect would be
  // too long: the caller copies the tree instead.
  Result<void> redirect_before_rename(Inode& dir, const Inode& from, const Inode& to);
  // Whether a lower copy of `dir` still shows `name`: removing it then needs a whiteout.
  bool lower_has(Inode& dir, const char* name);
  // A directory's upper copy was removed: the fd cache must not give its identity, which the
  // filesystem may reuse, to a new directory.
  void forget_upper_copy(const Inode& dir) {
    if (auto up = dir.copy_ref(0)) Inode::dir_fds->forget(*up);
  }
  // The merged listing of a directory, built once and shared.
  Result<std::shared_ptr<const Listing>> listing(Inode& dir);
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
