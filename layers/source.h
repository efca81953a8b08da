// Where a tool's layers come from. Every tool takes, wherever a stack is expected, one of:
//   DIR                     one layer, markers in any form (a plain rootfs is a layer too);
//                           the mount point of a live mount is its whole stack instead
//   FILE                    a layer tar, plain, gzip or zstd (told apart by magic bytes)
//   oci:DIR[:REF]           an OCI image layout
//   oci-archive:FILE[:REF]  the same in a tar, read in place
//   docker-archive:FILE[:REF]  a `docker save` / `podman save` archive, either layout
//   layers:L0,L1,...        an explicit stack of single-layer forms (DIR or FILE), base first
// A live mount: kernel overlayfs (its layers from /proc/self/mountinfo), layerfs (which
// answers the xattr kLayersXattr on its root with them) or fuse-overlayfs (from its
// daemon's command line; the paths there must be absolute, as podman gives them, since the
// daemon leaves the directory it was started in).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "layers/base/result.h"
#include "layers/entry.h"
#include "layers/tree.h"

namespace layerfs {

// What a layerfs mount's root answers for getxattr (it is never listed): the mount's layers as
// NUL-terminated "key=value" items: "upperdir=PATH", "workdir=PATH", then "lowerdir=PATH" for
// each lower, top first. Paths are absolute.
inline constexpr const char* kLayersXattr = "user.layerfs.layers";

struct LayerInfo {
  std::string name;        // for people: a path, or an image's blob
  std::string directory;   // directory layers: the path
  std::string digest;      // image layers: the blob digest
  std::string diff_id;     // image layers: the uncompressed tar's digest
  std::string media_type;  // image layers
  uint64_t compressed_size = 0;
  std::string created_by;  // image layers: the history line that made it
};

class LayerSource {
 public:
  virtual ~LayerSource() = default;
  const LayerInfo& info() const { return info_; }
  // Streams the layer's entries into `sink`.
  virtual Result<void> read(const EntrySink& sink, const ReadOptions& opts) = 0;

 protected:
  LayerInfo info_;
};

struct Stack {
  std::string spec;  // as given
  std::string kind;  // "directory", "tar", "oci", "oci-archive", "docker-archive", "layers",
                     // "overlay mount", "layerfs mount", "fuse-overlayfs mount"
  std::vector<std::unique_ptr<LayerSource>> layers;  // base first
  // A live mount's top layer is its upper (what `layerdiff diff MOUNT` shows).
  bool top_is_upper = false;
  std::string mountpoint;  // a live mount: where its merged view is (realpath)
};

// Opens what `spec` names. The error is one line naming the spec and the reason.
Result<Stack> open_stack(const std::string& spec);
// One layer: a directory or a layer tar.
Result<std::unique_ptr<LayerSource>> open_layer(const std::string& path);

// Reads one layer into a tree.
Result<LayerTree> read_tree(LayerSource& layer, const ReadOptions& opts);
// Reads every layer of `stack` into a tree, base first.
Result<std::vector<LayerTree>> read_trees(Stack& stack, const ReadOptions& opts);

// Reads a directory as a layer, parents before children, names sorted.
Result<void> read_dir_layer(const std::string& root, const EntrySink& sink,
                            const ReadOptions& opts);

// The layers of the live mount at `mountpoint` (realpath), top first, with the upper first
// when it has one: kernel overlayfs, layerfs or fuse-overlayfs. ENOENT when it is none of them.
struct MountLayers {
  std::string type;  // "overlay", "layerfs", "fuse-overlayfs"
  std::string upper;
  std::string work;
  std::vector<std::string> lowers;  // top first
};
Result<MountLayers> mount_layers(const std::string& mountpoint);

}  // namespace layerfs
