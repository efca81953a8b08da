// The one function that fills the FUSE ops table, and the session's capability choices.
#include "fuse/daemon.h"

namespace layerfs {
namespace {

void op_init(void* userdata, fuse_conn_info* conn) {
  Daemon& d = *static_cast<Daemon*>(userdata);
  auto want = [conn](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
  want(FUSE_CAP_SPLICE_WRITE);  // read replies spliced from the layer file
  want(FUSE_CAP_SPLICE_MOVE);
  // Requests are read, never spliced in: the session's device io sees each one whole (it counts
  // them and reads what libfuse does not pass on, Requests::kill_suidgid).
  conn->want &= ~static_cast<unsigned>(FUSE_CAP_SPLICE_READ);
  want(FUSE_CAP_PARALLEL_DIROPS);
  want(FUSE_CAP_CACHE_SYMLINKS);
  want(FUSE_CAP_READDIRPLUS);
  want(FUSE_CAP_READDIRPLUS_AUTO);
  want(FUSE_CAP_ASYNC_READ);
  // open(O_TRUNC) arrives as one request instead of a truncate then an open, so a copy-up for
  // it needs no data.
  want(FUSE_CAP_ATOMIC_O_TRUNC);
  // POSIX ACLs need both: the kernel checks them, and sends the mode without the umask, which
  // the daemon applies unless a default ACL is inherited.
  const unsigned acl_caps = FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK;
  d.acl = d.config.acl_wanted && (conn->capable & acl_caps) == acl_caps;
  if (d.acl) conn->want |= acl_caps;
  // Layer files never change under the mount: do not drop pages on attribute changes.
  conn->want &= ~static_cast<unsigned>(FUSE_CAP_AUTO_INVAL_DATA);
  // Where files are not passed through, the kernel caches writes: 4 KiB writes cost one round
  // trip per 128 KiB instead of one each (passthrough and the writeback cache exclude each
  // other, and passthrough serves writes without any).
  if (d.writable() && d.config.writeback_wanted && !d.passthrough.will_pass_through()) {
    want(FUSE_CAP_WRITEBACK_CACHE);
  }
  d.writeback = (conn->want & FUSE_CAP_WRITEBACK_CACHE) != 0;
}

}  // namespace

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops ops{};
  ops.init = op_init;
  add_entry_ops(ops);
  add_dir_ops(ops);
  add_file_ops(ops);
  add_xattr_ops(ops);
  add_write_ops(ops);
  return ops;
}

}  // namespace layerfs
