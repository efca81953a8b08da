// The daemon's inodes and the table that maps FUSE node ids and object identities to them.
//
// Locks (they hold for every file in fuse/), in the order the code takes them:
// 1. Inode::copy_up_mu (per object): held while that object is copied up, the one lock held
//    across syscalls. tree::copy_up takes the child's before its parent's (the parents are
//    copied first, from inside the child's copy-up): child before parent, never the reverse.
//    It guards nothing but the copy-up itself; only a copy-up of the same object waits on it.
// 2. InodeTable::mu_ (the table): the maps from identities and node ids to inodes, every
//    inode's nlookup_, self_, hashed_ and aliased_.
// 3. Inode::mu_ (per inode): parent_, name_, layer_, dirs_, found_as_, listing_, pinned_. Never
//    two at once: copy what is needed out of one (Inode::where, Inode::copies) and let go
//    before taking the next. Taken after the table's, never before.
// 4. FileHandle::mu (per open file): fd, layer, retired. After an inode's (current_fd asks the
//    inode with the handle unlocked).
// 3a. Passthrough::mu_ (the mount's passthrough uses): taken with no other lock held, and takes
//    an inode's mu_ under it (to read its layer).
// 5. Leaf locks, under which nothing else is taken: DirFds::mu_ (the fd cache),
//    OpenHandles::mu_ (the handles the kernel holds),
//    LayerStack::overflow_mu_ (the inode-number overflow range).
// Rules:
// - No syscall under a lock but copy_up_mu: work is computed outside and published under the
//   lock; fds are closed after the lock is let go.
// - An fd that may be borrowed is retired, not closed, when what it served goes away: the cache
//   hands out shared owners (CopyFd), so a dropped copy's fd closes when the last request that
//   borrowed it lets go; an open file's old fd waits in FileHandle::retired until release.
// - nlookup is raised and lowered only under the table lock; an inode leaves the table when it
//   reaches zero, found by its address (never by a key another inode may own now).
// - Every request gets exactly one reply, sent with no lock held. The root is pinned: never
//   forgotten, known to the kernel as FUSE_ROOT_ID. readdirplus sizes an entry before looking
//   it up; a reply that cannot be sent is undone.
// The kernel's VFS already serialises namespace changes within a directory (create, unlink,
// rename hold the directory's lock), so the daemon only keeps its own state consistent.
//
// An inode is found by the identity (st_dev, st_ino) of the object that provides it, so hard
// links within a layer are one inode. A copy-up adds the upper copy's identity as an alias; an
// object whose last name is removed is unhashed, so a reused inode number never finds it.
//
// No inode holds an fd of its own (but a pinned object, below): directories know each layer
// copy in their merge by identity, and borrow its fd from the bounded DirFds cache (the layer
// roots' fds belong to the LayerStack); other objects are reached by name from their parent's
// copy in their layer. An fd per cached object would exhaust RLIMIT_NOFILE on a large tree (the
// hard limit is 1,024 or 20,000 on many machines).
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "fuse/dir_fds.h"
#include "layers/base/result.h"
#include "layers/base/unique_fd.h"
#include "layers/merge.h"

namespace layerfs {

struct InodeKey {
  dev_t dev = 0;
  ino_t ino = 0;
  // Nonzero for one name of a lower hard-link pair in a writable mount: copying that name up
  // breaks the link (as in kernel overlayfs), so each name is an inode of its own.
  uint64_t link = 0;
  bool operator==(const InodeKey&) const = default;
};

struct InodeKeyHash {
  size_t operator()(const InodeKey& k) const noexcept {
    return std::hash<uint64_t>()((k.ino * 0x9E3779B97F4A7C15ull ^ k.dev) + k.link);
  }
};

// A mutex in 4 bytes (std::mutex takes 40), for the two locks every inode carries: a daemon
// caches hundreds of thousands of inodes. Waiters sleep on a futex (C++20 atomic wait).
class TinyMutex {
 public:
  void lock() {
    while (state_.exchange(1, std::memory_order_acquire) != 0)
      state_.wait(1, std::memory_order_relaxed);
  }
  void unlock() {
    // A full barrier (not a plain release store) before notify looks for sleepers.
    state_.exchange(0, std::memory_order_acq_rel);
    state_.notify_one();
  }

 private:
  std::atomic<uint32_t> state_{0};
};

// A directory's merged listing. For a directory merged from many layer copies it also indexes
// the names, and lookups use it instead of a stat in every copy (kernel overlayfs stats each
// layer in turn; a name at the bottom of 500 layers costs 500 lookups).
class Listing {
 public:
  // `version`: the directory's listing version when the layers were read (Inode::version).
  Listing(std::vector<ListEntry> entries, bool indexed, uint32_t version);
  Listing(const Listing&) = delete;
  Listing& operator=(const Listing&) = delete;

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const ListEntry& operator[](size_t i) const { return entries_[i]; }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }

  bool indexed() const { return indexed_; }
  uint32_t version() const { return version_; }
  // The entry for `name`, or null; only meaningful on an indexed listing.
  const ListEntry* find(std::string_view name) const;

 private:
  std::vector<ListEntry> entries_;
  std::unordered_map<std::string_view, uint32_t> by_name_;  // views into entries_
  bool indexed_;
  uint32_t version_;
};

class Inode : public std::enable_shared_from_this<Inode> {
 public:
  Inode(InodeKey key, mode_t type, uint64_t st_ino) : key_(key), type_(type), st_ino_(st_ino) {}

  const InodeKey& key() const { return key_; }
  mode_t type() const { return type_; }
  bool is_dir() const { return S_ISDIR(type_); }
  uint64_t st_ino() const { return st_ino_.load(std::memory_order_relaxed); }
  void set_st_ino(uint64_t v) { st_ino_.store(v, std::memory_order_relaxed); }
  // A newer inode shows the object to new opens (Daemon::supersede); this one serves only the
  // handles opened before.
  bool superseded() const { return superseded_.load(std::memory_order_acquire); }
  void set_superseded() { superseded_.store(true, std::memory_order_release); }

  // Where directories' copies get their fds (one per daemon, set before the first request).
  static DirFds* dir_fds;

  // Where the object shown lives: the parent's copy in the object's layer, and the name.
  struct Where {
    std::shared_ptr<Inode> parent;
    CopyFd dir;         // the parent's copy, held open for as long as this lives
    BorrowedFd dir_fd;  // dir.get(); -1 when it could not be opened (the error is dir_error)
    int dir_error = 0;
    std::string name;
    uint32_t layer = 0;
  };
  Where where() const;  // not for the root

  // The parent and the name, as they are now (null parent for the root).
  std::pair<std::shared_ptr<Inode>, std::string> location() const;

  // Directories: a snapshot of the copies in the merge, top first. Only the root's carry fds
  // (the layer roots'); the others lend theirs through a CopyFds (fds_for).
  std::vector<DirRef> copies() const;
  // Directories: the copy in `layer`, if it takes part in the merge.
  std::optional<DirRef> copy_ref(uint32_t layer) const;
  // Directories: the fd of the copy in `layer` (ENOENT where there is none).
  Result<CopyFd> copy_fd(uint32_t layer) const;
  // The CopyFds that lends this directory's copies their fds, for the merge functions.
  class Fds : public CopyFds {
   public:
    explicit Fds(const Inode& dir) : dir_(dir), since_(dir_fds->removals()) {}
    Result<CopyFd> open(const DirRef& copy) override { return dir_fds->open(dir_, copy); }
    void offer(const DirRef& copy, UniqueFd fd) override {
      dir_fds->offer(copy, std::move(fd), since_);
    }

   private:
    const Inode& dir_;
    const uint64_t since_;  // fds opened by this merge are not cached after a forget
  };
  Fds fds() const { return Fds(*this); }
  // Directories merged from more than one copy (they report st_nlink 1, as kernel overlayfs).
  bool merged_dir() const;
  // Directories: whether any copy is below the upper (layer 0).
  bool has_lower_copies() const;
  uint32_t layer() const;
  uint64_t parent_st_ino() const;

  // lstat of the object shown, with st_ino and st_nlink as the mount reports them.
  Result<struct stat> stat() const;
  // Opens the object shown (never through a symlink).
  Result<UniqueFd> open(int flags) const;
  // An O_PATH fd on the object shown, for xattr and metadata calls.
  Result<UniqueFd> path_fd() const;

  // Set up once, before the inode is published. Copies found through a redirect come with
  // where they were found (LayerDir::found_as), which the inode keeps (found_as).
  void init_location(std::shared_ptr<Inode> parent, std::string name, uint32_t layer,
                     std::vector<DirRef> dirs);
  void init_location(std::shared_ptr<Inode> parent, std::string name, uint32_t layer,
                     std::vector<LayerDir> dirs);
  // Directories: where the copy in `layer` is, when that is not the directory's own name in
  // its parent's copy (see LayerDir::found_as).
  std::optional<std::string> found_as(uint32_t layer) const;
  // Records it (a rename is about to move the directory away from the name its lower copies
  // have: their paths from the layer roots).
  void set_found_as(uint32_t layer, std::string where);
  // After a copy-up: the object now lives in the upper; a directory gains its upper copy.
  void moved_to_upper(std::optional<DirRef> upper_copy);
  // After its upper copy was made opaque: the lower copies no longer take part.
  void drop_lower_copies();
  // After a rename.
  void renamed(std::shared_ptr<Inode> parent, std::string name);
  // An upper file with more than one link is held by an O_PATH fd, since the name it was found
  // by may be removed while other names remain; so is an object whose name is removed while
  // the kernel still holds it (open, or a working directory).
  void pin(UniqueFd path_fd);
  BorrowedFd pinned_fd() const;

  // Directories: the version of what they show, raised by every change to it (drop_listing). A
  // listing built at the current version is exact.
  uint32_t version() const { return version_.load(std::memory_order_acquire); }
  // The cached listing: kept only for indexed listings, which lookups use; others live as long
  // as the directory handles reading them (the kernel caches what it has read).
  std::shared_ptr<const Listing> listing() const;
  void set_listing(std::shared_ptr<const Listing> listing);
  void drop_listing();

  TinyMutex copy_up_mu;  // held while this object is copied up (lock 1)

 private:
  friend class InodeTable;
  const InodeKey key_;
  const mode_t type_;
  std::atomic<bool> superseded_{false};
  std::atomic<uint64_t> st_ino_;

  mutable TinyMutex mu_;
  std::atomic<uint32_t> version_{0};
  std::shared_ptr<Inode> parent_;
  std::string name_;
  uint32_t layer_ = 0;
  std::vector<DirRef> dirs_;
  std::shared_ptr<const Listing> listing_;
  UniqueFd pinned_;
  struct FoundAs {
    uint32_t layer;
    std::string where;
  };
  std::unique_ptr<std::vector<FoundAs>> found_as_;  // few directories have any

  // Guarded by the table lock.
  uint64_t nlookup_ = 0;
  std::shared_ptr<Inode> self_;  // the kernel's reference: set while nlookup_ > 0
  bool hashed_ = false;          // key_ finds this inode in the table
  bool aliased_ = false;         // so does an alias (InodeTable::aliases_)
};

// Marks a directory as changing for as long as it lives: its listing is dropped (its version
// raised) before the change and again after it, on every way out, so that no lookup trusts a
// listing built before or during the change (a lookup that checks the version in between falls
// back to looking in every layer).
class ListingChange {
 public:
  explicit ListingChange(Inode& dir) : dir_(dir) { dir_.drop_listing(); }
  ~ListingChange() { dir_.drop_listing(); }
  ListingChange(const ListingChange&) = delete;
  ListingChange& operator=(const ListingChange&) = delete;

 private:
  Inode& dir_;
};

class InodeTable {
 public:
  explicit InodeTable(std::shared_ptr<Inode> root);
  // Frees the inodes the kernel still held (each holds itself while the kernel does).
  ~InodeTable();
  InodeTable(const InodeTable&) = delete;
  InodeTable& operator=(const InodeTable&) = delete;

  Inode& root() { return *root_; }
  // The node id the kernel knows an inode by: FUSE_ROOT_ID for the root, else its address.
  fuse_ino_t id_of(const Inode& inode) const;
  Inode& from_id(fuse_ino_t id);

  // Publishes a freshly resolved inode, or finds the live inode with its key; either way the
  // returned inode's nlookup is raised by one.
  std::shared_ptr<Inode> publish(std::shared_ptr<Inode> fresh);
  // The live inode with this identity, without counting a lookup.
  std::shared_ptr<Inode> find(const InodeKey& key);
  // Makes `key` find `inode` too (the identity of its upper copy).
  void alias(Inode& inode, const InodeKey& key);
  // Forgets every identity of `inode`: its object is gone from the tree. The kernel may still
  // hold it (open files) until it forgets it.
  void unhash(Inode& inode);

  void forget(fuse_ino_t id, uint64_t n);
  size_t size();

 private:
  // Drops the table entries that lead to `inode` (under mu_).
  void unhash_locked(Inode& inode);

  std::mutex mu_;
  // Live inodes by their own identity (the set's nodes hold no copy of the key).
  struct ByKeyHash {
    using is_transparent = void;
    size_t operator()(const InodeKey& k) const noexcept { return InodeKeyHash()(k); }
    size_t operator()(const Inode* i) const noexcept { return InodeKeyHash()(i->key()); }
  };
  struct ByKeyEqual {
    using is_transparent = void;
    static const InodeKey& key_of(const InodeKey& k) { return k; }
    static const InodeKey& key_of(const Inode* i) { return i->key(); }
    template <class A, class B>
    bool operator()(const A& a, const B& b) const noexcept {
      return key_of(a) == key_of(b);
    }
  };
  std::unordered_set<Inode*, ByKeyHash, ByKeyEqual> by_key_;
  // Copied-up inodes by their upper identity, and the reverse: few inodes have one.
  std::unordered_map<InodeKey, Inode*, InodeKeyHash> by_alias_;
  std::unordered_map<const Inode*, InodeKey> aliases_;
  // Live inodes no identity leads to any more (removed, still open): found only by node id, and
  // listed so that the destructor finds them.
  std::unordered_set<Inode*> orphans_;
  // The live inode with this identity, or null (under mu_).
  Inode* find_locked(const InodeKey& key) const;
  size_t live_count_ = 0;
  std::shared_ptr<Inode> root_;
};

}  // namespace layerfs
