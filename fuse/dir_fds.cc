#include "fuse/dir_fds.h"

#include <fcntl.h>

#include <string>
#include <utility>
#include <vector>

#include "fuse/inode_table.h"
#include "layers/sys/fs.h"

namespace layerfs {

std::shared_ptr<const UniqueFd> DirFds::find(const Key& key) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second.pos);
  return it->second.fd;
}

void DirFds::insert(const Key& key, std::shared_ptr<const UniqueFd> fd, uint64_t since) {
  std::shared_ptr<const UniqueFd> dropped;  // closed outside the lock
  std::lock_guard lock(mu_);
  if (removals_.load(std::memory_order_relaxed) != since) return;
  if (auto it = entries_.find(key); it != entries_.end()) {
    // The newer fd was opened and checked just now: it wins.
    dropped = std::exchange(it->second.fd, std::move(fd));
    lru_.splice(lru_.begin(), lru_, it->second.pos);
    return;
  }
  if (entries_.size() >= capacity_) {
    auto last = entries_.find(lru_.back());
    dropped = std::move(last->second.fd);
    entries_.erase(last);
    lru_.pop_back();
  }
  lru_.push_front(key);
  entries_.emplace(key, Entry{std::move(fd), lru_.begin()});
}

void DirFds::clear() {
  std::unordered_map<Key, Entry, KeyHash> dropped;
  std::lock_guard lock(mu_);
  dropped.swap(entries_);
  lru_.clear();
}

void DirFds::offer(const DirRef& copy, UniqueFd fd) { offer(copy, std::move(fd), removals()); }

void DirFds::offer(const DirRef& copy, UniqueFd fd, uint64_t since) {
  if (copy.fd >= 0 || !fd.valid()) return;
  insert(key_of(copy), std::make_shared<const UniqueFd>(std::move(fd)), since);
}

void DirFds::forget(const DirRef& copy) {
  std::shared_ptr<const UniqueFd> dropped;
  std::lock_guard lock(mu_);
  removals_.fetch_add(1, std::memory_order_acq_rel);
  if (auto it = entries_.find(key_of(copy)); it != entries_.end()) {
    dropped = std::move(it->second.fd);
    lru_.erase(it->second.pos);
    entries_.erase(it);
  }
}

size_t DirFds::size() {
  std::lock_guard lock(mu_);
  return entries_.size();
}

Result<CopyFd> DirFds::open(const Inode& dir, const DirRef& copy) {
  if (copy.fd >= 0) return CopyFd{nullptr, copy.fd};
  if (auto hit = find(key_of(copy))) return CopyFd{hit, hit->get()};
  auto fd = reopen(dir, copy);
  if (!fd.ok() && (fd.error() == ENOENT || fd.error() == ESTALE)) fd = reopen(dir, copy);
  return fd;
}

std::string DirFds::path_in_layer(const Inode& dir, uint32_t layer) {
  std::string path;
  std::shared_ptr<const Inode> keep;
  const Inode* node = &dir;
  for (;;) {
    auto [parent, name] = node->location();
    if (auto where = node->found_as(layer)) {
      if (where->starts_with('/')) return *where + path;
      name = std::move(*where);
    }
    if (!parent) return path.empty() ? std::string("/") : path;  // the root
    path = "/" + name + path;
    keep = std::move(parent);
    node = keep.get();
  }
}

Result<CopyFd> DirFds::reopen(const Inode& dir, const DirRef& copy) {
  const uint64_t since = removals();
  // Up the tree to a copy in the same layer that has an fd, collecting the names on the way:
  // each directory's own name in its parent's copy, or where a redirect had its copy found.
  std::vector<std::string> names;
  size_t length = 0;
  std::shared_ptr<const Inode> keep;  // the ancestor whose copy is the start
  const Inode* node = &dir;
  CopyFd base;
  for (;;) {
    auto [parent, name] = node->location();
    if (auto where = node->found_as(copy.layer)) {
      if (where->starts_with('/')) {  // a path from the layer's root
        if (copy.layer >= roots_.size() || !roots_[copy.layer].valid()) return Errno{ESTALE};
        names.push_back(where->substr(1));
        base = CopyFd{nullptr, roots_[copy.layer]};
        break;
      }
      name = std::move(*where);  // a name in the parent's copy
    }
    if (!parent) return Errno{ESTALE};  // only the root has no parent, and its copies have fds
    length += name.size() + 1;
    names.push_back(std::move(name));
    auto ref = parent->copy_ref(copy.layer);
    if (!ref) return Errno{ESTALE};  // the parent no longer merges that layer
    keep = std::move(parent);
    node = keep.get();
    if (ref->fd >= 0) {
      base = CopyFd{nullptr, ref->fd};
      break;
    }
    if (auto hit = find(key_of(*ref))) {
      base = CopyFd{hit, hit->get()};
      break;
    }
    if (length > kMaxPath) {
      // A deep tree: the ancestor first (cached on the way), then the rest from it.
      auto step = this->open(*keep, *ref);
      if (!step.ok()) return step.err();
      base = std::move(*step);
      break;
    }
  }
  std::string path;
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    if (!path.empty()) path += '/';
    path += *it;
  }
  auto fd = sys::open_beneath(base.get(), path.c_str(), O_PATH | O_DIRECTORY);
  if (!fd.ok() && fd.error() == EMFILE) {
    // Requests in flight hold more than the limit leaves beside the cache: let it go.
    clear();
    fd = sys::open_beneath(base.get(), path.c_str(), O_PATH | O_DIRECTORY);
  }
  if (!fd.ok()) return fd.err();
  auto st = sys::stat_fd(fd->get());
  if (!st.ok()) return st.err();
  if (st->st_dev != copy.dev || st->st_ino != copy.ino) return Errno{ESTALE};
  auto shared = std::make_shared<const UniqueFd>(std::move(*fd));
  insert(key_of(copy), shared, since);
  return CopyFd{shared, shared->get()};
}

}  // namespace layerfs
