#include "tools/layerrun/mounts.h"

#include <fcntl.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>

#include "layers/sys/container.h"
#include "layers/sys/fs.h"

namespace layerfs::run {
namespace {

// /proc/self/fd/N: a mount on it lands on the object the fd holds, wherever it is.
std::string fd_path(const UniqueFd& fd) { return "/proc/self/fd/" + std::to_string(fd.get()); }

std::string relative(const std::string& path) {
  size_t i = 0;
  while (i < path.size() && path[i] == '/') ++i;
  return path.substr(i);
}

// The mount point `dest` inside `root`, made (directories, or an empty file for a file bind)
// where it is missing. Symlinks resolve inside the root.
Result<UniqueFd> mount_point(BorrowedFd root, const std::string& dest, bool file) {
  const std::string rel = relative(dest);
  if (rel.empty()) return sys::dup_fd(root);
  auto existing = sys::open_in_root(root, rel.c_str(), O_PATH);
  if (existing.ok() || existing.error() != ENOENT) return existing;
  // Make it one component at a time, each below the last one found.
  std::string done;
  size_t start = 0;
  while (start < rel.size()) {
    size_t end = rel.find('/', start);
    if (end == std::string::npos) end = rel.size();
    const std::string part = rel.substr(start, end - start);
    const bool last = end == rel.size();
    if (!part.empty()) {
      const std::string next = done.empty() ? part : done + "/" + part;
      auto at = sys::open_in_root(root, next.c_str(), O_PATH);
      if (!at.ok()) {
        if (at.error() != ENOENT) return at;
        auto parent = done.empty() ? sys::dup_fd(root)
                                   : sys::open_in_root(root, done.c_str(), O_PATH | O_DIRECTORY);
        if (!parent.ok()) return parent;
        if (last && file) {
          auto made = sys::open_at(parent->get(), part.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
          if (!made.ok() && made.error() != EEXIST) return made.err();
        } else if (auto made = sys::make_dir_at(parent->get(), part.c_str(), 0755);
                   !made.ok() && made.error() != EEXIST) {
          return made.err();
        }
      }
      done = next;
    }
    start = end + 1;
  }
  return sys::open_in_root(root, rel.c_str(), O_PATH);
}

std::vector<std::string> split_data(const std::string& data) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= data.size()) {
    size_t end = data.find(',', start);
    if (end == std::string::npos) end = data.size();
    if (end > start) out.push_back(data.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

struct Parsed {
  unsigned long flags = 0;
  uint64_t attrs = 0;  // MOUNT_ATTR_* for a bind (set after it, recursively for rbind)
  unsigned long propagation = 0;
  bool bind = false;
  bool recursive = false;
  std::string data;
};

Parsed parse_options(const MountSpec& m) {
  static const std::map<std::string, std::pair<unsigned long, uint64_t>> kFlags = {
      {"ro", {MS_RDONLY, MOUNT_ATTR_RDONLY}},
      {"nosuid", {MS_NOSUID, MOUNT_ATTR_NOSUID}},
      {"nodev", {MS_NODEV, MOUNT_ATTR_NODEV}},
      {"noexec", {MS_NOEXEC, MOUNT_ATTR_NOEXEC}},
      {"noatime", {MS_NOATIME, MOUNT_ATTR_NOATIME}},
      {"nodiratime", {MS_NODIRATIME, MOUNT_ATTR_NODIRATIME}},
      {"relatime", {MS_RELATIME, MOUNT_ATTR_RELATIME}},
      {"strictatime", {MS_STRICTATIME, MOUNT_ATTR_STRICTATIME}},
      {"sync", {MS_SYNCHRONOUS, 0}},
      {"dirsync", {MS_DIRSYNC, 0}},
  };
  static const std::map<std::string, unsigned long> kPropagation = {
      {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
      {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
      {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
      {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
  };
  Parsed p;
  p.bind = m.type == "bind" || m.type == "rbind";
  p.recursive = m.type == "rbind";
  for (const std::string& o : m.options) {
    if (auto f = kFlags.find(o); f != kFlags.end()) {
      p.flags |= f->second.first;
      p.attrs |= f->second.second;
    } else if (auto pr = kPropagation.find(o); pr != kPropagation.end()) {
      p.propagation = pr->second;
    } else if (o == "bind") {
      p.bind = true;
    } else if (o == "rbind") {
      p.bind = p.recursive = true;
    } else if (o == "rw" || o == "suid" || o == "dev" || o == "exec" || o == "atime" ||
               o == "async" || o == "defaults") {
      // The defaults.
    } else {
      p.data += (p.data.empty() ? "" : ",") + o;
    }
  }
  return p;
}

Result<void> bind_here(BorrowedFd root, const std::string& source, const UniqueFd& at,
                       const Parsed& p, const std::string& dest) {
  LAYERFS_TRY(sys::mount_at(source.c_str(), fd_path(at).c_str(), nullptr,
                            MS_BIND | (p.recursive ? MS_REC : 0))
                  .context("bind mount " + source + " on", dest));
  if (p.attrs != 0) {
    // The fd still names the directory under the new mount: the flags go to the mount a
    // fresh lookup finds.
    auto top = sys::open_in_root(root, relative(dest).c_str(), O_PATH);
    if (!top.ok()) return top.err().context("mount point", dest);
    LAYERFS_TRY(sys::set_mount_attributes(fd_path(*top).c_str(), p.attrs, 0, p.recursive)
                    .context("mount_setattr", dest));
  }
  return {};
}

Result<void> mount_one(BorrowedFd root, const MountSpec& m) {
  const Parsed p = parse_options(m);
  bool file = false;
  UniqueFd source_fd;
  if (p.bind) {
    // Resolved once, following links as mount(2) does: the source cannot change between the
    // check and the mount.
    auto opened = sys::open_at(kCwd, m.source.c_str(), O_PATH | O_CLOEXEC);
    if (!opened.ok()) return opened.err().context("bind source", m.source);
    source_fd = std::move(*opened);
    auto st = sys::stat_fd(source_fd.get());
    if (!st.ok()) return st.err().context("bind source", m.source);
    file = !S_ISDIR(st->st_mode);
  }
  auto at = mount_point(root, m.destination, file);
  if (!at.ok()) return at.err().context("mount point", m.destination);
  if (p.bind) {
    LAYERFS_TRY(bind_here(root, fd_path(source_fd), *at, p, m.destination));
  } else {
    Parsed q = p;
    std::string source = m.source.empty() ? m.type : m.source;
    auto made = sys::mount_at(source.c_str(), fd_path(*at).c_str(), m.type.c_str(), q.flags,
                              q.data.empty() ? nullptr : q.data.c_str());
    if (!made.ok() && m.type == "devpts" && q.data.find("gid=") != std::string::npos) {
      // In a user namespace without group 5 (tty) mapped, the kernel refuses gid=5.
      std::string data;
      for (const std::string& o : split_data(q.data)) {
        if (o.rfind("gid=", 0) != 0) data += (data.empty() ? "" : ",") + o;
      }
      q.data = data;
      made = sys::mount_at(source.c_str(), fd_path(*at).c_str(), m.type.c_str(), q.flags,
                           q.data.c_str());
    }
    if (!made.ok() && m.type == "cgroup") {
      // Mounting every v1 controller again is refused where they are mounted already: the
      // container's own cgroup namespace as cgroup2 then, before any bind of the host's.
      made = sys::mount_at("cgroup2", fd_path(*at).c_str(), "cgroup2", q.flags, nullptr);
    }
    if (!made.ok() && (m.type == "sysfs" || m.type == "cgroup" || m.type == "cgroup2") &&
        (made.error() == EPERM || made.error() == EACCES || made.error() == EBUSY)) {
      // A sysfs instance belongs to a network namespace this user namespace may not own (the
      // host's, or rootless): the host's tree instead, read-only whatever was asked.
      Parsed b = p;
      b.bind = b.recursive = true;
      b.attrs |= MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
      const std::string host = m.type == "sysfs" ? "/sys" : "/sys/fs/cgroup";
      return bind_here(root, host, *at, b, m.destination);
    }
    if (!made.ok()) return made.err().context("mount " + m.type + " on", m.destination);
  }
  if (p.propagation != 0) {
    auto again = mount_point(root, m.destination, file);
    if (!again.ok()) return again.err().context("mount point", m.destination);
    LAYERFS_TRY(sys::mount_at(nullptr, fd_path(*again).c_str(), nullptr, p.propagation)
                    .context("mount propagation", m.destination));
  }
  return {};
}

// The device nodes of a minimal /dev, bind-mounted from the host's (a user namespace may not
// make device nodes), and its links.
Result<void> populate_dev(BorrowedFd root) {
  for (const char* name : {"null", "zero", "full", "random", "urandom", "tty"}) {
    const std::string host = std::string("/dev/") + name;
    auto at = mount_point(root, host, true);
    if (!at.ok()) return at.err().context("mount point", host);
    Parsed p;
    p.bind = true;
    LAYERFS_TRY(bind_here(root, host, *at, p, host));
  }
  auto dev = sys::open_in_root(root, "dev", O_PATH | O_DIRECTORY);
  if (!dev.ok()) return dev.err().context("/dev");
  const std::pair<const char*, const char*> links[] = {
      {"ptmx", "pts/ptmx"},          {"fd", "/proc/self/fd"},       {"stdin", "/proc/self/fd/0"},
      {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
  };
  for (const auto& [name, target] : links) {
    auto made = sys::make_symlink_at(target, dev->get(), name);
    if (!made.ok() && made.error() != EEXIST) {
      return made.err().context("symlink", std::string("/dev/") + name);
    }
  }
  return {};
}

// A masked path reads as empty: a file gets /dev/null over it, a directory an empty read-only
// tmpfs. A path the kernel does not have is left alone.
Result<void> mask(BorrowedFd root, const std::string& path) {
  auto at = sys::open_in_root(root, relative(path).c_str(), O_PATH);
  if (!at.ok()) {
    if (at.error() == ENOENT || at.error() == ENOTDIR) return {};
    return at.err().context("masked path", path);
  }
  auto st = sys::stat_fd(at->get());
  if (!st.ok()) return st.err().context("masked path", path);
  if (S_ISDIR(st->st_mode)) {
    return sys::mount_at("tmpfs", fd_path(*at).c_str(), "tmpfs", MS_RDONLY, "size=0,mode=755")
        .context("mask", path);
  }
  return sys::mount_at("/dev/null", fd_path(*at).c_str(), nullptr, MS_BIND).context("mask", path);
}

Result<void> make_read_only(BorrowedFd root, const std::string& path) {
  auto at = sys::open_in_root(root, relative(path).c_str(), O_PATH);
  if (!at.ok()) {
    if (at.error() == ENOENT || at.error() == ENOTDIR) return {};
    return at.err().context("read-only path", path);
  }
  Parsed p;
  p.bind = p.recursive = true;
  p.attrs = MOUNT_ATTR_RDONLY;
  return bind_here(root, fd_path(*at), *at, p, path);
}

}  // namespace

Result<void> prepare_staging(const std::string& staging) {
  LAYERFS_TRY(sys::mount_at(nullptr, "/", nullptr, MS_REC | MS_PRIVATE).context("make / private"));
  LAYERFS_TRY(sys::mount_at("tmpfs", staging.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
                  .context("mount tmpfs on", staging));
  LAYERFS_TRY(
      sys::mount_at(nullptr, staging.c_str(), nullptr, MS_SHARED).context("make shared", staging));
  const std::string root = staging + "/root";
  return sys::make_dir_at(kCwd, root.c_str(), 0755).context("mkdir", root);
}

Result<void> bind_root(const std::string& rootfs, const std::string& target) {
  return sys::mount_at(rootfs.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC)
      .context("bind mount the rootfs", rootfs);
}

Result<void> enter_root(const Spec& spec, const std::string& new_root) {
  // Nothing mounted from here on may reach the monitor's namespace, nor the host's.
  LAYERFS_TRY(sys::mount_at(nullptr, "/", nullptr, MS_REC | MS_PRIVATE).context("make / private"));
  auto root = sys::open_at(kCwd, new_root.c_str(), O_PATH | O_DIRECTORY);
  if (!root.ok()) return root.err().context("new root", new_root);

  for (const MountSpec& m : spec.mounts) {
    LAYERFS_TRY(mount_one(root->get(), m));
    if (relative(m.destination) == "dev" && m.type == "tmpfs") {
      LAYERFS_TRY(populate_dev(root->get()));
    }
  }
  for (const std::string& p : spec.masked_paths) LAYERFS_TRY(mask(root->get(), p));
  for (const std::string& p : spec.readonly_paths) LAYERFS_TRY(make_read_only(root->get(), p));
  if (spec.read_only_root) {
    LAYERFS_TRY(sys::set_mount_attributes(new_root.c_str(), MOUNT_ATTR_RDONLY, 0, false)
                    .context("read-only root", new_root));
  }

  // pivot_root(".", "."): the old root ends up mounted over the new one, where a detaching
  // unmount takes it away; the host's tree is then unreachable, ".." of "/" included.
  LAYERFS_TRY(sys::change_dir(new_root.c_str()).context("chdir", new_root));
  LAYERFS_TRY(sys::pivot_root_into(".", ".").context("pivot_root", new_root));
  LAYERFS_TRY(sys::unmount(".", MNT_DETACH).context("unmount the old root"));
  return sys::change_dir("/").context("chdir", "/");
}

}  // namespace layerfs::run
