#include "layers/copy_up.h"

#include <fcntl.h>

#include <string>
#include <vector>

#include "layers/sys/fs.h"
#include "layers/sys/xattr.h"
#include "layers/whiteout.h"

namespace layerfs {
namespace {

// Errors after which the next rung of the ladder is worth trying.
bool try_next(int err) {
  return err == EXDEV || err == EINVAL || err == ENOSYS || err == EOPNOTSUPP || err == ENOTTY ||
         err == EBADF;
}

Result<void> copy_range_rw(BorrowedFd src, BorrowedFd dst, off_t off, off_t len) {
  std::vector<char> buf(1 << 20);
  while (len > 0) {
    auto got = sys::pread_fd(
        src, buf.data(), static_cast<size_t>(std::min<off_t>(len, static_cast<off_t>(buf.size()))),
        off);
    if (!got.ok()) {
      if (got.error() == EINTR) continue;
      return got.err();
    }
    const off_t n = static_cast<off_t>(*got);
    if (n == 0) break;
    for (off_t done = 0; done < n;) {
      auto w = sys::pwrite_fd(dst, buf.data() + done, static_cast<size_t>(n - done), off + done);
      if (!w.ok()) {
        if (w.error() == EINTR) continue;
        return w.err();
      }
      done += static_cast<off_t>(*w);
    }
    off += n;
    len -= n;
  }
  return {};
}

// The next data segment at or after `off`: [start, end). start == size when there is none.
std::pair<off_t, off_t> next_segment(BorrowedFd fd, off_t off, off_t size) {
  auto start = sys::seek(fd, off, SEEK_DATA);
  if (!start.ok()) return {start.error() == ENXIO ? size : off, size};  // no SEEK_DATA: all data
  auto end = sys::seek(fd, *start, SEEK_HOLE);
  return {*start, std::min(end.ok() ? *end : size, size)};
}

Result<void> copy_xattrs(BorrowedFd src_path_fd, BorrowedFd dst_path_fd) {
  auto names = sys::list_xattr(src_path_fd);
  if (!names.ok()) {
    if (names.error() == EOPNOTSUPP || names.error() == ENODATA) return {};
    return names.err();
  }
  for (size_t pos = 0; pos < names->size();) {
    std::string name(names->c_str() + pos);
    pos += name.size() + 1;
    if (name.empty() || Whiteout::is_private_xattr(name)) continue;
    auto value = sys::get_xattr(src_path_fd, name.c_str());
    if (!value.ok()) {
      if (value.error() == ENODATA) continue;
      return value.err();
    }
    if (auto set = sys::set_xattr(dst_path_fd, name.c_str(), *value); !set.ok()) {
      // An xattr the upper cannot hold (or this user may not set) is not worth failing for,
      // as in kernel overlayfs' copy-up; anything else is.
      if (set.error() == EOPNOTSUPP || set.error() == EPERM) continue;
      return set;
    }
  }
  return {};
}

// Owner, mode, xattrs, origin and times of the work-dir object behind path_fd.
Result<void> copy_metadata(Upper& upper, BorrowedFd src_path_fd, BorrowedFd dst_path_fd,
                           const struct stat& st, const CopyUpOptions& opts) {
  const bool is_link = S_ISLNK(st.st_mode);
  if (auto owned = sys::chown_fd(dst_path_fd, st.st_uid, st.st_gid); !owned.ok()) {
    // Without CAP_CHOWN the copy keeps the mounter's ownership (the rootless case).
    if (owned.error() != EPERM) return owned;
  }
  // chown clears set-id bits and capabilities; mode and xattrs come after it.
  if (!is_link) {
    if (auto mode = sys::chmod_fd(dst_path_fd, st.st_mode & 07777); !mode.ok()) return mode;
  }
  auto x = copy_xattrs(src_path_fd, dst_path_fd);
  if (!x.ok()) return x;
  // Where the filesystem takes no xattrs at all, there is no origin to record.
  auto set_unless_unsupported = [&](const std::string& name, std::string_view value) {
    auto set = sys::set_xattr(dst_path_fd, name.c_str(), value);
    return set.ok() || set.error() == EOPNOTSUPP ? Result<void>() : set;
  };
  // (Only trusted.* xattrs go on a symlink: a copied-up symlink keeps its number only there,
  // as in kernel overlayfs.)
  if (opts.origin_ino != 0 && (!is_link || upper.xattr_prefix().starts_with("trusted."))) {
    auto ino = set_unless_unsupported(origin_ino_xattr(upper), std::to_string(opts.origin_ino));
    if (!ino.ok()) return ino;
    if (auto fh = origin::encode(src_path_fd, opts.origin_uuid)) {
      auto origin = set_unless_unsupported(upper.xattr_prefix() + "origin", *fh);
      if (!origin.ok()) return origin;
    }
  }
  if (!opts.override_name.empty()) {
    auto o = sys::set_xattr(dst_path_fd, opts.override_name.c_str(), opts.override_value);
    if (!o.ok()) return o;
  }
  const timespec times[2] = {st.st_atim, st.st_mtim};
  return sys::set_times_fd(dst_path_fd, times);
}

Result<CopyMethod> build(Upper& upper, BorrowedFd src_dir, const char* src_name,
                         const std::string& temp, const struct stat& st,
                         const CopyUpOptions& opts) {
  const BorrowedFd work = upper.work_fd();
  CopyMethod method = CopyMethod::kNone;
  UniqueFd data_fd;
  if (S_ISREG(st.st_mode)) {
    auto src = sys::open_at(src_dir, src_name, O_RDONLY | O_NOFOLLOW);
    if (!src.ok()) return src.err();
    auto dst = sys::open_at(work, temp.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    if (!dst.ok()) return dst.err();
    auto m = copy_data(src->get(), dst->get(), opts.truncate ? 0 : st.st_size);
    if (!m.ok()) return m.err();
    method = *m;
    data_fd = std::move(*dst);
  } else if (S_ISDIR(st.st_mode)) {
    if (auto made = sys::make_dir_at(work, temp.c_str(), 0700); !made.ok()) return made.err();
  } else if (S_ISLNK(st.st_mode)) {
    auto target = sys::read_link_at(src_dir, src_name);
    if (!target.ok()) return target.err();
    auto made = sys::make_symlink_at(target->c_str(), work, temp.c_str());
    if (!made.ok()) return made.err();
  } else {
    auto made = sys::make_node_at(work, temp.c_str(), st.st_mode & S_IFMT, st.st_rdev);
    if (!made.ok()) return made.err();
  }
  auto dst_path = sys::open_path(work, temp.c_str());
  if (!dst_path.ok()) return dst_path.err();
  auto src_path = sys::open_path(src_dir, src_name);
  if (!src_path.ok()) return src_path.err();
  auto meta = copy_metadata(upper, src_path->get(), dst_path->get(), st, opts);
  if (!meta.ok()) return meta.err();
  // The data is on disk before the copy can appear, so a crash never shows a partial file.
  // As in kernel overlayfs, that is all: the rename is not waited for (after a crash the
  // object shows either its lower copy or the complete one), nor is a copy without data.
  if (opts.fsync && data_fd.valid() && st.st_size > 0 && !opts.truncate) {
    if (auto synced = sys::sync_fd(data_fd.get()); !synced.ok()) return synced.err();
  }
  return method;
}

}  // namespace

Result<CopyMethod> copy_data(BorrowedFd src_fd, BorrowedFd dst_fd, off_t size) {
  if (size == 0) return CopyMethod::kNone;
  if (sys::clone_file(dst_fd, src_fd).ok()) return CopyMethod::kClone;
  CopyMethod method = CopyMethod::kCopyFileRange;
  for (off_t off = 0; off < size;) {
    auto [start, end] = next_segment(src_fd, off, size);
    if (start >= size) break;
    off_t in = start, out = start;
    while (in < end) {
      if (method == CopyMethod::kCopyFileRange) {
        auto n = sys::copy_range(src_fd, &in, dst_fd, &out, static_cast<size_t>(end - in));
        if (n.ok() && *n > 0) continue;
        if (n.ok()) break;
        if (n.error() == EINTR) continue;
        if (!try_next(n.error())) return n.err();
        method = CopyMethod::kReadWrite;
      }
      auto r = copy_range_rw(src_fd, dst_fd, in, end - in);
      if (!r.ok()) return r.err();
      in = end;
    }
    off = end;
  }
  // A trailing hole: the size comes from truncate, not from data.
  if (auto sized = sys::truncate_fd(dst_fd, size); !sized.ok()) return sized.err();
  return method;
}

Result<CopyUpResult> copy_up(Upper& upper, BorrowedFd src_dir, const char* src_name,
                             BorrowedFd dst_dir, const char* dst_name, const CopyUpOptions& opts) {
  auto st = sys::stat_at(src_dir, src_name);
  if (!st.ok()) return st.err();
  // A copy-up is not a change the directory shows: its times stay as they were (kernel
  // overlayfs restores them the same way), so a parent copied up just before keeps its lower
  // times too.
  auto parent = sys::stat_at(dst_dir, "");
  if (!parent.ok()) return parent.err();
  std::string temp = upper.temp_name();
  auto built = build(upper, src_dir, src_name, temp, *st, opts);
  if (!built.ok()) {
    upper.discard(temp);
    return built.err();
  }
  auto installed = upper.install(temp, dst_dir, dst_name, false);
  if (!installed.ok()) {
    upper.discard(temp);
    return installed.err();
  }
  const timespec parent_times[2] = {parent->st_atim, parent->st_mtim};
  if (auto kept = sys::set_times_fd(dst_dir, parent_times); !kept.ok()) return kept.err();
  auto now = sys::stat_at(dst_dir, dst_name);
  if (!now.ok()) return now.err();
  return CopyUpResult{*now, *built};
}

CopyUpOptions plan_copy_up(const Upper& upper, const Layer& from, const struct stat& lower,
                           uint64_t shown_ino, const Presentation& view,
                           const std::optional<StatOverride>& shown, bool fsync, bool truncate) {
  const bool keep_ino = copy_up_keeps_ino(lower, upper.xattr_prefix());
  CopyUpOptions opts{.fsync = fsync,
                     .origin_ino = keep_ino ? shown_ino : 0,
                     .origin_uuid = from.uuid,
                     .truncate = truncate && !S_ISDIR(lower.st_mode)};
  if (!view.override_xattr.empty()) {
    opts.override_name = view.override_xattr;
    opts.override_value = shown.value_or(StatOverride::of(lower)).format();
  }
  return opts;
}

}  // namespace layerfs
