// getxattr, listxattr. Overlay-private xattrs never show through the mount.
#include <cstring>
#include <string>

#include "fuse/daemon.h"
#include "layers/sys/fs.h"
#include "layers/whiteout.h"

namespace layerfs {
namespace {

void reply_sized(fuse_req_t req, const std::string& value, size_t size) {
  if (size == 0) {
    fuse_reply_xattr(req, value.size());
  } else if (value.size() > size) {
    fuse_reply_err(req, ERANGE);
  } else {
    fuse_reply_buf(req, value.data(), value.size());
  }
}

// The daemon may read trusted.* xattrs; its callers may only if privileged, as on any
// filesystem (an unprivileged getxattr of trusted.* finds nothing). FUSE tells the caller's uid,
// not its capabilities, so uid 0 stands for privilege.
bool hidden_from(fuse_req_t req, std::string_view name) {
  if (Whiteout::is_private_xattr(name)) return true;
  return name.starts_with("trusted.") && fuse_req_ctx(req)->uid != 0;
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  if (hidden_from(req, name)) return (void)fuse_reply_err(req, ENODATA);
  auto fd = Daemon::of(req).inode(ino).path_fd();
  if (!fd.ok()) return (void)fuse_reply_err(req, fd.error());
  auto value = sys::get_xattr(fd->get(), name);
  if (!value.ok()) return (void)fuse_reply_err(req, value.error());
  reply_sized(req, *value, size);
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  auto fd = Daemon::of(req).inode(ino).path_fd();
  if (!fd.ok()) return (void)fuse_reply_err(req, fd.error());
  auto names = sys::list_xattr(fd->get());
  if (!names.ok()) return (void)fuse_reply_err(req, names.error());
  std::string shown;
  for (size_t pos = 0; pos < names->size();) {
    const char* name = names->c_str() + pos;
    size_t len = strlen(name);
    if (len > 0 && !hidden_from(req, std::string_view(name, len))) shown.append(name, len + 1);
    pos += len + 1;
  }
  reply_sized(req, shown, size);
}

}  // namespace

void add_xattr_ops(fuse_lowlevel_ops& ops) {
  ops.getxattr = op_getxattr;
  ops.listxattr = op_listxattr;
}

}  // namespace layerfs
