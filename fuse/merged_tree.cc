#include "fuse/merged_tree.h"

#include <fcntl.h>

#include "layers/attributes.h"
#include "layers/copy_up.h"
#include "layers/merge.h"
#include "layers/redirect.h"
#include "layers/sys/fs.h"

namespace layerfs::tree {

Result<std::shared_ptr<Inode>> resolve(Daemon& d, Inode& parent, const char* name, struct stat* st,
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
      auto built = tree::listing(d, parent);
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
  const Redirects rules = d.config.redirects();
  auto found = layerfs::lookup(std::span<const DirRef>(copies).subspan(from), name, &fds, rules);
  if (from != 0 && listing->version() != parent.version()) {
    found = layerfs::lookup(copies, name, &fds, rules);
  }
  if (!found.ok()) return found.err();
  if (st != nullptr) *st = found->st;
  InodeKey key{found->st.st_dev, found->st.st_ino};
  if (identity_per_name(*found, d.writable())) {
    // Its own inode, keyed by where the name is.
    const InodeKey& pk = parent.key();
    key.link = ((std::hash<std::string_view>()(name) * 0x9E3779B97F4A7C15ull) ^
                (pk.ino * 31 + pk.dev + pk.link)) |
               1;
  }
  if (auto live = d.table->find(key)) return live;
  CopyFd upper_dir;
  if (found->layer == 0 && d.writable()) {
    auto dir = parent.copy_fd(0);
    if (!dir.ok()) return dir.err();
    upper_dir = std::move(*dir);
  }
  const uint64_t st_ino =
      shown_ino(*d.config.stack, d.upper_prefix(), upper_dir.get(), name, *found);
  auto fresh = std::make_shared<Inode>(key, found->st.st_mode & S_IFMT, st_ino);
  fresh->init_location(parent.shared_from_this(), name, found->layer, std::move(found->dirs));
  if (found->layer == 0 && !fresh->is_dir() && found->st.st_nlink > 1) {
    if (auto fd = sys::open_path(upper_dir.get(), name); fd.ok()) fresh->pin(std::move(*fd));
  }
  return fresh;
}

Result<void> lookup(Daemon& d, Inode& parent, const char* name, fuse_entry_param* e,
                    const LookupHint& hint) {
  struct stat st;
  auto resolved = resolve(d, parent, name, &st, hint);
  if (!resolved.ok()) return resolved.err();
  d.fill_entry(d.table->publish(*resolved), st, e);
  return {};
}

Result<void> copy_up(Daemon& d, Inode& node, bool truncate) {
  if (!d.upper) return Errno{EROFS};
  if (&node == &d.table->root() || node.layer() == 0) return {};
  std::lock_guard serial(node.copy_up_mu);
  if (node.layer() == 0) return {};  // copied up while this thread waited
  Inode::Where w = node.where();
  if (w.dir_fd < 0) return Errno{w.dir_error};
  auto parent_done = copy_up(d, *w.parent);  // parents first
  if (!parent_done.ok()) return parent_done;
  auto dst_dir = w.parent->copy_fd(0);
  if (!dst_dir.ok()) return dst_dir.error() == ENOENT ? Errno{EIO} : dst_dir.err();
  const BorrowedFd dst = dst_dir->get();
  auto lower = sys::stat_at(w.dir_fd, w.name.c_str());
  if (!lower.ok()) return lower.err();
  // The override the object shows is read only where the copy records one.
  const std::optional<StatOverride> shown =
      d.config.view.override_xattr.empty() ? std::nullopt : d.stat_override(node);
  const CopyUpOptions opts =
      plan_copy_up(*d.upper, d.config.stack->layer(node.layer()), *lower, node.st_ino(),
                   d.config.view, shown, d.config.fsync_copy_up, truncate);
  auto made = layerfs::copy_up(*d.upper, w.dir_fd, w.name.c_str(), dst, w.name.c_str(), opts);
  if (!made.ok()) return made.err();
  std::optional<DirRef> upper_copy;
  if (node.is_dir()) {
    auto fd = sys::open_at(dst, w.name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW);
    if (!fd.ok()) return fd.err();
    upper_copy = DirRef{0, BorrowedFd(), false, made->st.st_dev, made->st.st_ino};
    Inode::dir_fds->offer(*upper_copy, std::move(*fd));
  }
  node.moved_to_upper(upper_copy);
  if (opts.origin_ino == 0) node.set_st_ino(d.config.stack->map_ino(0, made->st.st_ino));
  d.table->alias(node, InodeKey{made->st.st_dev, made->st.st_ino});
  w.parent->drop_listing();
  d.attributes_changed(*w.parent);
  d.attributes_changed(node);
  return {};
}

Result<void> copy_up_tree(Daemon& d, Inode& dir) {
  auto up = copy_up(d, dir);
  if (!up.ok()) return up;
  if (!dir.has_lower_copies()) return {};
  dir.drop_listing();
  auto entries = listing(d, dir);
  if (!entries.ok()) return entries.err();
  for (const ListEntry& e : **entries) {
    auto child = resolve(d, dir, e.name.c_str());
    if (!child.ok()) return child.err();
    auto done = (*child)->is_dir() ? copy_up_tree(d, **child) : copy_up(d, **child);
    if (!done.ok()) return done;
  }
  // Everything the directory shows is in its upper copy now: the lower copies can go.
  auto up_fd = dir.copy_fd(0);
  if (!up_fd.ok()) return up_fd.err();
  auto opaque = d.upper->mark_opaque(up_fd->get());
  if (!opaque.ok()) return opaque;
  dir.drop_lower_copies();
  if (auto up_copy = dir.copy_ref(0)) dir.set_st_ino(d.config.stack->map_ino(0, up_copy->ino));
  d.attributes_changed(dir);
  return {};
}

bool lower_has(Daemon& d, Inode& dir, const char* name) {
  auto fds = dir.fds();
  return lower_shows(dir.copies(), name, &fds, d.config.redirects());
}

Result<std::shared_ptr<const Listing>> listing(Daemon& d, Inode& dir) {
  if (auto cached = dir.listing()) return cached;
  // Built without the lock (no syscall under a lock); a concurrent builder's equal result may win.
  // The version is read first: a change while the layers are read makes the listing stale at once.
  const uint32_t version = dir.version();
  auto copies = dir.copies();
  auto fds = dir.fds();
  auto entries = list(copies, &fds);
  if (!entries.ok()) return entries.err();
  CopyFd upper_dir;
  if (d.writable()) {
    auto up = dir.copy_fd(0);
    if (up.ok()) {
      upper_dir = std::move(*up);
    } else if (up.error() != ENOENT) {
      return up.err();
    }
  }
  // Listed inode numbers are the ones lstat shows.
  const Redirects rules = d.config.redirects();
  for (ListEntry& e : *entries) {
    e.ino = listed_ino(*d.config.stack, d.upper_prefix(), upper_dir.get(), e, copies, &fds, rules);
  }
  const bool indexed = copies.size() >= kIndexedCopies;
  auto built = std::make_shared<const Listing>(std::move(*entries), indexed, version);
  dir.set_listing(built);
  return built;
}

Result<void> redirect_before_rename(Daemon& d, Inode& dir, const Inode& from, const Inode& to) {
  auto up = copy_up(d, dir);
  if (!up.ok()) return up;
  auto fd = dir.copy_fd(0);
  if (!fd.ok()) return fd.err();
  auto existing = d.upper->redirect(fd->get());
  if (!existing.ok()) return existing.err();
  // Where its lower copies are, as kernel overlayfs records it (layers/redirect.h): the
  // directories from its parent up, with their own redirects.
  std::vector<redirect::Ancestor> ancestors;
  if (&from != &to) {
    for (auto node = dir.location().first; node;) {
      auto [parent, name] = node->location();
      if (!parent) break;  // the root
      auto node_fd = node->copy_fd(0);
      if (!node_fd.ok()) return node_fd.err();
      auto theirs = d.upper->redirect(node_fd->get());
      if (!theirs.ok()) return theirs.err();
      const bool absolute = theirs->starts_with('/');
      ancestors.push_back(redirect::Ancestor{std::move(name), std::move(*theirs)});
      if (absolute) break;  // the path is complete there
      node = std::move(parent);
    }
  }
  auto value = redirect::for_move(*existing, &from == &to, dir.location().second, ancestors);
  if (!value.ok()) return value.err();
  // The lower copies are found by name until the rename: from now on by their paths in their
  // layers, which never change.
  for (const DirRef& copy : dir.copies()) {
    if (copy.layer == 0) continue;
    dir.set_found_as(copy.layer, DirFds::path_in_layer(dir, copy.layer));
  }
  if (!*value) return {};
  // As the kernel: a redirect that cannot be written (no xattr space, no xattrs) means the
  // tree is copied instead.
  if (!d.upper->set_redirect(fd->get(), **value).ok()) return Errno{EXDEV};
  return {};
}

}  // namespace layerfs::tree
