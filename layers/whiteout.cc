#include "layers/whiteout.h"

#include <array>
#include <string>

#include "layers/sys/fs.h"
#include "layers/sys/xattr.h"

namespace layerfs {
namespace {

constexpr std::array<const char*, 3> kOpaqueXattrs = {
    "trusted.overlay.opaque", "user.overlay.opaque", "user.fuseoverlayfs.opaque"};
constexpr std::array<const char*, 2> kWhiteoutsXattrs = {"trusted.overlay.whiteouts",
                                                         "user.overlay.whiteouts"};
constexpr std::array<const char*, 2> kWhiteoutXattrs = {"trusted.overlay.whiteout",
                                                        "user.overlay.whiteout"};
constexpr std::array<const char*, 2> kRedirectXattrs = {"trusted.overlay.redirect",
                                                        "user.overlay.redirect"};
constexpr std::array<std::string_view, 4> kPrivatePrefixes = {
    "trusted.overlay.", "user.overlay.", "user.fuseoverlayfs.", "security.fuseoverlayfs."};

// Errors that mean "this object has no such xattr" rather than "it could not be read".
bool is_absent(int err) { return err == ENODATA || err == EOPNOTSUPP; }

bool list_has(std::string_view list, std::string_view name) {
  while (!list.empty()) {
    size_t end = list.find('\0');
    if (list.substr(0, end) == name) return true;
    if (end == std::string_view::npos) break;
    list.remove_prefix(end + 1);
  }
  return false;
}

// One directory mark from its xattr's value: the rules dir_marks and dir_marks_of share.
void read_mark(Whiteout::DirMarks& marks, std::string_view name, std::string_view value) {
  for (const char* x : kOpaqueXattrs) {
    if (name != x || value.empty()) continue;
    if (value[0] == 'y') marks.opaque = true;
    if (value[0] == 'x') marks.xwhiteouts = true;
  }
  for (const char* x : kWhiteoutsXattrs) {
    if (name == x) marks.xwhiteouts = true;
  }
  for (const char* x : kRedirectXattrs) {
    if (name == x && marks.redirect.empty()) marks.redirect = std::string(value);
  }
}

}  // namespace

bool Whiteout::is_mark_xattr(std::string_view name) {
  for (const char* x : kOpaqueXattrs) {
    if (name == x) return true;
  }
  for (const char* x : kWhiteoutsXattrs) {
    if (name == x) return true;
  }
  for (const char* x : kRedirectXattrs) {
    if (name == x) return true;
  }
  return false;
}

Whiteout::DirMarks Whiteout::dir_marks_of(const Xattrs& xattrs, bool has_opaque_file) {
  DirMarks marks;
  // In the order dir_marks reads them: opaque, whiteouts, redirect (the first one found).
  for (const char* x : kOpaqueXattrs) {
    if (auto it = xattrs.find(x); it != xattrs.end()) read_mark(marks, x, it->second);
  }
  for (const char* x : kWhiteoutsXattrs) {
    if (auto it = xattrs.find(x); it != xattrs.end()) read_mark(marks, x, it->second);
  }
  for (const char* x : kRedirectXattrs) {
    if (auto it = xattrs.find(x); it != xattrs.end()) read_mark(marks, x, it->second);
  }
  if (has_opaque_file) marks.opaque = true;
  return marks;
}

bool Whiteout::is_xattr_whiteout_of(const struct stat& st, const Xattrs& xattrs) {
  if (!S_ISREG(st.st_mode) || st.st_size != 0) return false;
  for (const char* x : kWhiteoutXattrs) {
    if (xattrs.contains(x)) return true;
  }
  return false;
}

Whiteout::Name Whiteout::classify_name(std::string_view name) {
  if (!name.starts_with(kPrefix)) return Name::kPlain;
  if (name.starts_with(kMetaPrefix)) return Name::kMeta;
  // ".wh." alone names nothing; treat it as bookkeeping so it is hidden.
  if (name.size() == kPrefix.size()) return Name::kMeta;
  return Name::kWhiteoutFile;
}

Result<bool> Whiteout::is_xattr_whiteout(BorrowedFd parent_fd, const char* name,
                                         const struct stat& st) {
  if (!S_ISREG(st.st_mode) || st.st_size != 0) return false;
  auto fd = sys::open_path(parent_fd, name);
  if (!fd.ok()) return fd.err();
  for (const char* x : kWhiteoutXattrs) {
    auto r = sys::get_xattr(fd->get(), x, nullptr, 0);
    if (r.ok()) return true;
    if (!is_absent(r.error())) return r.err();
  }
  return false;
}

Result<Whiteout::DirMarks> Whiteout::dir_marks(BorrowedFd dir_fd) {
  DirMarks marks;
  // One listxattr answers "no markers" for nearly every directory; values are read only for
  // the names that are present.
  auto names = sys::list_xattr(dir_fd);
  if (!names.ok() && !is_absent(names.error())) return names.err();
  if (names.ok() && !names->empty()) {
    // Values are read only for the mark names present, in dir_marks_of's order.
    auto read_value = [&](const char* x) -> Result<void> {
      if (!list_has(*names, x)) return {};
      if (std::string_view(x).ends_with("redirect") && !marks.redirect.empty()) return {};
      auto v = sys::get_xattr(dir_fd, x);
      if (!v.ok()) return is_absent(v.error()) ? Result<void>() : v.err();
      read_mark(marks, x, *v);
      return {};
    };
    for (const char* x : kOpaqueXattrs) LAYERFS_TRY(read_value(x));
    for (const char* x : kWhiteoutsXattrs) LAYERFS_TRY(read_value(x));
    for (const char* x : kRedirectXattrs) LAYERFS_TRY(read_value(x));
  }
  if (!marks.opaque) {
    std::string opq(kOpaqueFile);
    auto st = sys::stat_at(dir_fd, opq.c_str());
    if (st.ok()) {
      marks.opaque = true;
    } else if (st.error() != ENOENT) {
      return st.err();
    }
  }
  return marks;
}

bool Whiteout::is_private_xattr(std::string_view name) {
  for (auto p : kPrivatePrefixes) {
    if (name.starts_with(p)) return true;
  }
  return name == "user.containers.override_stat";
}

}  // namespace layerfs
