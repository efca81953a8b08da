// An open file: the fd of the object, and enough to notice that the object was copied up.
#pragma once

#include <fuse_lowlevel.h>

#include <memory>
#include <mutex>
#include <vector>

#include "fuse/daemon.h"
#include "fuse/inode_table.h"

namespace layerfs {

struct FileHandle : Handle {
  // `may_move`: opened on a lower file of a writable mount, so a copy-up may move it later.
  // `direct`: opened with O_DIRECT, so writes go from a buffer aligned for the filesystem.
  FileHandle(std::shared_ptr<Inode> i, UniqueFd f, uint32_t l, bool may_move_to_upper,
             bool direct_io = false)
      : inode(std::move(i)),
        may_move(may_move_to_upper && l != 0),
        direct(direct_io),
        fd(std::move(f)),
        layer(l) {}

  static FileHandle* of(fuse_file_info* fi);
  // The fd to use now: the upper copy's once the object has been copied up.
  BorrowedFd current_fd();

  std::shared_ptr<Inode> inode;
  const bool may_move;  // false: fd never changes, and is read without the lock
  const bool direct;
  std::mutex mu;  // guards fd, layer, retired
  UniqueFd fd;
  uint32_t layer;
  std::vector<UniqueFd> retired;
  Passthrough::Io io = Passthrough::Io::kUncounted;
};

// Ends an open: its passthrough use, then the handle.
void release_handle(Daemon& d, FileHandle* h);

}  // namespace layerfs
