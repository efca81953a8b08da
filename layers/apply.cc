#include "layers/apply.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <set>
#include <vector>

#include "layers/archive.h"
#include "layers/stat_override.h"
#include "layers/sys/fs.h"
#include "layers/sys/xattr.h"
#include "layers/tree.h"
#include "layers/upper.h"
#include "layers/whiteout.h"

namespace layerfs {
namespace {

constexpr size_t kChunk = 1 << 20;

// A refusal: the entry is skipped, the rest goes on.
struct Refused {
  std::string why;
};

std::string parent_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}
std::string name_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

class Applier {
 public:
  Applier(Upper& target, const ApplyOptions& opts) : t_(target), opts_(opts) {}

  // The directory `rel` beneath the target, made (0755, like a tar's implied parent) where
  // missing; never through a symlink.
  Result<UniqueFd> dir(const std::string& rel) {
    if (rel.empty()) return sys::dup_fd(t_.upper_fd());
    auto fd = sys::open_beneath(t_.upper_fd(), rel.c_str(), O_PATH | O_DIRECTORY);
    if (fd.ok()) return fd;
    if (fd.error() == ELOOP || fd.error() == ENOTDIR || fd.error() == EXDEV) {
      return failure(fd.error(), "'" + rel + "' is not a directory inside the target");
    }
    if (fd.error() != ENOENT) return fd.err();
    auto parent = dir(parent_of(rel));
    if (!parent.ok()) return parent;
    auto made = sys::make_dir_at(parent->get(), name_of(rel).c_str(), 0755);
    if (!made.ok() && made.error() != EEXIST) return made.err();
    return sys::open_beneath(t_.upper_fd(), rel.c_str(), O_PATH | O_DIRECTORY);
  }

  // Deletions first (flat): whiteouts delete, opaque directories lose what they held.
  Result<void> delete_below(const LayerTree& tree) {
    for (const auto& [path, e] : tree.entries()) {
      if (path.empty()) continue;
      if (e.kind == Entry::Kind::kWhiteout) {
        auto parent = dir_if_exists(parent_of(path));
        if (!parent) continue;
        auto st = sys::stat_at(parent->get(), name_of(path).c_str());
        if (!st.ok()) continue;
        LAYERFS_TRY(
            t_.remove(parent->get(), name_of(path).c_str(), true, S_ISDIR(st->st_mode), false));
      } else if (e.is_dir() && e.opaque) {
        auto d = dir_if_exists(path);
        if (d) LAYERFS_TRY(remove_contents(d->get()));
      }
    }
    return {};
  }

  std::optional<UniqueFd> dir_if_exists(const std::string& rel) {
    if (rel.empty()) {
      auto fd = sys::dup_fd(t_.upper_fd());
      return fd.ok() ? std::optional<UniqueFd>(std::move(*fd)) : std::nullopt;
    }
    auto fd = sys::open_beneath(t_.upper_fd(), rel.c_str(), O_PATH | O_DIRECTORY);
    if (!fd.ok()) return std::nullopt;
    return std::move(*fd);
  }

  // Markers (overlay): the layer's whiteouts and opaque directories as an overlay layer has
  // them.
  Result<void> write_markers(const LayerTree& tree) {
    for (const auto& [path, e] : tree.entries()) {
      if (path.empty()) continue;
      if (e.kind == Entry::Kind::kWhiteout) {
        auto parent = dir(parent_of(path));
        if (!parent.ok()) {
          refuse(path, parent.err().message());
          continue;
        }
        LAYERFS_TRY(t_.make_whiteout(parent->get(), name_of(path).c_str()));
        ++done_.entries;
      } else if (e.is_dir() && e.opaque) {
        opaque_.insert(path);
      }
    }
    return {};
  }

  void refuse(const std::string& path, const std::string& why) {
    ++done_.refused;
    if (opts_.report) opts_.report("/" + path + ": refused: " + why);
    if (opts_.strict && first_refusal_.code == 0) {
      first_refusal_ = failure(EPERM, "layer entry '/" + path + "': " + why);
    }
  }

  Result<void> entry(ArchiveReader& tar, const std::string& raw_name) {
    archive_entry* ae = tar.entry();
    if (raw_name.starts_with('/')) {
      refuse(raw_name.substr(1), "an absolute name");
      return {};
    }
    auto norm = normalize_member_path(raw_name);
    if (!norm.ok()) {
      refuse(raw_name, "a '..' in the name");
      return {};
    }
    const std::string path = *norm;
    if (path.empty()) return {};  // the root: the target itself
    const std::string name = name_of(path);
    const Whiteout::Name kind = Whiteout::classify_name(name);
    if (opts_.format != ApplyFormat::kOci && kind != Whiteout::Name::kPlain) {
      if (kind == Whiteout::Name::kMeta && name == std::string(Whiteout::kPrefix)) {
        refuse(path, "a whiteout with no name");
      }
      return {};  // applied before (markers and deletions)
    }
    const mode_t type = archive_entry_filetype(ae);
    const mode_t perm = archive_entry_perm(ae) & 07777;
    struct stat as_stat {};
    as_stat.st_mode = type | perm;
    as_stat.st_rdev = archive_entry_rdev(ae);
    if (opts_.format != ApplyFormat::kOci && Whiteout::is_device_whiteout(as_stat)) {
      return {};  // a whiteout in device form: applied before
    }
    auto parent = dir(parent_of(path));
    if (!parent.ok()) {
      refuse(path, parent.err().message());
      return {};
    }
    const BorrowedFd pfd = parent->get();
    auto existing = sys::stat_at(pfd, name.c_str());
    const char* hardlink = archive_entry_hardlink(ae);
    // A directory over a directory keeps its children and takes the new attributes.
    if (type == AE_IFDIR && existing.ok() && S_ISDIR(existing->st_mode)) {
      auto fd = sys::open_at(pfd, name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW);
      if (!fd.ok()) return fd.err();
      LAYERFS_TRY(attributes(fd->get(), path, ae, true));
      if (opaque_.contains(path)) LAYERFS_TRY(t_.mark_opaque(fd->get()));
      dirs_.emplace_back(path, archive_entry_mtime(ae), archive_entry_mtime_nsec(ae));
      ++done_.entries;
      return {};
    }
    const std::string temp = t_.temp_name();
    const BorrowedFd work = t_.work_fd();
    if (hardlink != nullptr) {
      auto target = normalize_member_path(hardlink);
      if (!target.ok() || std::string_view(hardlink).starts_with('/')) {
        refuse(path, std::string("a hard link to '") + hardlink + "', outside the layer");
        return {};
      }
      auto src = sys::open_beneath(t_.upper_fd(), target->c_str(), O_PATH | O_NOFOLLOW);
      if (!src.ok()) {
        refuse(path, "a hard link to '" + *target + "', which is not inside the target");
        return {};
      }
      auto sst = sys::stat_fd(src->get());
      if (!sst.ok() || S_ISDIR(sst->st_mode)) {
        refuse(path, "a hard link to a directory");
        return {};
      }
      LAYERFS_TRY(sys::link_fd(src->get(), work, temp.c_str()));
      LAYERFS_TRY(t_.install(temp, pfd, name.c_str(), true));
      ++done_.entries;
      return {};
    }
    switch (type) {
      case AE_IFREG: {
        const int64_t size = archive_entry_size(ae);
        if (size < 0 || static_cast<uint64_t>(size) > opts_.max_bytes - done_.bytes) {
          return failure(EFBIG, "layer entry '/" + path + "': " + std::to_string(size) +
                                    " bytes would pass --max-size (" +
                                    std::to_string(opts_.max_bytes) + " bytes)");
        }
        auto fd = sys::open_at(work, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
        if (!fd.ok()) return fd.err();
        off_t off = 0;
        for (;;) {
          auto block = tar.read_block();
          if (!block.ok()) {
            t_.discard(temp);
            return block.err();
          }
          if (block->empty()) break;
          if (done_.bytes + block->size() > opts_.max_bytes) {
            t_.discard(temp);
            return failure(EFBIG, "layer entry '/" + path + "': passes --max-size");
          }
          auto w = sys::pwrite_fd(fd->get(), block->data(), block->size(), off);
          if (!w.ok()) {
            t_.discard(temp);
            return w.err();
          }
          off += static_cast<off_t>(block->size());
          done_.bytes += block->size();
        }
        break;
      }
      case AE_IFDIR:
        LAYERFS_TRY(sys::make_dir_at(work, temp.c_str(), 0700));
        break;
      case AE_IFLNK: {
        const char* target = archive_entry_symlink(ae);
        LAYERFS_TRY(sys::make_symlink_at(target ? target : "", work, temp.c_str()));
        break;
      }
      case AE_IFCHR:
      case AE_IFBLK:
      case AE_IFIFO: {
        auto made = sys::make_node_at(work, temp.c_str(), type | 0600, archive_entry_rdev(ae));
        if (!made.ok() && made.error() == EPERM && type != AE_IFIFO) {
          // An unprivileged apply cannot make devices: an empty file stands in.
          if (opts_.report) opts_.report("/" + path + ": a device, made as an empty file");
          auto fd = sys::open_at(work, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
          if (!fd.ok()) return fd.err();
        } else if (!made.ok()) {
          return made.err();
        }
        break;
      }
      default:
        refuse(path, "a socket or unknown type");
        return {};
    }
    auto fd = sys::open_at(work, temp.c_str(), O_PATH | O_NOFOLLOW);
    if (!fd.ok()) return fd.err();
    auto attrs = attributes(fd->get(), path, ae, type == AE_IFDIR);
    if (!attrs.ok()) {
      t_.discard(temp);
      return attrs;
    }
    if (type == AE_IFDIR && opaque_.contains(path)) LAYERFS_TRY(t_.mark_opaque(fd->get()));
    auto in = t_.install(temp, pfd, name.c_str(), true);
    if (!in.ok()) {
      t_.discard(temp);
      return in;
    }
    if (type == AE_IFDIR) {
      dirs_.emplace_back(path, archive_entry_mtime(ae), archive_entry_mtime_nsec(ae));
    }
    ++done_.entries;
    return {};
  }

  // Owner, mode, xattrs and (but for directories, whose mtime their children still move) times.
  Result<void> attributes(BorrowedFd fd, const std::string& path, archive_entry* ae, bool is_dir) {
    const mode_t type = archive_entry_filetype(ae);
    const uid_t uid = static_cast<uid_t>(archive_entry_uid(ae));
    const gid_t gid = static_cast<gid_t>(archive_entry_gid(ae));
    const mode_t perm = archive_entry_perm(ae) & 07777;
    auto owned = sys::chown_fd(fd, uid, gid);
    if (!owned.ok() && owned.error() == EPERM && type != AE_IFLNK) {
      // Unprivileged: the owner the layer gives is kept where containers-storage keeps it.
      StatOverride o{uid, gid, perm};
      (void)sys::set_xattr(fd, StatOverride::kContainers, o.format());
    } else if (!owned.ok() && owned.error() != EPERM) {
      return owned.err();
    }
    if (type != AE_IFLNK) LAYERFS_TRY(sys::chmod_fd(fd, perm));
    archive_entry_xattr_reset(ae);
    const char* xname = nullptr;
    const void* xvalue = nullptr;
    size_t xsize = 0;
    while (archive_entry_xattr_next(ae, &xname, &xvalue, &xsize) == ARCHIVE_OK) {
      auto set =
          sys::set_xattr(fd, xname, std::string_view(static_cast<const char*>(xvalue), xsize));
      if (!set.ok() && opts_.report) {
        opts_.report("/" + path + ": xattr " + xname + " not set: " + set.err().message());
      }
    }
    if (!is_dir) {
      const struct timespec times[2] = {{archive_entry_mtime(ae), archive_entry_mtime_nsec(ae)},
                                        {archive_entry_mtime(ae), archive_entry_mtime_nsec(ae)}};
      auto set = sys::set_times_fd(fd, times);
      if (!set.ok() && type != AE_IFLNK) return set.err();  // (a symlink's may not be settable)
    }
    return {};
  }

  // Directories take their mtimes last, deepest first.
  void finish_dirs() {
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
      auto d = dir_if_exists(std::get<0>(*it));
      if (!d) continue;
      const struct timespec times[2] = {{std::get<1>(*it), std::get<2>(*it)},
                                        {std::get<1>(*it), std::get<2>(*it)}};
      (void)sys::set_times_fd(d->get(), times);
    }
  }

  Applied& done() { return done_; }
  const Errno& first_refusal() const { return first_refusal_; }

 private:
  Upper& t_;
  const ApplyOptions& opts_;
  Applied done_;
  Errno first_refusal_;
  std::set<std::string> opaque_;
  std::vector<std::tuple<std::string, time_t, long>> dirs_;
};

}  // namespace

Result<Applied> apply_layer(const std::string& layer, const std::string& target,
                            const ApplyOptions& opts) {
  auto opened = Upper::open_target(target, opts.format == ApplyFormat::kOverlay);
  if (!opened.ok()) return opened.err();
  Upper& t = **opened;
  Applier applier(t, opts);
  // First pass: what the layer deletes and makes opaque (whiteouts may come after what they
  // sit beside in the tar, and apply to the layers below only).
  LayerTree tree;
  if (opts.format != ApplyFormat::kOci) {
    auto tar = ArchiveReader::open_file(layer);
    if (!tar.ok()) return tar.err();
    for (;;) {
      auto more = (*tar)->next();
      if (!more.ok()) return more.err();
      if (!*more) break;
      auto path = normalize_member_path((*tar)->name());
      if (!path.ok() || (*tar)->name().starts_with('/')) continue;  // refused in the second pass
      Entry e;
      e.path = *path;
      e.mode = archive_entry_filetype((*tar)->entry()) | archive_entry_perm((*tar)->entry());
      e.rdev = archive_entry_rdev((*tar)->entry());
      e.xattrs = member_xattrs((*tar)->entry());
      if (archive_entry_hardlink((*tar)->entry()) != nullptr) e.mode = S_IFREG | 0644;
      tree.add(std::move(e));
    }
    if (opts.format == ApplyFormat::kFlat) {
      LAYERFS_TRY(applier.delete_below(tree));
    } else {
      LAYERFS_TRY(applier.write_markers(tree));
    }
  }
  auto tar = ArchiveReader::open_file(layer);
  if (!tar.ok()) return tar.err();
  for (;;) {
    auto more = (*tar)->next();
    if (!more.ok()) return more.err();
    if (!*more) break;
    LAYERFS_TRY(applier.entry(**tar, (*tar)->name()));
    if (applier.first_refusal().code != 0) return applier.first_refusal();
  }
  applier.finish_dirs();
  return applier.done();
}

}  // namespace layerfs
