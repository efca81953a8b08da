#include "layers/attributes.h"

#include <dirent.h>
#include <fcntl.h>

#include <cstdlib>
#include <string_view>

#include "layers/origin.h"
#include "layers/sys/fs.h"
#include "layers/sys/xattr.h"

namespace layerfs {

std::optional<StatOverride> Presentation::override_of(BorrowedFd path_fd) const {
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
                                          BorrowedFd dir_fd, const char* name) {
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

uint64_t upper_ino(const LayerStack& stack, const std::string& prefix, BorrowedFd dir_fd,
                   const char* name, const struct stat& st) {
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

namespace layerfs {

uint64_t shown_ino(const LayerStack& stack, const std::string& upper_prefix, BorrowedFd upper_dir,
                   const char* name, const Resolved& found) {
  if (found.layer != 0 || upper_prefix.empty()) return stack.map_ino(found.layer, found.st.st_ino);
  if (S_ISDIR(found.st.st_mode)) {
    // As kernel overlayfs: a directory that merges shows the number of its first lower copy,
    // one that does not (opaque, or made through the mount) its own.
    std::optional<std::pair<uint32_t, uint64_t>> below;
    if (found.dirs.size() > 1) below = std::pair{found.dirs[1].layer, found.dirs[1].ino};
    return upper_dir_ino(stack, found.st.st_ino, below);
  }
  return upper_ino(stack, upper_prefix, upper_dir, name, found.st);
}

uint64_t listed_ino(const LayerStack& stack, const std::string& upper_prefix, BorrowedFd upper_dir,
                    const ListEntry& e, std::span<const DirRef> copies, CopyFds* fds,
                    const Redirects& redirects) {
  if (e.layer != 0 || upper_dir < 0 || upper_prefix.empty()) return stack.map_ino(e.layer, e.ino);
  struct stat st {};
  st.st_ino = e.ino;
  st.st_mode = static_cast<mode_t>(DTTOIF(e.type));
  const uint64_t ino = upper_ino(stack, upper_prefix, upper_dir, e.name.c_str(), st);
  if (e.type == DT_DIR && ino == stack.map_ino(0, e.ino) && copies.size() > 1) {
    auto found = lookup(copies, e.name, fds, redirects);
    if (found.ok() && found->dirs.size() > 1) {
      return stack.map_ino(found->dirs[1].layer, found->dirs[1].ino);
    }
  }
  return ino;
}

}  // namespace layerfs
