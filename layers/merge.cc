#include "layers/merge.h"

#include <fcntl.h>

#include <unordered_set>

#include "layers/sys/fs.h"
#include "layers/whiteout.h"

namespace layerfs {
namespace {

unsigned char dtype_of(mode_t mode) { return static_cast<unsigned char>(IFTODT(mode)); }

// Whether `name` in this layer copy is a whiteout, given its lstat.
Result<bool> is_whiteout(const DirRef& dir, const char* name, const struct stat& st) {
  if (Whiteout::is_device_whiteout(st)) return true;
  if (!dir.xwhiteouts) return false;
  return Whiteout::is_xattr_whiteout(dir.fd, name, st);
}

bool has_whiteout_file(const DirRef& dir, const std::string& name) {
  std::string wh = std::string(Whiteout::kPrefix) + name;
  return sys::stat_at(dir.fd, wh.c_str()).ok();
}

// The copy with an fd in it: its own, or one lent by `fds` (held by `held`).
Result<DirRef> with_fd(const DirRef& copy, CopyFds* fds, CopyFd& held) {
  if (copy.fd >= 0) return copy;
  if (fds == nullptr) return Errno{EBADF};
  auto lent = fds->open(copy);
  if (!lent.ok()) return lent.err();
  held = std::move(*lent);
  DirRef out = copy;
  out.fd = held.get();
  return out;
}

}  // namespace

std::vector<DirRef> refs(std::span<const LayerDir> dirs) {
  std::vector<DirRef> out;
  out.reserve(dirs.size());
  for (const auto& d : dirs) out.push_back(d.ref());
  return out;
}

Result<LayerDir> open_layer_dir(int dir_fd, uint32_t layer) {
  auto fd = sys::open_at(dir_fd, ".", O_PATH | O_DIRECTORY);
  if (!fd.ok()) return fd.err();
  auto marks = Whiteout::dir_marks(fd->get());
  if (!marks.ok()) return marks.err();
  auto st = sys::stat_fd(fd->get());
  if (!st.ok()) return st.err();
  return LayerDir{layer, std::move(*fd), marks->xwhiteouts, st->st_dev, st->st_ino};
}

Result<Resolved> lookup(std::span<const DirRef> parent, std::string_view name_view, CopyFds* fds) {
  if (Whiteout::classify_name(name_view) != Whiteout::Name::kPlain || name_view == "." ||
      name_view == "..") {
    return Errno{ENOENT};
  }
  const std::string name(name_view);
  Resolved out;
  bool found = false;
  for (const DirRef& copy : parent) {
    CopyFd held;
    auto lent = with_fd(copy, fds, held);
    if (!lent.ok()) return lent.err();
    const DirRef& dir = *lent;
    auto st = sys::stat_at(dir.fd, name.c_str());
    if (!st.ok() && st.error() != ENOENT) return st.err();
    if (st.ok()) {
      auto whiteout = is_whiteout(dir, name.c_str(), *st);
      if (!whiteout.ok()) return whiteout.err();
      if (*whiteout) break;
      if (!S_ISDIR(st->st_mode)) {
        if (found) break;  // a non-directory below a directory ends the merge, unseen
        out.layer = dir.layer;
        out.st = *st;
        found = true;
        break;
      }
      // Open the copy by handle and stat the handle, so that what is merged is exactly what
      // was checked to be a directory.
      auto fd = sys::open_path(dir.fd, name.c_str());
      if (!fd.ok()) return fd.err();
      auto dst = sys::stat_fd(fd->get());
      if (!dst.ok()) return dst.err();
      if (!S_ISDIR(dst->st_mode)) return Errno{EIO};  // the layer changed under the mount
      auto marks = Whiteout::dir_marks(fd->get());
      if (!marks.ok()) return marks.err();
      if (!found) {
        out.layer = dir.layer;
        out.st = *dst;
        found = true;
      }
      LayerDir found_copy{dir.layer, UniqueFd(), marks->xwhiteouts, dst->st_dev, dst->st_ino};
      if (fds != nullptr) {
        fds->offer(found_copy.ref(), std::move(*fd));
      } else {
        found_copy.fd = std::move(*fd);
      }
      out.dirs.push_back(std::move(found_copy));
      if (marks->opaque) break;
    }
    if (has_whiteout_file(dir, name)) break;
  }
  if (!found) return Errno{ENOENT};
  return out;
}

Result<std::vector<ListEntry>> list(std::span<const DirRef> dirs, CopyFds* fds) {
  std::vector<ListEntry> out;
  std::unordered_set<std::string> seen;  // shown, or deleted by a layer above
  for (const DirRef& copy : dirs) {
    CopyFd held;
    auto lent = with_fd(copy, fds, held);
    if (!lent.ok()) return lent.err();
    const DirRef& dir = *lent;
    std::vector<std::string> deleted;  // hides names in the layers below this one only
    Errno failed{};
    auto r = sys::read_dir(dir.fd, [&](const sys::DirEntry& e) {
      switch (Whiteout::classify_name(e.name)) {
        case Whiteout::Name::kMeta:
          return true;
        case Whiteout::Name::kWhiteoutFile:
          deleted.emplace_back(Whiteout::target(e.name));
          return true;
        case Whiteout::Name::kPlain:
          break;
      }
      std::string name(e.name);
      if (seen.contains(name)) return true;
      unsigned char type = e.type;
      bool need_stat = type == DT_UNKNOWN || type == DT_CHR || (type == DT_REG && dir.xwhiteouts);
      if (need_stat) {
        auto st = sys::stat_at(dir.fd, name.c_str());
        if (!st.ok()) return true;  // vanished: nothing to show
        auto whiteout = is_whiteout(dir, name.c_str(), *st);
        if (!whiteout.ok()) {
          failed = whiteout.err();
          return false;
        }
        if (*whiteout) {
          deleted.push_back(std::move(name));
          return true;
        }
        type = dtype_of(st->st_mode);
      }
      seen.insert(name);
      out.push_back(ListEntry{std::move(name), e.ino, dir.layer, type});
      return true;
    });
    if (!r.ok()) return r.err();
    if (failed.code != 0) return failed;
    for (auto& name : deleted) seen.insert(std::move(name));
  }
  return out;
}

}  // namespace layerfs
