// Ownership and mode kept in an xattr, "uid:gid:mode[:type]", where the process that writes a
// layer cannot chown: fuse-overlayfs's xattr_permissions (user.fuseoverlayfs.override_stat, or
// security.fuseoverlayfs.override_stat when privileged) and containers-storage's force_mask
// (user.containers.override_stat). The xattr is what the object shows; the file's own owner
// and mode are the writer's.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace layerfs {

struct StatOverride {
  uint32_t uid = 0;
  uint32_t gid = 0;
  mode_t mode = 0;  // permission and set-id bits only

  static constexpr const char* kUser = "user.fuseoverlayfs.override_stat";
  static constexpr const char* kPrivileged = "security.fuseoverlayfs.override_stat";
  static constexpr const char* kContainers = "user.containers.override_stat";

  // Nothing for a value that is not "uid:gid:mode" (an optional ":type" suffix is allowed).
  static std::optional<StatOverride> parse(std::string_view value);
  // "uid:gid:0mode", the form containers-storage writes.
  std::string format() const;
  // The attributes with this owner and mode; the file type stays.
  void apply(struct stat& st) const;
  // After a chmod (`mode`) or chown (`uid`, `gid`: disk ids) through the mount, of an object of
  // type `type`: a change of owner without a new mode drops the set-id bits of a non-directory,
  // as chown(2) does.
  StatOverride changed(std::optional<mode_t> new_mode, std::optional<uint32_t> new_uid,
                       std::optional<uint32_t> new_gid, mode_t type) const {
    StatOverride o = *this;
    if (new_mode) o.mode = *new_mode & 07777;
    if (new_uid) o.uid = *new_uid;
    if (new_gid) o.gid = *new_gid;
    if ((new_uid || new_gid) && !new_mode && !S_ISDIR(type)) {
      o.mode &= ~static_cast<mode_t>(S_ISUID | S_ISGID);
    }
    return o;
  }
  static StatOverride of(const struct stat& st) {
    return {st.st_uid, st.st_gid, st.st_mode & 07777};
  }
};

}  // namespace layerfs
