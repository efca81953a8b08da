#include "fuse/inode_table.h"

#include <fcntl.h>

#include <algorithm>

#include "layers/sys/fs.h"
#include "layers/sys/xattr.h"

namespace layerfs {

DirFds* Inode::dir_fds = nullptr;

Inode::Where Inode::where() const {
  Where w;
  {
    std::lock_guard lock(mu_);
    w.parent = parent_;
    w.name = name_;
    w.layer = layer_;
  }
  if (w.parent) {
    auto dir = w.parent->copy_fd(w.layer);
    if (dir.ok()) {
      w.dir = std::move(*dir);
      w.dir_fd = w.dir.get();
    } else {
      w.dir_error = dir.error();
    }
  }
  return w;
}

std::pair<std::shared_ptr<Inode>, std::string> Inode::location() const {
  std::lock_guard lock(mu_);
  return {parent_, name_};
}

std::vector<DirRef> Inode::copies() const {
  std::lock_guard lock(mu_);
  return dirs_;
}

std::optional<DirRef> Inode::copy_ref(uint32_t layer) const {
  std::lock_guard lock(mu_);
  for (const DirRef& d : dirs_) {
    if (d.layer == layer) return d;
  }
  return std::nullopt;
}

Result<CopyFd> Inode::copy_fd(uint32_t layer) const {
  auto ref = copy_ref(layer);
  if (!ref) return Errno{ENOENT};
  return dir_fds->open(*this, *ref);
}

bool Inode::merged_dir() const {
  std::lock_guard lock(mu_);
  return dirs_.size() > 1;
}

bool Inode::has_lower_copies() const {
  std::lock_guard lock(mu_);
  return std::any_of(dirs_.begin(), dirs_.end(), [](const DirRef& d) { return d.layer != 0; });
}

uint32_t Inode::layer() const {
  std::lock_guard lock(mu_);
  return is_dir() && !dirs_.empty() ? dirs_.front().layer : layer_;
}

uint64_t Inode::parent_st_ino() const {
  std::lock_guard lock(mu_);
  return parent_ ? parent_->st_ino() : st_ino();  // st_ino() takes no lock
}

Result<struct stat> Inode::stat() const {
  Result<struct stat> st = Errno{ENOENT};
  bool merged = false;
  if (BorrowedFd pinned = pinned_fd(); pinned.valid()) {
    st = sys::stat_fd(pinned);
    merged = is_dir() && merged_dir();
  } else if (is_dir()) {
    DirRef top;
    {
      std::lock_guard lock(mu_);
      top = dirs_.front();
      merged = dirs_.size() > 1;
    }
    auto fd = dir_fds->open(*this, top);
    if (!fd.ok()) return fd.err();
    st = sys::stat_fd(fd->get());
  } else {
    Where w = where();
    if (w.dir_fd < 0) return Errno{w.dir_error};
    st = sys::stat_at(w.dir_fd, w.name.c_str());
  }
  if (!st.ok()) return st;
  st->st_ino = st_ino();
  if (merged) st->st_nlink = 1;
  return st;
}

Result<UniqueFd> Inode::open(int flags) const {
  if (BorrowedFd pinned = pinned_fd(); pinned.valid()) return sys::reopen(pinned, flags);
  if (is_dir()) {
    auto fd = copy_fd(layer());
    if (!fd.ok()) return fd.err();
    return sys::reopen(fd->get(), flags);
  }
  Where w = where();
  if (w.dir_fd < 0) return Errno{w.dir_error};
  return sys::open_at(w.dir_fd, w.name.c_str(), flags | O_NOFOLLOW);
}

Result<UniqueFd> Inode::path_fd() const {
  if (BorrowedFd pinned = pinned_fd(); pinned.valid()) return sys::dup_fd(pinned);
  if (is_dir()) {
    auto fd = copy_fd(layer());
    if (!fd.ok()) return fd.err();
    return sys::open_at(fd->get(), ".", O_PATH | O_DIRECTORY);
  }
  Where w = where();
  if (w.dir_fd < 0) return Errno{w.dir_error};
  return sys::open_path(w.dir_fd, w.name.c_str());
}

void Inode::init_location(std::shared_ptr<Inode> parent, std::string name, uint32_t layer,
                          std::vector<DirRef> dirs) {
  std::lock_guard lock(mu_);
  parent_ = std::move(parent);
  name_ = std::move(name);
  layer_ = layer;
  dirs_ = std::move(dirs);
}

void Inode::init_location(std::shared_ptr<Inode> parent, std::string name, uint32_t layer,
                          std::vector<LayerDir> dirs) {
  std::vector<DirRef> refs;
  refs.reserve(dirs.size());
  for (LayerDir& d : dirs) {
    if (!d.found_as.empty()) set_found_as(d.layer, std::move(d.found_as));
    DirRef ref = d.ref();
    ref.fd = BorrowedFd();  // an fd the lookup kept goes with `dirs`: the cache has its own
    refs.push_back(ref);
  }
  init_location(std::move(parent), std::move(name), layer, std::move(refs));
}

std::optional<std::string> Inode::found_as(uint32_t layer) const {
  std::lock_guard lock(mu_);
  if (!found_as_) return std::nullopt;
  for (const FoundAs& f : *found_as_) {
    if (f.layer == layer) return f.where;
  }
  return std::nullopt;
}

void Inode::set_found_as(uint32_t layer, std::string where) {
  std::lock_guard lock(mu_);
  if (!found_as_) found_as_ = std::make_unique<std::vector<FoundAs>>();
  for (FoundAs& f : *found_as_) {
    if (f.layer == layer) {
      f.where = std::move(where);
      return;
    }
  }
  found_as_->push_back(FoundAs{layer, std::move(where)});
}

void Inode::moved_to_upper(std::optional<DirRef> upper_copy) {
  UniqueFd lower_pin;  // closed with no lock held
  std::lock_guard lock(mu_);
  layer_ = 0;
  lower_pin = std::move(pinned_);  // a pin on the lower copy must not outlive it
  if (upper_copy) dirs_.insert(dirs_.begin(), *upper_copy);
  version_.fetch_add(1, std::memory_order_acq_rel);
  listing_.reset();
}

void Inode::drop_lower_copies() {
  std::lock_guard lock(mu_);
  std::erase_if(dirs_, [](const DirRef& d) { return d.layer != 0; });
  found_as_.reset();
  version_.fetch_add(1, std::memory_order_acq_rel);
  listing_.reset();
}

void Inode::renamed(std::shared_ptr<Inode> parent, std::string name) {
  std::lock_guard lock(mu_);
  parent_ = std::move(parent);
  name_ = std::move(name);
}

void Inode::pin(UniqueFd path_fd) {
  std::lock_guard lock(mu_);
  if (!pinned_.valid()) pinned_ = std::move(path_fd);
}

BorrowedFd Inode::pinned_fd() const {
  std::lock_guard lock(mu_);
  return pinned_.get();
}

Listing::Listing(std::vector<ListEntry> entries, bool indexed, uint32_t version)
    : entries_(std::move(entries)), indexed_(indexed), version_(version) {
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
  if (!listing->indexed()) return;
  // Under the lock that drop_listing raises the version under: a change that lands between the
  // check and the store cannot leave a stale listing cached.
  std::lock_guard lock(mu_);
  if (!listing_ && listing->version() == version()) listing_ = std::move(listing);
}

void Inode::drop_listing() {
  std::shared_ptr<const Listing> old;
  {
    std::lock_guard lock(mu_);
    version_.fetch_add(1, std::memory_order_acq_rel);
    old = std::move(listing_);
  }
  // A big listing is freed here, with no lock held.
}

InodeTable::InodeTable(std::shared_ptr<Inode> root) : root_(std::move(root)) {
  root_->nlookup_ = 1;
  root_->hashed_ = true;
  by_key_.insert(root_.get());
}

InodeTable::~InodeTable() {
  std::vector<std::shared_ptr<Inode>> live;
  auto take = [&](Inode* i) {
    if (i->self_) live.push_back(std::move(i->self_));
  };
  for (Inode* i : by_key_) take(i);
  for (auto& [key, i] : by_alias_) take(i);
  for (Inode* i : orphans_) take(i);
  by_key_.clear();
  by_alias_.clear();
  aliases_.clear();
  orphans_.clear();
  // `live` goes last: each inode, and the parents it kept, are freed here.
}

fuse_ino_t InodeTable::id_of(const Inode& inode) const {
  if (&inode == root_.get()) return FUSE_ROOT_ID;
  return reinterpret_cast<fuse_ino_t>(&inode);
}

Inode& InodeTable::from_id(fuse_ino_t id) {
  if (id == FUSE_ROOT_ID) return *root_;
  return *reinterpret_cast<Inode*>(id);
}

Inode* InodeTable::find_locked(const InodeKey& key) const {
  if (auto it = by_key_.find(key); it != by_key_.end()) return *it;
  if (auto it = by_alias_.find(key); it != by_alias_.end()) return it->second;
  return nullptr;
}

std::shared_ptr<Inode> InodeTable::publish(std::shared_ptr<Inode> fresh) {
  std::shared_ptr<Inode> live;
  {
    std::lock_guard lock(mu_);
    if (Inode* found = find_locked(fresh->key())) {
      live = found->shared_from_this();
    } else {
      live = fresh;
      by_key_.insert(fresh.get());
      fresh->hashed_ = true;
      fresh->self_ = fresh;
      ++live_count_;
    }
    ++live->nlookup_;
  }
  // `fresh`, if unused, is released here, outside the lock: its fds close without it.
  return live;
}

std::shared_ptr<Inode> InodeTable::find(const InodeKey& key) {
  std::lock_guard lock(mu_);
  Inode* found = find_locked(key);
  return found ? found->shared_from_this() : nullptr;
}

void InodeTable::alias(Inode& inode, const InodeKey& key) {
  std::lock_guard lock(mu_);
  if (&inode != root_.get() && inode.self_ == nullptr) return;  // not live
  if (inode.key() == key) return;
  // A stale owner (an object whose name went away unnoticed): the newer identity wins.
  auto orphaned = [&](Inode* old) {
    if (!old->hashed_ && !old->aliased_ && old->self_) orphans_.insert(old);
  };
  if (auto it = by_key_.find(key); it != by_key_.end() && *it != &inode) {
    Inode* old = *it;
    old->hashed_ = false;
    by_key_.erase(it);
    orphaned(old);
  }
  if (auto it = by_alias_.find(key); it != by_alias_.end() && it->second != &inode) {
    Inode* old = it->second;
    aliases_.erase(old);
    old->aliased_ = false;
    by_alias_.erase(it);
    orphaned(old);
  }
  if (auto mine = aliases_.find(&inode); mine != aliases_.end()) {
    if (mine->second == key) return;
    by_alias_.erase(mine->second);
    aliases_.erase(mine);
  }
  by_alias_[key] = &inode;
  aliases_[&inode] = key;
  inode.aliased_ = true;
}

void InodeTable::unhash_locked(Inode& inode) {
  if (inode.hashed_) {
    if (auto it = by_key_.find(inode.key()); it != by_key_.end() && *it == &inode)
      by_key_.erase(it);
  }
  if (inode.aliased_) {
    if (auto a = aliases_.find(&inode); a != aliases_.end()) {
      if (auto it = by_alias_.find(a->second); it != by_alias_.end() && it->second == &inode) {
        by_alias_.erase(it);
      }
      aliases_.erase(a);
    }
  }
  inode.hashed_ = inode.aliased_ = false;
}

void InodeTable::unhash(Inode& inode) {
  std::lock_guard lock(mu_);
  if (&inode == root_.get()) return;
  unhash_locked(inode);
  if (inode.self_) orphans_.insert(&inode);
}

void InodeTable::forget(fuse_ino_t id, uint64_t n) {
  if (id == FUSE_ROOT_ID) return;
  std::shared_ptr<Inode> dropped;
  {
    std::lock_guard lock(mu_);
    Inode& inode = from_id(id);
    if (inode.self_ == nullptr) return;
    inode.nlookup_ -= std::min(n, inode.nlookup_);
    if (inode.nlookup_ != 0) return;
    unhash_locked(inode);
    orphans_.erase(&inode);
    dropped = std::move(inode.self_);
    --live_count_;
  }
  // The last reference may go here, closing fds and releasing the parent, with no lock held.
}

size_t InodeTable::size() {
  std::lock_guard lock(mu_);
  return live_count_ + 1;
}

}  // namespace layerfs
