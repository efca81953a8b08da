// Fixtures in the marker forms kernel overlayfs reads, compared path by path with it.
#include "tests/fuse/parity.h"

#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <sstream>

#include "fuse/requests.h"

namespace layerfs::test {

void expect_kernel_parity(const std::vector<fs::path>& lowers, const std::string& kernel_opts) {
  TempDir mnts("mnt");
  fs::create_directories(mnts / "kernel");
  fs::create_directories(mnts / "layerfs");
  for (const auto& l : lowers) pin_atimes(l);
  KernelOverlay kernel(lowers, mnts / "kernel", kernel_opts);
  ASSERT_TRUE(kernel.ok()) << kernel.error();
  LayerfsMount mount(lowers, mnts / "layerfs");
  ASSERT_TRUE(mount.ok()) << mount.error();
  Tree ours = snapshot(mnts / "layerfs");
  Tree theirs = snapshot(mnts / "kernel");
  ASSERT_GT(theirs.size(), 1u);
  auto diffs = compare(theirs, ours);
  EXPECT_TRUE(diffs.empty()) << "kernel overlayfs vs layerfs:\n"
                             << ::testing::PrintToString(diffs) << "\nkernel paths:\n"
                             << paths_of(theirs) << "layerfs paths:\n"
                             << paths_of(ours);
}

std::map<std::string, uint64_t> requests_of(const fs::path& mnt) {
  char buf[4096];
  const ssize_t n = getxattr(mnt.c_str(), kRequestsXattr, buf, sizeof buf);
  EXPECT_GT(n, 0) << "getxattr " << kRequestsXattr << ": " << strerror(errno);
  std::map<std::string, uint64_t> out;
  std::istringstream lines(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0));
  std::string name;
  uint64_t count = 0;
  while (lines >> name >> count) out[name] = count;
  return out;
}

namespace {

std::string random_bytes(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(gen());
  return s;
}

class KernelParity : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_KERNEL_OVERLAY();
    if (!can_set_trusted_xattrs(t_.path())) GTEST_SKIP() << "trusted.* xattrs need CAP_SYS_ADMIN";
  }
  TempDir t_{"parity"};
  fs::path top_ = t_ / "top", mid_ = t_ / "mid", base_ = t_ / "base";
};

TEST_F(KernelParity, ImageLikeThreeLayers) {
  // base: a small root filesystem.
  write_file(base_ / "etc/passwd", "root:x:0:0::/root:/bin/sh\n");
  write_file(base_ / "etc/group", "root:x:0:\n");
  write_file(base_ / "usr/bin/tool", random_bytes(65536, 1), 0755);
  make_hardlink(base_ / "usr/bin/tool", base_ / "usr/bin/tool-alias");
  make_hardlink(base_ / "usr/bin/tool", base_ / "usr/sbin/tool");
  write_file(base_ / "usr/lib/libx.so.1", random_bytes(4096, 2));
  make_symlink("libx.so.1", base_ / "usr/lib/libx.so");
  write_file(base_ / "var/cache/big", random_bytes(3 << 20, 3));
  write_file(base_ / "var/cache/small", "s");
  make_dir(base_ / "var/log");
  write_file(base_ / "home/user/.profile", "PATH=/bin\n");
  ASSERT_EQ(chown((base_ / "home/user/.profile").c_str(), 1000, 1000), 0);
  ASSERT_EQ(chown((base_ / "home/user").c_str(), 1000, 1000), 0);
  write_file(base_ / "opt/app/a", "a");
  write_file(base_ / "opt/app/b", "b");
  write_file(base_ / "conf/one", "1");
  write_file(base_ / "data", "was a file");
  make_fifo(base_ / "run/fifo");
  write_file(base_ / "sparse", "");
  ASSERT_EQ(truncate((base_ / "sparse").c_str(), 1 << 24), 0);
  write_file(base_ / "setuid", "", 04755);
  make_dir(base_ / "tmp", 01777);
  set_xattr(base_ / "etc/passwd", "user.comment", "from base");
  set_xattr(base_ / "etc/passwd", "trusted.overlay.origin", "never shown");

  // mid: edits, deletions by char-device whiteout, an opaque directory, type changes.
  write_file(mid_ / "etc/passwd", "root:x:0:0::/root:/bin/bash\n", 0600);
  make_whiteout(mid_ / "etc/group");
  make_whiteout(mid_ / "var/cache");
  make_whiteout(mid_ / "usr/lib/libx.so.1");  // leaves a dangling symlink below
  make_dir(mid_ / "opt/app");
  set_xattr(mid_ / "opt/app", "trusted.overlay.opaque", "y");
  write_file(mid_ / "opt/app/c", "c");
  write_file(mid_ / "conf", "now a file");
  write_file(mid_ / "data/inner", "now a directory");
  write_file(mid_ / "newdir/f", "new");

  // top: more edits, a whiteout with nothing below, symlinks pointing out of the layers.
  write_file(top_ / "etc/hostname", "box\n");
  write_file(top_ / "usr/bin/new", "#!/bin/sh\n", 0700);
  write_file(top_ / "home/user/.profile", "PATH=/usr/bin:/bin\n", 0600);
  make_whiteout(top_ / "home/user/never-existed");
  write_file(top_ / "opt/app/d", "d");
  make_symlink("/etc/shadow", top_ / "escape");
  make_symlink("../../../../..", top_ / "up");
  make_whiteout(top_ / "usr/sbin/tool");  // one name of a hard-link pair below

  expect_kernel_parity({top_, mid_, base_});
}

TEST_F(KernelParity, XattrWhiteoutsInMarkedDirectories) {
  write_file(base_ / "d/hidden", "base");
  write_file(base_ / "d/kept", "base");
  make_dir(top_ / "d");
  write_file(top_ / "d/hidden", "");
  set_xattr(top_ / "d/hidden", "trusted.overlay.whiteout", "y");
  set_xattr(top_ / "d", "trusted.overlay.opaque", "x");
  write_file(top_ / "d/own", "top");
  expect_kernel_parity({top_, base_});
}

TEST_F(KernelParity, OpaqueMarkOnALayerRootIsIgnored) {
  write_file(top_ / "x", "top");
  set_xattr(top_, "trusted.overlay.opaque", "y");
  write_file(base_ / "y", "base");
  expect_kernel_parity({top_, base_});
}

TEST_F(KernelParity, UserXattrForms) {
  write_file(base_ / "opq/below", "b");
  write_file(base_ / "xw/hidden", "b");
  write_file(base_ / "xw/kept", "b");
  write_file(mid_ / "opq/above", "m");
  set_xattr(mid_ / "opq", "user.overlay.opaque", "y");
  write_file(mid_ / "xw/hidden", "");
  set_xattr(mid_ / "xw/hidden", "user.overlay.whiteout", "y");
  set_xattr(mid_ / "xw", "user.overlay.opaque", "x");
  make_whiteout(mid_ / "gone");
  write_file(base_ / "gone", "b");
  write_file(top_ / "t", "t");
  expect_kernel_parity({top_, mid_, base_}, "userxattr");
}

TEST_F(KernelParity, SymlinksInLowerLayersAreNeverFollowed) {
  TempDir outside("outside");
  write_file(outside / "secret", "must not appear");
  write_file(top_ / "d/t", "t");
  make_symlink(outside.path().string(), mid_ / "d");  // shadowed by a directory above
  make_symlink(outside.path().string(), mid_ / "abs");
  make_symlink("../../../../../../..", mid_ / "rel");
  make_symlink("/etc/shadow", base_ / "shadow");
  write_file(base_ / "d/b", "below the symlink: hidden");
  expect_kernel_parity({top_, mid_, base_});

  TempDir mnt("mnt");
  LayerfsMount mount({top_, mid_, base_}, mnt.path());
  ASSERT_TRUE(mount.ok()) << mount.error();
  Tree tree = snapshot(mnt.path(), {.content = false, .xattrs = false});
  EXPECT_FALSE(tree.contains("d/secret"));
  EXPECT_FALSE(tree.contains("d/b"));
  ASSERT_TRUE(tree.contains("abs"));
  EXPECT_TRUE(S_ISLNK(tree["abs"].st.st_mode));
  EXPECT_EQ(tree["rel"].link, "../../../../../../..");
}

TEST_F(KernelParity, HardLinksKeepOneInodeAndTheirLinkCount) {
  write_file(base_ / "a", "shared");
  make_hardlink(base_ / "a", base_ / "dir/b");
  make_hardlink(base_ / "a", base_ / "dir/c");
  make_whiteout(top_ / "dir/c");
  expect_kernel_parity({top_, base_});
}

}  // namespace
}  // namespace layerfs::test
