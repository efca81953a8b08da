// getxattr, listxattr. Overlay-private xattrs never show through the mount.
#include <sys/xattr.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "fuse/daemon.h"
#include "fuse/merged_tree.h"
#include "layers/acl.h"
#include "layers/source.h"
#include "layers/sys/fs.h"
#include "layers/sys/xattr.h"
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
bool is_acl(std::string_view name) { return name == acl::kAccess || name == acl::kDefault; }

bool hidden_from(fuse_req_t req, std::string_view name) {
  if (Whiteout::is_private_xattr(name)) return true;
  // Without ACLs (noacl, or a layer filesystem without them) the mount has none, like a
  // filesystem mounted noacl: they would be shown but not enforced.
  if (is_acl(name) && !Daemon::of(req).acl) return true;
  return name.starts_with("trusted.") && fuse_req_ctx(req)->uid != 0;
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  // The tools ask the root which layers the mount has (layers/source.h); it is never listed.
  if (ino == FUSE_ROOT_ID && std::string_view(name) == kLayersXattr) {
    return reply_sized(req, Daemon::of(req).config.layers_answer, size);
  }
  if (ino == FUSE_ROOT_ID && std::string_view(name) == kRequestsXattr) {
    Daemon& d = Daemon::of(req);
    return reply_sized(req, d.requests.report(d.passthrough.opens()), size);
  }
  if (is_acl(name) && !Daemon::of(req).acl) return (void)fuse_reply_err(req, EOPNOTSUPP);
  if (hidden_from(req, name)) return (void)fuse_reply_err(req, ENODATA);
  auto fd = Daemon::of(req).inode(ino).path_fd();
  if (!fd.ok()) return (void)fuse_reply_err(req, fd.error());
  auto value = sys::get_xattr(fd->get(), name);
  if (!value.ok()) {
    // A layer on a filesystem without ACLs has none: the kernel, which asks for them to check
    // permissions, must hear "no ACL", not an error.
    int err = value.error();
    if (err == EOPNOTSUPP && is_acl(name)) err = ENODATA;
    return (void)fuse_reply_err(req, err);
  }
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

// Writes go to the upper copy, made first. Overlay-private names cannot be set or removed
// through the mount (they would change what the layers mean).
Result<UniqueFd> writable_xattr_fd(Daemon& d, Inode& inode, const char* name) {
  if (is_acl(name) && !d.acl) return Errno{EOPNOTSUPP};
  if (!d.writable()) return Errno{EROFS};
  if (Whiteout::is_private_xattr(name)) return Errno{EPERM};
  auto up = tree::copy_up(d, inode);
  if (!up.ok()) return up.err();
  return inode.path_fd();
}

// Setting an access ACL clears the set-group-ID bit when the caller is neither in the file's
// group nor privileged, as the kernel does (posix_acl_update_mode); the daemon sets the ACL
// with its own privilege, so it clears the bit itself.
Result<void> clear_sgid_for_acl(fuse_req_t req, const Daemon& d, BorrowedFd fd) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  if (ctx->uid == 0) return {};
  auto st = sys::stat_fd(fd);
  if (!st.ok()) return st.err();
  if (!(st->st_mode & S_ISGID) || S_ISDIR(st->st_mode)) return {};
  const gid_t group = st->st_gid;
  bool member = d.disk_gid(ctx->gid) == group;
  gid_t groups[64];
  const int n = fuse_req_getgroups(req, 64, groups);
  for (int i = 0; !member && i < std::min(n, 64); ++i) member = d.disk_gid(groups[i]) == group;
  if (member) return {};
  return sys::chmod_fd(fd, st->st_mode & 07777 & ~static_cast<mode_t>(S_ISGID));
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                 int flags) {
  Daemon& d = Daemon::of(req);
  auto fd = writable_xattr_fd(d, d.inode(ino), name);
  if (!fd.ok()) return (void)fuse_reply_err(req, fd.error());
  auto set = sys::set_xattr(fd->get(), name, std::string_view(value, size), flags);
  if (!set.ok()) return (void)fuse_reply_err(req, set.error());
  if (name == std::string_view(acl::kAccess)) {
    auto cleared = clear_sgid_for_acl(req, d, fd->get());
    if (!cleared.ok()) return (void)fuse_reply_err(req, cleared.error());
  }
  fuse_reply_err(req, 0);
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  Daemon& d = Daemon::of(req);
  Inode& inode = d.inode(ino);
  if (is_acl(name) && !d.acl) return (void)fuse_reply_err(req, EOPNOTSUPP);
  if (d.writable() && inode.layer() != 0 && !Whiteout::is_private_xattr(name)) {
    // Removing what is not there changes nothing: no copy-up (kernel overlayfs checks too).
    auto fd = inode.path_fd();
    if (!fd.ok()) return (void)fuse_reply_err(req, fd.error());
    auto has = sys::get_xattr(fd->get(), name, nullptr, 0);
    if (!has.ok()) return (void)fuse_reply_err(req, has.error());
  }
  auto fd = writable_xattr_fd(d, d.inode(ino), name);
  if (!fd.ok()) return (void)fuse_reply_err(req, fd.error());
  auto removed = sys::remove_xattr(fd->get(), name);
  fuse_reply_err(req, removed.ok() ? 0 : removed.error());
}

}  // namespace

void add_xattr_ops(fuse_lowlevel_ops& ops) {
  ops.getxattr = guarded<op_getxattr>;
  ops.listxattr = guarded<op_listxattr>;
  ops.setxattr = guarded<op_setxattr>;
  ops.removexattr = guarded<op_removexattr>;
}

}  // namespace layerfs
