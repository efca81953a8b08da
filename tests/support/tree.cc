#include "tests/support/tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace layerfs::test {
namespace {

void check(int rc, const std::string& what, const fs::path& p) {
  ASSERT_EQ(rc, 0) << what << " " << p << ": " << strerror(errno);
}

void parents(const fs::path& p) { fs::create_directories(p.parent_path()); }

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::map<std::string, std::string> xattrs_of(const fs::path& p) {
  std::map<std::string, std::string> out;
  char names[65536];
  ssize_t n = llistxattr(p.c_str(), names, sizeof names);
  for (ssize_t pos = 0; pos < n;) {
    std::string name(names + pos);
    pos += static_cast<ssize_t>(name.size()) + 1;
    char value[65536];
    ssize_t v = lgetxattr(p.c_str(), name.c_str(), value, sizeof value);
    out[name] = v >= 0 ? std::string(value, static_cast<size_t>(v))
                       : "<" + std::string(strerror(errno)) + ">";
  }
  return out;
}

void walk(const fs::path& root, const std::string& rel, const SnapshotOptions& opts, Tree& out) {
  fs::path p = rel.empty() ? root : root / rel;
  NodeInfo info;
  if (lstat(p.c_str(), &info.st) != 0) return;
  if (S_ISLNK(info.st.st_mode)) {
    char buf[4096];
    ssize_t n = readlink(p.c_str(), buf, sizeof buf);
    info.link.assign(buf, n > 0 ? static_cast<size_t>(n) : 0);
  }
  if (S_ISREG(info.st.st_mode) && opts.content) info.content = read_all(p);
  if (opts.xattrs) info.xattrs = xattrs_of(p);
  bool is_dir = S_ISDIR(info.st.st_mode);
  out[rel] = std::move(info);
  if (!is_dir) return;
  DIR* d = opendir(p.c_str());
  if (d == nullptr) return;
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(d);
  for (const auto& name : names) walk(root, rel.empty() ? name : rel + "/" + name, opts, out);
}

std::string ts(const timespec& t) {
  return std::to_string(t.tv_sec) + "." + std::to_string(t.tv_nsec);
}

}  // namespace

void write_file(const fs::path& p, const std::string& content, mode_t mode) {
  parents(p);
  int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  ASSERT_GE(fd, 0) << "create " << p << ": " << strerror(errno);
  ASSERT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  fchmod(fd, mode);
  close(fd);
}

std::string read_file(const fs::path& p) {
  int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::string("<error: ") + strerror(errno) + ">";
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  const int err = errno;
  close(fd);
  if (n < 0) return std::string("<error: ") + strerror(err) + ">";
  return out;
}

void make_dir(const fs::path& p, mode_t mode) {
  fs::create_directories(p);
  check(chmod(p.c_str(), mode), "chmod", p);
}

void make_symlink(const std::string& target, const fs::path& p) {
  parents(p);
  check(symlink(target.c_str(), p.c_str()), "symlink", p);
}

void make_hardlink(const fs::path& existing, const fs::path& p) {
  parents(p);
  check(link(existing.c_str(), p.c_str()), "link", p);
}

void make_whiteout(const fs::path& p) {
  parents(p);
  check(mknod(p.c_str(), S_IFCHR | 0000, makedev(0, 0)), "mknod 0/0", p);
}

void make_fifo(const fs::path& p) {
  parents(p);
  check(mkfifo(p.c_str(), 0644), "mkfifo", p);
}

void set_xattr(const fs::path& p, const std::string& name, const std::string& value) {
  check(lsetxattr(p.c_str(), name.c_str(), value.data(), value.size(), 0), "setxattr " + name, p);
}

void pin_atimes(const fs::path& root) {
  const timespec times[2] = {{4102444800, 0}, {0, UTIME_OMIT}};  // 2100-01-01
  ASSERT_EQ(utimensat(AT_FDCWD, root.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << root;
  if (!fs::is_directory(fs::symlink_status(root))) return;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    ASSERT_EQ(utimensat(AT_FDCWD, e.path().c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << e.path();
  }
}

struct stat lstat_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(lstat(p.c_str(), &st), 0) << p;
  return st;
}

bool is_device_whiteout(const fs::path& p) {
  struct stat st {};
  return lstat(p.c_str(), &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

std::string xattr_of(const fs::path& p, const std::string& name) {
  char buf[256];
  ssize_t n = lgetxattr(p.c_str(), name.c_str(), buf, sizeof buf);
  return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
}

bool can_set_trusted_xattrs(const fs::path& dir) {
  fs::path probe = dir / ".trusted-probe";
  write_file(probe, "");
  bool ok = lsetxattr(probe.c_str(), "trusted.layerfs.probe", "y", 1, 0) == 0;
  fs::remove(probe);
  return ok;
}

Tree snapshot(const fs::path& root, SnapshotOptions opts) {
  Tree out;
  walk(root, "", opts, out);
  return out;
}

std::vector<std::string> compare(const Tree& a, const Tree& b, Ignore ignore) {
  std::vector<std::string> diffs;
  for (const auto& [path, x] : a) {
    auto it = b.find(path);
    const std::string name = "'" + path + "'";
    if (it == b.end()) {
      diffs.push_back(name + " only in the first tree");
      continue;
    }
    const NodeInfo& y = it->second;
    auto field = [&](const char* what, const std::string& u, const std::string& v) {
      if (u != v) diffs.push_back(name + " " + what + ": " + u + " vs " + v);
    };
    auto num = [&](const char* what, auto u, auto v) {
      field(what, std::to_string(u), std::to_string(v));
    };
    num("mode", x.st.st_mode, y.st.st_mode);
    num("uid", x.st.st_uid, y.st.st_uid);
    num("gid", x.st.st_gid, y.st.st_gid);
    num("size", x.st.st_size, y.st.st_size);
    num("rdev", x.st.st_rdev, y.st.st_rdev);
    if (!ignore.dev) num("dev", x.st.st_dev, y.st.st_dev);
    if (!ignore.ino) num("ino", x.st.st_ino, y.st.st_ino);
    if (!ignore.nlink && !(ignore.dir_nlink && S_ISDIR(x.st.st_mode))) {
      num("nlink", x.st.st_nlink, y.st.st_nlink);
    }
    if (!ignore.blocks) num("blocks", x.st.st_blocks, y.st.st_blocks);
    if (!ignore.times) {
      field("mtime", ts(x.st.st_mtim), ts(y.st.st_mtim));
      field("ctime", ts(x.st.st_ctim), ts(y.st.st_ctim));
      if (!ignore.atime) field("atime", ts(x.st.st_atim), ts(y.st.st_atim));
    }
    field("link", x.link, y.link);
    if (x.content != y.content) diffs.push_back(name + " content differs");
    if (x.xattrs != y.xattrs) diffs.push_back(name + " xattrs differ");
  }
  for (const auto& [path, y] : b) {
    if (!a.contains(path)) diffs.push_back("'" + path + "' only in the second tree");
  }
  return diffs;
}

std::string paths_of(const Tree& t) {
  std::string out;
  for (const auto& [path, info] : t) out += "  /" + path + "\n";
  return out;
}

}  // namespace layerfs::test
