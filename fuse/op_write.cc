// The operations that change the tree: create, mknod, mkdir, symlink, link, unlink, rmdir,
// rename, setattr. Without an upper layer the mount is read-only: the kernel mount carries
// MS_RDONLY, and anything that still arrives is refused with EROFS.
//
// Design notes
// - A new object is built in the work dir with its owner and mode set, then renamed into the
//   upper, replacing a whiteout there if there is one; a new directory that replaces a
//   whiteout is made opaque, so nothing of the deleted lower directory shows through.
// - Removing a name writes a whiteout only where a lower layer still shows that name
//   (tree::lower_has, on layers::lower_shows); removing a lower object never copies its data.
// - rename of a directory that has copies in lower layers first detaches it from its name:
//   with redirect_dir=on it is copied up alone and given a redirect to where its lower copies
//   are (tree::redirect_before_rename, as kernel overlayfs's ovl_set_redirect); otherwise,
//   or where the redirect would be too long, the tree it shows is copied into the upper and
//   the copy made opaque (tree::copy_up_tree). Then every rename happens within the upper,
//   leaving a whiteout at the old name where a lower layer still shows it. A copied tree costs
//   data copying (reflinks where the filesystem has them) but needs no redirect support from
//   whoever mounts the upper later. Either way each step only copies up, the redirect or
//   opaque mark is set before the rename (a redirect set before it names the directory's own
//   lower copies), and the rename with its whiteout is one RENAME_WHITEOUT; only where that is
//   refused (no CAP_MKNOD) are the rename and the whiteout two steps, between which a crash
//   would show the old name's lower directory again.
// - The kernel's VFS holds the parent directories' locks for all of these, so no two of them
//   race on the same names.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "fuse/daemon.h"
#include "fuse/file_handle.h"
#include "fuse/merged_tree.h"
#include "layers/acl.h"
#include "layers/redirect.h"
#include "layers/stat_override.h"
#include "layers/sys/fs.h"
#include "layers/sys/xattr.h"
#include "layers/upper.h"
#include "layers/whiteout.h"

namespace layerfs {
namespace {

using Kind = NewEntry::Kind;

struct NewObject {
  mode_t mode = 0;
  dev_t rdev = 0;
  const char* target = nullptr;  // symlinks
  int open_flags = 0;            // files: how to open the returned fd
};

struct Created {
  std::shared_ptr<Inode> inode;
  struct stat st;
  UniqueFd fd;  // files only
};

Caller caller_of(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  const Daemon& d = Daemon::of(req);
  return Caller{d.disk_uid(ctx->uid), d.disk_gid(ctx->gid), ctx->umask};
}

// Builds the object in the work dir, owned by the caller, and moves it into the upper.
Result<Created> create_object(Daemon& d, Inode& parent, const char* name, Kind kind,
                              const NewObject& what, const Caller& who) {
  if (!d.writable()) return Errno{EROFS};
  // A name the merge would read as a marker could never be shown.
  if (Whiteout::classify_name(name) != Whiteout::Name::kPlain) return Errno{EINVAL};
  auto up = tree::copy_up(d, parent);
  if (!up.ok()) return up.err();
  ListingChange changing(parent);
  auto dir_held = parent.copy_fd(0);
  if (!dir_held.ok()) return dir_held.err();
  const BorrowedFd dir = dir_held->get();
  auto pst = sys::stat_fd(dir);
  if (!pst.ok()) return pst.err();
  auto perms = kind == Kind::kSymlink
                   ? acl::Inherited{.mode = 0777}
                   : acl::for_new_object(dir, what.mode, kind == Kind::kDir, who.umask, d.acl);
  if (!perms.ok()) return perms.err();
  // With xattr_permissions the parent's owner and mode are the ones its override shows.
  struct stat shown_parent = *pst;
  if (!d.config.view.override_xattr.empty()) {
    if (auto o = d.stat_override(parent)) o->apply(shown_parent);
  }
  NewEntry e =
      NewEntry::plan(kind, shown_parent, who.uid, who.gid, perms->mode, std::move(perms->access),
                     std::move(perms->default_acl), d.config.view.override_xattr);
  e.type = what.mode & S_IFMT;
  e.rdev = what.rdev;
  e.target = what.target;
  e.open_flags = what.open_flags;
  auto made = d.upper->create(dir, name, e);
  if (!made.ok()) return made.err();
  const struct stat* st = &made->st;
  UniqueFd fd = std::move(made->fd);
  std::vector<DirRef> dirs;
  if (kind == Kind::kDir) {
    auto dfd = sys::open_at(dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW);
    if (!dfd.ok()) return dfd.err();
    dirs.push_back(DirRef{0, BorrowedFd(), false, st->st_dev, st->st_ino});
    Inode::dir_fds->offer(dirs.back(), std::move(*dfd));
  }
  auto inode = std::make_shared<Inode>(InodeKey{st->st_dev, st->st_ino}, st->st_mode & S_IFMT,
                                       d.config.stack->map_ino(0, st->st_ino));
  inode->init_location(parent.shared_from_this(), name, 0, std::move(dirs));
  return Created{inode, *st, std::move(fd)};
}

void reply_created(fuse_req_t req, Daemon& d, Result<Created> r) {
  if (!r.ok()) return (void)fuse_reply_err(req, r.error());
  auto live = d.table->publish(r->inode);
  fuse_entry_param e;
  d.fill_entry(live, r->st, &e);
  if (fuse_reply_entry(req, &e) != 0) d.table->forget(e.ino, 1);
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  Daemon& d = Daemon::of(req);
  // A char device 0/0 is a whiteout: it would delete the name it was made under (kernel
  // overlayfs refuses it the same way).
  if (S_ISCHR(mode) && rdev == 0) return (void)fuse_reply_err(req, EPERM);
  Kind kind = S_ISREG(mode) ? Kind::kFile : Kind::kNode;
  auto r = create_object(d, d.inode(parent), name, kind,
                         {.mode = mode, .rdev = rdev, .open_flags = O_RDONLY}, caller_of(req));
  reply_created(req, d, std::move(r));
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  Daemon& d = Daemon::of(req);
  auto r =
      create_object(d, d.inode(parent), name, Kind::kDir, {.mode = mode | S_IFDIR}, caller_of(req));
  reply_created(req, d, std::move(r));
}

void op_symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  Daemon& d = Daemon::of(req);
  auto r = create_object(d, d.inode(parent), name, Kind::kSymlink,
                         {.mode = S_IFLNK | 0777, .target = target}, caller_of(req));
  reply_created(req, d, std::move(r));
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
               fuse_file_info* fi) {
  Daemon& d = Daemon::of(req);
  // Under the writeback cache the kernel reads as well as writes the new file, at offsets it
  // gives (Daemon::writeback).
  const int flags = d.writeback ? Daemon::flags_under_writeback(fi->flags) : fi->flags;
  auto r = create_object(d, d.inode(parent), name, Kind::kFile, {.mode = mode, .open_flags = flags},
                         caller_of(req));
  if (!r.ok()) return (void)fuse_reply_err(req, r.error());
  auto live = d.table->publish(r->inode);
  fuse_entry_param e;
  d.fill_entry(live, r->st, &e);
  auto* h =
      d.handles.track(new FileHandle(live, std::move(r->fd), 0, false, (flags & O_DIRECT) != 0));
  fi->fh = reinterpret_cast<uint64_t>(h);
  // A new file is in the upper for good: passed through.
  const int32_t backing =
      d.passthrough.open(*live, h->fd.get(), Passthrough::File::kFixed, true, &h->io);
  fi->keep_cache = d.config.cache.keep_page_cache && backing == 0;
  const int sent = backing > 0 ? Passthrough::reply_create(req, e, fi->fh, backing)
                               : fuse_reply_create(req, &e, fi);
  if (sent != 0) {
    release_handle(d, h);
    d.table->forget(e.ino, 1);
  }
}

// While it lives, and once more when it goes, the fd cache forgets a directory's upper copy:
// its identity may come back in a new directory once it is removed, whichever way out the
// removal takes.
class ForgetUpperCopy {
 public:
  ForgetUpperCopy(Daemon& d, const Inode& dir) : d_(d), dir_(dir) { d_.forget_upper_copy(dir_); }
  ~ForgetUpperCopy() { d_.forget_upper_copy(dir_); }
  ForgetUpperCopy(const ForgetUpperCopy&) = delete;
  ForgetUpperCopy& operator=(const ForgetUpperCopy&) = delete;

 private:
  Daemon& d_;
  const Inode& dir_;
};

// A name of a lower object went: the kernel, which drops the link count it caches, keeps it
// under the writeback cache, where it asks for no attributes until they expire; the lower
// object's own count still shows (as on kernel overlayfs), so the cached ones are dropped.
void lower_links_kept(Daemon& d, const Inode& victim) {
  if (d.writeback && victim.layer() != 0) d.attributes_changed(victim);
}

// Removes `name` (described by `victim`) from the upper copy of `parent`, leaving a whiteout
// where a lower layer still shows the name.
Result<void> remove_name(Daemon& d, Inode& parent, const char* name, Inode& victim) {
  const bool lower_shows = tree::lower_has(d, parent, name);
  LAYERFS_TRY(tree::copy_up(d, parent));
  auto dir = parent.copy_fd(0);
  if (!dir.ok()) return dir.err();
  return d.upper->remove(dir->get(), name, victim.layer() == 0, victim.is_dir(), lower_shows);
}

void op_unlink(fuse_req_t req, fuse_ino_t parent_id, const char* name) {
  Daemon& d = Daemon::of(req);
  if (!d.writable()) return (void)fuse_reply_err(req, EROFS);
  Inode& parent = d.inode(parent_id);
  struct stat st;
  auto victim = tree::resolve(d, parent, name, &st);
  if (!victim.ok()) return (void)fuse_reply_err(req, victim.error());
  // Open files outlive their name (fstat, and a GETATTR carries no handle): the object stays
  // reachable by fd until the kernel forgets the inode. Opened before the name goes, pinned
  // only once it has: a pin on an object that keeps its name would outlive a later copy-up.
  auto held = (*victim)->path_fd();
  if (!held.ok()) return (void)fuse_reply_err(req, held.error());
  {
    ListingChange changing(parent);
    auto r = remove_name(d, parent, name, **victim);
    if (!r.ok()) return (void)fuse_reply_err(req, r.error());
    (*victim)->pin(std::move(*held));
    // Its last name gone, the object must not be found again by a reused inode number. (A name
    // of a lower hard-link pair stays; so does an upper file with links left.)
    if (st.st_nlink <= 1) d.table->unhash(**victim);
  }
  lower_links_kept(d, **victim);
  fuse_reply_err(req, 0);
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent_id, const char* name) {
  Daemon& d = Daemon::of(req);
  if (!d.writable()) return (void)fuse_reply_err(req, EROFS);
  Inode& parent = d.inode(parent_id);
  auto victim = tree::resolve(d, parent, name);
  if (!victim.ok()) return (void)fuse_reply_err(req, victim.error());
  Inode& dir = **victim;
  if (!dir.is_dir()) return (void)fuse_reply_err(req, ENOTDIR);
  dir.drop_listing();
  auto entries = tree::listing(d, dir);
  if (!entries.ok()) return (void)fuse_reply_err(req, entries.error());
  if (!(*entries)->empty()) return (void)fuse_reply_err(req, ENOTEMPTY);
  {
    ListingChange changing(parent);
    // Its identity may come back in a new directory: the cache forgets it however this ends.
    ForgetUpperCopy forget(d, dir);
    // What is left in the upper copy are markers only; they go with it.
    if (auto up = dir.copy_fd(0); up.ok()) {
      auto cleared = remove_contents(up->get());
      if (!cleared.ok()) return (void)fuse_reply_err(req, cleared.error());
    } else if (up.error() != ENOENT) {
      return (void)fuse_reply_err(req, up.error());
    }
    // A working directory outlives its name: the kernel may still stat it.
    auto held = dir.path_fd();
    if (!held.ok()) return (void)fuse_reply_err(req, held.error());
    auto r = remove_name(d, parent, name, dir);
    if (!r.ok()) return (void)fuse_reply_err(req, r.error());
    dir.pin(std::move(*held));
    d.table->unhash(dir);
  }
  fuse_reply_err(req, 0);
}

// A directory moved into `new_parent`: opaque there where it would let lower copies through
// (Upper::opaque_after_move).
Result<void> opaque_if_merging(Daemon& d, Inode& moved, Inode& new_parent) {
  if (!moved.is_dir()) return {};
  auto fd = moved.copy_fd(0);
  if (!fd.ok()) return fd.err();
  return d.upper->opaque_after_move(fd->get(), moved.has_lower_copies(),
                                    new_parent.has_lower_copies());
}

Result<void> do_rename(Daemon& d, Inode& parent, const char* name, Inode& new_parent,
                       const char* new_name, unsigned flags) {
  if (!d.writable()) return Errno{EROFS};
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return Errno{EINVAL};
  if (Whiteout::classify_name(new_name) != Whiteout::Name::kPlain) return Errno{EINVAL};
  auto src_r = tree::resolve(d, parent, name);
  if (!src_r.ok()) return src_r.err();
  std::shared_ptr<Inode> src = *src_r;
  auto dst_r = tree::resolve(d, new_parent, new_name);
  if (!dst_r.ok() && dst_r.error() != ENOENT) return dst_r.err();
  std::shared_ptr<Inode> dst = dst_r.ok() ? *dst_r : nullptr;
  if (dst && (flags & RENAME_NOREPLACE)) return Errno{EEXIST};
  if ((flags & RENAME_EXCHANGE) && !dst) return Errno{ENOENT};
  if (dst == src) return {};  // two names of one object: nothing to do (rename(2))
  // A directory with lower copies is redirected (redirect_dir=on) or has its tree copied up:
  // either way the lower copies no longer depend on its name.
  auto detach = [&](Inode& dir, const Inode& from, const Inode& to) -> Result<void> {
    if (!dir.is_dir() || !dir.has_lower_copies()) return tree::copy_up(d, dir);
    if (d.config.write_redirects) {
      auto r = tree::redirect_before_rename(d, dir, from, to);
      if (r.ok() || r.error() != EXDEV) return r;
    }
    return tree::copy_up_tree(d, dir);
  };
  if (src->is_dir()) {
    auto done = detach(*src, parent, new_parent);
    if (!done.ok()) return done;
  }
  if ((flags & RENAME_EXCHANGE) && dst->is_dir()) {
    auto done = detach(*dst, new_parent, parent);
    if (!done.ok()) return done;
  }

  for (Inode* i : {src.get(), &new_parent}) {
    auto up = tree::copy_up(d, *i);
    if (!up.ok()) return up;
  }
  ListingChange changing_from(parent);
  ListingChange changing_to(new_parent);
  auto from_held = parent.copy_fd(0);
  if (!from_held.ok()) return from_held.err();
  auto to_held = new_parent.copy_fd(0);
  if (!to_held.ok()) return to_held.err();
  const BorrowedFd from = from_held->get();
  const BorrowedFd to = to_held->get();
  Upper& upper = *d.upper;

  if (flags & RENAME_EXCHANGE) {
    auto up = tree::copy_up(d, *dst);
    if (!up.ok()) return up;
    for (auto [moved, into] : {std::pair{src.get(), &new_parent}, std::pair{dst.get(), &parent}}) {
      auto o = opaque_if_merging(d, *moved, *into);
      if (!o.ok()) return o;
    }
    auto swapped = sys::rename_at(from, name, to, new_name, RENAME_EXCHANGE);
    if (!swapped.ok()) return swapped;
    dst->renamed(parent.shared_from_this(), name);
  } else {
    if (dst && dst->is_dir()) {
      dst->drop_listing();
      auto entries = tree::listing(d, *dst);
      if (!entries.ok()) return entries.err();
      if (!(*entries)->empty()) return Errno{ENOTEMPTY};
      if (auto up = dst->copy_fd(0); up.ok()) {
        auto cleared = remove_contents(up->get());
        if (!cleared.ok()) return cleared;
      } else if (up.error() != ENOENT) {
        return up.err();
      }
    }
    auto o = opaque_if_merging(d, *src, new_parent);
    if (!o.ok()) return o;
    // Open files outlive the name they lose here: the replaced object is held by fd before the
    // name leads to the new one (fstat of it must answer for it, not for what replaced it),
    // and pinned once the rename is done.
    std::optional<ForgetUpperCopy> forget;
    UniqueFd held;
    if (dst) {
      auto fd = dst->path_fd();
      if (!fd.ok()) return fd.err();
      held = std::move(*fd);
      if (dst->is_dir()) forget.emplace(d, *dst);
    }
    auto moved =
        upper.move(from, name, to, new_name, src->is_dir(), tree::lower_has(d, parent, name));
    if (!moved.ok()) return moved;
    if (dst) {
      dst->pin(std::move(held));
      auto dst_st = dst->stat();
      if (dst->is_dir() || !dst_st.ok() || dst_st->st_nlink <= 1) d.table->unhash(*dst);
      lower_links_kept(d, *dst);
    }
  }
  src->renamed(new_parent.shared_from_this(), new_name);
  return {};
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent,
               const char* new_name, unsigned flags) {
  Daemon& d = Daemon::of(req);
  auto r = do_rename(d, d.inode(parent), name, d.inode(new_parent), new_name, flags);
  fuse_reply_err(req, r.ok() ? 0 : r.error());
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent_id, const char* new_name) {
  Daemon& d = Daemon::of(req);
  if (!d.writable()) return (void)fuse_reply_err(req, EROFS);
  if (Whiteout::classify_name(new_name) != Whiteout::Name::kPlain) {
    return (void)fuse_reply_err(req, EINVAL);
  }
  Inode& src = d.inode(ino);
  // A name the kernel had cached for a superseded inode: linked again, the old node id would
  // be published again; the kernel walks again and finds the newer one.
  if (src.superseded()) return (void)fuse_reply_err(req, ESTALE);
  Inode& new_parent = d.inode(new_parent_id);
  for (Inode* i : {&src, &new_parent}) {
    auto up = tree::copy_up(d, *i);
    if (!up.ok()) return (void)fuse_reply_err(req, up.error());
  }
  // The object, by its pinned fd if it has one (the name it was found by may be gone).
  Inode::Where w = src.where();
  const BorrowedFd pinned = src.pinned_fd();
  auto link_to = [&](BorrowedFd dir, const char* name) {
    return pinned >= 0 ? sys::link_fd(pinned, dir, name)
                       : sys::link_at(w.dir_fd, w.name.c_str(), dir, name);
  };
  if (pinned < 0 && w.dir_fd < 0) return (void)fuse_reply_err(req, w.dir_error);
  auto to_held = new_parent.copy_fd(0);
  if (!to_held.ok()) return (void)fuse_reply_err(req, to_held.error());
  const BorrowedFd to = to_held->get();
  std::optional<ListingChange> changing(new_parent);
  if (auto l = d.upper->link(to, new_name, link_to); !l.ok()) {
    return (void)fuse_reply_err(req, l.error());
  }
  // With two names, the object is held by fd: the name it was found by may go first.
  if (auto fd = sys::open_path(to, new_name); fd.ok()) src.pin(std::move(*fd));
  changing.reset();
  auto live = d.table->publish(src.shared_from_this());
  auto st = live->stat();
  if (!st.ok()) {
    d.table->forget(d.table->id_of(*live), 1);
    return (void)fuse_reply_err(req, st.error());
  }
  fuse_entry_param e;
  d.fill_entry(live, *st, &e);
  if (fuse_reply_entry(req, &e) != 0) d.table->forget(e.ino, 1);
}

// The fields a SETATTR may set.
constexpr int kSetattrFields = FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |
                               FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME;

// The set-id bits a write or truncate drops whatever the caller (as chown(f, -1, -1) does, for
// root too): set-user-ID, and set-group-ID where the file is group-executable.
mode_t setid_to_kill(mode_t mode) {
  mode_t kill = mode & S_ISUID;
  if ((mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP)) kill |= S_ISGID;
  return kill;
}

// Whether the caller of `req` is in group `gid`: its fsgid or one of its supplementary groups.
bool caller_in_group(fuse_req_t req, gid_t gid) {
  if (fuse_req_ctx(req)->gid == gid) return true;
  // fuse_req_getgroups gives the caller's whole count, which may be more than fit: then again
  // with room for them all.
  std::vector<gid_t> groups(64);
  int n = fuse_req_getgroups(req, static_cast<int>(groups.size()), groups.data());
  if (n > static_cast<int>(groups.size())) {
    groups.resize(static_cast<size_t>(n));
    n = fuse_req_getgroups(req, static_cast<int>(groups.size()), groups.data());
  }
  const auto end = groups.begin() + std::clamp<int>(n, 0, static_cast<int>(groups.size()));
  return std::find(groups.begin(), end, gid) != end;
}

// xattr_permissions: chmod and chown change the override, never the file's own owner.
Result<void> set_override(const Daemon& d, Inode& inode, BorrowedFd fd, const struct stat& attr,
                          int to_set) {
  auto st = sys::stat_fd(fd);
  if (!st.ok()) return st.err();
  auto given = [&](int field, uint32_t v) {
    return (to_set & field) ? std::optional<uint32_t>(v) : std::nullopt;
  };
  const StatOverride o =
      d.stat_override(inode)
          .value_or(StatOverride::of(*st))
          .changed(given(FUSE_SET_ATTR_MODE, attr.st_mode),
                   given(FUSE_SET_ATTR_UID, d.disk_uid(attr.st_uid)),
                   given(FUSE_SET_ATTR_GID, d.disk_gid(attr.st_gid)), st->st_mode);
  return sys::set_xattr(fd, d.config.view.override_xattr.c_str(), o.format());
}

Result<void> apply_setattr(const Daemon& d, Inode& inode, const struct stat& attr, int to_set,
                           fuse_file_info* fi) {
  auto fd = inode.path_fd();
  if (!fd.ok()) return fd.err();
  if ((to_set & kSetattrFields) == 0) {
    // chown(f, -1, -1) and the like change nothing but ctime, and the kernel sends no field
    // for it unless it caches writes: a chown to -1, -1 below updates ctime the same way. It
    // also drops the set-id bits of a file (Linux does, for root too), which is what this
    // request asks under FUSE_HANDLE_KILLPRIV_V2 when a write, truncate or fallocate by a
    // caller without CAP_FSETID must drop them: an override drops them the same way.
    if (!d.config.view.override_xattr.empty() && S_ISREG(inode.type())) {
      if (auto o = d.stat_override(inode); o && setid_to_kill(o->mode) != 0) {
        o->mode &= ~setid_to_kill(o->mode);
        LAYERFS_TRY(sys::set_xattr(fd->get(), d.config.view.override_xattr.c_str(), o->format()));
      }
    }
    return sys::chown_fd(fd->get(), static_cast<uid_t>(-1), static_cast<gid_t>(-1));
  }
  if (!d.config.view.override_xattr.empty() && !S_ISLNK(inode.type()) &&
      (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
    auto o = set_override(d, inode, fd->get(), attr, to_set);
    if (!o.ok()) return o;
    to_set &= ~(FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID);
  }
  if (to_set & FUSE_SET_ATTR_MODE) {
    if (S_ISLNK(inode.type())) return Errno{EOPNOTSUPP};
    if (auto m = sys::chmod_fd(fd->get(), attr.st_mode & 07777); !m.ok()) return m;
  }
  if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
    uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? d.disk_uid(attr.st_uid) : static_cast<uid_t>(-1);
    gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? d.disk_gid(attr.st_gid) : static_cast<gid_t>(-1);
    if (auto o = sys::chown_fd(fd->get(), uid, gid); !o.ok()) return o;
  }
  if (to_set & FUSE_SET_ATTR_SIZE) {
    auto t = sys::truncate_fd(fi != nullptr ? FileHandle::of(fi)->current_fd() : fd->get(),
                              attr.st_size);
    if (!t.ok()) return t;
  }
  if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
    timespec times[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
      times[0].tv_nsec = UTIME_NOW;
    } else if (to_set & FUSE_SET_ATTR_ATIME) {
      times[0] = attr.st_atim;
    }
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
      times[1].tv_nsec = UTIME_NOW;
    } else if (to_set & FUSE_SET_ATTR_MTIME) {
      times[1] = attr.st_mtim;
    }
    if (auto t = sys::set_times_fd(fd->get(), times); !t.ok()) return t;
  }
  return {};
}

}  // namespace

Result<void> Daemon::kill_suidgid(fuse_req_t req, Inode& inode, BorrowedFd fd) {
  auto st = fd >= 0 ? sys::stat_fd(fd) : inode.stat();
  if (!st.ok()) return st.err();
  present(inode, *st);  // the mode and group an override shows are the ones that count
  mode_t kill = setid_to_kill(st->st_mode);
  // A caller outside the file's group also drops a set-group-ID bit without group execute.
  if ((st->st_mode & S_ISGID) && !(kill & S_ISGID) && !caller_in_group(req, st->st_gid)) {
    kill |= S_ISGID;
  }
  if (kill == 0) return {};
  struct stat attr {};
  attr.st_mode = st->st_mode & ~kill;
  LAYERFS_TRY(apply_setattr(*this, inode, attr, FUSE_SET_ATTR_MODE, nullptr));
  attributes_changed(inode);
  return {};
}

namespace {

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  Daemon& d = Daemon::of(req);
  if (!d.writable()) return (void)fuse_reply_err(req, EROFS);
  Inode& inode = d.inode(ino);
  // Under the writeback cache the kernel owns mtime; a page written back keeps the file's
  // (op_write_buf), under the same lock.
  std::unique_lock<std::mutex> times;
  if (d.writeback && (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))) {
    times = std::unique_lock(d.time_lock(inode));
  }
  // It also sends mtime and ctime after a link, unlink or rename of the file: the ctime the
  // host's filesystem gave the upper copy then already, the mtime unchanged. Nothing to do, and
  // a file still in a lower layer (its name perhaps gone) is not copied up for it, as kernel
  // overlayfs copies nothing up for these. (A ctime alone is chown(f, -1, -1), below.)
  constexpr int kKernelTimes = FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_CTIME;
  if (d.writeback && to_set == kKernelTimes) {
    auto st = inode.stat();
    if (!st.ok() && fi != nullptr) st = sys::stat_fd(FileHandle::of(fi)->current_fd());
    if (!st.ok()) return (void)fuse_reply_err(req, st.error());
    if (st->st_mtim.tv_sec == attr->st_mtim.tv_sec &&
        st->st_mtim.tv_nsec == attr->st_mtim.tv_nsec) {
      st->st_ino = inode.st_ino();
      d.present(inode, *st);
      return (void)fuse_reply_attr(req, &*st, d.config.cache.attr_timeout);
    }
  }
  auto up = tree::copy_up(d, inode);
  if (!up.ok()) return (void)fuse_reply_err(req, up.error());
  // Truncated under handles that read its lower file: superseded before the data changes, so
  // that no open from here on shares their backing (as op_open does for an open for write).
  if ((to_set & FUSE_SET_ATTR_SIZE) && d.passthrough.changed(inode)) d.supersede(inode);
  auto r = apply_setattr(d, inode, *attr, to_set, fi);
  if (!r.ok()) return (void)fuse_reply_err(req, r.error());
  // The set-id bits a truncate drops, where the kernel asks (an explicit mode wins). A request
  // without fields, a chown(f, -1, -1) or the kernel's ask for a write passed through or a
  // fallocate, has had the bits any caller drops dropped above; one from a caller other than
  // root (who has CAP_FSETID) drops a set-group-ID bit the caller's groups do not cover too.
  const bool fieldless = (to_set & kSetattrFields) == 0;
  if (((to_set & FUSE_SET_ATTR_SIZE) && !(to_set & FUSE_SET_ATTR_MODE) &&
       Requests::kill_suidgid()) ||
      (fieldless && S_ISREG(inode.type()) && fuse_req_ctx(req)->uid != 0)) {
    auto fd = fi != nullptr ? FileHandle::of(fi)->current_fd() : BorrowedFd();
    if (auto k = d.kill_suidgid(req, inode, fd); !k.ok()) {
      return (void)fuse_reply_err(req, k.error());
    }
  }
  auto st = inode.stat();
  if (!st.ok() && fi != nullptr) st = sys::stat_fd(FileHandle::of(fi)->current_fd());
  if (!st.ok()) return (void)fuse_reply_err(req, st.error());
  st->st_ino = inode.st_ino();
  d.present(inode, *st);
  fuse_reply_attr(req, &*st, d.config.cache.attr_timeout);
}

}  // namespace

void add_write_ops(fuse_lowlevel_ops& ops) {
  ops.setattr = guarded<op_setattr>;
  ops.mknod = guarded<op_mknod>;
  ops.mkdir = guarded<op_mkdir>;
  ops.symlink = guarded<op_symlink>;
  ops.create = guarded<op_create>;
  ops.link = guarded<op_link>;
  ops.unlink = guarded<op_unlink>;
  ops.rmdir = guarded<op_rmdir>;
  ops.rename = guarded<op_rename>;
}

}  // namespace layerfs
