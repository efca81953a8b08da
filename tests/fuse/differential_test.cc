// Random operation sequences run on a layerfs mount and on a kernel overlayfs mount of
// identical layers. Each operation must have the same outcome on both (the errno, or what a
// read returns), the two merged trees must be identical afterwards, and the upper layerfs wrote
// must show the same tree when kernel overlayfs mounts it.
//
// Paths come from a small fixed namespace shared with the layer fixtures, so most operations
// land on lower files, whiteouts, opaque directories and each other's results, and many fail:
// the failures must agree too. On a divergence the test prints the seed and the shortest
// failing sequence it finds.
//
// A second instantiation runs layerfs with FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT, so that every
// whiteout it writes is a ".wh.NAME" file: the merged trees must still agree, and the upper
// must hold no whiteout device. (Kernel overlayfs does not read ".wh." files, so that upper is
// not remounted under it.)
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <random>
#include <set>
#include <sstream>

#include "tests/fuse/parity.h"

namespace layerfs::test {
namespace {

const std::vector<std::string> kDirs = {"", "a", "a/b", "low", "low/deep", "opq", "wh", "new"};
const std::vector<std::string> kNames = {"f", "g", "h", "b", "deep", "low", "x"};

enum class Kind {
  kWrite,
  kAppend,
  kTruncate,
  kMkdir,
  kRmdir,
  kUnlink,
  kRename,
  kRenameNoReplace,
  kChmod,
  kSymlink,
  kLink,
  kSetXattr,
  kRemoveXattr,
  kUtimes,
  kMkfifo,
  kRead,
  kRenameExchange,
  kSetAcl,
  kCount
};

struct Op {
  Kind kind;
  std::string a, b;
  std::string data;
  unsigned n = 0;
};

std::string describe(const Op& op) {
  static const char* names[] = {"write",           "append",  "truncate", "mkdir",
                                "rmdir",           "unlink",  "rename",   "rename-noreplace",
                                "chmod",           "symlink", "link",     "setxattr",
                                "removexattr",     "utimes",  "mkfifo",   "read",
                                "rename-exchange", "setacl"};
  std::ostringstream s;
  s << names[static_cast<int>(op.kind)] << " '" << op.a << "'";
  if (!op.b.empty()) s << " '" << op.b << "'";
  if (!op.data.empty()) s << " data[" << op.data.size() << "]";
  if (op.n) s << " n=" << std::oct << op.n;
  return s.str();
}

std::string pick_path(std::mt19937& gen) {
  const std::string& d = kDirs[gen() % kDirs.size()];
  const std::string& n = kNames[gen() % kNames.size()];
  return d.empty() ? n : d + "/" + n;
}

std::vector<Op> generate(unsigned seed, size_t count) {
  std::mt19937 gen(seed);
  std::vector<Op> ops;
  for (size_t i = 0; i < count; ++i) {
    Op op{static_cast<Kind>(gen() % static_cast<unsigned>(Kind::kCount)), pick_path(gen), "", "",
          0};
    switch (op.kind) {
      case Kind::kWrite:
      case Kind::kAppend:
        op.data = std::string(gen() % 3 == 0 ? 70000 + gen() % 5000 : gen() % 100,
                              static_cast<char>('a' + gen() % 26));
        break;
      case Kind::kTruncate:
        op.n = gen() % 3 == 0 ? 0 : gen() % 200000;
        break;
      case Kind::kMkdir:
      case Kind::kChmod:
        op.n = std::vector<unsigned>{0755, 0700, 0750, 0644, 0600, 01777}[gen() % 6];
        break;
      case Kind::kRename:
      case Kind::kRenameNoReplace:
      case Kind::kRenameExchange:
      case Kind::kLink:
        op.b = pick_path(gen);
        break;
      case Kind::kSymlink:
        op.b = gen() % 2 ? "../target" : "/abs/target";
        break;
      case Kind::kSetXattr:
        op.data = std::to_string(gen() % 1000);
        break;
      case Kind::kSetAcl:
        op.n = gen() % 2;  // 1: the default ACL (directories)
        break;
      default:
        break;
    }
    ops.push_back(op);
  }
  return ops;
}

std::string err_name(int e) { return e == 0 ? "ok" : std::string(strerrorname_np(e)); }

// The outcome of one operation: an errno name, or what a read returned.
std::string apply(const fs::path& root, const Op& op) {
  const std::string a = (root / op.a).string(), b = (root / op.b).string();
  auto rc = [](int r) { return err_name(r == 0 ? 0 : errno); };
  switch (op.kind) {
    case Kind::kWrite:
    case Kind::kAppend: {
      // O_NONBLOCK: a fifo made by an earlier operation must not block the test (ENXIO).
      int flags = O_WRONLY | O_CREAT | O_NONBLOCK | (op.kind == Kind::kWrite ? O_TRUNC : O_APPEND);
      int fd = open(a.c_str(), flags, 0644);
      if (fd < 0) return err_name(errno);
      ssize_t n = write(fd, op.data.data(), op.data.size());
      int e = n < 0 ? errno : 0;
      close(fd);
      return err_name(e);
    }
    case Kind::kTruncate:
      return rc(truncate(a.c_str(), op.n));
    case Kind::kMkdir:
      return rc(mkdir(a.c_str(), op.n));
    case Kind::kRmdir:
      return rc(rmdir(a.c_str()));
    case Kind::kUnlink:
      return rc(unlink(a.c_str()));
    case Kind::kRename:
      return rc(rename(a.c_str(), b.c_str()));
    case Kind::kRenameNoReplace:
      return rc(renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_NOREPLACE));
    case Kind::kRenameExchange:
      return rc(renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE));
    case Kind::kChmod:
      return rc(chmod(a.c_str(), op.n));
    case Kind::kSymlink:
      return rc(symlink(op.b.c_str(), a.c_str()));
    case Kind::kLink:
      return rc(link(a.c_str(), b.c_str()));
    case Kind::kSetXattr:
      return rc(lsetxattr(a.c_str(), "user.k", op.data.data(), op.data.size(), 0));
    case Kind::kRemoveXattr:
      return rc(lremovexattr(a.c_str(), "user.k"));
    case Kind::kSetAcl: {
      // user::rwx user:65534:r-x group::r-x mask::r-x other::---, in xattr form.
      static const unsigned char kAcl[] = {
          2, 0,    0,    0,    1,    0,    7,    0, 0xff, 0xff, 0xff, 0xff, 2,    0,    5,
          0, 0xfe, 0xff, 0,    0,    4,    0,    5, 0,    0xff, 0xff, 0xff, 0xff, 0x10, 0,
          5, 0,    0xff, 0xff, 0xff, 0xff, 0x20, 0, 0,    0,    0xff, 0xff, 0xff, 0xff};
      const char* name = op.n ? "system.posix_acl_default" : "system.posix_acl_access";
      return rc(lsetxattr(a.c_str(), name, kAcl, sizeof kAcl, 0));
    }
    case Kind::kUtimes: {
      const timespec t[2] = {{1500000000, 0}, {1600000000, 0}};
      return rc(utimensat(AT_FDCWD, a.c_str(), t, AT_SYMLINK_NOFOLLOW));
    }
    case Kind::kMkfifo:
      return rc(mkfifo(a.c_str(), 0644));
    case Kind::kRead: {
      int fd = open(a.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
      if (fd < 0) return err_name(errno);
      std::string data(300000, '\0');
      ssize_t n = read(fd, data.data(), data.size());
      int e = n < 0 ? errno : 0;
      close(fd);
      if (e) return err_name(e);
      return "read " +
             std::to_string(std::hash<std::string>()(data.substr(0, static_cast<size_t>(n)))) +
             "/" + std::to_string(n);
    }
    case Kind::kCount:
      break;
  }
  return "?";
}

// Directory mtimes in the layers: one instant long past, so that a directory whose mtime still
// shows it was not changed by the sequence on that mount. Copy-ups must not change it.
constexpr time_t kLayerDirMtime = 1577836800;  // 2020-01-01

void pin_dir_mtimes(const fs::path& root) {
  const timespec times[2] = {{0, UTIME_OMIT}, {kLayerDirMtime, 0}};
  auto pin = [&](const fs::path& p) {
    ASSERT_EQ(utimensat(AT_FDCWD, p.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << p;
  };
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_directory() && !e.is_symlink()) pin(e.path());
  }
  pin(root);
}

// The directories of the layers (relative paths), whose mtimes are compared after every step.
std::vector<std::string> layer_dirs(const fs::path& top, const fs::path& base) {
  std::set<std::string> out{""};
  for (const fs::path& root : {top, base}) {
    for (const auto& e : fs::recursive_directory_iterator(root)) {
      if (e.is_directory() && !e.is_symlink()) out.insert(e.path().lexically_relative(root));
    }
  }
  return {out.begin(), out.end()};
}

// Directories whose mtime one mount still shows as the layers' own while the other does not:
// one of them changed a directory the other left alone (a copy-up that touched its parents).
// Checked after every step, since a long sequence ends up changing every directory on both.
std::string dir_mtime_diff(const fs::path& kernel, const fs::path& ours,
                           const std::vector<std::string>& dirs) {
  for (const std::string& d : dirs) {
    struct stat k {
    }, o{};
    if (lstat((kernel / d).c_str(), &k) != 0 || lstat((ours / d).c_str(), &o) != 0) continue;
    if (!S_ISDIR(k.st_mode) || !S_ISDIR(o.st_mode)) continue;
    const bool k_pinned = k.st_mtim.tv_sec == kLayerDirMtime;
    const bool o_pinned = o.st_mtim.tv_sec == kLayerDirMtime;
    if (k_pinned != o_pinned) {
      return "'" + d + "': directory mtime " +
             (k_pinned ? "kept by the kernel, changed by layerfs"
                       : "changed by the kernel, kept by layerfs");
    }
  }
  return "";
}

// Two lower layers using every marker kernel overlayfs reads, over the namespace above.
void make_layers(const fs::path& top, const fs::path& base) {
  write_file(base / "f", "base f");
  write_file(base / "g", std::string(100000, 'g'));
  make_hardlink(base / "g", base / "a/h");
  write_file(base / "a/f", "base a/f");
  write_file(base / "a/b/f", "base a/b/f");
  write_file(base / "low/f", "base low/f");
  write_file(base / "low/deep/f", "deep");
  write_file(base / "opq/f", "hidden by opaque");
  write_file(base / "wh/f", "whited out");
  write_file(base / "wh/g", "kept");
  write_file(base / "x", "x");
  make_symlink("f", base / "low/x");
  write_file(top / "f", "top f");
  write_file(top / "a/g", "top a/g");
  make_dir(top / "opq");
  set_xattr(top / "opq", "trusted.overlay.opaque", "y");
  write_file(top / "opq/g", "top opq/g");
  make_whiteout(top / "wh/f");
  make_whiteout(top / "x");
  write_file(top / "low/deep/g", "top deep/g");
  set_xattr(base / "low/f", "user.k", "0");
  pin_atimes(top);
  pin_atimes(base);
  pin_dir_mtimes(top);
  pin_dir_mtimes(base);
}

struct Outcome {
  std::string failure;   // empty: the sequence agrees everywhere
  size_t succeeded = 0;  // operations that did not fail (on both sides)
};

// kDevice: layerfs as it mounts by default; kFiles: whiteouts as ".wh." files
// (FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT); kRedirects: layerfs with redirect_dir=on, writing the
// kernel's own redirects where it renames a directory with lower copies.
enum class Whiteouts { kDevice, kFiles, kRedirects };

// Paths of whiteout devices below `root`.
std::vector<std::string> device_whiteouts(const fs::path& root) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (is_device_whiteout(e.path())) out.push_back(e.path().lexically_relative(root).string());
  }
  return out;
}

Outcome run_sequence(const std::vector<Op>& ops, Whiteouts mode) {
  TempDir t("diff");
  for (const char* side : {"k", "l"}) {
    make_layers(t / side / "top", t / side / "base");
    for (const char* d : {"upper", "work", "mnt"}) fs::create_directories(t / side / d);
  }
  auto opts = [&](const char* side) {
    return "upperdir=" + (t / side / "upper").string() + ",workdir=" + (t / side / "work").string();
  };
  // redirect_dir=on: the kernel renames directories that have lower copies, as layerfs does.
  const std::string kernel_opts = opts("k") + ",redirect_dir=on";
  const std::vector<std::string> dirs = layer_dirs(t / "k/top", t / "k/base");
  const std::string layerfs_opts =
      opts("l") + (mode == Whiteouts::kRedirects ? ",redirect_dir=on" : "");
  std::ostringstream failure;
  size_t succeeded = 0;
  Tree ours_final;
  Tree theirs_tree;
  {
    KernelOverlay kernel({t / "k/top", t / "k/base"}, t / "k/mnt", kernel_opts);
    if (!kernel.ok()) return {"kernel mount: " + kernel.error()};
    ScopedEnv env("FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT", mode == Whiteouts::kFiles ? "1" : nullptr);
    LayerfsMount mount({t / "l/top", t / "l/base"}, t / "l/mnt", {"-o", layerfs_opts});
    if (!mount.ok()) return {"layerfs mount: " + mount.error()};
    for (size_t i = 0; i < ops.size(); ++i) {
      std::string theirs = apply(t / "k/mnt", ops[i]);
      std::string ours = apply(t / "l/mnt", ops[i]);
      if (theirs != ours) {
        failure << "op " << i << " (" << describe(ops[i]) << "): kernel " << theirs << ", layerfs "
                << ours;
        return {failure.str()};
      }
      if (std::string d = dir_mtime_diff(t / "k/mnt", t / "l/mnt", dirs); !d.empty()) {
        failure << "op " << i << " (" << describe(ops[i]) << "): " << d;
        return {failure.str()};
      }
      if (ours == "ok" || ours.starts_with("read ")) ++succeeded;
    }
    // Directory link counts differ by design after layerfs copies a renamed directory's tree:
    // the kernel's redirected directory still merges (nlink 1), the copy is an opaque
    // directory with its real count. With redirects on both sides they agree.
    Ignore ignore{
        .ino = true, .times = true, .dir_nlink = mode != Whiteouts::kRedirects, .blocks = true};
    theirs_tree = snapshot(t / "k/mnt");
    ours_final = snapshot(t / "l/mnt");
    auto diffs = compare(theirs_tree, ours_final, ignore);
    if (!diffs.empty()) return {"trees differ: " + ::testing::PrintToString(diffs)};
  }
  if (mode == Whiteouts::kFiles) {
    auto devices = device_whiteouts(t / "l/upper");
    if (!devices.empty()) {
      return {"whiteout devices written with FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT: " +
              ::testing::PrintToString(devices)};
    }
    return {"", succeeded};
  }
  // The upper layerfs wrote, as kernel overlayfs reads it.
  fs::create_directories(t / "l/work2");
  fs::create_directories(t / "l/mnt2");
  KernelOverlay again(
      {t / "l/top", t / "l/base"}, t / "l/mnt2",
      "upperdir=" + (t / "l/upper").string() + ",workdir=" + (t / "l/work2").string());
  if (!again.ok()) return {"kernel mount of the layerfs upper: " + again.error()};
  // Same layers, same upper: inode numbers and directory link counts agree too.
  auto diffs = compare(snapshot(t / "l/mnt2"), ours_final, {.times = true, .blocks = true});
  if (!diffs.empty()) {
    return {"kernel view of the layerfs upper differs: " + ::testing::PrintToString(diffs)};
  }
  // And the other way: the upper the kernel wrote, redirects included, as layerfs reads it.
  fs::create_directories(t / "k/work2");
  LayerfsMount reread(
      {t / "k/top", t / "k/base"}, t / "k/mnt",
      {"-o", "upperdir=" + (t / "k/upper").string() + ",workdir=" + (t / "k/work2").string()});
  if (!reread.ok()) return {"layerfs mount of the kernel's upper: " + reread.error()};
  diffs = compare(theirs_tree, snapshot(t / "k/mnt"), {.times = true, .blocks = true});
  if (!diffs.empty()) {
    return {"layerfs view of the kernel's upper differs: " + ::testing::PrintToString(diffs)};
  }
  return {"", succeeded};
}

// The shortest prefix that fails, then single operations dropped while it still fails.
std::vector<Op> shrink(std::vector<Op> ops, Whiteouts mode) {
  size_t lo = 1, hi = ops.size();
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (!run_sequence({ops.begin(), ops.begin() + static_cast<long>(mid)}, mode).failure.empty()) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  ops.resize(hi);
  for (size_t i = 0; i + 1 < ops.size() && ops.size() > 1;) {
    std::vector<Op> fewer = ops;
    fewer.erase(fewer.begin() + static_cast<long>(i));
    if (!run_sequence(fewer, mode).failure.empty()) {
      ops = std::move(fewer);
    } else {
      ++i;
    }
  }
  return ops;
}

class Differential : public ::testing::TestWithParam<unsigned> {
 protected:
  virtual Whiteouts mode() const { return Whiteouts::kDevice; }
  void check(unsigned seed);

  void SetUp() override {
    SKIP_WITHOUT_KERNEL_OVERLAY();
    TempDir probe("probe");
    if (!can_set_trusted_xattrs(probe.path()))
      GTEST_SKIP() << "trusted.* xattrs need CAP_SYS_ADMIN";
  }
};

void Differential::check(unsigned seed) {
  auto ops = generate(seed, 500);
  Outcome out = run_sequence(ops, mode());
  if (out.failure.empty()) {
    // A sequence where nearly everything fails would prove little. (Over 100 seeds: 99 to 200
    // of 500 succeed, 164 on average; renaming a directory away leaves many later paths absent.)
    EXPECT_GT(out.succeeded, ops.size() / 8) << "seed " << seed;
    std::printf("seed %u: %zu of %zu operations succeeded on both\n", seed, out.succeeded,
                ops.size());
    return;
  }
  auto shortest = shrink(ops, mode());
  std::ostringstream seq;
  for (const auto& op : shortest) seq << "  " << describe(op) << "\n";
  Outcome again = run_sequence(shortest, mode());
  ADD_FAILURE() << "seed " << seed << ": " << out.failure << "\nshortest failing sequence ("
                << shortest.size() << " ops): " << again.failure << "\n"
                << seq.str();
}

TEST_P(Differential, AgreesWithKernelOverlayfs) { check(GetParam()); }

class DifferentialWhiteoutFiles : public Differential {
 protected:
  Whiteouts mode() const override { return Whiteouts::kFiles; }
};

TEST_P(DifferentialWhiteoutFiles, AgreesWithKernelOverlayfs) { check(GetParam()); }

class DifferentialRedirects : public Differential {
 protected:
  Whiteouts mode() const override { return Whiteouts::kRedirects; }
};

TEST_P(DifferentialRedirects, AgreesWithKernelOverlayfs) { check(GetParam()); }

// 16 seeds by default; LAYERFS_DIFF_SEEDS=N explores seeds 1..N.
unsigned seed_count() {
  const char* v = getenv("LAYERFS_DIFF_SEEDS");
  unsigned n = v ? static_cast<unsigned>(strtoul(v, nullptr, 10)) : 0;
  return n ? n : 16;
}

INSTANTIATE_TEST_SUITE_P(Seeds, Differential, ::testing::Range(1u, seed_count() + 1));
// Fewer by default: the paths that differ are the whiteout writers, which every seed covers.
INSTANTIATE_TEST_SUITE_P(Seeds, DifferentialWhiteoutFiles,
                         ::testing::Range(1u, seed_count() / 4 + 1));
INSTANTIATE_TEST_SUITE_P(Seeds, DifferentialRedirects, ::testing::Range(1u, seed_count() / 2 + 1));

}  // namespace
}  // namespace layerfs::test
