// Merging one directory across layers, with kernel overlayfs's rules:
// - the topmost layer that has a name decides what it is; a whiteout there means "absent";
// - a directory merges with same-named directories below it until one is opaque, a layer has a
//   whiteout for it, or a layer has a non-directory of that name (which is not shown);
// - a whiteout in a layer hides the name in the layers below, never in its own layer or above.
// - a directory with a redirect (Whiteout::DirMarks) merges with what the layers below have
//   under the redirect's name, not its own: a name in the same parent, or "/a/b" from the layer
//   roots (kernel overlayfs's redirect_dir; the kernel rules, fs/overlayfs/namei.c, apply to
//   each element of the path).
// Both lookup and listing work on the list of layer copies of the parent (LayerDir, top first),
// which already ends at the first opaque copy.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "layers/base/result.h"
#include "layers/base/unique_fd.h"

namespace layerfs {

// A layer's copy of a directory taking part in a merge, as the merge functions read it. The
// fd is borrowed; -1 where the caller lends it on demand (CopyFds), so that a daemon need not
// hold an fd for every copy of every directory it knows. dev and ino name the copy.
struct DirRef {
  uint32_t layer = 0;
  BorrowedFd fd;  // O_PATH
  bool xwhiteouts = false;
  dev_t dev = 0;
  ino_t ino = 0;
};

// The same, owning its fd (which may be empty: see lookup's CopyFds).
struct LayerDir {
  uint32_t layer = 0;
  UniqueFd fd;  // O_PATH
  bool xwhiteouts = false;
  dev_t dev = 0;
  ino_t ino = 0;
  // Where a redirect had the copy found, when that is not the directory's own name in its
  // parent's copy: "/a/b", its path from the layer's root, or a name in the parent's copy in
  // this layer. Empty: the directory's own name. (Lower layers never change, so this finds the
  // copy again.)
  std::string found_as;
  DirRef ref() const { return DirRef{layer, fd.get(), xwhiteouts, dev, ino}; }
};

std::vector<DirRef> refs(std::span<const LayerDir> dirs);

// An fd lent for a while: `fd` stays valid for as long as this lives (owner may be empty when
// the fd is borrowed from something that outlives the merge).
struct CopyFd {
  std::shared_ptr<const UniqueFd> owner;
  BorrowedFd fd;
  BorrowedFd get() const { return fd; }
};

// Where the fds of copies with no fd of their own (DirRef::fd == -1) come from, and where the
// fds a lookup opens go: a daemon keeps them in a bounded cache.
class CopyFds {
 public:
  virtual ~CopyFds() = default;
  // The fd of `copy`, an O_PATH directory.
  virtual Result<CopyFd> open(const DirRef& copy) = 0;
  // A lookup opened `fd` on a copy of the directory it found; the source may keep it.
  virtual void offer(const DirRef& copy, UniqueFd fd) = 0;
};

// What a name in a merged directory resolves to.
struct Resolved {
  uint32_t layer = 0;  // layer of the object shown
  struct stat st {};   // its lstat
  // Directories only: every copy in the merge, top first; their fds went to the CopyFds, if the
  // lookup was given one.
  std::vector<LayerDir> dirs;
};

// How a lookup treats redirects (kernel overlayfs's redirect_dir= and its redirect_always_follow).
struct Redirects {
  // Follow them; otherwise a lookup that finds something under a redirect's name fails with
  // EPERM, as the kernel's "refusing to follow redirect".
  bool follow = true;
  // Every layer's root, top first, with fds: where absolute redirects lead. Without them an
  // absolute redirect finds nothing below.
  std::span<const DirRef> roots;
};

// Resolves `name` in the directory whose copies are `parent`. ENOENT when no layer shows it;
// marker names are never resolved; EINVAL for a malformed redirect. `fds` lends what `parent`
// holds no fd for.
Result<Resolved> lookup(std::span<const DirRef> parent, std::string_view name,
                        CopyFds* fds = nullptr, const Redirects& redirects = {});

// Whether a lower copy of the directory whose copies are `copies` (layer 0 the upper) still
// shows `name`: removing it from the upper then needs a whiteout. When in doubt (an error
// other than ENOENT) it does: a whiteout that is not needed hides nothing that shows.
bool lower_shows(std::span<const DirRef> copies, std::string_view name, CopyFds* fds = nullptr,
                 const Redirects& redirects = {});

// What each layer's entry for one name is in the merge of a directory (what layerdu counts as
// shown, shadowed or removed bytes).
struct NameInLayer {
  enum class State {
    kShown,     // the object the merge shows
    kMerged,    // a directory copy merged into the one shown
    kShadowed,  // a layer above (`by`) shows the name
    kWhiteout,  // this layer's whiteout for the name (a marker, never shown)
    kRemoved,   // deleted by the whiteout in layer `by`
    kHidden,    // kept out by an opaque or redirected directory in layer `by`
  };
  uint32_t layer = 0;
  State state = State::kShown;
  uint32_t by = 0;
  struct stat st {};
};

// Every layer of `parent` that has an entry `name` (or a ".wh." marker for it), top first, and
// what becomes of it. Built on lookup, so it never disagrees with it.
Result<std::vector<NameInLayer>> explain(std::span<const DirRef> parent, std::string_view name,
                                         CopyFds* fds = nullptr, const Redirects& redirects = {});

// Opens the copies of a layer root (or any directory) as the start of a merge.
Result<LayerDir> open_layer_dir(BorrowedFd dir_fd, uint32_t layer);

struct ListEntry {
  std::string name;
  uint64_t ino = 0;  // real inode number in `layer`
  uint32_t layer = 0;
  unsigned char type = 0;  // DT_*
};

// The merged listing of the directory whose copies are `dirs`: each visible name once, in the
// order of the topmost layer that shows it, "." and ".." not included.
Result<std::vector<ListEntry>> list(std::span<const DirRef> dirs, CopyFds* fds = nullptr);

// The same over owned copies.
inline Result<Resolved> lookup(std::span<const LayerDir> parent, std::string_view name,
                               const Redirects& redirects = {}) {
  auto r = refs(parent);
  return lookup(std::span<const DirRef>(r), name, nullptr, redirects);
}
inline Result<std::vector<ListEntry>> list(std::span<const LayerDir> dirs) {
  auto r = refs(dirs);
  return list(std::span<const DirRef>(r));
}

}  // namespace layerfs
