// Mount behaviour: read-only, many layers, layers on several filesystems, inode stability,
// tools over the mount, concurrency and listing offsets.
#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "tests/fuse/parity.h"

namespace layerfs::test {
namespace {

TEST(Mount, WritesFailWithEROFS) {
  SKIP_WITHOUT_FUSE();
  TempDir t("ro");
  write_file(t / "l/f", "data");
  make_dir(t / "l/d");
  TempDir mnt("mnt");
  LayerfsMount mount({t / "l"}, mnt.path());
  ASSERT_TRUE(mount.ok()) << mount.error();
  auto expect_erofs = [](int rc, const char* what) {
    EXPECT_EQ(rc, -1) << what;
    EXPECT_EQ(errno, EROFS) << what;
  };
  expect_erofs(open((mnt / "f").c_str(), O_WRONLY), "open O_WRONLY");
  expect_erofs(open((mnt / "f").c_str(), O_RDONLY | O_TRUNC), "open O_TRUNC");
  expect_erofs(open((mnt / "new").c_str(), O_CREAT | O_WRONLY, 0644), "create");
  expect_erofs(mkdir((mnt / "nd").c_str(), 0755), "mkdir");
  expect_erofs(unlink((mnt / "f").c_str()), "unlink");
  expect_erofs(rmdir((mnt / "d").c_str()), "rmdir");
  expect_erofs(rename((mnt / "f").c_str(), (mnt / "g").c_str()), "rename");
  expect_erofs(chmod((mnt / "f").c_str(), 0600), "chmod");
  expect_erofs(truncate((mnt / "f").c_str(), 0), "truncate");
  expect_erofs(symlink("x", (mnt / "s").c_str()), "symlink");
  expect_erofs(setxattr((mnt / "f").c_str(), "user.x", "1", 1, 0), "setxattr");
  // Nothing reached the layer.
  EXPECT_EQ(snapshot(t / "l").size(), 3u);
  EXPECT_EQ(snapshot(t / "l")["f"].content, "data");
}

// Kernel overlayfs refuses a single lower layer, so one layer is compared with the directory
// itself: every path, every lstat field but st_dev, content, link targets and xattrs.
TEST(Mount, OneLayerLooksExactlyLikeTheDirectory) {
  SKIP_WITHOUT_FUSE();
  TempDir t("one");
  fs::path l = t / "l";
  write_file(l / "a/b/c", "c");
  write_file(l / "x", "x", 0640);
  write_file(l / "exec", "#!/bin/sh\n", 0755);
  make_hardlink(l / "x", l / "a/x-again");
  make_symlink("a/b", l / "link");
  make_symlink("/etc/passwd", l / "abs");
  make_fifo(l / "fifo");
  make_dir(l / "empty", 0700);
  set_xattr(l / "x", "user.note", "kept");
  pin_atimes(l);
  TempDir mnt("mnt");
  LayerfsMount mount({l}, mnt.path());
  ASSERT_TRUE(mount.ok()) << mount.error();
  Tree ours = snapshot(mnt.path());
  Tree theirs = snapshot(l);
  auto diffs = compare(theirs, ours);
  EXPECT_TRUE(diffs.empty()) << ::testing::PrintToString(diffs);
  EXPECT_EQ(ours.size(), 11u) << paths_of(ours);
}

TEST(Mount, AThousandLayers) {
  SKIP_WITHOUT_FUSE();
  TempDir t("many");
  std::vector<fs::path> lowers;
  for (int i = 0; i < 1000; ++i) {
    fs::path l = t / std::to_string(i);
    write_file(l / ("only" + std::to_string(i)), std::to_string(i));
    write_file(l / "shared" / ("s" + std::to_string(i)), "");
    lowers.push_back(l);
  }
  make_whiteout(lowers[500] / "only700");
  set_xattr(lowers[900] / "shared", "user.overlay.opaque", "y");
  write_file(lowers[999] / "deep/bottom", "at the bottom");

  TempDir mnt("mnt");
  LayerfsMount mount(lowers, mnt.path());
  ASSERT_TRUE(mount.ok()) << mount.error();
  std::set<std::string> root, shared;
  for (const auto& e : fs::directory_iterator(mnt.path())) root.insert(e.path().filename());
  for (const auto& e : fs::directory_iterator(mnt / "shared")) shared.insert(e.path().filename());
  EXPECT_EQ(root.size(), 999u + 2u);  // only0..only999 but only700, shared, deep
  EXPECT_FALSE(root.contains("only700"));
  EXPECT_TRUE(root.contains("only999"));
  EXPECT_EQ(shared.size(), 901u);  // s0..s900: layer 900's copy is opaque
  EXPECT_TRUE(shared.contains("s900"));
  EXPECT_FALSE(shared.contains("s901"));
  Tree bottom = snapshot(mnt / "deep");
  EXPECT_EQ(bottom["bottom"].content, "at the bottom");
  EXPECT_EQ(snapshot(mnt / "only999")[""].content, "999");
  struct stat st;
  ASSERT_EQ(stat((mnt / "shared").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);  // merged directory, as kernel overlayfs reports it
}

// The fds the daemon holds do not grow with what the kernel caches: under `ulimit -n 1024`, a
// walk of 100,000 directories in one layer, and of 50 directories in each of 1,000 layers,
// finish without an error, and writes work afterwards.
class FdLimit : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_FUSE();
    if (run({"sh", "-c", "command -v prlimit"}).status != 0) GTEST_SKIP() << "no prlimit";
  }
  // The daemon under a limit of 1,024 open files (soft and hard: it cannot raise it).
  std::vector<std::string> limited() const { return {"prlimit", "--nofile=1024:1024", "--"}; }
  // find over the mount; the number of directories it saw, or the error it printed.
  static std::string walk(const fs::path& mnt) {
    RunResult r = run({"sh", "-c", "find \"$0\" -type d | wc -l", mnt.string()});
    return r.err.empty() ? r.out : "error: " + r.err;
  }
  static void writes_work(const fs::path& mnt, const std::string& dir) {
    make_dir(mnt / dir / "new");
    write_file(mnt / dir / "new/f", "written after the walk");
    EXPECT_EQ(snapshot(mnt / dir / "new")["f"].content, "written after the walk");
  }
  TempDir t_{"fdlimit"};
};

TEST_F(FdLimit, AWalkOfAHundredThousandDirectoriesInOneLayer) {
  for (int i = 0; i < 100; ++i) {
    for (int j = 0; j < 1000; ++j) {
      const fs::path p = t_ / "l" / ("d" + std::to_string(i)) / ("s" + std::to_string(j));
      ASSERT_TRUE(fs::create_directories(p)) << p;
    }
  }
  for (const char* d : {"u", "w", "mnt"}) make_dir(t_ / d);
  LayerfsMount mount({t_ / "l"}, t_ / "mnt",
                     {"-o", "upperdir=" + (t_ / "u").string() + ",workdir=" + (t_ / "w").string()},
                     limited());
  ASSERT_TRUE(mount.ok()) << mount.error();
  EXPECT_EQ(walk(t_ / "mnt"), "100101\n");
  writes_work(t_ / "mnt", "d99/s999");
  EXPECT_EQ(walk(t_ / "mnt/d99"), "1002\n") << "walking again, with the kernel's cache full";
}

TEST_F(FdLimit, AWalkOfFiftyDirectoriesInEachOfAThousandLayers) {
  std::vector<fs::path> lowers;
  for (int i = 0; i < 1000; ++i) {
    fs::path l = t_ / "layers" / std::to_string(i);
    for (int j = 0; j < 50; ++j) make_dir(l / ("d" + std::to_string(j)));
    write_file(l / ("d" + std::to_string(i % 50)) / ("f" + std::to_string(i)), "");
    lowers.push_back(l);
  }
  for (const char* d : {"u", "w", "mnt"}) make_dir(t_ / d);
  // As root, renames redirect: the moved directory's 1,000 copies are found again by path.
  const bool redirects = can_set_trusted_xattrs(t_.path());
  LayerfsMount mount(lowers, t_ / "mnt",
                     {"-o", "upperdir=" + (t_ / "u").string() + ",workdir=" + (t_ / "w").string() +
                                (redirects ? ",redirect_dir=on" : "")},
                     limited());
  ASSERT_TRUE(mount.ok()) << mount.error();
  EXPECT_EQ(walk(t_ / "mnt"), "51\n");
  auto count_files = [&] {
    return run({"sh", "-c", "find \"$0\" -type f | wc -l", (t_ / "mnt").string()});
  };
  RunResult files = count_files();
  EXPECT_EQ(files.out, "1000\n") << files.err;
  writes_work(t_ / "mnt", "d7");
  EXPECT_EQ(snapshot(t_ / "mnt/d7").count("f957"), 1u);
  ASSERT_EQ(rename((t_ / "mnt/d3").c_str(), (t_ / "mnt/d7/moved").c_str()), 0) << strerror(errno);
  std::ofstream("/proc/sys/vm/drop_caches") << "2\n";  // (as root) the kernel forgets inodes
  files = count_files();
  EXPECT_EQ(files.out, "1001\n") << files.err;  // with the one written above
  EXPECT_EQ(snapshot(t_ / "mnt/d7/moved").count("f953"), 1u);
  writes_work(t_ / "mnt", "d7/moved");
  if (redirects) {
    EXPECT_FALSE(fs::exists(t_ / "u/d7/moved/f953")) << "nothing was copied";
  }
}

// A tmpfs mounted for the test, unmounted whatever happens.
class Tmpfs {
 public:
  explicit Tmpfs(const fs::path& at) : at_(at) {
    fs::create_directories(at);
    ok_ = mount("tmpfs", at.c_str(), "tmpfs", 0, "size=16m") == 0;
  }
  ~Tmpfs() {
    if (ok_) unmount(at_);
  }
  bool ok() const { return ok_; }

 private:
  fs::path at_;
  bool ok_ = false;
};

TEST(Mount, InodeNumbersAreUniqueAcrossFilesystems) {
  SKIP_WITHOUT_FUSE();
  TempDir t("mixed");
  Tmpfs tmpfs(t / "tmpfs");
  if (!tmpfs.ok()) GTEST_SKIP() << "mounting a tmpfs needs root";
  fs::path top = t / "tmpfs/top", base = t / "base";
  for (int i = 0; i < 50; ++i) {
    write_file(top / ("t" + std::to_string(i)), "t");
    write_file(base / ("b" + std::to_string(i)), "b");
    write_file(base / "dir" / ("b" + std::to_string(i)), "b");
  }
  write_file(top / "dir/t", "t");
  make_hardlink(base / "b0", base / "dir/hard");

  TempDir mnt("mnt");
  std::map<std::string, ino_t> first;
  {
    LayerfsMount mount({top, base}, mnt.path());
    ASSERT_TRUE(mount.ok()) << mount.error();
    Tree tree = snapshot(mnt.path(), {.content = false, .xattrs = false});
    std::map<ino_t, std::string> owner;
    for (const auto& [path, info] : tree) {
      first[path] = info.st.st_ino;
      if (path == "dir/hard") continue;
      auto [it, inserted] = owner.emplace(info.st.st_ino, path);
      EXPECT_TRUE(inserted) << path << " and " << it->second << " share st_ino " << info.st.st_ino;
    }
    EXPECT_EQ(tree["dir/hard"].st.st_ino, tree["b0"].st.st_ino);
    EXPECT_EQ(tree["b0"].st.st_nlink, 2u);
  }
  LayerfsMount again({top, base}, mnt.path());
  ASSERT_TRUE(again.ok()) << again.error();
  Tree tree = snapshot(mnt.path(), {.content = false, .xattrs = false});
  for (const auto& [path, info] : tree) EXPECT_EQ(info.st.st_ino, first[path]) << path;
}

TEST(Mount, InodeNumbersAreTheLayersOwnOnOneFilesystem) {
  SKIP_WITHOUT_FUSE();
  TempDir t("ino");
  write_file(t / "top/a", "a");
  write_file(t / "base/b", "b");
  write_file(t / "base/d/c", "c");
  TempDir mnt("mnt");
  for (int round = 0; round < 2; ++round) {
    LayerfsMount mount({t / "top", t / "base"}, mnt.path());
    ASSERT_TRUE(mount.ok()) << mount.error();
    for (const char* rel : {"top/a", "base/b", "base/d/c", "base/d"}) {
      struct stat real, shown;
      ASSERT_EQ(lstat((t / rel).c_str(), &real), 0);
      std::string in_mount = std::string(rel).substr(std::string(rel).find('/') + 1);
      ASSERT_EQ(lstat((mnt / in_mount).c_str(), &shown), 0);
      EXPECT_EQ(shown.st_ino, real.st_ino) << rel << " round " << round;
    }
  }
}

std::string sorted_lines(std::string s) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find('\n', pos);
    if (end == std::string::npos) end = s.size();
    lines.push_back(s.substr(pos, end - pos));
    pos = end + 1;
  }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (auto& l : lines) out += l + "\n";
  return out;
}

TEST(Mount, FindTarAndDuAgreeWithKernelOverlayfs) {
  SKIP_WITHOUT_KERNEL_OVERLAY();
  TempDir t("tools");
  fs::path top = t / "top", base = t / "base";
  for (int i = 0; i < 30; ++i) {
    write_file(base / "d" / std::to_string(i % 5) / ("f" + std::to_string(i)),
               std::string(static_cast<size_t>(i) * 1000, 'x'));
  }
  make_hardlink(base / "d/0/f0", base / "d/link-to-f0");
  make_symlink("d/1", base / "sym");
  write_file(top / "d/0/f0", "shadowed");
  make_whiteout(top / "d/2");
  write_file(top / "d/3/new", std::string(10000, 'y'));
  write_file(top / "sparse", "");
  ASSERT_EQ(truncate((top / "sparse").c_str(), 1 << 22), 0);

  TempDir mnts("mnt");
  fs::create_directories(mnts / "k");
  fs::create_directories(mnts / "l");
  KernelOverlay kernel({top, base}, mnts / "k");
  ASSERT_TRUE(kernel.ok()) << kernel.error();
  LayerfsMount mount({top, base}, mnts / "l");
  ASSERT_TRUE(mount.ok()) << mount.error();
  const std::vector<std::vector<std::string>> commands = {
      {"find", ".", "-printf", "%p %y %m %n %s %i %U %G %T@ %l\\n"},
      {"du", "-a", "."},
      {"du", "-a", "--apparent-size", "."},
      {"sh", "-c", "tar -cf - . | tar -tvf -"},
  };
  for (const auto& cmd : commands) {
    std::vector<std::string> k = {"sh", "-c", "cd \"$0\" && exec \"$@\"", (mnts / "k").string()};
    std::vector<std::string> l = {"sh", "-c", "cd \"$0\" && exec \"$@\"", (mnts / "l").string()};
    k.insert(k.end(), cmd.begin(), cmd.end());
    l.insert(l.end(), cmd.begin(), cmd.end());
    RunResult kr = run(k), lr = run(l);
    EXPECT_EQ(kr.status, 0) << cmd[0] << ": " << kr.err;
    EXPECT_EQ(lr.status, 0) << cmd[0] << ": " << lr.err;
    EXPECT_EQ(sorted_lines(lr.out), sorted_lines(kr.out)) << "command: " << cmd.back();
    EXPECT_GT(lr.out.size(), 100u);
  }
}

TEST(Mount, ConcurrentReadersSeeTheRightData) {
  SKIP_WITHOUT_FUSE();
  TempDir t("conc");
  for (int i = 0; i < 40; ++i) {
    write_file(t / "base" / ("d" + std::to_string(i % 4)) / ("f" + std::to_string(i)),
               std::string(static_cast<size_t>(4096 + i * 997), static_cast<char>('a' + i % 26)));
  }
  for (int i = 0; i < 40; i += 3) {
    write_file(t / "top" / ("d" + std::to_string(i % 4)) / ("f" + std::to_string(i)),
               "top " + std::to_string(i));
  }
  // The expected view, from the rule "the top layer wins".
  Tree expected;
  for (int i = 0; i < 40; ++i) {
    std::string rel = "d" + std::to_string(i % 4) + "/f" + std::to_string(i);
    expected[rel].content = i % 3 == 0 ? "top " + std::to_string(i)
                                       : std::string(static_cast<size_t>(4096 + i * 997),
                                                     static_cast<char>('a' + i % 26));
  }
  TempDir mnt("mnt");
  LayerfsMount mount({t / "top", t / "base"}, mnt.path(), {"-o", "max_threads=8"});
  ASSERT_TRUE(mount.ok()) << mount.error();
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int th = 0; th < 8; ++th) {
    threads.emplace_back([&] {
      for (int round = 0; round < 10; ++round) {
        Tree got = snapshot(mnt.path(), {.content = true, .xattrs = false});
        for (const auto& [rel, info] : expected) {
          auto it = got.find(rel);
          if (it == got.end() || it->second.content != info.content) ++bad;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

// What readdir says an entry's inode is must be what lstat says, "." and ".." included.
TEST(Mount, ListedInodeNumbersMatchLstat) {
  SKIP_WITHOUT_FUSE();
  TempDir t("dino");
  write_file(t / "top/d/a", "a");
  write_file(t / "base/d/b", "b");
  make_dir(t / "base/d/sub");
  make_symlink("a", t / "top/d/link");
  TempDir mnt("mnt");
  LayerfsMount mount({t / "top", t / "base"}, mnt.path());
  ASSERT_TRUE(mount.ok()) << mount.error();
  DIR* d = opendir((mnt / "d").c_str());
  ASSERT_NE(d, nullptr);
  std::map<std::string, ino_t> listed;
  while (dirent* e = readdir(d)) listed[e->d_name] = e->d_ino;
  closedir(d);
  auto ino = [](const fs::path& p) {
    struct stat st;
    EXPECT_EQ(lstat(p.c_str(), &st), 0) << p;
    return st.st_ino;
  };
  ASSERT_EQ(listed.size(), 6u);
  EXPECT_EQ(listed["."], ino(mnt / "d"));
  EXPECT_EQ(listed[".."], ino(mnt.path()));
  for (const char* name : {"a", "b", "sub", "link"}) {
    EXPECT_EQ(listed[name], ino(mnt / "d" / name)) << name;
  }
}

TEST(Mount, ListingOffsetsAreStable) {
  SKIP_WITHOUT_FUSE();
  TempDir t("offs");
  for (int i = 0; i < 3000; ++i) {
    write_file(t / (i % 2 ? "top" : "base") / "big" / ("entry-" + std::to_string(i)), "");
  }
  TempDir mnt("mnt");
  LayerfsMount mount({t / "top", t / "base"}, mnt.path());
  ASSERT_TRUE(mount.ok()) << mount.error();
  DIR* d = opendir((mnt / "big").c_str());
  ASSERT_NE(d, nullptr);
  std::vector<std::string> first;
  long mark = -1;
  size_t mark_index = 0;
  while (dirent* e = readdir(d)) {
    if (first.size() == 1234) {
      mark = telldir(d);  // the position after the entry just returned
      mark_index = first.size() + 1;
    }
    first.emplace_back(e->d_name);
  }
  ASSERT_GE(mark, 0);
  seekdir(d, mark);
  std::vector<std::string> again;
  while (dirent* e = readdir(d)) again.emplace_back(e->d_name);
  closedir(d);
  EXPECT_EQ(again,
            std::vector<std::string>(first.begin() + static_cast<long>(mark_index), first.end()));
  std::set<std::string> unique(first.begin(), first.end());
  EXPECT_EQ(unique.size(), first.size()) << "a name was listed twice";
  EXPECT_EQ(first.size(), 3002u);  // with "." and ".."
}

// A mount point inside a lower layer: the daemon never crosses into a mount inside a layer
// (its own least of all, which deadlocked); like kernel overlayfs it shows what the layer's own
// filesystem has there.
TEST(Mount, AMountPointInsideALowerLayerShowsTheLayersOwnDirectory) {
  SKIP_WITHOUT_KERNEL_OVERLAY();
  if (geteuid() != 0) GTEST_SKIP() << "private layer mounts need CAP_SYS_ADMIN";
  TempDir t("inside");
  for (const char* side : {"k", "l"}) {
    write_file(t / side / "low/f", "f");
    write_file(t / side / "low/mnt/under", "what the layer has under the mount point");
    make_dir(t / side / "low/sub/mnt");
    write_file(t / side / "base/b", "b");  // kernel overlayfs takes two lowers at least
  }
  // A foreign mount inside the layer too: it is not crossed either.
  TempDir other("other");
  write_file(other / "elsewhere", "from another mount");
  struct Unbind {
    std::vector<fs::path> paths;
    ~Unbind() {
      for (const auto& p : paths) unmount(p);
    }
  } unbind{{t / "l/low/sub/mnt", t / "k/low/sub/mnt"}};
  ASSERT_EQ(run({"mount", "--bind", other.path().string(), (t / "l/low/sub/mnt").string()}).status,
            0);
  ASSERT_EQ(run({"mount", "--bind", other.path().string(), (t / "k/low/sub/mnt").string()}).status,
            0);
  {
    LayerfsMount ours({t / "l/low", t / "l/base"}, t / "l/low/mnt");
    ASSERT_TRUE(ours.ok()) << ours.error();
    KernelOverlay theirs({t / "k/low", t / "k/base"}, t / "k/low/mnt");
    ASSERT_TRUE(theirs.ok()) << theirs.error();
    // In a child with a deadline: a daemon that meets its own mount would never answer.
    RunResult r = run({"timeout", "-s", "KILL", "20", "stat", "-c", "%F %s",
                       (t / "l/low/mnt/mnt").string(), (t / "l/low/mnt/mnt/under").string()});
    ASSERT_EQ(r.status, 0) << "stat through the mount point inside the layer: " << r.err;
    EXPECT_EQ(r.out.substr(0, 10), "directory ") << r.out;
    Tree k = snapshot(t / "k/low/mnt");
    Tree l = snapshot(t / "l/low/mnt");
    EXPECT_EQ(compare(k, l, {.ino = true, .times = true}), std::vector<std::string>{});
    EXPECT_EQ(l["mnt/under"].content, "what the layer has under the mount point");
    EXPECT_EQ(l.count("sub/mnt/elsewhere"), 0u) << "a bind mount inside the layer was crossed";
    EXPECT_EQ(k.count("sub/mnt/elsewhere"), 0u);
  }
}

}  // namespace
}  // namespace layerfs::test
