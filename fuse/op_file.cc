// open, read, release, readlink. Reads reply from the real file's fd so libfuse can splice.
#include <fcntl.h>

#include "fuse/daemon.h"
#include "layers/sys/fs.h"

namespace layerfs {
namespace {

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Daemon& d = Daemon::of(req);
  if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
    return (void)fuse_reply_err(req, EROFS);
  }
  auto fd = d.inode(ino).open(fi->flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC));
  if (!fd.ok()) return (void)fuse_reply_err(req, fd.error());
  fi->fh = static_cast<uint64_t>(fd->get());
  fi->keep_cache = d.cache.keep_page_cache;
  if (fuse_reply_open(req, fi) == 0) fd->release();
}

void op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = static_cast<int>(fi->fh);
  buf.buf[0].pos = off;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void op_release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  UniqueFd(static_cast<int>(fi->fh)).reset();
  fuse_reply_err(req, 0);
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  Inode& inode = Daemon::of(req).inode(ino);
  if (!S_ISLNK(inode.type)) return (void)fuse_reply_err(req, EINVAL);
  auto target = sys::read_link_at(inode.parent_fd(), inode.name.c_str());
  if (!target.ok()) return (void)fuse_reply_err(req, target.error());
  fuse_reply_readlink(req, target->c_str());
}

}  // namespace

void add_file_ops(fuse_lowlevel_ops& ops) {
  ops.open = op_open;
  ops.read = op_read;
  ops.release = op_release;
  ops.readlink = op_readlink;
}

}  // namespace layerfs
