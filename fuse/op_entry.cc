// lookup, forget, getattr, statfs, access.
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstring>

#include "fuse/daemon.h"
#include "layers/sys/fs.h"

namespace layerfs {

Result<void> Daemon::lookup(Inode& parent, const char* name, fuse_entry_param* e) {
  auto found = layerfs::lookup(parent.dirs, name);
  if (!found.ok()) return found.err();
  auto fresh = std::make_shared<Inode>();
  fresh->key = InodeKey{found->st.st_dev, found->st.st_ino};
  fresh->type = found->st.st_mode & S_IFMT;
  fresh->st_ino = stack->map_ino(found->layer, found->st.st_ino);
  fresh->layer = found->layer;
  fresh->dirs = std::move(found->dirs);
  if (fresh->is_dir()) {
    fresh->parent_st_ino = parent.st_ino;
  } else {
    fresh->parent = parent.shared_from_this();
    fresh->name = name;
  }
  std::shared_ptr<Inode> live = table->publish(std::move(fresh));

  memset(e, 0, sizeof *e);
  e->ino = table->id_of(*live);
  e->attr = found->st;
  e->attr.st_ino = live->st_ino;
  if (live->merged_dir()) e->attr.st_nlink = 1;
  e->attr_timeout = cache.attr_timeout;
  e->entry_timeout = cache.entry_timeout;
  return {};
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
    // A negative entry: lower layers never change, so the kernel may remember the absence.
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

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Daemon& d = Daemon::of(req);
  auto st = d.inode(ino).stat();
  if (!st.ok()) return (void)fuse_reply_err(req, st.error());
  fuse_reply_attr(req, &*st, d.cache.attr_timeout);
}

void op_statfs(fuse_req_t req, fuse_ino_t) {
  // As kernel overlayfs: the numbers of the filesystem holding the topmost layer.
  Daemon& d = Daemon::of(req);
  struct statvfs sv;
  if (fstatvfs(d.stack->layer(0).root.get(), &sv) < 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_statfs(req, &sv);
}

// Used only when the mount runs without default_permissions; the kernel checks otherwise.
void op_access(fuse_req_t req, fuse_ino_t ino, int mask) {
  Daemon& d = Daemon::of(req);
  if (mask & W_OK) return (void)fuse_reply_err(req, EROFS);
  auto st = d.inode(ino).stat();
  if (!st.ok()) return (void)fuse_reply_err(req, st.error());
  const fuse_ctx* ctx = fuse_req_ctx(req);
  mode_t mode = st->st_mode;
  int granted;
  if (ctx->uid == 0) {
    granted = R_OK | ((mode & 0111) || S_ISDIR(mode) ? X_OK : 0);
  } else if (ctx->uid == st->st_uid) {
    granted = static_cast<int>((mode >> 6) & 7);
  } else if (ctx->gid == st->st_gid) {
    granted = static_cast<int>((mode >> 3) & 7);
  } else {
    granted = static_cast<int>(mode & 7);
  }
  fuse_reply_err(req, (mask & ~granted & (R_OK | X_OK)) ? EACCES : 0);
}

}  // namespace

void add_entry_ops(fuse_lowlevel_ops& ops) {
  ops.lookup = op_lookup;
  ops.forget = op_forget;
  ops.forget_multi = op_forget_multi;
  ops.getattr = op_getattr;
  ops.statfs = op_statfs;
  ops.access = op_access;
}

}  // namespace layerfs
