#include "layers/attributes.h"

#include <fcntl.h>

#include <cstdlib>
#include <string_view>

#include "layers/origin.h"
#include "layers/sys/fs.h"
#include "layers/sys/xattr.h"

namespace layerfs {

std::optional<StatOverride> Presentation::override_of(int path_fd) const {
  for (const std::string& name : {override_xattr, std::string(StatOverride::kContainers)}) {
    if (name.empty() || (name == StatOverride::kContainers && !containers_overrides)) continue;
    auto v = sys::get_xattr(path_fd, name.c_str());
    if (v.ok()) return StatOverride::parse(*v);
  }
  return std::nullopt;
}

void Presentation::show(struct stat& st, const std::optional<StatOverride>& override) const {
  if (override) override->apply(st);
  if (!uid_map.empty()) st.st_uid = uid_map.to_shown(st.st_uid);
  if (!gid_map.empty()) st.st_gid = gid_map.to_shown(st.st_gid);
  if (squash_uid) st.st_uid = *squash_uid;
  if (squash_gid) st.st_gid = *squash_gid;
  if (static_nlink && S_ISDIR(st.st_mode)) st.st_nlink = 1;
}

bool copy_up_keeps_ino(const struct stat& lower, const std::string& prefix) {
  if (S_ISDIR(lower.st_mode)) return true;
  if (lower.st_nlink != 1) return false;
  return !S_ISLNK(lower.st_mode) || prefix.starts_with("trusted.");
}

std::optional<uint64_t> kernel_origin_ino(const LayerStack& stack, const std::string& prefix,
                                          int dir_fd, const char* name) {
  char buf[256];
  const std::string xattr = prefix + "origin";
  auto got = sys::get_xattr_at(dir_fd, name, xattr.c_str(), buf, sizeof buf);
  if (!got.ok() || *got == 0) return std::nullopt;
  const size_t n = *got;
  // The first lower layer that decodes the handle holds the origin, as kernel overlayfs finds
  // it. Its number is shown where the kernel shows it: for a directory, or a file that had one
  // link (a copied name of a hard-link pair has a number of its own).
  for (size_t i = 1; i < stack.size(); ++i) {
    const Layer& layer = stack.layer(i);
    auto mount_fd = sys::reopen(layer.root.get(), O_RDONLY | O_DIRECTORY);
    if (!mount_fd.ok()) continue;
    auto fd = origin::decode(std::string_view(buf, n), mount_fd->get(), layer.uuid);
    if (!fd.ok()) {
      if (fd.error() == EINVAL || fd.error() == EPERM) return std::nullopt;
      continue;
    }
    auto st = sys::stat_fd(fd->get());
    if (!st.ok() || st->st_dev != layer.dev) continue;
    if (!S_ISDIR(st->st_mode) && st->st_nlink != 1) return std::nullopt;
    return stack.map_ino(i, st->st_ino);
  }
  return std::nullopt;
}

uint64_t upper_ino(const LayerStack& stack, const std::string& prefix, int dir_fd, const char* name,
                   const struct stat& st) {
  // A copied-up object keeps the number it had below (kernel overlayfs does the same through
  // its origin xattr), recorded by copy_up; but an opaque directory, which merges nothing, shows
  // its own (as in the kernel, which takes a directory's number from its first lower copy).
  const std::string ino_xattr = prefix + "layerfs.ino";
  const std::string origin_xattr = prefix + "origin";
  // One listxattr answers for most upper objects (created through the mount: no origin);
  // values are read only for the names present.
  char names[1024];
  auto list = sys::list_xattr_at(dir_fd, name, names, sizeof names);
  const size_t listed = list.ok() ? *list : 0;
  const bool too_many = !list.ok() && list.error() == ERANGE;  // then just ask for each
  auto has = [&](std::string_view x) {
    if (too_many) return true;
    for (size_t pos = 0; pos < listed;) {
      std::string_view n(names + pos);
      if (n == x) return true;
      pos += n.size() + 1;
    }
    return false;
  };
  auto get = [&](const std::string& x, char* buf, size_t size) {
    auto n = sys::get_xattr_at(dir_fd, name, x.c_str(), buf, size);
    return n.ok() ? *n : 0;
  };
  if (S_ISDIR(st.st_mode)) {
    const std::string opaque_xattr = prefix + "opaque";
    char v[2];
    if (has(opaque_xattr) && get(opaque_xattr, v, sizeof v) > 0 && v[0] == 'y') {
      return stack.map_ino(0, st.st_ino);
    }
  }
  if (has(ino_xattr)) {
    char buf[32];
    const size_t n = get(ino_xattr, buf, sizeof buf - 1);
    if (n > 0) {
      buf[n] = '\0';
      char* end = nullptr;
      unsigned long long v = strtoull(buf, &end, 10);
      if (*end == '\0' && v != 0) return v;
    }
  }
  if (has(origin_xattr)) {
    if (auto ino = kernel_origin_ino(stack, prefix, dir_fd, name)) return *ino;
  }
  return stack.map_ino(0, st.st_ino);
}

}  // namespace layerfs
