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
  static StatOverride of(const struct stat& st) {
    return {st.st_uid, st.st_gid, st.st_mode & 07777};
  }
};

}  // namespace layerfs
