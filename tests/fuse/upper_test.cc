// The writable upper, one behaviour at a time: copy-up, whiteouts and opaque directories as
// written on disk, ownership, open-unlinked files, locking, crash and ENOSPC safety.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <thread>

#include "tests/fuse/parity.h"

namespace layerfs::test {
namespace {

class Upper : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_FUSE();
    for (const char* d : {"lower", "upper", "work", "mnt"}) make_dir(t_ / d);
  }
  std::vector<std::string> upper_opts() const {
    return {"-o", "upperdir=" + (t_ / "upper").string() + ",workdir=" + (t_ / "work").string()};
  }
  std::unique_ptr<LayerfsMount> mount(std::vector<std::string> extra = {}) {
    auto opts = upper_opts();
    opts.insert(opts.end(), extra.begin(), extra.end());
    auto m = std::make_unique<LayerfsMount>(std::vector<fs::path>{t_ / "lower"}, t_ / "mnt", opts);
    EXPECT_TRUE(m->ok()) << m->error();
    return m;
  }
  fs::path mnt(const std::string& rel) const { return t_ / "mnt" / rel; }
  fs::path upper(const std::string& rel) const { return t_ / "upper" / rel; }
  bool work_is_empty() const { return fs::is_empty(t_ / "work/work"); }

  TempDir t_{"upper"};
};

void make_sparse(const fs::path& p, off_t size, const std::string& head) {
  write_file(p, head);
  ASSERT_EQ(truncate(p.c_str(), size), 0);
}

TEST_F(Upper, AppendToASparseGigabyteCopiesItUpSparse) {
  make_sparse(t_ / "lower/big", off_t{1} << 30, "head");
  auto m = mount();
  int fd = open(mnt("big").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "!", 1), 1);
  close(fd);
  struct stat up = lstat_of(upper("big"));
  EXPECT_EQ(up.st_size, (off_t{1} << 30) + 1);
  EXPECT_LT(up.st_blocks, 2048) << "holes were written out";
  EXPECT_EQ(lstat_of(t_ / "lower/big").st_size, off_t{1} << 30) << "the lower is untouched";
  char buf[5] = {};
  fd = open(mnt("big").c_str(), O_RDONLY);
  ASSERT_EQ(pread(fd, buf, 4, 0), 4);
  EXPECT_STREQ(buf, "head");
  ASSERT_EQ(pread(fd, buf, 1, off_t{1} << 30), 1);
  EXPECT_EQ(buf[0], '!');
  close(fd);
  EXPECT_TRUE(work_is_empty());
}

// New objects are built in the work dir: whatever it would pass on (a default ACL, a
// set-group-id bit) must not reach them; they get the caller's owner and the mode asked for.
TEST_F(Upper, NewObjectsGetTheAskedModeWhateverTheirDirectoriesWouldPassOn) {
  if (geteuid() != 0) GTEST_SKIP() << "a work dir of another group needs root";
  enum Dirs { kPlain, kWorkPassesOn, kUpperHasDefaultAcl };
  for (Dirs dirs : {kPlain, kWorkPassesOn, kUpperHasDefaultAcl}) {
    SCOPED_TRACE(dirs == kPlain          ? "plain work dir"
                 : dirs == kWorkPassesOn ? "work dir with a default ACL and set-group-id"
                                         : "upper dir with a default ACL, mounted noacl");
    fs::remove_all(t_ / "upper");
    fs::remove_all(t_ / "work");
    make_dir(t_ / "upper");
    make_dir(t_ / "work/work");
    if (dirs == kWorkPassesOn) {
      ASSERT_EQ(
          run({"setfacl", "-d", "-m", "u::rwx,g::---,o::---", (t_ / "work/work").string()}).status,
          0);
      ASSERT_EQ(chown((t_ / "work/work").c_str(), 0, 4242), 0);
      ASSERT_EQ(chmod((t_ / "work/work").c_str(), 02755), 0);
    }
    if (dirs == kUpperHasDefaultAcl) {
      // A new entry made in place would take it; the mount has no ACLs, so none may.
      ASSERT_EQ(
          run({"setfacl", "-d", "-m", "u::rwx,g::---,o::---", (t_ / "upper").string()}).status, 0);
    }
    auto m = mount({"-o", "noacl"});
    ASSERT_TRUE(m->ok());
    RunResult r = run({"sh", "-c",
                       "umask 022 && cd \"$0\" && echo x > f && mkdir d && mkfifo p && "
                       "(umask 0 && mkdir -m 1777 s && echo y > g && chmod 4755 g)",
                       (t_ / "mnt").string()});
    ASSERT_EQ(r.status, 0) << r.err;
    m.reset();
    for (auto [name, mode] : {std::pair{"f", 0644u}, std::pair{"d", 0755u}, std::pair{"p", 0644u},
                              std::pair{"s", 01777u}, std::pair{"g", 04755u}}) {
      struct stat st = lstat_of(upper(name));
      EXPECT_EQ(st.st_mode & 07777, mode) << name;
      EXPECT_EQ(st.st_uid, 0u) << name;
      EXPECT_EQ(st.st_gid, 0u) << name;
      EXPECT_EQ(xattr_of(upper(name), "system.posix_acl_access"), "") << name;
    }
  }
}

TEST_F(Upper, OpenForWriteWithoutWritingCopiesUp) {
  write_file(t_ / "lower/f", "lower data", 0640);
  auto m = mount();
  int fd = open(mnt("f").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  close(fd);
  EXPECT_EQ(snapshot(t_ / "upper")["f"].content, "lower data");
  EXPECT_EQ(lstat_of(upper("f")).st_mode & 07777, 0640u);
}

// (That no data is copied for O_TRUNC is by construction, CopyUpOptions::truncate; the end
// state is the same either way, so this checks the result.)
TEST_F(Upper, OpenWithTruncGivesAnEmptyCopyWithTheLowerMetadata) {
  write_file(t_ / "lower/f", std::string(100000, 'L'), 0604);
  auto m = mount();
  int fd = open(mnt("f").c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(lstat_of(upper("f")).st_size, 0);
  ASSERT_EQ(write(fd, "new", 3), 3);
  close(fd);
  EXPECT_EQ(snapshot(mnt("f"))[""].content, "new");
  EXPECT_EQ(lstat_of(upper("f")).st_mode & 07777, 0604u);
  EXPECT_EQ(lstat_of(t_ / "lower/f").st_size, 100000);
}

// Through the daemon (a lower file passed through keeps its data: fuse/passthrough.h).
TEST_F(Upper, AHandleOpenedBeforeACopyUpReadsTheNewData) {
  write_file(t_ / "lower/f", std::string(4096, 'L'));
  auto m = mount({"-o", "passthrough=safe"});
  // O_DIRECT: reads reach the daemon through this handle, not the kernel's page cache.
  int reader = open(mnt("f").c_str(), O_RDONLY | O_DIRECT);
  ASSERT_GE(reader, 0);
  int writer = open(mnt("f").c_str(), O_WRONLY);  // copies the file up
  ASSERT_GE(writer, 0);
  ASSERT_EQ(pwrite(writer, std::string(4096, 'U').data(), 4096, 0), 4096);
  close(writer);
  void* buf = nullptr;
  ASSERT_EQ(posix_memalign(&buf, 4096, 4096), 0);
  EXPECT_EQ(pread(reader, buf, 4096, 0), 4096);
  EXPECT_EQ(std::string(static_cast<char*>(buf), 4096), std::string(4096, 'U'));
  free(buf);
  close(reader);
}

TEST_F(Upper, RemovingLowerObjectsWritesOnlyWhiteouts) {
  make_sparse(t_ / "lower/big", off_t{1} << 30, "data");
  for (int i = 0; i < 20; ++i) write_file(t_ / "lower/tree/sub" / std::to_string(i), "x");
  auto m = mount();
  ASSERT_EQ(unlink(mnt("big").c_str()), 0);
  ASSERT_EQ(run({"rm", "-rf", mnt("tree").string()}).status, 0);
  EXPECT_TRUE(is_device_whiteout(upper("big")));
  EXPECT_TRUE(is_device_whiteout(upper("tree")));
  EXPECT_EQ(snapshot(t_ / "upper").size(), 3u) << paths_of(snapshot(t_ / "upper"));
  EXPECT_FALSE(fs::exists(mnt("big")));
  EXPECT_FALSE(fs::exists(mnt("tree")));
  EXPECT_TRUE(fs::exists(t_ / "lower/big")) << "lower layers never change";
}

TEST_F(Upper, MarkersOnlyWhereALowerLayerHasTheName) {
  write_file(t_ / "lower/d/keep", "k");
  auto m = mount();
  write_file(mnt("d/new"), "n");
  ASSERT_EQ(unlink(mnt("d/new").c_str()), 0);
  ASSERT_EQ(mkdir(mnt("fresh").c_str(), 0755), 0);
  ASSERT_EQ(rmdir(mnt("fresh").c_str()), 0);
  write_file(mnt("g"), "g");
  ASSERT_EQ(rename(mnt("g").c_str(), mnt("h").c_str()), 0);
  Tree up = snapshot(t_ / "upper");
  EXPECT_FALSE(up.contains("d/new"));
  EXPECT_FALSE(up.contains("fresh"));
  EXPECT_FALSE(up.contains("g"));
  EXPECT_TRUE(up.contains("h"));
}

TEST_F(Upper, RenamingALowerDirectoryMovesItsWholeTree) {
  write_file(t_ / "lower/src/a", "a");
  write_file(t_ / "lower/src/sub/b", "b");
  make_symlink("a", t_ / "lower/src/link");
  {
    auto m = mount();
    write_file(mnt("src/added"), "added");
    ASSERT_EQ(rename(mnt("src").c_str(), mnt("dst").c_str()), 0) << strerror(errno);
    EXPECT_FALSE(fs::exists(mnt("src")));
    Tree moved = snapshot(mnt("dst"));
    EXPECT_EQ(moved["a"].content, "a");
    EXPECT_EQ(moved["sub/b"].content, "b");
    EXPECT_EQ(moved["added"].content, "added");
    EXPECT_EQ(moved["link"].link, "a");
    EXPECT_EQ(moved.size(), 6u) << paths_of(moved);
  }
  EXPECT_TRUE(is_device_whiteout(upper("src")));
  std::string name = geteuid() == 0 ? "trusted.overlay.opaque" : "user.overlay.opaque";
  char v[2] = {};
  EXPECT_EQ(lgetxattr(upper("dst").c_str(), name.c_str(), v, 1), 1);
  // Kernel overlayfs, without redirect_dir, shows the same tree from this upper.
  if (kernel_overlay_unavailable()) return;
  make_dir(t_ / "kwork");
  make_dir(t_ / "kmnt");
  KernelOverlay kernel({t_ / "lower"}, t_ / "kmnt",
                       "upperdir=" + upper("").string() + ",workdir=" + (t_ / "kwork").string());
  ASSERT_TRUE(kernel.ok()) << kernel.error();
  EXPECT_FALSE(fs::exists(t_ / "kmnt/src"));
  EXPECT_EQ(snapshot(t_ / "kmnt/dst").size(), 6u);
  EXPECT_EQ(snapshot(t_ / "kmnt/dst")["sub/b"].content, "b");
}

// The inode numbers of a renamed directory's tree, by path below the mount.
std::map<std::string, ino_t> dir_inos(const fs::path& root, const std::vector<std::string>& rels) {
  std::map<std::string, ino_t> out;
  for (const auto& r : rels) out[r] = lstat_of(root / r).st_ino;
  return out;
}

// A renamed directory shows the same inode numbers through layerfs and through kernel
// overlayfs mounting the same upper: its own number once its tree was copied (an opaque
// directory merges nothing), and its lower number with redirect_dir=on, which records where its
// lower copies are as the kernel does.
TEST_F(Upper, ARenamedDirectoryHasTheSameInodeNumbersUnderTheKernel) {
  SKIP_WITHOUT_KERNEL_OVERLAY();
  if (!can_set_trusted_xattrs(t_.path())) GTEST_SKIP() << "trusted.* xattrs need CAP_SYS_ADMIN";
  write_file(t_ / "lower/p/d/f", "f");
  write_file(t_ / "lower/p/d/sub/g", "g");
  make_dir(t_ / "lower/q");
  const std::vector<std::string> moved = {"q/e", "q/e/sub2", "q/e/f", "q/e/sub2/g"};
  for (const char* mode : {"off", "on"}) {
    SCOPED_TRACE(std::string("redirect_dir=") + mode);
    for (const char* d : {"upper", "work", "kwork"}) {
      fs::remove_all(t_ / d);
      make_dir(t_ / d);
    }
    std::map<std::string, ino_t> ours;
    {
      auto m = mount({"-o", std::string("redirect_dir=") + mode});
      ASSERT_EQ(rename(mnt("p/d").c_str(), mnt("q/e").c_str()), 0) << strerror(errno);
      ASSERT_EQ(rename(mnt("q/e/sub").c_str(), mnt("q/e/sub2").c_str()), 0) << strerror(errno);
      EXPECT_EQ(read_file(mnt("q/e/sub2/g")), "g");
      ours = dir_inos(t_ / "mnt", moved);
    }
    {
      auto m = mount({"-o", std::string("redirect_dir=") + mode});
      EXPECT_EQ(dir_inos(t_ / "mnt", moved), ours) << "layerfs after a remount";
    }
    KernelOverlay kernel({t_ / "lower"}, t_ / "mnt",
                         "upperdir=" + upper("").string() + ",workdir=" + (t_ / "kwork").string());
    ASSERT_TRUE(kernel.ok()) << kernel.error();
    EXPECT_EQ(dir_inos(t_ / "mnt", moved), ours) << "kernel overlayfs on the layerfs upper";
    EXPECT_EQ(read_file(mnt("q/e/sub2/g")), "g");
    EXPECT_FALSE(fs::exists(mnt("p/d")));
    if (std::string(mode) == "on") {
      EXPECT_EQ(ours["q/e"], lstat_of(t_ / "lower/p/d").st_ino);
      EXPECT_EQ(ours["q/e/sub2"], lstat_of(t_ / "lower/p/d/sub").st_ino);
      EXPECT_FALSE(fs::exists(upper("q/e/f"))) << "a redirected rename copies no data";
    } else {
      EXPECT_EQ(ours["q/e"], lstat_of(upper("q/e")).st_ino);
    }
  }
}

// A redirected directory's lower copies are found again after the kernel forgot every inode,
// through a fresh lookup of the redirect; and with redirect_dir=nofollow, as the kernel,
// layerfs refuses to follow one.
TEST_F(Upper, RedirectedDirectoriesAreFoundAgainAndNofollowRefusesThem) {
  SKIP_WITHOUT_KERNEL_OVERLAY();
  if (!can_set_trusted_xattrs(t_.path())) GTEST_SKIP() << "trusted.* xattrs need CAP_SYS_ADMIN";
  write_file(t_ / "lower/a/b/c/deep", "deep");
  make_dir(t_ / "lower/z");
  {
    auto m = mount({"-o", "redirect_dir=on"});
    ASSERT_EQ(rename(mnt("a/b").c_str(), mnt("z/b2").c_str()), 0) << strerror(errno);
    ASSERT_EQ(rename(mnt("z").c_str(), mnt("y").c_str()), 0) << strerror(errno);
    std::ofstream("/proc/sys/vm/drop_caches") << "2\n";  // the kernel forgets the inodes
    EXPECT_EQ(read_file(mnt("y/b2/c/deep")), "deep");
    write_file(mnt("y/b2/c/deep"), "changed");  // a copy-up through two redirects
  }
  auto m = mount();
  EXPECT_EQ(read_file(mnt("y/b2/c/deep")), "changed");
  EXPECT_FALSE(fs::exists(mnt("a/b")));
  m.reset();
  m = mount({"-o", "redirect_dir=nofollow"});
  struct stat st;
  EXPECT_EQ(lstat(mnt("y/b2").c_str(), &st), -1);
  EXPECT_EQ(errno, EPERM);
  m.reset();
  make_dir(t_ / "kwork");
  KernelOverlay kernel({t_ / "lower"}, t_ / "mnt",
                       "upperdir=" + upper("").string() + ",workdir=" + (t_ / "kwork").string() +
                           ",redirect_dir=nofollow");
  ASSERT_TRUE(kernel.ok()) << kernel.error();
  EXPECT_EQ(lstat(mnt("y/b2").c_str(), &st), -1);
  EXPECT_EQ(errno, EPERM) << "kernel overlayfs";
}

// An upper written without origin records (as fuse-overlayfs writes one): a directory that
// merges shows its lower copy's number in readdir and in stat alike, as kernel overlayfs does.
TEST_F(Upper, AMergedDirectoryWithoutRecordsShowsOneNumberEverywhere) {
  SKIP_WITHOUT_KERNEL_OVERLAY();
  write_file(t_ / "lower/d/f", "f");
  write_file(t_ / "upper/d/g", "g");  // made by hand: no origin, no layerfs.ino
  const ino_t lower_ino = lstat_of(t_ / "lower/d").st_ino;
  auto listed_ino = [](const fs::path& dir, const std::string& name) -> ino_t {
    ino_t found = 0;
    DIR* dp = opendir(dir.c_str());
    if (dp == nullptr) return 0;
    while (dirent* de = readdir(dp)) {
      if (name == de->d_name) found = de->d_ino;
    }
    closedir(dp);
    return found;
  };
  {
    auto m = mount();
    EXPECT_EQ(lstat_of(mnt("d")).st_ino, lower_ino);
    EXPECT_EQ(listed_ino(t_ / "mnt", "d"), lower_ino);
  }
  make_dir(t_ / "kwork");
  KernelOverlay kernel({t_ / "lower"}, t_ / "mnt",
                       "upperdir=" + upper("").string() + ",workdir=" + (t_ / "kwork").string());
  ASSERT_TRUE(kernel.ok()) << kernel.error();
  EXPECT_EQ(lstat_of(mnt("d")).st_ino, lower_ino) << "kernel overlayfs";
}

TEST_F(Upper, RmdirThenMkdirOfALowerDirectoryIsOpaque) {
  write_file(t_ / "lower/d/old", "o");
  auto m = mount();
  ASSERT_EQ(unlink(mnt("d/old").c_str()), 0);
  ASSERT_EQ(rmdir(mnt("d").c_str()), 0);
  ASSERT_EQ(mkdir(mnt("d").c_str(), 0700), 0);
  EXPECT_TRUE(fs::is_empty(mnt("d")));
  std::string name = geteuid() == 0 ? "trusted.overlay.opaque" : "user.overlay.opaque";
  char v[2] = {};
  ASSERT_EQ(lgetxattr(upper("d").c_str(), name.c_str(), v, 1), 1);
  EXPECT_EQ(v[0], 'y');
  EXPECT_TRUE(fs::is_empty(upper("d"))) << "the whiteout inside went with the old directory";
}

TEST_F(Upper, NewObjectsBelongToTheCallerWithItsUmaskAndSetgidDirectories) {
  if (geteuid() != 0) GTEST_SKIP() << "switching users needs root";
  ASSERT_EQ(chmod(t_.path().c_str(), 0755), 0);  // other users reach the mount point
  make_dir(t_ / "lower/shared", 01777);
  make_dir(t_ / "lower/group", 02777);
  ASSERT_EQ(chown((t_ / "lower/group").c_str(), 0, 4242), 0);
  ASSERT_EQ(chmod((t_ / "lower/group").c_str(), 02777), 0);
  auto m = mount();
  auto as_user = [&](const std::string& script) {
    return run({"setpriv", "--reuid=1234", "--regid=4321", "--clear-groups", "sh", "-c", script,
                mnt("").string()});
  };
  RunResult r = as_user(
      "umask 077 && touch \"$0/shared/mine\" && mkdir \"$0/group/sub\" && "
      "touch \"$0/group/file\"");
  ASSERT_EQ(r.status, 0) << r.err;
  struct stat mine = lstat_of(mnt("shared/mine"));
  EXPECT_EQ(mine.st_uid, 1234u);
  EXPECT_EQ(mine.st_gid, 4321u);
  EXPECT_EQ(mine.st_mode & 0777, 0600u);
  EXPECT_EQ(lstat_of(upper("shared/mine")).st_uid, 1234u) << "on disk too";
  struct stat sub = lstat_of(mnt("group/sub"));
  EXPECT_EQ(sub.st_gid, 4242u) << "group of the setgid directory";
  EXPECT_TRUE(sub.st_mode & S_ISGID) << "new directories inherit setgid";
  EXPECT_EQ(lstat_of(mnt("group/file")).st_gid, 4242u);
  // The kernel checks permissions: another user cannot write the file.
  RunResult denied = run({"setpriv", "--reuid=999", "--regid=999", "--clear-groups", "sh", "-c",
                          "echo x > \"$0\"", mnt("shared/mine").string()});
  EXPECT_NE(denied.status, 0);
}

TEST_F(Upper, AFileUnlinkedWhileOpenStaysUsable) {
  write_file(t_ / "lower/f", "lower");
  auto m = mount();
  int fd = open(mnt("f").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(unlink(mnt("f").c_str()), 0);
  EXPECT_FALSE(fs::exists(mnt("f")));
  ASSERT_EQ(pwrite(fd, "LOW", 3, 0), 3);
  char buf[6] = {};
  ASSERT_EQ(pread(fd, buf, 5, 0), 5);
  EXPECT_STREQ(buf, "LOWer");
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 5);
  close(fd);
  EXPECT_TRUE(is_device_whiteout(upper("f")));
}

TEST_F(Upper, SharedMmapWritesReachTheUpper) {
  write_file(t_ / "lower/m", std::string(8192, '.'));
  auto m = mount();
  int fd = open(mnt("m").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  void* p = mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  memcpy(static_cast<char*>(p) + 4096, "mapped", 6);
  ASSERT_EQ(msync(p, 8192, MS_SYNC), 0);
  munmap(p, 8192);
  close(fd);
  std::string expected = std::string(4096, '.') + "mapped" + std::string(8192 - 4102, '.');
  EXPECT_EQ(snapshot(mnt("m"))[""].content, expected);
  EXPECT_EQ(snapshot(upper("m"))[""].content, expected);
}

TEST_F(Upper, SeekDataAndHoleSeeTheHoles) {
  write_file(t_ / "lower/sparse", "head");
  {
    int fd = open((t_ / "lower/sparse").c_str(), O_WRONLY);
    ASSERT_EQ(pwrite(fd, "tail", 4, off_t{4} << 20), 4);
    close(fd);
  }
  auto m = mount();
  for (int flags : {O_RDONLY, O_RDWR}) {  // the lower file, then its copy
    int fd = open(mnt("sparse").c_str(), flags);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(lseek(fd, 0, SEEK_HOLE), 4096) << "flags " << flags;
    EXPECT_EQ(lseek(fd, 4096, SEEK_DATA), off_t{4} << 20) << "flags " << flags;
    close(fd);
  }
}

TEST_F(Upper, LocksConflictAcrossOpenFiles) {
  write_file(t_ / "lower/l", "lock me");
  auto m = mount();
  int a = open(mnt("l").c_str(), O_RDWR);
  int b = open(mnt("l").c_str(), O_RDWR);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  ASSERT_EQ(flock(a, LOCK_EX), 0);
  EXPECT_EQ(flock(b, LOCK_EX | LOCK_NB), -1);
  EXPECT_EQ(errno, EWOULDBLOCK);
  ASSERT_EQ(flock(a, LOCK_UN), 0);
  EXPECT_EQ(flock(b, LOCK_EX | LOCK_NB), 0);
  // Another process sees the lock too.
  RunResult other = run({"flock", "-n", "-E", "7", mnt("l").string(), "true"});
  EXPECT_EQ(other.status, 7) << "flock(1) got the lock b holds";
  ASSERT_EQ(flock(b, LOCK_UN), 0);
  EXPECT_EQ(run({"flock", "-n", "-E", "7", mnt("l").string(), "true"}).status, 0);
  close(a);
  close(b);
}

TEST_F(Upper, ConcurrentWritersKeepTheTreeConsistent) {
  for (int i = 0; i < 20; ++i) write_file(t_ / "lower/shared" / ("l" + std::to_string(i)), "lower");
  auto m = mount({"-o", "max_threads=8"});
  constexpr int kThreads = 6, kRounds = 60;
  std::vector<std::jthread> threads;
  for (int th = 0; th < kThreads; ++th) {
    threads.emplace_back([&, th] {
      const std::string me = std::to_string(th);
      ASSERT_EQ(mkdir(mnt("own" + me).c_str(), 0755), 0);
      for (int r = 0; r < kRounds; ++r) {
        const std::string n = me + "-" + std::to_string(r);
        write_file(mnt("shared/f" + n), n);
        write_file(mnt("own" + me + "/g" + n), n);
        ASSERT_EQ(rename(mnt("shared/f" + n).c_str(), mnt("own" + me + "/h" + n).c_str()), 0);
        ASSERT_EQ(link(mnt("own" + me + "/h" + n).c_str(), mnt("shared/k" + n).c_str()), 0);
        ASSERT_EQ(unlink(mnt("own" + me + "/g" + n).c_str()), 0);
        // Everyone also edits and deletes lower files in the shared directory.
        const std::string lower = mnt("shared/l" + std::to_string((th * kRounds + r) % 20));
        int fd = open(lower.c_str(), O_WRONLY | O_APPEND);
        if (fd >= 0) {
          EXPECT_EQ(write(fd, "+", 1), 1);
          close(fd);
        }
        if (r % 7 == th % 7) unlink(lower.c_str());  // another thread may have been first
        struct stat st;
        EXPECT_EQ(stat(mnt("shared").c_str(), &st), 0);
      }
    });
  }
  threads.clear();  // joins
  Tree tree = snapshot(mnt(""));
  for (int th = 0; th < kThreads; ++th) {
    for (int r = 0; r < kRounds; ++r) {
      const std::string me = std::to_string(th), n = me + "-" + std::to_string(r);
      EXPECT_EQ(tree["own" + me + "/h" + n].content, n);
      EXPECT_EQ(tree["shared/k" + n].content, n);
      EXPECT_EQ(tree["shared/k" + n].st.st_nlink, 2u);
      EXPECT_FALSE(tree.contains("own" + me + "/g" + n));
      EXPECT_FALSE(tree.contains("shared/f" + n));
    }
  }
  // And the upper says the same to kernel overlayfs.
  if (kernel_overlay_unavailable()) return;
  EXPECT_EQ(m->stop(), 0);
  make_dir(t_ / "kwork");
  make_dir(t_ / "kmnt");
  KernelOverlay kernel({t_ / "lower"}, t_ / "kmnt",
                       "upperdir=" + upper("").string() + ",workdir=" + (t_ / "kwork").string());
  ASSERT_TRUE(kernel.ok()) << kernel.error();
  // Blocks: kernel overlayfs marks upper directories holding copied-up entries with
  // trusted.overlay.impure when it mounts them, which can take an xattr block.
  auto diffs = compare(snapshot(t_ / "kmnt"), tree, {.ino = true, .times = true, .blocks = true});
  EXPECT_TRUE(diffs.empty()) << ::testing::PrintToString(diffs);
}

TEST_F(Upper, ACopyUpRefreshesTheParentsCachedAttributes) {
  write_file(t_ / "lower/d/f", "f");
  const timespec old_times[2] = {{946684800, 0}, {946684800, 0}};  // 2000-01-01
  ASSERT_EQ(utimensat(AT_FDCWD, (t_ / "lower/d").c_str(), old_times, 0), 0);
  auto m = mount();
  ASSERT_EQ(lstat_of(mnt("d")).st_mtime, 946684800);  // now cached by the kernel
  int fd = open(mnt("d/f").c_str(), O_RDWR);          // copies d, then f into it
  ASSERT_GE(fd, 0);
  close(fd);
  // The upper copy of d changed when f arrived (its ctime; its times are kept, as kernel
  // overlayfs keeps them); the mount shows the copy as it is now.
  const struct stat shown = lstat_of(mnt("d"));
  const struct stat on_disk = lstat_of(upper("d"));
  EXPECT_EQ(shown.st_ctim.tv_sec, on_disk.st_ctim.tv_sec);
  EXPECT_EQ(shown.st_ctim.tv_nsec, on_disk.st_ctim.tv_nsec);
  EXPECT_GT(shown.st_ctime, 946684800);
  EXPECT_EQ(shown.st_mtime, 946684800);
}

TEST_F(Upper, DeviceNodesSocketsAndNoFakeWhiteouts) {
  if (geteuid() != 0) GTEST_SKIP() << "device nodes need CAP_MKNOD";
  auto m = mount();
  ASSERT_EQ(mknod(mnt("null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  ASSERT_EQ(mknod(mnt("sock").c_str(), S_IFSOCK | 0600, 0), 0);
  EXPECT_EQ(lstat_of(mnt("null")).st_rdev, makedev(1, 3));
  EXPECT_TRUE(S_ISSOCK(lstat_of(mnt("sock")).st_mode));
  EXPECT_EQ(lstat_of(upper("null")).st_rdev, makedev(1, 3));
  EXPECT_EQ(mknod(mnt("wh").c_str(), S_IFCHR | 0600, makedev(0, 0)), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_FALSE(fs::exists(upper("wh")));
}

TEST_F(Upper, TwoMountsCannotShareAnUpper) {
  auto first = mount();
  make_dir(t_ / "mnt2");
  make_dir(t_ / "work2");
  RunResult second =
      run({LAYERFS_BIN, "-o",
           "lowerdir=" + (t_ / "lower").string() + ",upperdir=" + (t_ / "upper").string() +
               ",workdir=" + (t_ / "work2").string(),
           (t_ / "mnt2").string()});
  EXPECT_EQ(second.status, 1);
  EXPECT_EQ(second.err, "layerfs: upperdir '" + (t_ / "upper").string() +
                            "': in use by another layerfs mount\n");
  EXPECT_FALSE(is_mounted(t_ / "mnt2"));
}

TEST_F(Upper, TheWorkDirIsEmptiedAtMount) {
  write_file(t_ / "work/work/#1f", "left by a crash");
  make_dir(t_ / "work/work/#20/inner");
  auto m = mount();
  EXPECT_TRUE(work_is_empty());
}

void write_dense(const fs::path& p, size_t mib) {
  fs::create_directories(p.parent_path());
  int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  std::string block(1 << 20, 'd');
  for (size_t i = 0; i < mib; ++i) {
    block[0] = static_cast<char>(i);
    ASSERT_EQ(write(fd, block.data(), block.size()), static_cast<ssize_t>(block.size()));
  }
  close(fd);
}

// Waits until a copy-up is under way: its temporary file shows in the work dir.
bool copy_up_started(const fs::path& work, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;
    if (!fs::is_empty(work, ec)) return true;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return false;
}

TEST_F(Upper, ACopyUpBlocksNothingElse) {
  write_dense(t_ / "lower/dir/big", 256);
  write_file(t_ / "lower/dir/small", "small");
  write_file(t_ / "lower/other/f", "f");
  auto m = mount();
  std::atomic<bool> copy_done{false};
  // A jthread joins on every way out of the test, failed assertions included.
  std::jthread copier([&] {
    int fd = open(mnt("dir/big").c_str(), O_RDWR);
    if (fd >= 0) close(fd);
    copy_done = true;
  });
  ASSERT_TRUE(copy_up_started(t_ / "work/work", std::chrono::seconds(20)));
  // While the big file is being copied: the same directory and others stay fully usable.
  EXPECT_EQ(snapshot(mnt("dir/small"))[""].content, "small");
  write_file(mnt("dir/new"), "created meanwhile");
  EXPECT_EQ(snapshot(mnt("dir/new"))[""].content, "created meanwhile");
  size_t names = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(mnt("dir"))) ++names;
  EXPECT_EQ(names, 3u);
  int fd = open(mnt("dir/small").c_str(), O_RDWR | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "+", 1), 1);
  close(fd);
  ASSERT_EQ(rename(mnt("other/f").c_str(), mnt("other/g").c_str()), 0);
  ASSERT_EQ(mkdir(mnt("dir/sub").c_str(), 0755), 0);
  const bool others_first = !copy_done;
  copier.join();
  EXPECT_TRUE(others_first) << "the other operations waited for the copy-up";
  EXPECT_EQ(lstat_of(mnt("dir/big")).st_size, off_t{256} << 20);
  EXPECT_EQ(snapshot(mnt("dir/small"))[""].content, "small+");
}

// A copied-up object keeps its lower inode number across remounts, and across the two
// implementations: each writes the origin the other reads.
TEST_F(Upper, CopiedUpInodeNumbersSurviveAMountByTheOtherImplementation) {
  SKIP_WITHOUT_KERNEL_OVERLAY();
  write_file(t_ / "lower/f", "lower");
  make_dir(t_ / "lower/d");
  const ino_t file_ino = lstat_of(t_ / "lower/f").st_ino;
  const ino_t dir_ino = lstat_of(t_ / "lower/d").st_ino;
  for (const char* d : {"work2", "kupper", "kwork"}) make_dir(t_ / d);
  auto kernel_opts = [&](const char* upper, const char* work) {
    return "upperdir=" + (t_ / upper).string() + ",workdir=" + (t_ / work).string();
  };
  {
    auto m = mount();
    write_file(mnt("f"), "changed");
    ASSERT_EQ(chmod(mnt("d").c_str(), 0700), 0);
    ASSERT_TRUE(fs::exists(upper("f")) && fs::exists(upper("d"))) << "both were copied up";
  }
  {
    KernelOverlay kernel({t_ / "lower"}, t_ / "mnt", kernel_opts("upper", "work2"));
    ASSERT_TRUE(kernel.ok()) << kernel.error();
    EXPECT_EQ(lstat_of(mnt("f")).st_ino, file_ino) << "kernel overlayfs on the layerfs upper";
    EXPECT_EQ(lstat_of(mnt("d")).st_ino, dir_ino);
  }
  {
    KernelOverlay kernel({t_ / "lower"}, t_ / "mnt", kernel_opts("kupper", "kwork"));
    ASSERT_TRUE(kernel.ok()) << kernel.error();
    write_file(mnt("f"), "changed by the kernel");
    ASSERT_EQ(chmod(mnt("d").c_str(), 0700), 0);
  }
  ASSERT_TRUE(fs::exists(t_ / "kupper/f"));
  LayerfsMount m(
      {t_ / "lower"}, t_ / "mnt",
      {"-o", "upperdir=" + (t_ / "kupper").string() + ",workdir=" + (t_ / "kwork").string()});
  ASSERT_TRUE(m.ok()) << m.error();
  EXPECT_EQ(lstat_of(mnt("f")).st_ino, file_ino) << "layerfs on the kernel's upper";
  EXPECT_EQ(lstat_of(mnt("d")).st_ino, dir_ino);
  EXPECT_NE(lstat_of(t_ / "kupper/f").st_ino, file_ino) << "the upper copy is another inode";
}

// A directory merged from many layers answers lookups from an index of its listing: after
// every kind of change the answers must still be the kernel's.
TEST_F(Upper, ADirectoryOfManyLayersStaysRightAcrossChanges) {
  SKIP_WITHOUT_KERNEL_OVERLAY();
  constexpr int kLayers = 12;
  std::vector<fs::path> lk, ll;
  for (const char* side : {"k", "l"}) {
    for (int i = 0; i < kLayers; ++i) {
      fs::path layer = t_ / side / ("layer" + std::to_string(i));
      write_file(layer / "d" / ("f" + std::to_string(i)), "layer " + std::to_string(i));
      make_dir(layer / "d" / ("sub" + std::to_string(i % 3)));
      (side[0] == 'k' ? lk : ll).push_back(layer);
    }
    pin_atimes(t_ / side);
    for (const char* d : {"upper", "work", "mnt"}) make_dir(t_ / side / d);
  }
  auto opts = [&](const char* side) {
    return "upperdir=" + (t_ / side / "upper").string() +
           ",workdir=" + (t_ / side / "work").string();
  };
  KernelOverlay kernel(lk, t_ / "k/mnt", opts("k"));
  ASSERT_TRUE(kernel.ok()) << kernel.error();
  LayerfsMount m(ll, t_ / "l/mnt", {"-o", opts("l")});
  ASSERT_TRUE(m.ok()) << m.error();
  // The kernel caches every name it has seen; dropping its dentries makes the next stat of a
  // name a lookup in the daemon, which answers it from the index.
  auto forget_names = [] {
    sync();
    std::ofstream("/proc/sys/vm/drop_caches") << "2";
  };
  for (const char* side : {"k", "l"}) {
    const fs::path d = t_ / side / "mnt/d";
    SCOPED_TRACE(side);
    struct stat st;
    ASSERT_EQ(chmod(d.c_str(), 0755), 0);  // d now has an upper copy too
    ASSERT_EQ(snapshot(d).size(), static_cast<size_t>(kLayers + 4)) << "d, f0..f11, sub0..sub2";
    forget_names();
    ASSERT_EQ(lstat((d / "f11").c_str(), &st), 0);
    EXPECT_NE(lstat((d / "nothing").c_str(), &st), 0);
    write_file(d / "new", "new");
    forget_names();
    EXPECT_EQ(lstat((d / "new").c_str(), &st), 0) << "created after the index was built";
    ASSERT_EQ(unlink((d / "f3").c_str()), 0);
    forget_names();
    EXPECT_NE(lstat((d / "f3").c_str(), &st), 0) << "removed after the index was built";
    ASSERT_EQ(rename((d / "f5").c_str(), (d / "g").c_str()), 0);
    forget_names();
    EXPECT_NE(lstat((d / "f5").c_str(), &st), 0);
    EXPECT_EQ(lstat((d / "g").c_str(), &st), 0);
    ASSERT_EQ(rename((d / "f7").c_str(), (d / "f8").c_str()), 0) << "over a lower file";
    ASSERT_EQ(rmdir((d / "sub1").c_str()), 0);
    ASSERT_EQ(mkdir((d / "sub1").c_str(), 0755), 0);
    write_file(d / "f3", "again");
    forget_names();
  }
  Ignore ignore{.ino = true, .times = true, .dir_nlink = true, .blocks = true};
  auto diffs = compare(snapshot(t_ / "k/mnt"), snapshot(t_ / "l/mnt"), ignore);
  EXPECT_TRUE(diffs.empty()) << ::testing::PrintToString(diffs);
}

TEST_F(Upper, KillingTheDaemonMidCopyUpLeavesNoPartialFile) {
  write_dense(t_ / "lower/big", 256);
  std::string lower_head;
  {
    auto m = mount();
    pid_t pid = m->pid();
    std::jthread copier([&] {
      int fd = open(mnt("big").c_str(), O_WRONLY | O_APPEND);  // fails once the daemon dies
      if (fd >= 0) close(fd);
    });
    ASSERT_TRUE(copy_up_started(t_ / "work/work", std::chrono::seconds(20)));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    copier.join();
    EXPECT_EQ(m->stop(), 128 + SIGKILL);  // unmounts the dead mount and reaps the daemon
  }
  auto again = mount();
  // The file is either the lower one or a complete copy, never a partial one.
  struct stat st = lstat_of(mnt("big"));
  EXPECT_EQ(st.st_size, off_t{256} << 20);
  EXPECT_FALSE(fs::exists(upper("big")) && lstat_of(upper("big")).st_size != st.st_size);
  EXPECT_TRUE(work_is_empty()) << "the partial copy was cleaned at mount";
}

TEST_F(Upper, NoSpaceForACopyUpIsReportedAndChangesNothing) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
  make_dir(t_ / "small");
  ASSERT_EQ(::mount("tmpfs", (t_ / "small").c_str(), "tmpfs", 0, "size=4m"), 0);
  struct Unmount {
    fs::path p;
    ~Unmount() { unmount(p); }
  } unmount_small{t_ / "small"};
  make_dir(t_ / "small/upper");
  make_dir(t_ / "small/work");
  write_dense(t_ / "lower/big", 16);
  write_file(t_ / "lower/small", "ok");
  LayerfsMount m({t_ / "lower"}, t_ / "mnt",
                 {"-o", "upperdir=" + (t_ / "small/upper").string() +
                            ",workdir=" + (t_ / "small/work").string()});
  ASSERT_TRUE(m.ok()) << m.error();
  errno = 0;
  int fd = open(mnt("big").c_str(), O_WRONLY | O_APPEND);
  EXPECT_LT(fd, 0);
  EXPECT_EQ(errno, ENOSPC);
  if (fd >= 0) close(fd);
  EXPECT_EQ(lstat_of(mnt("big")).st_size, off_t{16} << 20) << "the lower view is intact";
  EXPECT_FALSE(fs::exists(t_ / "small/upper/big"));
  EXPECT_TRUE(fs::is_empty(t_ / "small/work/work"));
  write_file(mnt("small"), "still writable");
  EXPECT_EQ(snapshot(mnt(""))["small"].content, "still writable");
}

// A quota that runs out mid-copy-up. This kernel has no quota support (CONFIG_QUOTA), so the
// daemon gets the EDQUOT from a preloaded copy_file_range that fails after 1 MiB.
TEST_F(Upper, QuotaExhaustedMidCopyUpIsReportedAndChangesNothing) {
  write_dense(t_ / "lower/big", 16);
  write_file(t_ / "lower/small", "ok");
  std::unique_ptr<LayerfsMount> m;
  {
    ScopedEnv preload("LD_PRELOAD", FAULT_EDQUOT_LIB);
    ScopedEnv after("LAYERFS_FAULT_EDQUOT_AFTER", "1048576");
    ScopedEnv asan("ASAN_OPTIONS", "verify_asan_link_order=0");  // the preload comes first
    m = mount();
  }
  errno = 0;
  int fd = open(mnt("big").c_str(), O_WRONLY | O_APPEND);
  EXPECT_LT(fd, 0);
  EXPECT_EQ(errno, EDQUOT);
  if (fd >= 0) close(fd);
  EXPECT_EQ(lstat_of(mnt("big")).st_size, off_t{16} << 20) << "the lower view is intact";
  EXPECT_FALSE(fs::exists(upper("big")));
  EXPECT_TRUE(work_is_empty()) << "the partial copy is gone";
  errno = 0;
  EXPECT_NE(truncate(mnt("big").c_str(), 1), 0) << "every copy-up attempt fails the same way";
  EXPECT_EQ(errno, EDQUOT);
  // Small files need no data copy through copy_file_range once created new.
  write_file(mnt("new"), "still writable");
  EXPECT_EQ(snapshot(mnt(""))["new"].content, "still writable");
}

// O_DIRECT writes of every size, to a new file and to a lower file copied up, as databases and
// fio make them (the exact reproduction: xfs_io -d pwrite -b 8k).
TEST_F(Upper, DirectIoWritesOfEverySizeWork) {
  write_file(t_ / "lower/old", std::string(1 << 20, 'l'));
  auto m = mount();
  if (run({"sh", "-c", "command -v xfs_io"}).status == 0) {
    RunResult a = run({"xfs_io", "-f", "-c", "truncate 256k", mnt("f").string()});
    ASSERT_EQ(a.status, 0) << a.err;
    RunResult b = run({"xfs_io", "-d", "-c", "pwrite -b 8k 65536 8k", mnt("f").string()});
    EXPECT_EQ(b.status, 0) << b.err;
    EXPECT_EQ(b.err, "");
    EXPECT_NE(b.out.find("wrote 8192/8192"), std::string::npos) << b.out;
  }
  void* mem = nullptr;
  ASSERT_EQ(posix_memalign(&mem, 4096, 1 << 20), 0);
  std::unique_ptr<void, decltype(&free)> owned(mem, free);
  for (const char* name : {"new", "old"}) {
    int fd = open(mnt(name).c_str(), O_RDWR | O_CREAT | O_DIRECT, 0644);
    ASSERT_GE(fd, 0) << name << ": " << strerror(errno);
    for (size_t size : {size_t{512}, size_t{4096}, size_t{8192}, size_t{65536}, size_t{1} << 20}) {
      memset(mem, static_cast<int>('a' + size % 23), size);
      EXPECT_EQ(pwrite(fd, mem, size, 0), static_cast<ssize_t>(size))
          << name << ": O_DIRECT write of " << size << " bytes: " << strerror(errno);
      memset(mem, 0, size);
      EXPECT_EQ(pread(fd, mem, size, 0), static_cast<ssize_t>(size)) << strerror(errno);
      EXPECT_EQ(static_cast<char*>(mem)[size - 1], static_cast<char>('a' + size % 23));
    }
    close(fd);
  }
  EXPECT_EQ(lstat_of(upper("old")).st_size, 1 << 20);
  EXPECT_EQ(snapshot(t_ / "upper")["new"].content.back(), static_cast<char>('a' + (1 << 20) % 23));
}

// fstat of an open file answers for that file, even after another was renamed over its name.
TEST_F(Upper, FstatOfAFileRenamedOverShowsTheOpenFile) {
  write_file(t_ / "lower/low", "lower content");
  auto m = mount();
  write_file(mnt("up"), "0123456789");
  write_file(mnt("other"), "x");
  for (const char* name : {"up", "low"}) {
    int fd = open(mnt(name).c_str(), O_RDONLY);
    ASSERT_GE(fd, 0) << name;
    struct stat before {};
    ASSERT_EQ(fstat(fd, &before), 0);
    write_file(mnt("replacement"), "a much longer replacement file");
    ASSERT_EQ(rename(mnt("replacement").c_str(), mnt(name).c_str()), 0) << name;
    struct stat after {};
    ASSERT_EQ(fstat(fd, &after), 0);
    EXPECT_EQ(after.st_size, before.st_size) << name;
    EXPECT_EQ(after.st_ino, before.st_ino) << name;
    // As kernel overlayfs: an upper file has no name left; a lower file's own link is intact.
    EXPECT_EQ(after.st_nlink, name == std::string("up") ? 0u : 1u) << name;
    close(fd);
  }
}

// A copy-up does not change the times of the directories it copies up (or copies into), on
// disk and after a remount; the kernel keeps them the same way.
TEST_F(Upper, CopyUpKeepsTheTimesOfTheParentsItCopies) {
  write_file(t_ / "lower/a/b/c/f", "deep");
  RunResult touch = run({"touch", "-d", "2020-01-01", (t_ / "lower/a").string(),
                         (t_ / "lower/a/b").string(), (t_ / "lower/a/b/c").string()});
  ASSERT_EQ(touch.status, 0) << touch.err;
  const time_t want = lstat_of(t_ / "lower/a").st_mtime;
  {
    auto m = mount();
    std::ofstream(mnt("a/b/c/f"), std::ios::app) << "+";
    for (const char* d : {"a", "a/b", "a/b/c"}) {
      EXPECT_EQ(lstat_of(mnt(d)).st_mtime, want) << d << " through the mount";
      EXPECT_EQ(lstat_of(upper(d)).st_mtime, want) << d << " in the upper";
    }
  }
  auto again = mount();
  for (const char* d : {"a", "a/b", "a/b/c"}) {
    EXPECT_EQ(lstat_of(mnt(d)).st_mtime, want) << d << " after a remount";
  }
  EXPECT_EQ(snapshot(mnt(""))["a/b/c/f"].content, "deep+");
}

// chown(f, -1, -1) changes nothing but ctime, as on any filesystem.
TEST_F(Upper, ChownToMinusOneUpdatesCtime) {
  write_file(t_ / "lower/low", "l");
  auto m = mount();
  write_file(mnt("up"), "u");
  for (const char* name : {"up", "low"}) {
    struct stat before = lstat_of(mnt(name));
    usleep(20000);
    ASSERT_EQ(chown(mnt(name).c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(-1)), 0);
    struct stat after = lstat_of(mnt(name));
    EXPECT_GT(after.st_ctim.tv_sec * 1000000000L + after.st_ctim.tv_nsec,
              before.st_ctim.tv_sec * 1000000000L + before.st_ctim.tv_nsec)
        << name;
    EXPECT_EQ(after.st_uid, before.st_uid);
    EXPECT_EQ(after.st_mode, before.st_mode);
  }
}

// setfacl by the owner who is not in the file's group clears the set-group-ID bit, as the
// kernel does for any filesystem.
TEST_F(Upper, SettingAnAclOutsideTheGroupClearsSetgid) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to hand files to another user";
  if (run({"sh", "-c", "command -v setfacl"}).status != 0) GTEST_SKIP() << "no setfacl (acl)";
  write_file(t_ / "lower/low", "l");
  ASSERT_EQ(chown((t_ / "lower/low").c_str(), 65534, 0), 0);
  ASSERT_EQ(chmod((t_ / "lower/low").c_str(), 02775), 0);
  ASSERT_EQ(chmod(t_.path().c_str(), 0755), 0);
  auto m = mount();
  write_file(mnt("up"), "u");
  ASSERT_EQ(chown(mnt("up").c_str(), 65534, 0), 0);
  ASSERT_EQ(chmod(mnt("up").c_str(), 02775), 0);
  for (const char* name : {"up", "low"}) {
    RunResult r = run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "setfacl",
                       "-m", "u:65534:rwx", mnt(name).string()});
    ASSERT_EQ(r.status, 0) << name << ": " << r.err;
    EXPECT_EQ(lstat_of(mnt(name)).st_mode & S_ISGID, 0u) << name << ": setgid kept";
  }
  // In the group, the bit stays.
  ASSERT_EQ(chmod(mnt("up").c_str(), 02775), 0);
  ASSERT_EQ(chown(mnt("up").c_str(), 65534, 65534), 0);
  ASSERT_EQ(chmod(mnt("up").c_str(), 02775), 0);
  RunResult r = run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "setfacl", "-m",
                     "u:65534:rwx", mnt("up").string()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(lstat_of(mnt("up")).st_mode & S_ISGID, 0u);
}

}  // namespace
}  // namespace layerfs::test
