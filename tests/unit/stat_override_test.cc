// The owner-and-mode override xattr, in every form fuse-overlayfs and containers-storage write.
#include "layers/stat_override.h"

#include <gtest/gtest.h>

namespace layerfs {
namespace {

TEST(StatOverride, ParsesEveryWrittenFormAndNothingElse) {
  auto o = StatOverride::parse("1000:100:0755");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->uid, 1000u);
  EXPECT_EQ(o->gid, 100u);
  EXPECT_EQ(o->mode, 0755u);
  auto typed = StatOverride::parse("0:0:4755:file");  // containers-storage adds the type
  ASSERT_TRUE(typed);
  EXPECT_EQ(typed->mode, 04755u);
  for (const char* bad :
       {"", "1000", "1000:100", "1000:100:", "a:100:0755", "1000:b:0755", "1000:100:0758",
        "1000:100:17777", "1000:100:0755x", "-1:0:0755", "1000::0755"}) {
    EXPECT_FALSE(StatOverride::parse(bad)) << "'" << bad << "'";
  }
}

TEST(StatOverride, FormatRoundTripsAndApplyKeepsTheType) {
  StatOverride o{4294967294u, 7, 02750};
  EXPECT_EQ(o.format(), "4294967294:7:02750");
  auto back = StatOverride::parse(o.format());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->uid, o.uid);
  EXPECT_EQ(back->mode, o.mode);
  struct stat st {};
  st.st_mode = S_IFDIR | 0700;
  st.st_uid = 1;
  o.apply(st);
  EXPECT_EQ(st.st_mode, static_cast<mode_t>(S_IFDIR | 02750));
  EXPECT_EQ(st.st_uid, 4294967294u);
  EXPECT_EQ(st.st_gid, 7u);
}

// chmod and chown through a mount with xattr_permissions change the override as they would
// change a file: a new owner without a new mode drops a non-directory's set-id bits.
TEST(StatOverride, ChangedIsWhatChmodAndChownDo) {
  const StatOverride o{1000, 100, 06755};
  const StatOverride chmod = o.changed(0640, std::nullopt, std::nullopt, S_IFREG);
  EXPECT_EQ(chmod.mode, 0640u);
  EXPECT_EQ(chmod.uid, 1000u);
  const StatOverride chown = o.changed(std::nullopt, 0, std::nullopt, S_IFREG);
  EXPECT_EQ(chown.uid, 0u);
  EXPECT_EQ(chown.gid, 100u);
  EXPECT_EQ(chown.mode, 0755u) << "set-id bits dropped";
  EXPECT_EQ(o.changed(std::nullopt, std::nullopt, 5, S_IFDIR).mode, 06755u)
      << "a directory keeps them";
  EXPECT_EQ(o.changed(04700, 7, 7, S_IFREG).mode, 04700u) << "a mode given with the owner stays";
}

}  // namespace
}  // namespace layerfs
