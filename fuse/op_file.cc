// getattr, open, read, write, release, fsync, fallocate, copy_file_range, lseek,
// readlink. Reads reply from the real file's fd so libfuse can splice; writes go from the
// request buffer to the fd, spliced where libfuse can.
//
// A handle opened read-only on a lower file, served by the daemon, keeps working after another
// handle copies the file up: on its next read it moves to the upper copy, so it never reads
// stale data. Passed through, it keeps its lower file (fuse/passthrough.h).
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <optional>
#include <vector>

#include "fuse/daemon.h"
#include "fuse/file_handle.h"
#include "fuse/merged_tree.h"
#include "layers/sys/fs.h"
#include "layers/sys/xattr.h"

namespace layerfs {

FileHandle* FileHandle::of(fuse_file_info* fi) { return reinterpret_cast<FileHandle*>(fi->fh); }

BorrowedFd FileHandle::current_fd() {
  if (!may_move) return fd.get();  // the read path of read-only mounts and upper files
  {
    std::lock_guard lock(mu);
    if (layer == 0) return fd.get();
  }
  // Lock order is inode -> handle: the inode is asked with the handle unlocked.
  if (inode->layer() != 0) {
    std::lock_guard lock(mu);
    return fd.get();
  }
  // Copied up since this handle opened. The old fd stays open until release: a read on another
  // thread may still be using it.
  auto fresh = inode->open(O_RDONLY);
  std::lock_guard lock(mu);
  if (layer != 0 && fresh.ok()) {
    retired.push_back(std::move(fd));
    fd = std::move(*fresh);
    layer = 0;
  }
  return fd.get();
}

void release_handle(Daemon& d, FileHandle* h) {
  d.passthrough.close(*h->inode, h->io);
  d.handles.drop(h);
}

namespace {

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Daemon& d = Daemon::of(req);
  Inode& inode = d.inode(ino);
  auto st = inode.stat();
  if (!st.ok() && fi != nullptr) {
    // Unlinked while open: the handle still reaches it.
    st = sys::stat_fd(FileHandle::of(fi)->current_fd());
    if (st.ok()) st->st_ino = inode.st_ino();
  }
  if (!st.ok()) return (void)fuse_reply_err(req, st.error());
  d.present(inode, *st);
  fuse_reply_attr(req, &*st, d.config.cache.attr_timeout);
}

bool wants_write(int flags) { return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC); }

// Under the writeback cache (Daemon::writeback) the kernel reads the pages it writes part of,
// and writes pages back, at offsets it gives and cut to the file's size, through any writable
// handle of the file: the daemon's fd is for reading too, without O_APPEND or O_DIRECT
// (Daemon::flags_under_writeback). Where the file refuses that (write-only to the caller,
// append-only), the fd is opened as asked and the handle kept out of the page cache
// (`uncached`: direct_io).
struct OpenedFd {
  UniqueFd fd;
  int flags;      // as opened
  bool uncached;  // the handle takes direct_io
};

Result<OpenedFd> open_fd(const Daemon& d, Inode& inode, int flags) {
  const int cached = d.writeback ? Daemon::flags_under_writeback(flags) : flags;
  auto fd = inode.open(cached);
  if (fd.ok()) return OpenedFd{std::move(*fd), cached, false};
  if (cached == flags || (fd.error() != EACCES && fd.error() != EPERM)) return fd.err();
  auto as_asked = inode.open(flags);
  if (!as_asked.ok()) return as_asked.err();
  return OpenedFd{std::move(*as_asked), flags, true};
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Daemon& d = Daemon::of(req);
  Inode& inode = d.inode(ino);
  // Reached by a name the kernel had cached: the walk again finds the newer inode.
  if (inode.superseded()) return (void)fuse_reply_err(req, ESTALE);
  if (wants_write(fi->flags)) {
    if (!d.writable()) return (void)fuse_reply_err(req, EROFS);
    // Handles read its lower file: superseded before anything changes (Passthrough::open
    // checks again, for an open that raced this one).
    if (d.passthrough.changed(inode)) {
      d.supersede(inode);
      return (void)fuse_reply_err(req, ESTALE);
    }
    // O_TRUNC reaches the daemon (atomic_o_trunc): the copy-up then copies no data, as in
    // kernel overlayfs.
    auto up = tree::copy_up(d, inode, (fi->flags & O_TRUNC) != 0);
    if (!up.ok()) return (void)fuse_reply_err(req, up.error());
  }
  const uint32_t layer = inode.layer();
  auto opened = open_fd(d, inode, fi->flags & ~(O_CREAT | O_EXCL | O_NOCTTY));
  if (!opened.ok()) return (void)fuse_reply_err(req, opened.error());
  if (opened->uncached) fi->direct_io = 1;
  // The file cannot change under the handle on a read-only mount, or when it was in the upper
  // before the open and after it.
  const bool fixed = !d.writable() || (layer == 0 && inode.layer() == 0);
  auto* h = d.handles.track(new FileHandle(inode.shared_from_this(), std::move(opened->fd), layer,
                                           d.writable(), (opened->flags & O_DIRECT) != 0));
  fi->fh = reinterpret_cast<uint64_t>(h);
  if ((fi->flags & O_TRUNC) && Requests::kill_suidgid()) {
    if (auto k = d.kill_suidgid(req, inode, h->fd.get()); !k.ok()) {
      release_handle(d, h);
      return (void)fuse_reply_err(req, k.error());
    }
  }
  const int32_t backing = d.passthrough.open(
      inode, h->fd.get(), fixed ? Passthrough::File::kFixed : Passthrough::File::kLower,
      wants_write(fi->flags), &h->io);
  if (backing == Passthrough::kStale) {
    // The kernel walks the path again and finds the new node id (fuse/passthrough.h).
    release_handle(d, h);
    d.supersede(inode);
    return (void)fuse_reply_err(req, ESTALE);
  }
  if (backing > 0) {
    if (Passthrough::reply_open(req, fi->fh, backing) != 0) release_handle(d, h);
    return;
  }
  fi->keep_cache = d.config.cache.keep_page_cache;
  if (fuse_reply_open(req, fi) != 0) release_handle(d, h);
}

void op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = FileHandle::of(fi)->current_fd();
  buf.buf[0].pos = off;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

// The data of an O_DIRECT write: the file's filesystem takes only memory aligned to its block
// size, and the request buffer is not. 4 KiB covers every block size a page-cache filesystem
// uses here.
constexpr size_t kDirectAlign = 4096;

ssize_t write_direct(BorrowedFd fd, fuse_bufvec* in, off_t off) {
  const size_t size = fuse_buf_size(in);
  void* mem = nullptr;
  if (posix_memalign(&mem, kDirectAlign, size == 0 ? kDirectAlign : size) != 0) return -ENOMEM;
  std::unique_ptr<void, decltype(&free)> owned(mem, free);
  fuse_bufvec aligned = FUSE_BUFVEC_INIT(size);
  aligned.buf[0].mem = mem;
  ssize_t n = fuse_buf_copy(&aligned, in, static_cast<fuse_buf_copy_flags>(0));
  if (n < 0) return n;
  auto w = sys::pwrite_fd(fd, mem, static_cast<size_t>(n), off);
  return w.ok() ? static_cast<ssize_t>(*w) : -w.error();
}

// Writes `in` at `off` through the handle's fd: the bytes written, or -errno.
ssize_t write_data(FileHandle* h, fuse_bufvec* in, off_t off) {
  if (h->direct) return write_direct(h->current_fd(), in, off);
  fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
  out.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  out.buf[0].fd = h->current_fd();
  out.buf[0].pos = off;
  return fuse_buf_copy(&out, in, static_cast<fuse_buf_copy_flags>(0));
}

void op_write_buf(fuse_req_t req, fuse_ino_t, fuse_bufvec* in, off_t off, fuse_file_info* fi) {
  Daemon& d = Daemon::of(req);
  FileHandle* h = FileHandle::of(fi);
  if (Requests::kill_suidgid()) {
    auto k = d.kill_suidgid(req, *h->inode, h->current_fd());
    if (!k.ok()) return (void)fuse_reply_err(req, k.error());
  }
  ssize_t n;
  if (d.writeback && fi->writepage) {
    // Under the writeback cache the kernel owns mtime and sends it in a SETATTR, perhaps before
    // the pages it writes back arrive: a page written back keeps the mtime the file has. Under
    // the inode's time lock, which that SETATTR takes too, and before the reply (after it the
    // kernel may send the SETATTR).
    const BorrowedFd fd = h->current_fd();
    std::lock_guard times(d.time_lock(*h->inode));
    auto before = sys::stat_fd(fd);
    n = write_data(h, in, off);
    if (before.ok()) {
      const timespec kept[2] = {{0, UTIME_OMIT}, before->st_mtim};
      (void)sys::set_times_fd(fd, kept);
    }
  } else {
    n = write_data(h, in, off);
  }
  if (n < 0) return (void)fuse_reply_err(req, static_cast<int>(-n));
  fuse_reply_write(req, static_cast<size_t>(n));
}

void op_release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  release_handle(Daemon::of(req), FileHandle::of(fi));
  fuse_reply_err(req, 0);
}

void op_fsync(fuse_req_t req, fuse_ino_t, int datasync, fuse_file_info* fi) {
  auto r = sys::sync_fd(FileHandle::of(fi)->current_fd(), datasync != 0);
  fuse_reply_err(req, r.ok() ? 0 : r.error());
}

void op_fallocate(fuse_req_t req, fuse_ino_t, int mode, off_t off, off_t len, fuse_file_info* fi) {
  if (!Daemon::of(req).writable()) return (void)fuse_reply_err(req, EROFS);
  auto r = sys::allocate(FileHandle::of(fi)->current_fd(), mode, off, len);
  fuse_reply_err(req, r.ok() ? 0 : r.error());
}

void op_copy_file_range(fuse_req_t req, fuse_ino_t, off_t off_in, fuse_file_info* fi_in, fuse_ino_t,
                        off_t off_out, fuse_file_info* fi_out, size_t len, int flags) {
  if (!Daemon::of(req).writable()) return (void)fuse_reply_err(req, EROFS);
  if (flags != 0) return (void)fuse_reply_err(req, EINVAL);  // as copy_file_range(2)
  off_t in = off_in, out = off_out;
  auto n = sys::copy_range(FileHandle::of(fi_in)->current_fd(), &in,
                           FileHandle::of(fi_out)->current_fd(), &out, len);
  if (!n.ok()) return (void)fuse_reply_err(req, n.error());
  fuse_reply_write(req, *n);
}

void op_lseek(fuse_req_t req, fuse_ino_t, off_t off, int whence, fuse_file_info* fi) {
  auto r = sys::seek(FileHandle::of(fi)->current_fd(), off, whence);
  if (!r.ok()) return (void)fuse_reply_err(req, r.error());
  fuse_reply_lseek(req, *r);
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  Inode& inode = Daemon::of(req).inode(ino);
  if (!S_ISLNK(inode.type())) return (void)fuse_reply_err(req, EINVAL);
  // By the pinned fd where there is one: the name the link was found by may be gone.
  const BorrowedFd pinned = inode.pinned_fd();
  Inode::Where w = pinned >= 0 ? Inode::Where{} : inode.where();
  if (pinned < 0 && w.dir_fd < 0) return (void)fuse_reply_err(req, w.dir_error);
  auto target =
      pinned >= 0 ? sys::read_link_at(pinned, "") : sys::read_link_at(w.dir_fd, w.name.c_str());
  if (!target.ok()) return (void)fuse_reply_err(req, target.error());
  fuse_reply_readlink(req, target->c_str());
}

}  // namespace

void add_file_ops(fuse_lowlevel_ops& ops) {
  ops.getattr = guarded<op_getattr>;
  ops.open = guarded<op_open>;
  ops.read = guarded<op_read>;
  ops.write_buf = guarded<op_write_buf>;
  // No flush: writes reach the file as they arrive and locks are the kernel's, so the kernel
  // learns from ENOSYS once and stops sending one request per close.
  ops.release = guarded<op_release>;
  ops.fsync = guarded<op_fsync>;
  ops.fallocate = guarded<op_fallocate>;
  ops.copy_file_range = guarded<op_copy_file_range>;
  ops.lseek = guarded<op_lseek>;
  ops.readlink = guarded<op_readlink>;
}

}  // namespace layerfs
