// The markers layers use to delete names and to make directories opaque (DESIGN section 3).
// Every form any of kernel overlayfs, fuse-overlayfs and containers-storage writes is read:
//   whiteout  char device 0/0 | file ".wh.NAME" | zero-size file with overlay.whiteout xattr
//             inside a directory marked overlay.opaque=x (or the older overlay.whiteouts)
//   opaque    trusted.overlay.opaque / user.overlay.opaque / user.fuseoverlayfs.opaque = "y"
//             | a file ".wh..wh..opq" inside the directory
//   redirect  trusted.overlay.redirect / user.overlay.redirect on a directory: its copies in the
//             layers below are found under that name ("/a/b": from the root) instead of its own
// None of the markers, and none of the overlay-private xattrs, is ever shown through a mount.
#pragma once

#include <sys/stat.h>

#include <map>
#include <string>
#include <string_view>

#include "layers/base/result.h"
#include "layers/base/unique_fd.h"

namespace layerfs {

class Whiteout {
 public:
  static constexpr std::string_view kPrefix = ".wh.";
  static constexpr std::string_view kMetaPrefix = ".wh..wh.";
  static constexpr std::string_view kOpaqueFile = ".wh..wh..opq";

  enum class Name {
    kPlain,         // an ordinary name
    kWhiteoutFile,  // ".wh.NAME": deletes NAME from the layers below
    kMeta,          // ".wh..wh.*": layer bookkeeping (the opaque marker, aufs link dirs)
  };

  static Name classify_name(std::string_view name);
  // NAME for ".wh.NAME"; only meaningful when classify_name() says kWhiteoutFile.
  static std::string_view target(std::string_view name) { return name.substr(kPrefix.size()); }

  static bool is_device_whiteout(const struct stat& st) {
    return S_ISCHR(st.st_mode) && st.st_rdev == 0;
  }

  // A zero-size regular file with an overlay.whiteout xattr. Only consulted in directories whose
  // marks say they hold such files, as kernel overlayfs does.
  static Result<bool> is_xattr_whiteout(BorrowedFd parent_fd, const char* name,
                                        const struct stat& st);

  struct DirMarks {
    bool opaque = false;      // hides the same directory in every layer below
    bool xwhiteouts = false;  // may hold xattr whiteouts
    std::string redirect;     // where the layers below have this directory (empty: its name)
  };
  // Reads the markers of the directory behind dir_fd (any fd, O_PATH included). A marker that
  // cannot be read is an error, never "no marker": deleted content must not show through.
  static Result<DirMarks> dir_marks(BorrowedFd dir_fd);

  // The same rules over what an archive or a reader already has in hand: an object's xattrs
  // (name -> value) and, for a directory, whether it holds a ".wh..wh..opq" entry.
  using Xattrs = std::map<std::string, std::string, std::less<>>;
  static DirMarks dir_marks_of(const Xattrs& xattrs, bool has_opaque_file);
  static bool is_xattr_whiteout_of(const struct stat& st, const Xattrs& xattrs);
  // Whether a name is one the marks of a directory are read from (dir_marks_of needs them).
  static bool is_mark_xattr(std::string_view name);

  // Whether an xattr name is overlay-private: such xattrs are never listed, read or copied.
  static bool is_private_xattr(std::string_view name);
};

}  // namespace layerfs
