#include "fuse/inode_table.h"

#include <fcntl.h>

#include "layers/sys/fs.h"

namespace layerfs {

int Inode::parent_fd() const {
  for (const LayerDir& d : parent->dirs) {
    if (d.layer == layer) return d.fd.get();
  }
  return -1;  // unreachable: a child is always resolved through its parent's copies
}

Result<struct stat> Inode::stat() const {
  auto st =
      is_dir() ? sys::stat_fd(dirs.front().fd.get()) : sys::stat_at(parent_fd(), name.c_str());
  if (!st.ok()) return st;
  st->st_ino = st_ino;
  if (merged_dir()) st->st_nlink = 1;
  return st;
}

Result<UniqueFd> Inode::open(int flags) const {
  if (is_dir()) return sys::reopen(dirs.front().fd.get(), flags);
  return sys::open_at(parent_fd(), name.c_str(), flags | O_NOFOLLOW);
}

Result<UniqueFd> Inode::path_fd() const {
  if (is_dir()) return sys::open_at(dirs.front().fd.get(), ".", O_PATH | O_DIRECTORY);
  return sys::open_path(parent_fd(), name.c_str());
}

InodeTable::InodeTable(std::shared_ptr<Inode> root) : root_(std::move(root)) { root_->nlookup = 1; }

fuse_ino_t InodeTable::id_of(const Inode& inode) const {
  if (&inode == root_.get()) return FUSE_ROOT_ID;
  return reinterpret_cast<fuse_ino_t>(&inode);
}

Inode& InodeTable::from_id(fuse_ino_t id) {
  if (id == FUSE_ROOT_ID) return *root_;
  return *reinterpret_cast<Inode*>(id);
}

std::shared_ptr<Inode> InodeTable::publish(std::shared_ptr<Inode> fresh) {
  std::shared_ptr<Inode> live;
  {
    std::lock_guard lock(mu_);
    if (fresh->key == root_->key) {
      live = root_;
    } else {
      auto [it, inserted] = by_key_.try_emplace(fresh->key, fresh);
      live = it->second;
    }
    ++live->nlookup;
  }
  // `fresh`, if unused, is released here, outside the lock: its fds close without it.
  return live;
}

void InodeTable::forget(fuse_ino_t id, uint64_t n) {
  if (id == FUSE_ROOT_ID) return;
  std::shared_ptr<Inode> dropped;
  {
    std::lock_guard lock(mu_);
    Inode& inode = from_id(id);
    if (&inode == root_.get()) return;
    inode.nlookup -= std::min(n, inode.nlookup);
    if (inode.nlookup != 0) return;
    auto it = by_key_.find(inode.key);
    if (it != by_key_.end() && it->second.get() == &inode) {
      dropped = std::move(it->second);
      by_key_.erase(it);
    }
  }
  // The last reference may go here, closing fds and releasing the parent, with no lock held.
}

size_t InodeTable::size() {
  std::lock_guard lock(mu_);
  return by_key_.size() + 1;
}

}  // namespace layerfs
