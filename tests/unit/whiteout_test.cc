#include "layers/whiteout.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/sysmacros.h>

#include "layers/sys/fs.h"
#include "tests/support/mounts.h"
#include "tests/support/tree.h"

namespace layerfs {
namespace {

using test::TempDir;

UniqueFd open_dir(const std::filesystem::path& p) {
  return std::move(*sys::open_at(kCwd, p.c_str(), O_PATH | O_DIRECTORY));
}

TEST(Whiteout, ClassifiesNames) {
  EXPECT_EQ(Whiteout::classify_name("usr"), Whiteout::Name::kPlain);
  EXPECT_EQ(Whiteout::classify_name(".whatever"), Whiteout::Name::kPlain);
  EXPECT_EQ(Whiteout::classify_name(".wh.usr"), Whiteout::Name::kWhiteoutFile);
  EXPECT_EQ(Whiteout::target(".wh.usr"), "usr");
  EXPECT_EQ(Whiteout::classify_name(".wh..wh..opq"), Whiteout::Name::kMeta);
  EXPECT_EQ(Whiteout::classify_name(".wh..wh.plnk"), Whiteout::Name::kMeta);
  EXPECT_EQ(Whiteout::classify_name(".wh."), Whiteout::Name::kMeta);
}

TEST(Whiteout, DeviceWhiteoutIsCharZeroZeroOnly) {
  struct stat st {};
  st.st_mode = S_IFCHR;
  st.st_rdev = makedev(0, 0);
  EXPECT_TRUE(Whiteout::is_device_whiteout(st));
  st.st_rdev = makedev(1, 3);  // /dev/null
  EXPECT_FALSE(Whiteout::is_device_whiteout(st));
  st.st_mode = S_IFBLK;
  st.st_rdev = 0;
  EXPECT_FALSE(Whiteout::is_device_whiteout(st));
}

TEST(Whiteout, PrivateXattrs) {
  EXPECT_TRUE(Whiteout::is_private_xattr("trusted.overlay.opaque"));
  EXPECT_TRUE(Whiteout::is_private_xattr("trusted.overlay.origin"));
  EXPECT_TRUE(Whiteout::is_private_xattr("user.overlay.redirect"));
  EXPECT_TRUE(Whiteout::is_private_xattr("user.fuseoverlayfs.opaque"));
  EXPECT_TRUE(Whiteout::is_private_xattr("security.fuseoverlayfs.override_stat"));
  EXPECT_TRUE(Whiteout::is_private_xattr("user.containers.override_stat"));
  EXPECT_FALSE(Whiteout::is_private_xattr("user.mime_type"));
  EXPECT_FALSE(Whiteout::is_private_xattr("security.capability"));
  EXPECT_FALSE(Whiteout::is_private_xattr("trusted.overlayish"));
}

TEST(Whiteout, OpaqueByEveryUnprivilegedForm) {
  TempDir t("wh");
  test::make_dir(t / "plain");
  test::make_dir(t / "user");
  test::set_xattr(t / "user", "user.overlay.opaque", "y");
  test::make_dir(t / "fo");
  test::set_xattr(t / "fo", "user.fuseoverlayfs.opaque", "y");
  test::write_file(t / "file/.wh..wh..opq", "");
  test::make_dir(t / "xw");
  test::set_xattr(t / "xw", "user.overlay.opaque", "x");
  test::make_dir(t / "older");
  test::set_xattr(t / "older", "user.overlay.whiteouts", "");
  test::make_dir(t / "other");
  test::set_xattr(t / "other", "user.mime_type", "y");

  auto marks = [&](const char* d) { return *Whiteout::dir_marks(open_dir(t / d).get()); };
  EXPECT_FALSE(marks("plain").opaque);
  EXPECT_TRUE(marks("user").opaque);
  EXPECT_TRUE(marks("fo").opaque);
  EXPECT_TRUE(marks("file").opaque);
  EXPECT_FALSE(marks("xw").opaque);
  EXPECT_TRUE(marks("xw").xwhiteouts);
  EXPECT_TRUE(marks("older").xwhiteouts);
  EXPECT_FALSE(marks("other").opaque);
  EXPECT_FALSE(marks("plain").xwhiteouts);
}

TEST(Whiteout, TrustedOpaqueWhenPrivileged) {
  TempDir t("wh");
  if (!test::can_set_trusted_xattrs(t.path()))
    GTEST_SKIP() << "trusted.* xattrs need CAP_SYS_ADMIN";
  test::make_dir(t / "d");
  test::set_xattr(t / "d", "trusted.overlay.opaque", "y");
  EXPECT_TRUE(Whiteout::dir_marks(open_dir(t / "d").get())->opaque);
}

TEST(Whiteout, XattrWhiteoutIsAnEmptyRegularFileWithTheXattr) {
  TempDir t("wh");
  test::write_file(t / "empty_marked", "");
  test::set_xattr(t / "empty_marked", "user.overlay.whiteout", "y");
  test::write_file(t / "full_marked", "data");
  test::set_xattr(t / "full_marked", "user.overlay.whiteout", "y");
  test::write_file(t / "empty_plain", "");
  UniqueFd dir = open_dir(t.path());
  auto is_wh = [&](const char* name) {
    auto st = sys::stat_at(dir.get(), name);
    return *Whiteout::is_xattr_whiteout(dir.get(), name, *st);
  };
  EXPECT_TRUE(is_wh("empty_marked"));
  EXPECT_FALSE(is_wh("full_marked"));
  EXPECT_FALSE(is_wh("empty_plain"));
}

}  // namespace
}  // namespace layerfs
