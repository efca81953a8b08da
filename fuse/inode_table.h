// The daemon's inodes and the table that maps FUSE node ids to them.
//
// Concurrency rules (they hold for every file in fuse/):
// 1. Lock order: table -> inode -> handle. Never take the table lock while holding an inode's.
// 2. nlookup is raised and lowered only under the table lock; an inode leaves the table when it
//    reaches zero, after forget has found it again by key (a newer inode may own the key).
// 3. Syscalls run with no lock held: work is computed outside and published under the lock.
// 4. Every request gets exactly one reply, sent with no lock held.
// 5. The root is pinned: it is never forgotten.
// 6. readdirplus sizes an entry before looking it up, so no lookup needs undoing.
//
// An inode is keyed by the identity (st_dev, st_ino) of the object that provides it, so hard
// links within a layer are one inode. Its FUSE node id is its address; the table's shared_ptr
// keeps it alive while the kernel knows it, and children keep their parents alive.
//
// Directories hold an O_PATH fd for each layer copy in their merge. Other objects hold no fd:
// they are reached by name from their parent's copy in their layer. One fd per file would
// exhaust RLIMIT_NOFILE on a large tree (the hard limit is often 20k or less for users).
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "layers/base/result.h"
#include "layers/base/unique_fd.h"
#include "layers/merge.h"

namespace layerfs {

struct InodeKey {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const InodeKey&) const = default;
};

struct InodeKeyHash {
  size_t operator()(const InodeKey& k) const noexcept {
    return std::hash<uint64_t>()(k.ino * 0x9E3779B97F4A7C15ull ^ k.dev);
  }
};

using Listing = std::vector<ListEntry>;

struct Inode : std::enable_shared_from_this<Inode> {
  InodeKey key;
  mode_t type = 0;      // S_IFMT bits
  uint64_t st_ino = 0;  // what the mount reports
  uint32_t layer = 0;   // layer of the object shown

  std::shared_ptr<Inode> parent;  // non-directories: reached as parent/name in `layer`
  std::string name;
  std::vector<LayerDir> dirs;  // directories: every layer copy in the merge, top first
  uint64_t parent_st_ino = 0;  // directories: st_ino of the parent, for ".."

  uint64_t nlookup = 0;  // guarded by the table lock

  std::mutex mu;                           // guards listing
  std::shared_ptr<const Listing> listing;  // built on first opendir; layers never change

  bool is_dir() const { return S_ISDIR(type); }
  // Kernel overlayfs reports nlink 1 for a directory merged from several layers.
  bool merged_dir() const { return dirs.size() > 1; }

  // The O_PATH fd of the parent's copy in this inode's layer (non-directories).
  int parent_fd() const;

  // lstat of the object shown, with st_ino and st_nlink as the mount reports them.
  Result<struct stat> stat() const;
  // Opens the object shown (never through a symlink).
  Result<UniqueFd> open(int flags) const;
  // An O_PATH fd on the object shown, for xattr calls.
  Result<UniqueFd> path_fd() const;
};

class InodeTable {
 public:
  explicit InodeTable(std::shared_ptr<Inode> root);

  Inode& root() { return *root_; }
  // The node id the kernel knows an inode by: FUSE_ROOT_ID for the root, else its address.
  fuse_ino_t id_of(const Inode& inode) const;
  Inode& from_id(fuse_ino_t id);

  // Publishes a freshly resolved inode, or finds the live inode with its key; either way the
  // returned inode's nlookup is raised by one.
  std::shared_ptr<Inode> publish(std::shared_ptr<Inode> fresh);

  void forget(fuse_ino_t id, uint64_t n);
  size_t size();

 private:
  std::mutex mu_;
  std::unordered_map<InodeKey, std::shared_ptr<Inode>, InodeKeyHash> by_key_;
  std::shared_ptr<Inode> root_;
};

}  // namespace layerfs
