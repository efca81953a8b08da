// The attributes a mount shows for an object, from what its layers hold: the inode number (and
// the origin records behind it), the link count of a merged directory, an owner-and-mode
// override, mapped or squashed ids. The rules are kernel overlayfs's where it has them.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string>

#include "layers/base/unique_fd.h"
#include "layers/idmap.h"
#include "layers/layer_stack.h"
#include "layers/merge.h"
#include "layers/stat_override.h"

namespace layerfs {

// How owners, modes and link counts show: a mount's settings (uidmapping=, gidmapping=,
// squash_to_*, static_nlink, xattr_permissions, containers-storage's override).
struct Presentation {
  IdMap uid_map;
  IdMap gid_map;
  std::optional<uint32_t> squash_uid;
  std::optional<uint32_t> squash_gid;
  bool static_nlink = false;
  std::string override_xattr;         // where owner and mode are kept and read (empty: off)
  bool containers_overrides = false;  // user.containers.override_stat is read too

  bool reads_overrides() const { return !override_xattr.empty() || containers_overrides; }
  // The override the object behind path_fd carries, if overrides are read at all.
  std::optional<StatOverride> override_of(BorrowedFd path_fd) const;
  // `st` as shown: the override applied, ids mapped or squashed, directory link counts.
  void show(struct stat& st, const std::optional<StatOverride>& override) const;
  // An owner given through the mount (a caller, a chown) as it is stored on disk.
  uint32_t disk_uid(uint32_t shown) const {
    return uid_map.empty() ? shown : uid_map.to_disk(shown);
  }
  uint32_t disk_gid(uint32_t shown) const {
    return gid_map.empty() ? shown : gid_map.to_disk(shown);
  }
};

// The link count a directory shows: 1 while it merges copies from more than one layer (as
// kernel overlayfs), its own otherwise.
inline nlink_t shown_dir_nlink(nlink_t own, bool merges) { return merges ? 1 : own; }

// The inode number an object of the upper shows (st: its lstat, found as `name` in the upper
// directory dir_fd): the number it had below where its copy-up recorded it (in
// PREFIX.layerfs.ino, else a kernel-written PREFIX.origin that decodes in a lower layer of
// `stack`), its own otherwise; an opaque directory, which merges nothing, always shows its own.
uint64_t upper_ino(const LayerStack& stack, const std::string& prefix, BorrowedFd dir_fd,
                   const char* name, const struct stat& st);
// The st_ino of the lower object a kernel-written origin on the upper entry names, if it
// decodes in a lower layer of `stack` (see layers/origin.h).
std::optional<uint64_t> kernel_origin_ino(const LayerStack& stack, const std::string& prefix,
                                          BorrowedFd dir_fd, const char* name);
// A directory in the upper that merges: the number of its first lower copy (layer, ino), as the
// kernel takes it; one that merges nothing shows its own.
inline uint64_t upper_dir_ino(const LayerStack& stack, uint64_t own,
                              std::optional<std::pair<uint32_t, uint64_t>> first_lower) {
  return first_lower ? stack.map_ino(first_lower->first, first_lower->second)
                     : stack.map_ino(0, own);
}
// The inode number a mount shows for what a lookup of `name` found. `upper_prefix` is the
// upper's xattr prefix (empty: a read-only mount, whose layer 0 is a lower), `upper_dir` the
// parent's upper copy (-1 when it has none): an upper object shows the number recorded at its
// copy-up, a merging upper directory its first lower copy's, a lower object its own, mapped
// into the mount's range (LayerStack::map_ino).
uint64_t shown_ino(const LayerStack& stack, const std::string& upper_prefix, BorrowedFd upper_dir,
                   const char* name, const Resolved& found);
// The d_ino a listing shows for `e`, an entry of the merged directory whose copies are `copies`
// (upper_prefix, upper_dir as above): the number its lookup shows. An upper directory without an
// origin record (one fuse-overlayfs wrote, or the kernel's where its origin does not decode) may
// still merge; it is then looked up to find its first lower copy.
uint64_t listed_ino(const LayerStack& stack, const std::string& upper_prefix, BorrowedFd upper_dir,
                    const ListEntry& e, std::span<const DirRef> copies, CopyFds* fds,
                    const Redirects& redirects);
// Whether the name a lookup found is an object of its own, apart from the other names of the
// same inode: on a writable mount, a non-directory with more than one link in a lower layer
// (copying one name up breaks the link, as in kernel overlayfs without index=on).
inline bool identity_per_name(const Resolved& found, bool writable) {
  return writable && found.layer != 0 && !S_ISDIR(found.st.st_mode) && found.st.st_nlink > 1;
}
// Whether a copy-up keeps the object's inode number (and records it): always for a directory;
// for a file only when it had one link (copying one name of a hard-link pair breaks the link,
// so the copy gets a number of its own); for a symlink only where its origin can be recorded
// (trusted.* xattrs: user.* ones cannot go on a symlink).
bool copy_up_keeps_ino(const struct stat& lower, const std::string& prefix);

}  // namespace layerfs
