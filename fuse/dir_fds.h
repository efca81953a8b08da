// The fds of directory copies, opened when needed and kept in a bounded cache.
//
// A directory inode knows its copies by identity (layer, dev, ino), not by an open fd: the
// number of fds the daemon holds must not grow with what the kernel caches (a find over 100,000
// directories, or 50 directories in each of 1,000 layers, under `ulimit -n 1024`). A copy not
// in the cache is opened again by name, from the nearest ancestor whose copy in that layer is
// cached (or the layer root; a copy a redirect had found is reopened where it was found), with
// openat2 confined below it and no symlinks followed, and
// checked to be the same object. Lower layers are immutable and the upper changes only through
// the mount, so a name leads to the same object for as long as the inode knows it; removing an
// upper directory forgets its entry, since its inode number may come back, and an fd opened
// before a forget is not cached after it (it may be the removed directory's). A reopen that
// finds nothing (a rename landing meanwhile) is tried once more with the names as they are then.
//
// An fd the cache drops stays open until the last request that borrowed it lets go (CopyFd).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "layers/base/result.h"
#include "layers/merge.h"

namespace layerfs {

class Inode;

class DirFds {
 public:
  explicit DirFds(size_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {}
  DirFds(const DirFds&) = delete;
  DirFds& operator=(const DirFds&) = delete;

  // The fd of `copy`, a copy of the directory `dir` (borrowed where the copy carries one, the
  // layer roots).
  Result<CopyFd> open(const Inode& dir, const DirRef& copy);
  // An fd opened on `copy` elsewhere: a directory just made, or one a lookup found, which it
  // began when removals() was `since` (kept only if nothing was forgotten meanwhile: it may be
  // the fd of a directory removed since).
  void offer(const DirRef& copy, UniqueFd fd);
  void offer(const DirRef& copy, UniqueFd fd, uint64_t since);
  // The path of `dir`'s copy in `layer` from the layer's root ("/a/b"), by the names and
  // redirects that lead there now.
  static std::string path_in_layer(const Inode& dir, uint32_t layer);
  // `copy` is gone from its layer: its identity may be reused.
  void forget(const DirRef& copy);
  // How many forgets there have been.
  uint64_t removals() const { return removals_.load(std::memory_order_acquire); }

  // The layer roots' fds, by layer (they outlive the cache): where copies a redirect had found
  // by their path from the root are reopened.
  void set_roots(std::vector<BorrowedFd> roots) { roots_ = std::move(roots); }

  size_t capacity() const { return capacity_; }
  size_t size();

 private:
  struct Key {
    uint32_t layer;
    dev_t dev;
    ino_t ino;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const noexcept {
      return std::hash<uint64_t>()((k.ino * 0x9E3779B97F4A7C15ull) ^ (k.dev << 20) ^ k.layer);
    }
  };
  static Key key_of(const DirRef& c) { return Key{c.layer, c.dev, c.ino}; }
  // Reopens `copy` by name (see the top of this file).
  Result<CopyFd> reopen(const Inode& dir, const DirRef& copy);
  std::shared_ptr<const UniqueFd> find(const Key& key);
  // Caches `fd` for `key`, replacing what is there, unless a forget came after `since`.
  void insert(const Key& key, std::shared_ptr<const UniqueFd> fd, uint64_t since);
  void clear();

  // Names are reopened in steps of at most this many bytes (below PATH_MAX).
  static constexpr size_t kMaxPath = 2048;

  const size_t capacity_;
  std::vector<BorrowedFd> roots_;
  std::mutex mu_;       // a leaf lock: nothing else is taken while it is held
  std::list<Key> lru_;  // most recently used first
  struct Entry {
    std::shared_ptr<const UniqueFd> fd;
    std::list<Key>::iterator pos;
  };
  std::unordered_map<Key, Entry, KeyHash> entries_;
  std::atomic<uint64_t> removals_{0};  // raised under mu_
};

}  // namespace layerfs
