// Copy-up: makes a copy of a lower object in the upper, atomically.
//
// The copy is built in the work dir and renamed into place only when complete:
//   data      FICLONE (reflink, instant on btrfs/xfs), else copy_file_range over each data
//             segment found with SEEK_DATA/SEEK_HOLE (holes stay holes; the kernel may offload
//             or reflink), else read/write of the data segments;
//   metadata  owner, mode, xattrs (but the overlay-private ones), then atime/mtime;
//   origin    the lower inode number, in <prefix>layerfs.ino, so st_ino survives a remount,
//             and the lower file handle in <prefix>origin, which kernel overlayfs reads;
//   fsync     a file's data and metadata reach the disk before the rename unless the mount
//             says otherwise (fsync=0 / volatile), as kernel overlayfs does for every copy-up
//             with data.
// A crash at any point leaves the upper without the object or with all of it; the work dir is
// emptied at the next mount.
#pragma once

#include <sys/stat.h>

#include <cstdint>

#include "layers/attributes.h"
#include "layers/base/result.h"
#include "layers/base/unique_fd.h"
#include "layers/origin.h"
#include "layers/upper.h"

namespace layerfs {

struct CopyUpOptions {
  bool fsync = true;
  uint64_t origin_ino = 0;  // st_ino the mount reports for the object; recorded when nonzero
  // With origin_ino: the uuid of the lower filesystem, for the kernel-format overlay.origin.
  origin::Uuid origin_uuid{};
  bool truncate = false;  // the caller truncates it at once (O_TRUNC): copy no data
  // An owner-and-mode override to record on the copy (layers/stat_override.h), if named.
  std::string override_name;
  std::string override_value;
};

// What the copy-up of an object carries, by the mount's rules: the inode number it shows
// (`shown_ino`) where copy_up_keeps_ino says it keeps it, with the uuid of `from`, its layer;
// where the mount keeps owners and modes in an override xattr, the owner and mode it showed
// below (`shown`, else its own): the owner may be one the daemon cannot chown to. A directory
// never gets `truncate`.
CopyUpOptions plan_copy_up(const Upper& upper, const Layer& from, const struct stat& lower,
                           uint64_t shown_ino, const Presentation& view,
                           const std::optional<StatOverride>& shown, bool fsync, bool truncate);

// Which data path a copy took (for tests and the benchmark).
enum class CopyMethod { kNone, kClone, kCopyFileRange, kReadWrite };

struct CopyUpResult {
  struct stat st {};  // lstat of the new upper object
  CopyMethod method = CopyMethod::kNone;
};

// Copies `src_name` in `src_dir` (a lower layer's directory) to `dst_name` in `dst_dir` (a
// directory of the upper). Directories are copied without their contents. Fails with EEXIST if
// dst_name exists.
Result<CopyUpResult> copy_up(Upper& upper, BorrowedFd src_dir, const char* src_name,
                             BorrowedFd dst_dir, const char* dst_name, const CopyUpOptions& opts);

// Copies the data of src to dst (both open regular files), keeping holes; dst ends at `size`.
Result<CopyMethod> copy_data(BorrowedFd src_fd, BorrowedFd dst_fd, off_t size);

// The name of the xattr that records the original inode number, for an upper's prefix.
inline std::string origin_ino_xattr(const Upper& upper) {
  return upper.xattr_prefix() + "layerfs.ino";
}

}  // namespace layerfs
