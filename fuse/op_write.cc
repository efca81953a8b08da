// Every operation that would change the tree. A mount without an upper layer is read-only: the
// kernel mount carries MS_RDONLY, and anything that still arrives is refused with EROFS.
#include "fuse/daemon.h"

namespace layerfs {
namespace {

void refuse(fuse_req_t req) { fuse_reply_err(req, EROFS); }

}  // namespace

void add_write_ops(fuse_lowlevel_ops& ops) {
  ops.setattr = [](fuse_req_t req, fuse_ino_t, struct stat*, int, fuse_file_info*) { refuse(req); };
  ops.mknod = [](fuse_req_t req, fuse_ino_t, const char*, mode_t, dev_t) { refuse(req); };
  ops.mkdir = [](fuse_req_t req, fuse_ino_t, const char*, mode_t) { refuse(req); };
  ops.unlink = [](fuse_req_t req, fuse_ino_t, const char*) { refuse(req); };
  ops.rmdir = [](fuse_req_t req, fuse_ino_t, const char*) { refuse(req); };
  ops.symlink = [](fuse_req_t req, const char*, fuse_ino_t, const char*) { refuse(req); };
  ops.rename = [](fuse_req_t req, fuse_ino_t, const char*, fuse_ino_t, const char*, unsigned) {
    refuse(req);
  };
  ops.link = [](fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) { refuse(req); };
  ops.create = [](fuse_req_t req, fuse_ino_t, const char*, mode_t, fuse_file_info*) {
    refuse(req);
  };
  ops.write = [](fuse_req_t req, fuse_ino_t, const char*, size_t, off_t, fuse_file_info*) {
    refuse(req);
  };
  ops.setxattr = [](fuse_req_t req, fuse_ino_t, const char*, const char*, size_t, int) {
    refuse(req);
  };
  ops.removexattr = [](fuse_req_t req, fuse_ino_t, const char*) { refuse(req); };
  ops.fallocate = [](fuse_req_t req, fuse_ino_t, int, off_t, off_t, fuse_file_info*) {
    refuse(req);
  };
}

}  // namespace layerfs
