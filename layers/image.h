// Container images as layer stacks: an OCI image layout (a directory, or the same in a tar:
// index.json, nested indexes, manifests, configs, blobs/sha256/...) and a `docker save`
// archive (manifest.json, in the legacy layout with <id>/layer.tar members or the Docker 25+
// one with blobs/sha256/...). JSON is read with nlohmann-json.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "layers/base/result.h"

namespace layerfs {

struct ImageLayer {
  std::string member;      // where the blob is: "blobs/sha256/<hex>", "<id>/layer.tar", ...
  std::string digest;      // the blob's digest, where the manifest gives it
  std::string media_type;  // as the manifest gives it
  uint64_t size = 0;       // the blob's (compressed) size
  std::string diff_id;     // from the config's rootfs.diff_ids
  std::string created_by;  // the config history's line for the layer
};

struct Image {
  std::string ref;  // the name it was chosen by (or the only one)
  std::string config_digest;
  std::vector<ImageLayer> layers;  // base first
};

// Reads a file of the layout or archive by its path in it ("index.json",
// "blobs/sha256/<hex>"); ENOENT when there is none.
using ReadMember = std::function<Result<std::string>(const std::string& path)>;

// The image `ref` names in an OCI layout (org.opencontainers.image.ref.name, in the top index or
// a nested one); with `ref` empty, the only image there is. `what` names the layout in errors.
Result<Image> resolve_oci(const ReadMember& read, const std::string& ref, const std::string& what);
// The same for a docker-archive (manifest.json; `ref` matches a RepoTags entry, with or without
// a "localhost/" or "docker.io/library/" prefix).
Result<Image> resolve_docker(const ReadMember& read, const std::string& ref,
                             const std::string& what);

// Whether a member of an image archive is one of its JSON documents, to be kept in memory
// while the archive is scanned (index.json, manifest.json, oci-layout, *.json, and blobs that
// are small JSON documents: manifests, indexes, configs).
bool is_metadata_member(const std::string& path);

}  // namespace layerfs

namespace layerfs {

// What a new layer is, for append_layer.
struct NewLayer {
  std::string blob_file;  // the layer tar as written (copied into the layout)
  std::string digest;     // its sha256
  std::string diff_id;
  uint64_t size = 0;
  std::string media_type;
  std::string created_by;  // the history line
  int64_t created = 0;     // seconds since the epoch, for the history entry
};

// Appends `layer` to the image tagged `ref` in the OCI layout `dir` (made if missing): a new
// config (the DiffID and a history entry added) and manifest, tagged `ref` in index.json in
// place of the old one (which stays, untagged). With no image tagged `ref`, the new image has
// this layer alone. Returns the new manifest's digest.
Result<std::string> append_layer(const std::string& dir, const std::string& ref,
                                 const NewLayer& layer);

}  // namespace layerfs
