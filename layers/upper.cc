#include "layers/upper.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "layers/acl.h"
#include "layers/stat_override.h"
#include "layers/sys/fs.h"
#include "layers/sys/process.h"
#include "layers/sys/xattr.h"
#include "layers/whiteout.h"

namespace layerfs {
namespace {

// Whether `dir` passes a default ACL on to what is made in it (an error other than "none" or
// "not supported" counts as yes: the caller then takes the path that does not depend on it).
bool has_default_acl(BorrowedFd dir) {
  auto acl = sys::get_xattr(dir, acl::kDefault, nullptr, 0);
  return acl.ok() || (acl.error() != ENODATA && acl.error() != EOPNOTSUPP);
}

// "upperdir 'path': why", for a reason that is not an errno's.
Errno describe(const std::string& what, const std::string& path, const std::string& why,
               int code = EINVAL) {
  return failure(code, what + " '" + path + "': " + why);
}

// Whether `inner` is `outer` or lies below it.
bool inside(BorrowedFd inner_fd, BorrowedFd outer_fd) {
  auto outer = sys::stat_fd(outer_fd);
  if (!outer.ok()) return false;
  auto fd = sys::open_at(inner_fd, ".", O_PATH | O_DIRECTORY);
  for (int depth = 0; fd.ok() && depth < 4096; ++depth) {
    auto st = sys::stat_fd(fd->get());
    if (!st.ok()) return false;
    if (st->st_dev == outer->st_dev && st->st_ino == outer->st_ino) return true;
    auto up = sys::open_at(fd->get(), "..", O_PATH | O_DIRECTORY);
    if (!up.ok()) return false;
    auto upst = sys::stat_fd(up->get());
    if (upst.ok() && upst->st_dev == st->st_dev && upst->st_ino == st->st_ino) return false;
    fd = std::move(up);
  }
  return false;
}

Result<UniqueFd> lock_dir(BorrowedFd path_fd) {
  auto fd = sys::reopen(path_fd, O_RDONLY | O_DIRECTORY);
  if (!fd.ok()) return fd;
  auto locked = sys::lock_exclusive(fd->get());
  if (!locked.ok()) return locked.err();
  return fd;
}

// What the process may write in a directory: trusted.* xattrs (CAP_SYS_ADMIN; without it the
// markers go to user.*, as kernel overlayfs does with userxattr) and 0/0 char devices.
struct MarkerForms {
  bool trusted = false;
  bool device_whiteouts = false;
};

Result<MarkerForms> probe_markers(BorrowedFd work_fd, bool device_whiteouts) {
  auto probe = sys::open_at(work_fd, "#probe", O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (!probe.ok()) return probe.err();
  MarkerForms out;
  out.trusted = sys::set_xattr(probe->get(), "trusted.overlay.layerfs", "y").ok();
  out.device_whiteouts =
      device_whiteouts && sys::make_node_at(work_fd, "#probe-wh", S_IFCHR, makedev(0, 0)).ok();
  (void)sys::unlink_at(work_fd, "#probe-wh");
  (void)sys::unlink_at(work_fd, "#probe");
  return out;
}

}  // namespace

Result<void> remove_contents(BorrowedFd dir_fd) {
  std::vector<std::pair<std::string, unsigned char>> entries;
  auto r = sys::read_dir(dir_fd, [&](const sys::DirEntry& e) {
    entries.emplace_back(std::string(e.name), e.type);
    return true;
  });
  if (!r.ok()) return r;
  for (const auto& [name, type] : entries) {
    bool is_dir = type == DT_DIR;
    if (type == DT_UNKNOWN) {
      auto st = sys::stat_at(dir_fd, name.c_str());
      is_dir = st.ok() && S_ISDIR(st->st_mode);
    }
    if (is_dir) {
      auto sub = sys::open_at(dir_fd, name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW);
      if (!sub.ok()) return sub.err();
      auto inner = remove_contents(sub->get());
      if (!inner.ok()) return inner;
    }
    auto gone = sys::unlink_at(dir_fd, name.c_str(), is_dir ? AT_REMOVEDIR : 0);
    if (!gone.ok() && gone.error() != ENOENT) return gone;
  }
  return {};
}

Result<std::unique_ptr<Upper>> Upper::open(const std::string& upper_path,
                                           const std::string& work_path, bool device_whiteouts) {
  auto up = std::make_unique<Upper>();
  auto upper = sys::open_at(kCwd, upper_path.c_str(), O_PATH | O_DIRECTORY);
  if (!upper.ok()) return upper.err().context("upperdir", upper_path);
  if (auto writable = sys::access_at(upper->get(), ".", W_OK | X_OK); !writable.ok()) {
    return writable.err().context("upperdir", upper_path);
  }
  auto workdir = sys::open_at(kCwd, work_path.c_str(), O_PATH | O_DIRECTORY);
  if (!workdir.ok()) return workdir.err().context("workdir", work_path);
  auto ust = sys::stat_fd(upper->get());
  auto wst = sys::stat_fd(workdir->get());
  if (!ust.ok()) return ust.err().context("upperdir", upper_path);
  if (!wst.ok()) return wst.err().context("workdir", work_path);
  if (ust->st_dev != wst->st_dev) {
    return describe("workdir", work_path, "not on the same filesystem as upperdir", EXDEV);
  }
  if (inside(workdir->get(), upper->get()) || inside(upper->get(), workdir->get())) {
    return describe("workdir", work_path, "upperdir and workdir must not contain each other");
  }

  auto upper_lock = lock_dir(upper->get());
  if (!upper_lock.ok()) {
    return describe("upperdir", upper_path,
                    upper_lock.error() == EWOULDBLOCK ? "in use by another layerfs mount"
                                                      : upper_lock.err().message(),
                    upper_lock.error());
  }
  auto work_lock = lock_dir(workdir->get());
  if (!work_lock.ok()) {
    return describe("workdir", work_path,
                    work_lock.error() == EWOULDBLOCK ? "in use by another layerfs mount"
                                                     : work_lock.err().message(),
                    work_lock.error());
  }

  auto make_work = sys::make_dir_at(workdir->get(), "work", 0700);
  const bool made = make_work.ok();
  if (!made && make_work.error() != EEXIST) {
    return describe("workdir", work_path, "cannot create work: " + make_work.err().message(),
                    make_work.error());
  }
  // A failure from here on removes the work dir it made.
  auto fail = [&](std::string why, int code) {
    if (made) (void)sys::unlink_at(workdir->get(), "work", AT_REMOVEDIR);
    return describe("workdir", work_path, why, code);
  };
  auto work = sys::open_at(workdir->get(), "work", O_PATH | O_DIRECTORY | O_NOFOLLOW);
  if (!work.ok()) return fail("work: " + work.err().message(), work.error());
  auto cleaned = remove_contents(work->get());
  if (!cleaned.ok()) return fail("cannot empty work: " + cleaned.err().message(), cleaned.error());

  auto probed = probe_markers(work->get(), device_whiteouts);
  if (!probed.ok()) return fail("not writable: " + probed.err().message(), probed.error());
  const bool trusted = probed->trusted;
  up->device_whiteouts_ = probed->device_whiteouts;

  // The locked fd serves for everything else too: a mount of many layers has few fds to spare.
  up->upper_ = std::move(*upper_lock);
  up->work_ = std::move(*work);
  up->work_lock_ = std::move(*work_lock);
  up->dev_ = ust->st_dev;
  up->prefix_ = trusted ? "trusted.overlay." : "user.overlay.";
  up->made_work_ = made;
  return up;
}

void Upper::creates_under_zero_umask() {
  auto st = sys::stat_fd(work_.get());
  if (!st.ok() || (st->st_mode & S_ISGID)) return;
  if (has_default_acl(work_.get())) return;
  creator_uid_ = sys::effective_uid();
  creator_gid_ = sys::effective_gid();
  exact_creates_ = true;
}

Result<std::unique_ptr<Upper>> Upper::open_target(const std::string& dir_path,
                                                  bool device_whiteouts) {
  auto up = std::make_unique<Upper>();
  auto dir = sys::open_at(kCwd, dir_path.c_str(), O_RDONLY | O_DIRECTORY);
  if (!dir.ok()) return dir.err().context("target", dir_path);
  auto st = sys::stat_fd(dir->get());
  if (!st.ok()) return st.err().context("target", dir_path);
  std::string name;
  for (int attempt = 0;; ++attempt) {
    char buf[64];
    snprintf(buf, sizeof buf, ".layerfs-apply-%d-%d", sys::process_id(), attempt);
    auto made = sys::make_dir_at(dir->get(), buf, 0700);
    if (made.ok()) {
      name = buf;
      break;
    }
    if (made.error() != EEXIST || attempt == 100) return made.err().context("target", dir_path);
  }
  auto work = sys::open_at(dir->get(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW);
  if (!work.ok()) {
    (void)sys::unlink_at(dir->get(), name.c_str(), AT_REMOVEDIR);
    return work.err().context("target", dir_path);
  }
  auto probed = probe_markers(work->get(), device_whiteouts);
  if (!probed.ok()) {
    (void)sys::unlink_at(dir->get(), name.c_str(), AT_REMOVEDIR);
    return probed.err().context("target", dir_path);
  }
  up->upper_ = std::move(*dir);
  up->work_ = std::move(*work);
  up->dev_ = st->st_dev;
  up->prefix_ = probed->trusted ? "trusted.overlay." : "user.overlay.";
  up->device_whiteouts_ = probed->device_whiteouts;
  up->staging_ = std::move(name);
  return up;
}

Upper::~Upper() {
  if (staging_.empty()) return;
  (void)remove_contents(work_.get());
  (void)sys::unlink_at(upper_.get(), staging_.c_str(), AT_REMOVEDIR);
}

void Upper::abandon() {
  if (!made_work_) return;
  (void)remove_contents(work_.get());
  if (auto workdir = sys::open_at(work_.get(), "..", O_PATH | O_DIRECTORY); workdir.ok()) {
    (void)sys::unlink_at(workdir->get(), "work", AT_REMOVEDIR);
  }
  made_work_ = false;
}

std::string Upper::temp_name() {
  char buf[32];
  snprintf(buf, sizeof buf, "#%llx", static_cast<unsigned long long>(++counter_));
  return buf;
}

Result<void> Upper::install(const std::string& temp, BorrowedFd dir_fd, const char* name,
                            bool replace) {
  auto moved =
      sys::rename_at(work_.get(), temp.c_str(), dir_fd, name, replace ? 0 : RENAME_NOREPLACE);
  if (moved.ok()) return {};
  if (!replace || (moved.error() != ENOTDIR && moved.error() != EISDIR)) return moved;
  // A directory and a non-directory cannot replace each other by rename: swap the two, and the
  // replaced entry ends up in the work dir, to be removed.
  auto swapped = sys::rename_at(work_.get(), temp.c_str(), dir_fd, name, RENAME_EXCHANGE);
  if (!swapped.ok()) return swapped;
  discard(temp);
  return {};
}

void Upper::discard(const std::string& temp) {
  auto st = sys::stat_at(work_.get(), temp.c_str());
  if (!st.ok()) return;
  if (S_ISDIR(st->st_mode)) {
    auto sub = sys::open_at(work_.get(), temp.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW);
    if (sub.ok()) (void)remove_contents(sub->get());
    (void)sys::unlink_at(work_.get(), temp.c_str(), AT_REMOVEDIR);
  } else {
    (void)sys::unlink_at(work_.get(), temp.c_str());
  }
}

Result<void> Upper::make_whiteout(BorrowedFd dir_fd, const char* name) {
  std::string temp = temp_name();
  if (device_whiteouts_) {
    auto made = sys::make_node_at(work_.get(), temp.c_str(), S_IFCHR, makedev(0, 0));
    if (!made.ok()) return made;
    auto r = install(temp, dir_fd, name, true);
    if (!r.ok()) discard(temp);
    return r;
  }
  // No mknod: the OCI form. The name itself must go, and the marker takes its place.
  auto fd = sys::open_at(work_.get(), temp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (!fd.ok()) return fd.err();
  fd->reset();
  std::string marker = std::string(Whiteout::kPrefix) + name;
  auto r = install(temp, dir_fd, marker.c_str(), true);
  if (!r.ok()) {
    discard(temp);
    return r;
  }
  if (sys::stat_at(dir_fd, name).ok()) {
    std::string gone = temp_name();
    auto moved = sys::rename_at(dir_fd, name, work_.get(), gone.c_str());
    if (!moved.ok()) return moved;
    discard(gone);
  }
  return {};
}

Upper::Marker Upper::whiteout_at(BorrowedFd dir_fd, const char* name) {
  auto st = sys::stat_at(dir_fd, name);
  if (st.ok()) return Whiteout::is_device_whiteout(*st) ? Marker::kDevice : Marker::kNone;
  std::string marker = std::string(Whiteout::kPrefix) + name;
  return sys::stat_at(dir_fd, marker.c_str()).ok() ? Marker::kFile : Marker::kNone;
}

Result<void> Upper::clear_whiteout_file(BorrowedFd dir_fd, const char* name) {
  std::string marker = std::string(Whiteout::kPrefix) + name;
  auto gone = sys::unlink_at(dir_fd, marker.c_str());
  if (!gone.ok() && gone.error() != ENOENT) return gone;
  return {};
}

Result<void> Upper::mark_opaque(BorrowedFd dir_fd) {
  return sys::set_xattr(dir_fd, (prefix_ + "opaque").c_str(), "y");
}

Result<void> Upper::opaque_after_move(BorrowedFd dir_fd, bool merges, bool into_merged) {
  if (merges || !into_merged) return {};
  auto opaque = is_opaque(dir_fd);
  if (!opaque.ok()) return opaque.err();
  if (*opaque) return {};
  return mark_opaque(dir_fd);
}

Result<std::string> Upper::redirect(BorrowedFd dir_fd) const {
  std::string name = prefix_ + "redirect";
  auto v = sys::get_xattr(dir_fd, name.c_str());
  if (!v.ok() && (v.error() == ENODATA || v.error() == EOPNOTSUPP)) return std::string();
  return v;
}

Result<void> Upper::set_redirect(BorrowedFd dir_fd, const std::string& redirect) {
  return sys::set_xattr(dir_fd, (prefix_ + "redirect").c_str(), redirect);
}

NewEntry NewEntry::plan(Kind kind, const struct stat& shown_parent, uid_t uid, gid_t gid,
                        mode_t perms, std::string access_acl, std::string default_acl,
                        const std::string& override_xattr) {
  NewEntry e;
  e.kind = kind;
  e.create_mode = perms;
  const bool setgid_dir = (shown_parent.st_mode & S_ISGID) != 0;
  e.uid = uid;
  e.gid = setgid_dir ? shown_parent.st_gid : gid;
  e.mode = perms;
  if (kind == Kind::kDir && setgid_dir) e.mode |= S_ISGID;
  e.access_acl = std::move(access_acl);
  e.default_acl = std::move(default_acl);
  // (Symlinks carry no user.* xattrs; they show the writer as owner.)
  if (!override_xattr.empty() && kind != Kind::kSymlink) {
    e.keep_owner = true;
    e.override_xattr = override_xattr;
    e.override_value = StatOverride{e.uid, e.gid, e.mode}.format();
    e.mode |= kind == Kind::kDir ? S_IRWXU : S_IRUSR | S_IWUSR;
  } else if (!override_xattr.empty()) {
    e.keep_owner = true;
  }
  return e;
}

Result<Upper::Made> Upper::create(BorrowedFd dir_fd, const char* name, const NewEntry& e) {
  // The kernel creates only names the merge does not show: the upper holds nothing there, or
  // a whiteout.
  const Marker marker = whiteout_at(dir_fd, name);
  // Without CAP_CHOWN the object stays the writer's (the rootless case).
  const bool chown =
      !e.keep_owner && !(exact_creates_ && e.uid == creator_uid_ && e.gid == creator_gid_);
  // Set-id and sticky bits are set by chmod only (a chown clears set-id bits, a create may).
  const bool moded =
      e.kind == NewEntry::Kind::kSymlink ||
      (exact_creates_ && e.mode == e.create_mode && (e.mode & (S_ISUID | S_ISGID | S_ISVTX)) == 0);
  const bool xattrs = !e.override_value.empty() || !e.access_acl.empty() ||
                      !e.default_acl.empty() ||
                      (e.kind == NewEntry::Kind::kDir && marker != Marker::kNone);
  // Made in place where nothing stands at the name and the create alone gives the object all
  // it has, as kernel overlayfs creates in the upper; otherwise made whole in the work dir and
  // renamed into place, so that no half-made object ever shows.
  // (A default ACL on the upper directory would give the object more than its create mode:
  // the daemon with ACLs on brings it as `access_acl`, without them it must not apply.)
  const bool in_place =
      marker == Marker::kNone && !chown && moded && !xattrs && !has_default_acl(dir_fd);
  const BorrowedFd at = in_place ? dir_fd : work_.get();
  const std::string temp = in_place ? std::string() : temp_name();
  const char* made_as = in_place ? name : temp.c_str();
  Made out;
  Result<void> made;
  switch (e.kind) {
    case NewEntry::Kind::kFile: {
      const int flags =
          (e.open_flags & ~(O_TRUNC | O_CREAT | O_EXCL | O_NOCTTY)) | O_CREAT | O_EXCL;
      auto f = sys::open_at(at, made_as, flags, e.create_mode);
      if (!f.ok()) return f.err();
      out.fd = std::move(*f);
      break;
    }
    case NewEntry::Kind::kDir:
      made = sys::make_dir_at(at, made_as, e.create_mode);
      break;
    case NewEntry::Kind::kNode:
      made = sys::make_node_at(at, made_as, e.type | e.create_mode, e.rdev);
      break;
    case NewEntry::Kind::kSymlink:
      made = sys::make_symlink_at(e.target, at, made_as);
      break;
  }
  if (!made.ok()) return made.err();
  if (in_place) {
    auto st = out.fd.valid() ? sys::stat_fd(out.fd.get()) : sys::stat_at(dir_fd, name);
    if (!st.ok()) {
      (void)sys::unlink_at(dir_fd, name, e.kind == NewEntry::Kind::kDir ? AT_REMOVEDIR : 0);
      return st.err();
    }
    out.st = *st;
    return out;
  }
  const BorrowedFd work = work_.get();
  auto fail = [&](Errno err) -> Result<Made> {
    discard(temp);
    return err;
  };
  if (chown) {
    auto owned = sys::chown_at(work, temp.c_str(), e.uid, e.gid);
    if (!owned.ok() && owned.error() != EPERM) return fail(owned.err());
  }
  if (!moded || xattrs) {
    auto pfd = sys::open_path(work, temp.c_str());
    if (!pfd.ok()) return fail(pfd.err());
    if (!moded) {
      // After chown, which clears set-id bits; the process's umask is 0.
      if (auto m = sys::chmod_fd(pfd->get(), e.mode); !m.ok()) return fail(m.err());
    }
    for (auto [xattr, value] :
         {std::pair{e.override_xattr.c_str(), &e.override_value},
          std::pair{acl::kAccess, &e.access_acl}, std::pair{acl::kDefault, &e.default_acl}}) {
      if (value->empty() || *xattr == '\0') continue;
      auto set = sys::set_xattr(pfd->get(), xattr, *value);
      if (!set.ok()) return fail(set.err());
    }
    if (e.kind == NewEntry::Kind::kDir && marker != Marker::kNone) {
      auto o = mark_opaque(pfd->get());
      if (!o.ok()) return fail(o.err());
    }
  }
  auto in = install(temp, dir_fd, name, marker == Marker::kDevice);
  if (!in.ok()) return fail(in.err());
  if (marker == Marker::kFile) {
    auto cleared = clear_whiteout_file(dir_fd, name);
    if (!cleared.ok()) return cleared.err();
  }
  auto st = sys::stat_at(dir_fd, name);
  if (!st.ok()) return st.err();
  out.st = *st;
  return out;
}

Result<void> Upper::remove(BorrowedFd dir_fd, const char* name, bool in_upper, bool is_dir,
                           bool lower_shows) {
  if (!in_upper || lower_shows) return make_whiteout(dir_fd, name);
  auto gone = sys::unlink_at(dir_fd, name, is_dir ? AT_REMOVEDIR : 0);
  if (gone.ok() || !is_dir || (gone.error() != ENOTEMPTY && gone.error() != EEXIST)) return gone;
  // A directory with contents (what a whiteout in an applied layer deletes) leaves its name in
  // one rename, and is emptied in the work dir.
  const std::string temp = temp_name();
  LAYERFS_TRY(sys::rename_at(dir_fd, name, work_.get(), temp.c_str(), RENAME_NOREPLACE));
  discard(temp);
  return {};
}

Result<void> Upper::move(BorrowedFd from, const char* name, BorrowedFd to, const char* new_name,
                         bool is_dir, bool lower_shows_old) {
  const Marker marker = whiteout_at(to, new_name);
  if (is_dir && marker == Marker::kDevice) {
    // A directory cannot replace a whiteout by rename; swap them, and the whiteout lands on
    // the old name, where it is either needed or removed.
    LAYERFS_TRY(sys::rename_at(from, name, to, new_name, RENAME_EXCHANGE));
    if (!lower_shows_old) (void)sys::unlink_at(from, name);
  } else if (!lower_shows_old) {
    LAYERFS_TRY(sys::rename_at(from, name, to, new_name));
  } else {
    Result<void> moved = Errno{EINVAL};
    if (device_whiteouts_) moved = sys::rename_at(from, name, to, new_name, RENAME_WHITEOUT);
    if (!moved.ok()) {
      // RENAME_WHITEOUT needs CAP_MKNOD and filesystem support: rename, then mark.
      if (device_whiteouts_ && moved.error() != EINVAL && moved.error() != EPERM &&
          moved.error() != EOPNOTSUPP) {
        return moved;
      }
      LAYERFS_TRY(sys::rename_at(from, name, to, new_name));
      LAYERFS_TRY(make_whiteout(from, name));
    }
  }
  if (marker == Marker::kFile) return clear_whiteout_file(to, new_name);
  return {};
}

Result<void> Upper::link(
    BorrowedFd to, const char* new_name,
    const std::function<Result<void>(BorrowedFd dir, const char* name)>& make_link) {
  const Marker marker = whiteout_at(to, new_name);
  if (marker == Marker::kDevice) {
    const std::string temp = temp_name();
    LAYERFS_TRY(make_link(work_.get(), temp.c_str()));
    auto in = install(temp, to, new_name, true);
    if (!in.ok()) {
      discard(temp);
      return in;
    }
  } else {
    LAYERFS_TRY(make_link(to, new_name));
  }
  if (marker == Marker::kFile) return clear_whiteout_file(to, new_name);
  return {};
}

Result<bool> Upper::is_opaque(BorrowedFd dir_fd) {
  auto marks = Whiteout::dir_marks(dir_fd);
  if (!marks.ok()) return marks.err();
  return marks->opaque;
}

}  // namespace layerfs
