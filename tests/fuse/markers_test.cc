// The marker forms kernel overlayfs does not read (OCI ".wh." files, fuse-overlayfs's opaque
// xattr), checked against the view they must produce, and the rule that no marker and no
// overlay-private xattr is ever visible through the mount.
#include <sys/stat.h>
#include <sys/xattr.h>

#include "tests/fuse/parity.h"

namespace layerfs::test {
namespace {

std::set<std::string> paths(const Tree& t) {
  std::set<std::string> out;
  for (const auto& [p, info] : t) out.insert(p);
  return out;
}

TEST(Markers, OciWhiteoutFilesAndOpaqueMarker) {
  SKIP_WITHOUT_FUSE();
  TempDir t("markers");
  fs::path top = t / "top", mid = t / "mid", base = t / "base";
  write_file(base / "etc/group", "g");
  write_file(base / "etc/keep", "k");
  write_file(base / "var/cache/x", "x");
  write_file(base / "opt/app/a", "a");
  write_file(base / "again", "base");
  write_file(mid / "etc/.wh.group", "");
  write_file(mid / ".wh.var", "");
  write_file(mid / "opt/app/.wh..wh..opq", "");
  write_file(mid / "opt/app/b", "b");
  write_file(mid / ".wh.again", "");
  write_file(mid / "again", "mid");  // deleted and re-added in one layer
  write_file(top / "opt/app/c", "c");
  write_file(top / ".wh.nothing-below", "");
  make_dir(top / "fo");
  set_xattr(top / "fo", "user.fuseoverlayfs.opaque", "y");
  write_file(top / "fo/top", "t");
  write_file(base / "fo/base", "hidden by the opaque xattr");

  TempDir mnt("mnt");
  LayerfsMount mount({top, mid, base}, mnt.path());
  ASSERT_TRUE(mount.ok()) << mount.error();
  Tree tree = snapshot(mnt.path());
  EXPECT_EQ(paths(tree), (std::set<std::string>{"", "etc", "etc/keep", "opt", "opt/app",
                                                "opt/app/b", "opt/app/c", "again", "fo", "fo/top"}))
      << paths_of(tree);
  EXPECT_EQ(tree["again"].content, "mid");
  struct stat st;
  EXPECT_NE(lstat((mnt / "etc/.wh.group").c_str(), &st), 0);
  EXPECT_NE(lstat((mnt / "opt/app/.wh..wh..opq").c_str(), &st), 0);
  EXPECT_NE(lstat((mnt / "var").c_str(), &st), 0);
}

TEST(Markers, WhiteoutInABottomOnlyDirectoryIsHidden) {
  // Kernel overlayfs lists such a name and then fails to stat it; layerfs hides it.
  SKIP_WITHOUT_FUSE();
  TempDir t("markers");
  write_file(t / "base/solo/keep", "k");
  make_whiteout(t / "base/solo/gone");
  write_file(t / "top/t", "t");
  TempDir mnt("mnt");
  LayerfsMount mount({t / "top", t / "base"}, mnt.path());
  ASSERT_TRUE(mount.ok()) << mount.error();
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(mnt / "solo")) names.insert(e.path().filename());
  EXPECT_EQ(names, (std::set<std::string>{"keep"}));
}

TEST(Markers, PrivateXattrsAreNeverVisible) {
  SKIP_WITHOUT_FUSE();
  TempDir t("markers");
  fs::path base = t / "base";
  write_file(base / "f", "f");
  set_xattr(base / "f", "user.overlay.origin", "x");
  set_xattr(base / "f", "user.fuseoverlayfs.override_stat", "0:0:0755");
  set_xattr(base / "f", "user.containers.override_stat", "0:0:0755");
  set_xattr(base / "f", "user.visible", "yes");
  make_dir(base / "d");
  set_xattr(base / "d", "user.overlay.opaque", "y");
  bool trusted = can_set_trusted_xattrs(t.path());
  if (trusted) set_xattr(base / "f", "trusted.overlay.origin", "x");

  TempDir mnt("mnt");
  LayerfsMount mount({base}, mnt.path());
  ASSERT_TRUE(mount.ok()) << mount.error();
  Tree tree = snapshot(mnt.path());
  EXPECT_EQ(tree["f"].xattrs, (std::map<std::string, std::string>{{"user.visible", "yes"}}));
  EXPECT_TRUE(tree["d"].xattrs.empty());
  char buf[64];
  EXPECT_LT(lgetxattr((mnt / "f").c_str(), "user.overlay.origin", buf, sizeof buf), 0);
  EXPECT_EQ(errno, ENODATA);
  EXPECT_LT(lgetxattr((mnt / "d").c_str(), "user.overlay.opaque", buf, sizeof buf), 0);
  EXPECT_EQ(errno, ENODATA);
  // A too-small buffer gets ERANGE and a size query the exact size, as on any filesystem.
  EXPECT_EQ(lgetxattr((mnt / "f").c_str(), "user.visible", nullptr, 0), 3);
  EXPECT_LT(lgetxattr((mnt / "f").c_str(), "user.visible", buf, 1), 0);
  EXPECT_EQ(errno, ERANGE);
}

// trusted.* xattrs are visible to privileged callers only, as on the layer's own filesystem.
TEST(Markers, TrustedXattrsOnlyForPrivilegedCallers) {
  SKIP_WITHOUT_FUSE();
  if (geteuid() != 0) GTEST_SKIP() << "needs root to set trusted.* and to switch users";
  TempDir t("markers");
  write_file(t / "l/f", "f");
  set_xattr(t / "l/f", "trusted.note", "admin only");
  set_xattr(t / "l/f", "user.note", "anyone");
  ASSERT_EQ(chmod(t.path().c_str(), 0755), 0);
  TempDir mnt("mnt");
  LayerfsMount mount({t / "l"}, mnt.path());
  ASSERT_TRUE(mount.ok()) << mount.error();
  EXPECT_EQ(snapshot(mnt.path())["f"].xattrs.size(), 2u);
  // As nobody: listxattr names only the user.* xattr (getfattr without -d prints the names the
  // listing holds, whether or not their values can be read), and trusted.* reads as absent.
  RunResult as_nobody =
      run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c",
           "getfattr -m - \"$0\"; getfattr -n trusted.note \"$0\"", (mnt / "f").string()});
  EXPECT_NE(as_nobody.out.find("user.note"), std::string::npos) << as_nobody.out << as_nobody.err;
  EXPECT_EQ(as_nobody.out.find("trusted.note"), std::string::npos) << as_nobody.out;
  EXPECT_NE(as_nobody.err.find("No such attribute"), std::string::npos) << as_nobody.err;
}

}  // namespace
}  // namespace layerfs::test
