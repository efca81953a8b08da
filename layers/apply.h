// Applying a layer tar onto a directory, safely: nothing is ever written outside the target,
// whatever the tar holds. Absolute names and ".." are refused; every parent is resolved
// beneath the target without following symlinks (a symlink an earlier entry planted is never
// written through); a hard link may only name a file already inside the target; a ".wh." with
// no name is refused (the OCI spec). Each object is built in a private staging directory inside
// the target and renamed into place complete. A refused entry is reported and the rest goes on
// (or, with `strict`, the first one stops it). `max_bytes` bounds what the tar may write.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "layers/base/result.h"

namespace layerfs {

enum class ApplyFormat {
  kOverlay,  // an overlay layer: whiteouts as 0/0 devices (".wh." files where mknod is
             // refused), opaque directories by xattr (trusted.* or user.* by privilege)
  kOci,      // the tar's entries as they are, ".wh." files included
  kFlat,     // an unpacked rootfs (the OCI spec's applying): whiteouts delete, an opaque
             // directory loses what it held, a directory over a directory keeps its children
             // and takes the new attributes, anything else replaces what was there
};

struct ApplyOptions {
  ApplyFormat format = ApplyFormat::kOverlay;
  bool strict = false;
  uint64_t max_bytes = uint64_t{64} << 30;
  // One line per refused entry or per thing done differently (a device made as an empty file).
  std::function<void(const std::string&)> report;
};

struct Applied {
  uint64_t entries = 0;  // written or applied
  uint64_t refused = 0;
  uint64_t bytes = 0;
};

// Applies the layer tar `layer` (plain, gzip or zstd) onto the directory `target`. Fails (with
// what was done so far left complete) on an unreadable tar, a failed write, `max_bytes`
// exceeded, or, with `strict`, a refused entry.
Result<Applied> apply_layer(const std::string& layer, const std::string& target,
                            const ApplyOptions& opts);

}  // namespace layerfs
