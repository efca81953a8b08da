#include "fuse/inode_table.h"

#include <fcntl.h>

#include <algorithm>

#include "layers/sys/fs.h"

namespace layerfs {

Inode::Where Inode::where() const {
  Where w;
  {
    std::lock_guard lock(mu_);
    w.parent = parent_;
    w.name = name_;
    w.layer = layer_;
  }
  if (w.parent) w.dir_fd = w.parent->copy_fd(w.layer);
  return w;
}

std::vector<DirRef> Inode::copies() const {
  std::lock_guard lock(mu_);
  return refs(dirs_);
}

int Inode::copy_fd(uint32_t layer) const {
  std::lock_guard lock(mu_);
  for (const LayerDir& d : dirs_) {
    if (d.layer == layer) return d.fd.get();
  }
  return -1;
}

bool Inode::merged_dir() const {
  std::lock_guard lock(mu_);
  return dirs_.size() > 1;
}

bool Inode::has_lower_copies() const {
  std::lock_guard lock(mu_);
  return std::any_of(dirs_.begin(), dirs_.end(), [](const LayerDir& d) { return d.layer != 0; });
}

uint32_t Inode::layer() const {
  std::lock_guard lock(mu_);
  return is_dir() && !dirs_.empty() ? dirs_.front().layer : layer_;
}

uint64_t Inode::parent_st_ino() const {
  std::lock_guard lock(mu_);
  return parent_st_ino_;
}

Result<struct stat> Inode::stat() const {
  Result<struct stat> st = Errno{ENOENT};
  bool merged = false;
  if (is_dir()) {
    int fd;
    {
      std::lock_guard lock(mu_);
      fd = dirs_.front().fd.get();
      merged = dirs_.size() > 1;
    }
    st = sys::stat_fd(fd);
  } else if (int pinned = pinned_fd(); pinned >= 0) {
    st = sys::stat_fd(pinned);
  } else {
    Where w = where();
    st = sys::stat_at(w.dir_fd, w.name.c_str());
  }
  if (!st.ok()) return st;
  st->st_ino = st_ino();
  if (merged) st->st_nlink = 1;
  return st;
}

Result<UniqueFd> Inode::open(int flags) const {
  if (is_dir()) {
    int fd;
    {
      std::lock_guard lock(mu_);
      fd = dirs_.front().fd.get();
    }
    return sys::reopen(fd, flags);
  }
  if (int pinned = pinned_fd(); pinned >= 0) return sys::reopen(pinned, flags);
  Where w = where();
  return sys::open_at(w.dir_fd, w.name.c_str(), flags | O_NOFOLLOW);
}

Result<UniqueFd> Inode::path_fd() const {
  if (is_dir()) {
    int fd;
    {
      std::lock_guard lock(mu_);
      fd = dirs_.front().fd.get();
    }
    return sys::open_at(fd, ".", O_PATH | O_DIRECTORY);
  }
  if (int pinned = pinned_fd(); pinned >= 0) return sys::dup_fd(pinned);
  Where w = where();
  return sys::open_path(w.dir_fd, w.name.c_str());
}

void Inode::init_location(std::shared_ptr<Inode> parent, std::string name, uint32_t layer,
                          std::vector<LayerDir> dirs, uint64_t parent_st_ino) {
  std::lock_guard lock(mu_);
  parent_ = std::move(parent);
  name_ = std::move(name);
  layer_ = layer;
  dirs_ = std::move(dirs);
  parent_st_ino_ = parent_st_ino;
}

void Inode::moved_to_upper(std::optional<LayerDir> upper_copy) {
  std::lock_guard lock(mu_);
  layer_ = 0;
  if (upper_copy) dirs_.insert(dirs_.begin(), std::move(*upper_copy));
  listing_.reset();
}

void Inode::drop_lower_copies() {
  std::lock_guard lock(mu_);
  // The fds go with the inode; keep them open until then, a snapshot may still use them.
  for (auto it = dirs_.begin(); it != dirs_.end();) {
    if (it->layer != 0) {
      retired_.push_back(std::move(it->fd));
      it = dirs_.erase(it);
    } else {
      ++it;
    }
  }
  listing_.reset();
}

void Inode::renamed(std::shared_ptr<Inode> parent, std::string name, uint64_t parent_st_ino) {
  std::lock_guard lock(mu_);
  parent_ = std::move(parent);
  name_ = std::move(name);
  parent_st_ino_ = parent_st_ino;
}

void Inode::pin(UniqueFd path_fd) {
  std::lock_guard lock(mu_);
  if (!pinned_.valid()) pinned_ = std::move(path_fd);
}

int Inode::pinned_fd() const {
  std::lock_guard lock(mu_);
  return pinned_.get();
}

Listing::Listing(std::vector<ListEntry> entries, bool indexed)
    : entries_(std::move(entries)), indexed_(indexed) {
  if (!indexed_) return;
  by_name_.reserve(entries_.size());
  for (size_t i = 0; i < entries_.size(); ++i) {
    by_name_.emplace(entries_[i].name, static_cast<uint32_t>(i));
  }
}

const ListEntry* Listing::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &entries_[it->second];
}

std::shared_ptr<const Listing> Inode::listing() const {
  std::lock_guard lock(mu_);
  return listing_;
}

void Inode::set_listing(std::shared_ptr<const Listing> listing) {
  std::lock_guard lock(mu_);
  if (!listing_) listing_ = std::move(listing);
}

void Inode::drop_listing() {
  std::lock_guard lock(mu_);
  listing_.reset();
}

InodeTable::InodeTable(std::shared_ptr<Inode> root) : root_(std::move(root)) {
  root_->nlookup_ = 1;
  root_->keys_.push_back(root_->key());
  by_key_[root_->key()] = root_.get();
}

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
    auto it = by_key_.find(fresh->key());
    if (it != by_key_.end()) {
      live = it->second == root_.get() ? root_ : live_.at(it->second);
    } else {
      live = fresh;
      by_key_[fresh->key()] = fresh.get();
      fresh->keys_.push_back(fresh->key());
      live_[fresh.get()] = fresh;
    }
    ++live->nlookup_;
  }
  // `fresh`, if unused, is released here, outside the lock: its fds close without it.
  return live;
}

std::shared_ptr<Inode> InodeTable::find(const InodeKey& key) {
  std::lock_guard lock(mu_);
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return nullptr;
  return it->second == root_.get() ? root_ : live_.at(it->second);
}

void InodeTable::alias(Inode& inode, const InodeKey& key) {
  std::lock_guard lock(mu_);
  if (&inode != root_.get() && !live_.contains(&inode)) return;
  auto [it, inserted] = by_key_.try_emplace(key, &inode);
  if (!inserted) {
    if (it->second == &inode) return;
    // A stale owner (an object whose name went away unnoticed): the newer identity wins.
    Inode* old = it->second;
    auto& keys = old->keys_;
    keys.erase(std::remove(keys.begin(), keys.end(), key), keys.end());
    it->second = &inode;
  }
  inode.keys_.push_back(key);
}

void InodeTable::unhash(Inode& inode) {
  std::lock_guard lock(mu_);
  if (&inode == root_.get()) return;
  for (const InodeKey& k : inode.keys_) {
    auto it = by_key_.find(k);
    if (it != by_key_.end() && it->second == &inode) by_key_.erase(it);
  }
  inode.keys_.clear();
}

void InodeTable::forget(fuse_ino_t id, uint64_t n) {
  if (id == FUSE_ROOT_ID) return;
  std::shared_ptr<Inode> dropped;
  {
    std::lock_guard lock(mu_);
    auto it = live_.find(reinterpret_cast<Inode*>(id));
    if (it == live_.end()) return;
    Inode& inode = *it->second;
    inode.nlookup_ -= std::min(n, inode.nlookup_);
    if (inode.nlookup_ != 0) return;
    for (const InodeKey& k : inode.keys_) {
      auto kt = by_key_.find(k);
      if (kt != by_key_.end() && kt->second == &inode) by_key_.erase(kt);
    }
    dropped = std::move(it->second);
    live_.erase(it);
  }
  // The last reference may go here, closing fds and releasing the parent, with no lock held.
}

size_t InodeTable::size() {
  std::lock_guard lock(mu_);
  return live_.size() + 1;
}

}  // namespace layerfs
