// opendir, readdir, readdirplus, releasedir, fsyncdir.
//
// A directory's merged listing is built by a handle's first readdir, and that handle keeps the
// snapshot, so offsets stay stable while it is listed. Directories merged from many layers
// keep their listing (lookups use its index) until the directory changes; others rely on the
// kernel's cache of what was read (cache_readdir) and hold no listing when no handle reads.
// Offsets are positions: 1 and 2 for "." and "..", then one per merged entry.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "fuse/daemon.h"
#include "fuse/merged_tree.h"
#include "layers/sys/fs.h"
#include "layers/sys/xattr.h"

namespace layerfs {
namespace {

struct DirHandle : Handle {
  std::shared_ptr<const Listing> listing;
};

DirHandle* handle_of(fuse_file_info* fi) { return reinterpret_cast<DirHandle*>(fi->fh); }

void op_opendir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  Daemon& d = Daemon::of(req);
  // The listing is built by the first readdir: where the kernel still caches the directory's
  // entries (cache_readdir), none comes.
  auto* h = d.handles.track(new DirHandle{});
  fi->fh = reinterpret_cast<uint64_t>(h);
  fi->cache_readdir = d.config.cache.cache_readdir;
  fi->keep_cache = d.config.cache.cache_readdir;
  if (fuse_reply_open(req, fi) != 0) d.handles.drop(h);
}

void op_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  Daemon::of(req).handles.drop(handle_of(fi));
  fuse_reply_err(req, 0);
}

void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi,
                bool plus) {
  Daemon& d = Daemon::of(req);
  Inode& dir = d.inode(ino);
  DirHandle* h = handle_of(fi);
  if (!h->listing) {
    auto built = tree::listing(d, dir);
    if (!built.ok()) return (void)fuse_reply_err(req, built.error());
    h->listing = std::move(*built);
  }
  const Listing& entries = *h->listing;
  std::vector<char> buf(size);
  std::vector<fuse_ino_t> looked_up;  // to undo if the reply cannot be sent
  size_t used = 0;
  const size_t total = entries.size() + 2;
  for (size_t pos = static_cast<size_t>(off); pos < total; ++pos) {
    const off_t next = static_cast<off_t>(pos + 1);
    char* out = buf.data() + used;
    const size_t room = size - used;
    size_t len;
    if (pos < 2) {
      // The kernel never looks up "." and ".."; they carry no node id.
      const char* name = pos == 0 ? "." : "..";
      fuse_entry_param e;
      memset(&e, 0, sizeof e);
      e.attr.st_ino = pos == 0 ? dir.st_ino() : dir.parent_st_ino();
      e.attr.st_mode = S_IFDIR;
      len = plus ? fuse_add_direntry_plus(req, out, room, name, &e, next)
                 : fuse_add_direntry(req, out, room, name, &e.attr, next);
    } else {
      const ListEntry& entry = entries[pos - 2];
      if (plus) {
        // Size first, so an entry that does not fit is never looked up (see fuse/inode_table.h).
        if (fuse_add_direntry_plus(req, nullptr, 0, entry.name.c_str(), nullptr, 0) > room) break;
        fuse_entry_param e;
        if (!tree::lookup(d, dir, entry.name.c_str(), &e, {&entries, &entry}).ok()) {
          continue;  // gone since the snapshot
        }
        looked_up.push_back(e.ino);
        len = fuse_add_direntry_plus(req, out, room, entry.name.c_str(), &e, next);
      } else {
        struct stat st;
        memset(&st, 0, sizeof st);
        st.st_ino = entry.ino;
        st.st_mode = static_cast<mode_t>(DTTOIF(entry.type));
        len = fuse_add_direntry(req, out, room, entry.name.c_str(), &st, next);
      }
    }
    if (len > room) break;
    used += len;
  }
  if (fuse_reply_buf(req, buf.data(), used) != 0) {
    for (fuse_ino_t id : looked_up) d.table->forget(id, 1);
  }
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  do_readdir(req, ino, size, off, fi, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  do_readdir(req, ino, size, off, fi, true);
}

void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info*) {
  Daemon& d = Daemon::of(req);
  auto upper = d.writable() ? d.inode(ino).copy_fd(0) : Result<CopyFd>(Errno{ENOENT});
  if (!upper.ok()) {
    // No upper copy: nothing of it was ever written.
    return (void)fuse_reply_err(req, upper.error() == ENOENT ? 0 : upper.error());
  }
  auto fd = sys::reopen(upper->get(), O_RDONLY | O_DIRECTORY);
  if (!fd.ok()) return (void)fuse_reply_err(req, fd.error());
  auto r = sys::sync_fd(fd->get(), datasync != 0);
  fuse_reply_err(req, r.ok() ? 0 : r.error());
}

}  // namespace

void add_dir_ops(fuse_lowlevel_ops& ops) {
  ops.opendir = guarded<op_opendir>;
  ops.readdir = guarded<op_readdir>;
  ops.readdirplus = guarded<op_readdirplus>;
  ops.releasedir = guarded<op_releasedir>;
  ops.fsyncdir = guarded<op_fsyncdir>;
}

}  // namespace layerfs
