// lookup, forget, getattr, statfs, access; and the lookup and copy-up machinery the other op
// files share.
#include <fcntl.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>

#include "fuse/daemon.h"
#include "fuse/merged_tree.h"
#include "layers/attributes.h"
#include "layers/copy_up.h"
#include "layers/sys/fs.h"
#include "layers/sys/xattr.h"

namespace layerfs {

std::optional<StatOverride> Daemon::stat_override(const Inode& inode) const {
  if (!config.view.reads_overrides()) return std::nullopt;
  auto fd = inode.path_fd();
  if (!fd.ok()) return std::nullopt;
  return config.view.override_of(fd->get());
}

void Daemon::present(const Inode& inode, struct stat& st) const {
  config.view.show(st, stat_override(inode));
}

void Daemon::fill_entry(const std::shared_ptr<Inode>& inode, const struct stat& st,
                        fuse_entry_param* e) {
  memset(e, 0, sizeof *e);
  e->ino = table->id_of(*inode);
  e->attr = st;
  e->attr.st_ino = inode->st_ino();
  if (inode->merged_dir()) e->attr.st_nlink = 1;
  present(*inode, e->attr);
  e->attr_timeout = config.cache.attr_timeout;
  e->entry_timeout = config.cache.entry_timeout;
}

void Daemon::attributes_changed(const Inode& inode) {
  // ENOENT (the kernel no longer knows the inode) is fine: nothing is cached then.
  if (session != nullptr) fuse_lowlevel_notify_inval_inode(session, table->id_of(inode), -1, 0);
}

void Daemon::supersede(Inode& inode) {
  // Pinned first: the name may go or change while the old node id lives.
  if (auto fd = inode.path_fd(); fd.ok()) inode.pin(std::move(*fd));
  inode.set_superseded();
  table->unhash(inode);
}

namespace {

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Daemon& d = Daemon::of(req);
  fuse_entry_param e;
  auto r = tree::lookup(d, d.inode(parent), name, &e);
  if (r.ok()) {
    // An interrupted request's reply is dropped: the kernel never counts this lookup.
    if (fuse_reply_entry(req, &e) != 0) d.table->forget(e.ino, 1);
  } else if (r.error() == ENOENT) {
    // A negative entry: the kernel may remember the absence; a create through the mount
    // replaces it.
    memset(&e, 0, sizeof e);
    e.entry_timeout = d.config.cache.entry_timeout;
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
  BorrowedFd fd = d.writable() ? d.upper->upper_fd() : d.config.stack->layer(0).root.get();
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
