#include "layers/merge.h"

#include <fcntl.h>

#include <algorithm>
#include <climits>
#include <optional>
#include <unordered_set>

#include "layers/redirect.h"
#include "layers/sys/fs.h"
#include "layers/sys/xattr.h"
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

Result<LayerDir> open_layer_dir(BorrowedFd dir_fd, uint32_t layer) {
  auto fd = sys::open_at(dir_fd, ".", O_PATH | O_DIRECTORY);
  if (!fd.ok()) return fd.err();
  auto marks = Whiteout::dir_marks(fd->get());
  if (!marks.ok()) return marks.err();
  auto st = sys::stat_fd(fd->get());
  if (!st.ok()) return st.err();
  return LayerDir{layer, std::move(*fd), marks->xwhiteouts, st->st_dev, st->st_ino};
}

Result<Resolved> lookup(std::span<const DirRef> parent, std::string_view name_view, CopyFds* fds,
                        const Redirects& redirects) {
  if (Whiteout::classify_name(name_view) != Whiteout::Name::kPlain || name_view == "." ||
      name_view == "..") {
    return Errno{ENOENT};
  }
  const std::string name(name_view);
  Resolved out;
  bool found = false;
  // Where the next layer looks: a name in the parent's copy, or (absolute) "/a/b" from the
  // layer's root. A redirect changes it for the layers below the one that has it.
  std::string target = name;
  bool absolute = false;
  bool redirected = false;
  bool stop = false;
  size_t next_parent = 0;
  std::optional<uint32_t> last_layer;
  while (!stop) {
    const DirRef* base = nullptr;
    if (!absolute) {
      if (next_parent == parent.size()) break;
      base = &parent[next_parent++];
    } else {
      for (const DirRef& root : redirects.roots) {
        if (!last_layer || root.layer > *last_layer) {
          base = &root;
          break;
        }
      }
      if (base == nullptr) break;
    }
    last_layer = base->layer;
    CopyFd held;
    auto lent = with_fd(*base, fds, held);
    if (!lent.ok()) return lent.err();
    // The target's elements, walked in this layer; `rest` is the element reached and what
    // follows it. A redirect met on the way rewrites `target` for the layers below only.
    const std::string path = target;
    const bool following = redirected;  // a layer above redirected the lookup here
    const bool walked_absolute = absolute;
    // The kernel reads no marks in the last layer it consults (ovl_lookup_single's d->last):
    // the bottom layer of the mount when redirects are followed, else the parent's last copy.
    const bool last_layer_consulted = redirects.follow && !redirects.roots.empty()
                                          ? base->layer == redirects.roots.back().layer
                                          : (!absolute && next_parent == parent.size());
    std::string_view rest = absolute ? std::string_view(path).substr(1) : std::string_view(path);
    DirRef at = *lent;
    UniqueFd at_fd;  // the element reached, once past the first
    for (;;) {
      const size_t slash = rest.find('/');
      const bool last = slash == std::string_view::npos;
      const std::string element(rest.substr(0, slash));
      const std::string_view post = last ? std::string_view() : rest.substr(slash);
      auto st = sys::stat_at(at.fd, element.c_str());
      if (!st.ok() && st.error() != ENOENT) return st.err();
      if (!st.ok()) {  // the layer has nothing there
        if (has_whiteout_file(at, element)) stop = true;
        break;
      }
      auto whiteout = is_whiteout(at, element.c_str(), *st);
      if (!whiteout.ok()) return whiteout.err();
      if (*whiteout) {
        stop = true;
        break;
      }
      if (!S_ISDIR(st->st_mode)) {
        // A non-directory shows only where nothing above did; it ends the merge either way,
        // as does a non-directory on the way to the target.
        if (last && !found) {
          out.layer = at.layer;
          out.st = *st;
          found = true;
        }
        stop = true;
        break;
      }
      // Open the copy by handle and stat the handle, so that what is merged is exactly what
      // was checked to be a directory.
      auto fd = sys::open_path(at.fd, element.c_str());
      if (!fd.ok()) return fd.err();
      auto dst = sys::stat_fd(fd->get());
      if (!dst.ok()) return dst.err();
      if (!S_ISDIR(dst->st_mode)) return Errno{EIO};  // the layer changed under the mount
      // (A redirected lookup that finds a directory here is what "following" means.)
      if (last && following && !redirects.follow) return Errno{EPERM};
      auto marks = Whiteout::dir_marks(fd->get());
      if (!marks.ok()) return marks.err();
      if (has_whiteout_file(at, element)) stop = true;
      if (last_layer_consulted) {
        // Nothing below to hide or to redirect to.
      } else if (marks->opaque) {
        stop = true;  // (a later element's absolute redirect lifts it, as in the kernel)
      } else if (!marks->redirect.empty()) {
        if (!redirect::valid(marks->redirect)) return Errno{EINVAL};
        const size_t offset = target.size() - rest.size();  // of this element in `target`
        if (marks->redirect[0] == '/') {
          target = marks->redirect + std::string(post);
          absolute = true;
          stop = false;
        } else {
          target = target.substr(0, offset) + marks->redirect + std::string(post);
        }
        redirected = true;
      }
      if (last) {
        if (!found) {
          out.layer = at.layer;
          out.st = *dst;
          found = true;
        }
        LayerDir copy{at.layer,
                      UniqueFd(),
                      marks->xwhiteouts,
                      dst->st_dev,
                      dst->st_ino,
                      /*found_as=*/walked_absolute || path != name ? path : std::string()};
        if (fds != nullptr) {
          fds->offer(copy.ref(), std::move(*fd));
        } else {
          copy.fd = std::move(*fd);
        }
        out.dirs.push_back(std::move(copy));
        break;
      }
      at_fd = std::move(*fd);
      at = DirRef{at.layer, at_fd.get(), marks->xwhiteouts, dst->st_dev, dst->st_ino};
      rest.remove_prefix(slash + 1);
    }
  }
  if (!found) return Errno{ENOENT};
  return out;
}

Result<std::vector<NameInLayer>> explain(std::span<const DirRef> parent, std::string_view name,
                                         CopyFds* fds, const Redirects& redirects) {
  using State = NameInLayer::State;
  auto resolved = lookup(parent, name, fds, redirects);
  if (!resolved.ok() && resolved.error() != ENOENT) return resolved.err();
  // The copies the merge took under this very name (a redirect takes others below).
  auto merged_here = [&](const DirRef& dir, const struct stat& st) {
    return resolved.ok() &&
           std::any_of(resolved->dirs.begin(), resolved->dirs.end(), [&](const LayerDir& d) {
             return d.layer == dir.layer && d.found_as.empty() && d.dev == st.st_dev &&
                    d.ino == st.st_ino;
           });
  };
  std::vector<NameInLayer> out;
  // Once the merge has ended for the layers below: which layer ended it, and how.
  std::optional<std::pair<uint32_t, State>> ended;
  // The last merged copy seen: a directory below it that the merge did not take was kept out
  // by it (opaque, or redirected elsewhere).
  std::optional<uint32_t> last_merged;
  const std::string n(name);
  for (const DirRef& copy : parent) {
    CopyFd held;
    auto lent = with_fd(copy, fds, held);
    if (!lent.ok()) return lent.err();
    const DirRef& dir = *lent;
    auto st = sys::stat_at(dir.fd, n.c_str());
    if (!st.ok() && st.error() != ENOENT) return st.err();
    if (st.ok()) {
      NameInLayer e{dir.layer, State::kShown, 0, *st};
      auto whiteout = is_whiteout(dir, n.c_str(), *st);
      if (!whiteout.ok()) return whiteout.err();
      if (ended) {
        e.state = *whiteout ? State::kWhiteout : ended->second;
        e.by = ended->first;
      } else if (*whiteout) {
        e.state = State::kWhiteout;
        ended = std::pair{dir.layer, State::kRemoved};
      } else if (merged_here(dir, *st)) {
        e.state = resolved->layer == dir.layer ? State::kShown : State::kMerged;
        last_merged = dir.layer;
      } else if (resolved.ok() && resolved->layer == dir.layer) {
        ended = std::pair{dir.layer, State::kShadowed};  // a non-directory is shown here
      } else if (last_merged && S_ISDIR(st->st_mode)) {
        e.state = State::kHidden;
        e.by = *last_merged;
        ended = std::pair{*last_merged, State::kHidden};
      } else {
        // A non-directory below a directory ends the merge, unseen.
        const uint32_t shown = resolved.ok() ? resolved->layer : dir.layer;
        e.state = State::kShadowed;
        e.by = shown;
        ended = std::pair{shown, State::kShadowed};
      }
      out.push_back(e);
    }
    if (!ended && has_whiteout_file(dir, n)) {
      ended = std::pair{dir.layer, State::kRemoved};
      if (!st.ok()) {
        auto marker = sys::stat_at(dir.fd, (std::string(Whiteout::kPrefix) + n).c_str());
        NameInLayer e{dir.layer, State::kWhiteout, 0, {}};
        if (marker.ok()) e.st = *marker;
        out.push_back(e);
      }
    }
  }
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

bool lower_shows(std::span<const DirRef> copies, std::string_view name, CopyFds* fds,
                 const Redirects& redirects) {
  std::vector<DirRef> lowers;
  for (const DirRef& d : copies) {
    if (d.layer != 0) lowers.push_back(d);
  }
  if (lowers.empty()) return false;
  auto r = lookup(lowers, name, fds, redirects);
  return r.ok() || r.error() != ENOENT;
}

}  // namespace layerfs
