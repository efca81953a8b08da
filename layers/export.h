// Writing a layer as an OCI layer tar (image-spec layer.md): whiteouts as ".wh.NAME" entries
// written before their siblings, an opaque directory as its entry followed by ".wh..wh..opq",
// overlay-private xattrs left out, hard links as link entries, xattrs as PAX SCHILY.xattr.*
// records, no user or group names. The bytes depend only on the layer: entries sorted, no
// timestamp or file name in the gzip header, fixed compression levels, mtimes clamped to
// SOURCE_DATE_EPOCH where given. The DiffID (sha256 of the tar) and the blob digest (of the
// compressed file) are computed as the bytes are written.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "layers/base/result.h"
#include "layers/tree.h"

namespace layerfs {

enum class Compression { kNone, kGzip, kZstd };

// By the output's name: ".tar.gz"/".tgz" gzip, ".tar.zst"/".tzst" zstd, else none.
Compression compression_for(const std::string& path);
// The OCI media type of a layer so compressed.
const char* layer_media_type(Compression c);

struct ExportOptions {
  Compression compression = Compression::kNone;
  std::optional<int64_t> source_date_epoch;      // mtimes later than this become this
  std::function<void(const std::string&)> warn;  // one line per entry left out
};

struct Exported {
  std::string diff_id;  // sha256 of the uncompressed tar
  std::string digest;   // sha256 of the file written
  uint64_t size = 0;    // bytes of the file written
  uint64_t entries = 0;
};

// Writes `tree` as a layer tar to `out` (replaced only once complete: a failure leaves nothing
// there). Regular files' content is read from the directory `root` the tree was read from,
// each path resolved beneath it without following symlinks.
Result<Exported> export_layer(const LayerTree& tree, const std::string& root,
                              const std::string& out, const ExportOptions& opts);

}  // namespace layerfs
