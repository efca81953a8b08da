// lookup, forget, getattr, statfs, access; and the lookup and copy-up machinery the other op
// files share.
#include <fcntl.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>

#include "fuse/daemon.h"
#include "layers/attributes.h"
#include "layers/copy_up.h"
#include "layers/sys/fs.h"
#include "layers/sys/xattr.h"

namespace layerfs {

Result<std::shared_ptr<Inode>> Daemon::resolve(Inode& parent, const char* name, struct stat* st,
                                               const LookupHint& hint) {
  auto copies = parent.copies();
  // Where a listing of the parent says which layer shows the name, the merge starts there: the
  // copies above it do not have the name. Only a listing that is still the directory's current
  // one may say so (every change to the directory drops it), checked again after the lookup.
  const Listing* listing = hint.listing;
  std::shared_ptr<const Listing> index;
  // The index is built by a lookup only in a directory that never changed while mounted (the
  // layers as they came): after a change, each lookup would rebuild it, which makes emptying
  // the directory quadratic. The next readdir builds it again.
  if (listing == nullptr && copies.size() >= kIndexedCopies) {
    index = parent.listing();  // cached only while current
    if (!index && parent.version() == 0) {
      auto built = this->listing(parent);
      if (built.ok() && (*built)->indexed()) index = *built;
    }
    listing = index.get();
  }
  size_t from = 0;
  if (listing != nullptr) {
    const ListEntry* entry = hint.entry != nullptr ? hint.entry : listing->find(name);
    if (entry == nullptr) {
      if (listing->version() == parent.version()) return Errno{ENOENT};
    } else {
      while (from < copies.size() && copies[from].layer != entry->layer) ++from;
      if (from == copies.size()) from = 0;
    }
  }
  auto fds = parent.fds();
  const Redirects rules = redirects();
  auto found = layerfs::lookup(std::span<const DirRef>(copies).subspan(from), name, &fds, rules);
  if (from != 0 && listing->version() != parent.version()) {
    found = layerfs::lookup(copies, name, &fds, rules);
  }
  if (!found.ok()) return found.err();
  if (st != nullptr) *st = found->st;
  InodeKey key{found->st.st_dev, found->st.st_ino};
  if (writable() && found->layer != 0 && !S_ISDIR(found->st.st_mode) && found->st.st_nlink > 1) {
    // One name of a lower hard-link pair: its own inode, keyed by where the name is.
    const InodeKey& pk = parent.key();
    key.link = ((std::hash<std::string_view>()(name) * 0x9E3779B97F4A7C15ull) ^
                (pk.ino * 31 + pk.dev + pk.link)) |
               1;
  }
  if (auto live = table->find(key)) return live;
  CopyFd upper_dir;
  if (found->layer == 0 && writable()) {
    auto dir = parent.copy_fd(0);
    if (!dir.ok()) return dir.err();
    upper_dir = std::move(*dir);
  }
  uint64_t st_ino = 0;
  if (found->layer != 0 || !writable()) {
    st_ino = stack->map_ino(found->layer, found->st.st_ino);
  } else if (S_ISDIR(found->st.st_mode)) {
    // As kernel overlayfs: a directory that merges shows the number of its first lower copy,
    // one that does not (opaque, or made through the mount) its own.
    std::optional<std::pair<uint32_t, uint64_t>> below;
    if (found->dirs.size() > 1) below = std::pair{found->dirs[1].layer, found->dirs[1].ino};
    st_ino = upper_dir_ino(*stack, found->st.st_ino, below);
  } else {
    st_ino = upper_ino(*stack, upper->xattr_prefix(), upper_dir.get(), name, found->st);
  }
  auto fresh = std::make_shared<Inode>(key, found->st.st_mode & S_IFMT, st_ino);
  fresh->init_location(parent.shared_from_this(), name, found->layer, std::move(found->dirs));
  if (found->layer == 0 && !fresh->is_dir() && found->st.st_nlink > 1) {
    if (auto fd = sys::open_path(upper_dir.get(), name); fd.ok()) fresh->pin(std::move(*fd));
  }
  return fresh;
}

std::optional<StatOverride> Daemon::stat_override(const Inode& inode) const {
  if (!view.reads_overrides()) return std::nullopt;
  auto fd = inode.path_fd();
  if (!fd.ok()) return std::nullopt;
  return view.override_of(fd->get());
}

void Daemon::present(const Inode& inode, struct stat& st) const {
  view.show(st, stat_override(inode));
}

void Daemon::fill_entry(const std::shared_ptr<Inode>& inode, const struct stat& st,
                        fuse_entry_param* e) {
  memset(e, 0, sizeof *e);
  e->ino = table->id_of(*inode);
  e->attr = st;
  e->attr.st_ino = inode->st_ino();
  if (inode->merged_dir()) e->attr.st_nlink = 1;
  present(*inode, e->attr);
  e->attr_timeout = cache.attr_timeout;
  e->entry_timeout = cache.entry_timeout;
}

Result<void> Daemon::lookup(Inode& parent, const char* name, fuse_entry_param* e,
                            const LookupHint& hint) {
  struct stat st;
  auto resolved = resolve(parent, name, &st, hint);
  if (!resolved.ok()) return resolved.err();
  fill_entry(table->publish(*resolved), st, e);
  return {};
}

void Daemon::attributes_changed(const Inode& inode) {
  // ENOENT (the kernel no longer knows the inode) is fine: nothing is cached then.
  if (session != nullptr) fuse_lowlevel_notify_inval_inode(session, table->id_of(inode), -1, 0);
}

Result<void> Daemon::copy_up(Inode& node, bool truncate) {
  if (!upper) return Errno{EROFS};
  if (&node == &table->root() || node.layer() == 0) return {};
  std::lock_guard serial(node.copy_up_mu);
  if (node.layer() == 0) return {};  // copied up while this thread waited
  Inode::Where w = node.where();
  if (w.dir_fd < 0) return Errno{w.dir_error};
  auto parent_done = copy_up(*w.parent);  // parents first
  if (!parent_done.ok()) return parent_done;
  auto dst_dir = w.parent->copy_fd(0);
  if (!dst_dir.ok()) return dst_dir.error() == ENOENT ? Errno{EIO} : dst_dir.err();
  const int dst = dst_dir->get();
  auto lower = sys::stat_at(w.dir_fd, w.name.c_str());
  if (!lower.ok()) return lower.err();
  // Kernel overlayfs keeps the lower st_ino of a copied-up directory, and of a file only when
  // it had one link: copying one name of a hard-link pair breaks the link, so the copy gets a
  // number of its own. A symlink can keep it only where its origin can be recorded (trusted.*
  // xattrs; user.* ones cannot go on a symlink).
  const bool keep_ino = copy_up_keeps_ino(*lower, upper->xattr_prefix());
  CopyUpOptions opts{.fsync = fsync_copy_up,
                     .origin_ino = keep_ino ? node.st_ino() : 0,
                     .origin_uuid = stack->layer(node.layer()).uuid,
                     .truncate = truncate && !node.is_dir()};
  if (!view.override_xattr.empty()) {
    // What the object showed below is what its copy shows: the owner may not be chown-able.
    StatOverride shown = stat_override(node).value_or(StatOverride::of(*lower));
    opts.override_name = view.override_xattr;
    opts.override_value = shown.format();
  }
  auto made = layerfs::copy_up(*upper, w.dir_fd, w.name.c_str(), dst, w.name.c_str(), opts);
  if (!made.ok()) return made.err();
  std::optional<DirRef> upper_copy;
  if (node.is_dir()) {
    auto fd = sys::open_at(dst, w.name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW);
    if (!fd.ok()) return fd.err();
    upper_copy = DirRef{0, -1, false, made->st.st_dev, made->st.st_ino};
    Inode::dir_fds->offer(*upper_copy, std::move(*fd));
  }
  node.moved_to_upper(upper_copy);
  if (!keep_ino) node.set_st_ino(stack->map_ino(0, made->st.st_ino));
  table->alias(node, InodeKey{made->st.st_dev, made->st.st_ino});
  w.parent->drop_listing();
  attributes_changed(*w.parent);
  attributes_changed(node);
  return {};
}

Result<void> Daemon::copy_up_tree(Inode& dir) {
  auto up = copy_up(dir);
  if (!up.ok()) return up;
  if (!dir.has_lower_copies()) return {};
  dir.drop_listing();
  auto entries = listing(dir);
  if (!entries.ok()) return entries.err();
  for (const ListEntry& e : **entries) {
    auto child = resolve(dir, e.name.c_str());
    if (!child.ok()) return child.err();
    auto done = (*child)->is_dir() ? copy_up_tree(**child) : copy_up(**child);
    if (!done.ok()) return done;
  }
  // Everything the directory shows is in its upper copy now: the lower copies can go.
  auto up_fd = dir.copy_fd(0);
  if (!up_fd.ok()) return up_fd.err();
  auto opaque = upper->mark_opaque(up_fd->get());
  if (!opaque.ok()) return opaque;
  dir.drop_lower_copies();
  if (auto up_copy = dir.copy_ref(0)) dir.set_st_ino(stack->map_ino(0, up_copy->ino));
  attributes_changed(dir);
  return {};
}

bool Daemon::lower_has(Inode& dir, const char* name) {
  std::vector<DirRef> lowers;
  for (const DirRef& d : dir.copies()) {
    if (d.layer != 0) lowers.push_back(d);
  }
  if (lowers.empty()) return false;
  auto fds = dir.fds();
  auto r = layerfs::lookup(lowers, name, &fds, redirects());
  // When in doubt, a whiteout: writing one that is not needed hides nothing that shows.
  return r.ok() || r.error() != ENOENT;
}

Result<std::shared_ptr<const Listing>> Daemon::listing(Inode& dir) {
  if (auto cached = dir.listing()) return cached;
  // Built without the lock (no syscall under a lock); a concurrent builder's equal result may win.
  // The version is read first: a change while the layers are read makes the listing stale at once.
  const uint32_t version = dir.version();
  auto copies = dir.copies();
  auto fds = dir.fds();
  auto entries = list(copies, &fds);
  if (!entries.ok()) return entries.err();
  CopyFd upper_dir;
  if (writable()) {
    auto up = dir.copy_fd(0);
    if (up.ok()) {
      upper_dir = std::move(*up);
    } else if (up.error() != ENOENT) {
      return up.err();
    }
  }
  const int upper_fd = upper_dir.get();
  const bool merges = copies.size() > 1;
  for (ListEntry& e : *entries) {
    // Listed inode numbers are the ones lstat shows.
    if (e.layer == 0 && upper_fd >= 0) {
      struct stat st {};
      st.st_ino = e.ino;
      st.st_mode = static_cast<mode_t>(DTTOIF(e.type));
      e.ino = upper_ino(*stack, upper->xattr_prefix(), upper_fd, e.name.c_str(), st);
      if (e.type == DT_DIR && e.ino == stack->map_ino(0, st.st_ino) && merges) {
        // No origin record (an upper fuse-overlayfs wrote, or the kernel's where its origin
        // does not decode), yet the directory may merge: then it shows its first lower copy's
        // number, as its lookup does.
        auto found = layerfs::lookup(copies, e.name, &fds, redirects());
        if (found.ok() && found->dirs.size() > 1) {
          e.ino = stack->map_ino(found->dirs[1].layer, found->dirs[1].ino);
        }
      }
    } else {
      e.ino = stack->map_ino(e.layer, e.ino);
    }
  }
  const bool indexed = copies.size() >= kIndexedCopies;
  auto built = std::make_shared<const Listing>(std::move(*entries), indexed, version);
  dir.set_listing(built);
  return built;
}

namespace {

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Daemon& d = Daemon::of(req);
  fuse_entry_param e;
  auto r = d.lookup(d.inode(parent), name, &e);
  if (r.ok()) {
    // An interrupted request's reply is dropped: the kernel never counts this lookup.
    if (fuse_reply_entry(req, &e) != 0) d.table->forget(e.ino, 1);
  } else if (r.error() == ENOENT) {
    // A negative entry: the kernel may remember the absence; a create through the mount
    // replaces it.
    memset(&e, 0, sizeof e);
    e.entry_timeout = d.cache.entry_timeout;
    fuse_reply_entry(req, &e);
  } else {
    fuse_reply_err(req, r.error());
  }
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Daemon::of(req).table->forget(ino, nlookup);
  fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  Daemon& d = Daemon::of(req);
  for (size_t i = 0; i < count; ++i) d.table->forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void op_statfs(fuse_req_t req, fuse_ino_t) {
  // As kernel overlayfs: the filesystem of the upper, else of the topmost lower layer.
  Daemon& d = Daemon::of(req);
  int fd = d.writable() ? d.upper->upper_fd() : d.stack->layer(0).root.get();
  auto sv = sys::stat_vfs(fd);
  if (!sv.ok()) return (void)fuse_reply_err(req, sv.error());
  fuse_reply_statfs(req, &*sv);
}

}  // namespace

void add_entry_ops(fuse_lowlevel_ops& ops) {
  ops.lookup = guarded<op_lookup>;
  ops.forget = guarded_no_reply<op_forget>;
  ops.forget_multi = guarded_no_reply<op_forget_multi>;
  ops.statfs = guarded<op_statfs>;
}

}  // namespace layerfs
