// The read-only lower layers of a mount, top first (as lowerdir= lists them), each held as an
// O_PATH fd on its root. Immutable once opened and shared by pointer.
//
// Inode numbers: where every layer sits on one filesystem, st_ino is the real inode number of
// the object shown, so it is stable across remounts and equal to what kernel overlayfs reports.
// Where layers span filesystems, the filesystem's index goes into the high bits (as kernel
// overlayfs does with xino), and an inode number too large to share its bits is given a number
// from a private range instead, so st_ino stays unique across the mount.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "layers/base/result.h"
#include "layers/base/unique_fd.h"
#include "layers/origin.h"

namespace layerfs {

struct Layer {
  std::string path;
  UniqueFd root;  // O_PATH directory
  dev_t dev = 0;
  ino_t ino = 0;        // of the root
  uint32_t fsid = 0;    // index of the layer's filesystem among the stack's filesystems
  origin::Uuid uuid{};  // of the layer's filesystem, for overlay.origin file handles
  // `root` is a private clone of the layer's mount: nothing mounted inside the layer shows.
  bool private_mount = false;
};

class LayerStack {
 public:
  // Opens every path as a layer. The first path that cannot serve as one is the error, said
  // of its role and path ("lowerdir '/x': No such file or directory"). Layers may not overlap
  // (one root equal to or inside another), as kernel overlayfs requires: the merge would
  // otherwise contain itself. `roles` names what each path is in messages ("upperdir";
  // "lowerdir" where it has no entry).
  //
  // Lower layers (all but the first `writable` ones) are seen through private clones of their
  // mounts where the process may make them, as kernel overlayfs sees its layers: a mount inside
  // a layer (the mount point of this very mount, say) is never crossed, and what the layer's
  // own filesystem has there shows. Without the privilege, layers are used as they are.
  static Result<std::shared_ptr<const LayerStack>> open(const std::vector<std::string>& paths,
                                                        const std::vector<std::string>& roles = {},
                                                        size_t writable = 0);

  size_t size() const { return layers_.size(); }
  const Layer& layer(size_t i) const { return layers_[i]; }
  bool same_fs() const { return fs_count_ == 1; }

  // The layer whose root is the directory at `dir_fd` or one of its ancestors, if any.
  std::optional<size_t> containing(BorrowedFd dir_fd) const;

  // The st_ino the mount reports for real inode `ino` of layer `layer`.
  uint64_t map_ino(size_t layer, uint64_t ino) const;

 private:
  std::vector<Layer> layers_;
  uint32_t fs_count_ = 0;
  unsigned fsid_shift_ = 64;

  mutable std::mutex overflow_mu_;
  mutable std::unordered_map<uint64_t, std::unordered_map<uint64_t, uint64_t>> overflow_;
};

}  // namespace layerfs
