// State shared by every request handler, and the pieces the op files have in common.
// fuse/op_*.cc only translate FUSE requests into calls on layers/ and reply.
#pragma once

#include <fuse_lowlevel.h>

#include <memory>

#include "fuse/inode_table.h"
#include "layers/layer_stack.h"

namespace layerfs {

// One place for what the kernel may cache and for how long. Lower layers are immutable while
// mounted (the kernel overlayfs contract), so everything read from them is cached long.
struct CachePolicy {
  double entry_timeout;  // positive and negative lookups
  double attr_timeout;
  bool keep_page_cache;  // keep file pages across opens
  bool cache_readdir;    // let the kernel cache directory listings
};

struct Daemon {
  std::shared_ptr<const LayerStack> stack;
  std::unique_ptr<InodeTable> table;
  CachePolicy cache;

  static Daemon& of(fuse_req_t req) { return *static_cast<Daemon*>(fuse_req_userdata(req)); }
  Inode& inode(fuse_ino_t id) { return table->from_id(id); }

  // Resolves `name` in `parent` and publishes the inode; fills `e` for the reply.
  Result<void> lookup(Inode& parent, const char* name, fuse_entry_param* e);
};

// The per-op groups register themselves into the ops table.
void add_entry_ops(fuse_lowlevel_ops& ops);
void add_dir_ops(fuse_lowlevel_ops& ops);
void add_file_ops(fuse_lowlevel_ops& ops);
void add_xattr_ops(fuse_lowlevel_ops& ops);
void add_write_ops(fuse_lowlevel_ops& ops);

fuse_lowlevel_ops make_ops();

}  // namespace layerfs
