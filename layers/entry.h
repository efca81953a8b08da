// One entry of a layer as the tools read it, from any source (a directory, a layer tar, an
// image's blob): its metadata, what it is in the layer (an object, or a whiteout that deletes
// a name below), and the hash of its content, computed while the bytes streamed past. Content
// itself is never kept.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "layers/base/result.h"
#include "layers/whiteout.h"

namespace layerfs {

// XXH3-128 of a file's content.
struct Hash128 {
  uint64_t high = 0;
  uint64_t low = 0;
  bool operator==(const Hash128&) const = default;
  std::string hex() const;
};

using Xattrs = Whiteout::Xattrs;

struct Entry {
  enum class Kind {
    kObject,    // a file, directory, symlink, device, fifo or socket the layer holds
    kWhiteout,  // deletes `path` from the layers below (a marker in any form)
  };
  Kind kind = Kind::kObject;
  std::string path;  // from the layer root, no leading '/'; "" is the root
  mode_t mode = 0;   // S_IFMT type and the permission bits
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;  // regular files: content bytes (symlinks, directories: 0)
  struct timespec mtime {};
  bool mtime_ns = true;  // false: the source keeps whole seconds (a tar without PAX times)
  dev_t rdev = 0;
  std::string link;             // symlink target
  std::string hardlink;         // tar: the earlier entry of this layer this one is a hard link to
  uint64_t link_group = 0;      // entries sharing one object in the layer share a nonzero group
  Xattrs xattrs;                // the object's own; overlay-private ones are not here
  bool opaque = false;          // a directory that hides the same directory in the layers below
  bool implied = false;         // a parent directory the source has no entry for (a tar's)
  std::optional<Hash128> hash;  // regular files, where the reader hashed the content
  uint64_t allocated = 0;       // bytes on disk, where the source is a directory

  mode_t type() const { return mode & S_IFMT; }
  bool is_dir() const { return kind == Kind::kObject && S_ISDIR(mode); }
  bool is_reg() const { return kind == Kind::kObject && S_ISREG(mode); }
  // The last component of the path.
  std::string_view name() const;
  // The parent's path ("" for a top-level name).
  std::string_view parent() const;
};

// How a layer is read.
struct ReadOptions {
  bool hash = true;  // hash regular files' content as it streams past
  // Called as content bytes pass (for progress on a terminal); may be empty.
  std::function<void(uint64_t bytes)> progress;
};

// Where a reader delivers entries, in the order the source holds them (a directory's
// parents before their children).
using EntrySink = std::function<Result<void>(Entry&&)>;

// Streams XXH3-128 over content.
class ContentHash {
 public:
  ContentHash();
  ~ContentHash();
  ContentHash(const ContentHash&) = delete;
  ContentHash& operator=(const ContentHash&) = delete;
  void update(const void* data, size_t n);
  Hash128 done();

 private:
  void* state_;
};

}  // namespace layerfs
