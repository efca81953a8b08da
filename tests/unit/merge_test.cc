// The merge of one directory across layers, checked on real directories with the markers in
// their unprivileged forms (char 0/0 whiteouts may be made by any user since Linux 5.8).
#include "layers/merge.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "layers/sys/fs.h"
#include "tests/support/mounts.h"
#include "tests/support/tree.h"

namespace layerfs {
namespace {

using test::TempDir;

class MergeTest : public ::testing::Test {
 protected:
  TempDir t_{"merge"};
  std::filesystem::path top_ = t_ / "top", mid_ = t_ / "mid", base_ = t_ / "base";

  void SetUp() override {
    for (const auto& p : {top_, mid_, base_}) test::make_dir(p);
  }

  std::vector<LayerDir> roots() {
    std::vector<LayerDir> out;
    uint32_t i = 0;
    for (const auto& p : {top_, mid_, base_}) {
      auto fd = sys::open_at(kCwd, p.c_str(), O_PATH | O_DIRECTORY);
      out.push_back(std::move(*open_layer_dir(fd->get(), i++)));
    }
    return out;
  }

  // name -> layer of the entry shown
  std::map<std::string, uint32_t> listing(std::span<const LayerDir> dirs) {
    auto entries = list(dirs);
    EXPECT_TRUE(entries.ok());
    std::map<std::string, uint32_t> out;
    for (const auto& e : *entries) {
      EXPECT_FALSE(out.contains(e.name)) << e.name << " listed twice";
      out[e.name] = e.layer;
    }
    return out;
  }
};

TEST_F(MergeTest, TopmostLayerDecidesAndEveryNameIsListedOnce) {
  test::write_file(top_ / "a", "top");
  test::write_file(base_ / "a", "base");
  test::write_file(mid_ / "b", "mid");
  test::write_file(base_ / "c", "base");
  auto dirs = roots();
  EXPECT_EQ(listing(dirs), (std::map<std::string, uint32_t>{{"a", 0}, {"b", 1}, {"c", 2}}));
  auto a = lookup(dirs, "a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->layer, 0u);
  EXPECT_EQ(a->st.st_size, 3);
  EXPECT_TRUE(a->dirs.empty());
  EXPECT_EQ(lookup(dirs, "missing").error(), ENOENT);
}

// Removing a name from the upper (layer 0) needs a whiteout exactly where a lower layer
// still shows it.
TEST_F(MergeTest, LowerShowsSaysWhetherARemovalNeedsAWhiteout) {
  test::write_file(top_ / "only_up", "u");
  test::write_file(top_ / "both", "u");
  test::write_file(base_ / "both", "b");
  test::write_file(base_ / "removed", "b");
  test::make_whiteout(mid_ / "removed");
  test::write_file(mid_ / "in_mid", "m");
  auto dirs = roots();
  auto r = refs(dirs);
  const std::span<const DirRef> copies(r);
  EXPECT_FALSE(lower_shows(copies, "only_up"));
  EXPECT_TRUE(lower_shows(copies, "both"));
  EXPECT_FALSE(lower_shows(copies, "removed")) << "a lower whiteout already hides it";
  EXPECT_TRUE(lower_shows(copies, "in_mid"));
  EXPECT_FALSE(lower_shows(copies.first(1), "both")) << "no lower copies, no whiteout";
}

TEST_F(MergeTest, DeviceWhiteoutHidesLowerLayersOnly) {
  test::write_file(base_ / "gone", "base");
  test::make_whiteout(mid_ / "gone");
  test::make_whiteout(mid_ / "nothing_below");
  test::write_file(top_ / "back", "top");
  test::make_whiteout(mid_ / "back");
  test::write_file(base_ / "back", "base");
  auto dirs = roots();
  EXPECT_EQ(lookup(dirs, "gone").error(), ENOENT);
  EXPECT_EQ(lookup(dirs, "nothing_below").error(), ENOENT);
  EXPECT_EQ(lookup(dirs, "back")->layer, 0u);
  EXPECT_EQ(listing(dirs), (std::map<std::string, uint32_t>{{"back", 0}}));
}

TEST_F(MergeTest, WhFileHidesLowerLayersButNotItsOwnLayer) {
  test::write_file(base_ / "x", "base");
  test::write_file(mid_ / ".wh.x", "");
  test::write_file(base_ / "y", "base");
  test::write_file(mid_ / ".wh.y", "");
  test::write_file(mid_ / "y", "mid again");  // deleted then re-added in one layer
  auto dirs = roots();
  EXPECT_EQ(lookup(dirs, "x").error(), ENOENT);
  EXPECT_EQ(lookup(dirs, "y")->layer, 1u);
  EXPECT_EQ(lookup(dirs, ".wh.x").error(), ENOENT);  // markers are never names
  EXPECT_EQ(listing(dirs), (std::map<std::string, uint32_t>{{"y", 1}}));
}

TEST_F(MergeTest, DirectoriesMergeUntilAnOpaqueCopy) {
  test::write_file(top_ / "d/t", "");
  test::write_file(mid_ / "d/m", "");
  test::set_xattr(mid_ / "d", "user.overlay.opaque", "y");
  test::write_file(base_ / "d/b", "");
  test::write_file(top_ / "e/t", "");
  test::write_file(mid_ / "e/.wh..wh..opq", "");
  test::write_file(mid_ / "e/m", "");
  test::write_file(base_ / "e/b", "");
  auto dirs = roots();
  auto d = lookup(dirs, "d");
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->dirs.size(), 2u);
  EXPECT_EQ(d->dirs[1].layer, 1u);
  EXPECT_EQ(listing(d->dirs), (std::map<std::string, uint32_t>{{"t", 0}, {"m", 1}}));
  auto e = lookup(dirs, "e");
  ASSERT_EQ(e->dirs.size(), 2u);
  EXPECT_EQ(listing(e->dirs), (std::map<std::string, uint32_t>{{"t", 0}, {"m", 1}}));
}

TEST_F(MergeTest, FuseOverlayfsOpaqueXattrIsHonoured) {
  test::write_file(top_ / "d/t", "");
  test::set_xattr(top_ / "d", "user.fuseoverlayfs.opaque", "y");
  test::write_file(base_ / "d/b", "");
  auto d = lookup(roots(), "d");
  ASSERT_EQ(d->dirs.size(), 1u);
  EXPECT_EQ(listing(d->dirs), (std::map<std::string, uint32_t>{{"t", 0}}));
}

TEST_F(MergeTest, NonDirectoryBelowADirectoryEndsTheMergeUnseen) {
  test::write_file(top_ / "d/t", "");
  test::write_file(mid_ / "d", "a file");
  test::write_file(base_ / "d/b", "");
  auto d = lookup(roots(), "d");
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->dirs.size(), 1u);
  EXPECT_EQ(listing(d->dirs), (std::map<std::string, uint32_t>{{"t", 0}}));
}

TEST_F(MergeTest, FileAboveADirectoryHidesIt) {
  test::write_file(top_ / "d", "a file");
  test::write_file(base_ / "d/b", "");
  auto d = lookup(roots(), "d");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(S_ISREG(d->st.st_mode));
  EXPECT_TRUE(d->dirs.empty());
}

TEST_F(MergeTest, LowerSymlinkIsNeverMergedAsADirectory) {
  TempDir outside("outside");
  test::write_file(outside / "secret", "s");
  test::write_file(top_ / "d/t", "");
  test::make_symlink(outside.path().string(), mid_ / "d");
  test::make_symlink("../../../../..", mid_ / "up");
  auto dirs = roots();
  auto d = lookup(dirs, "d");
  ASSERT_EQ(d->dirs.size(), 1u);
  EXPECT_EQ(listing(d->dirs), (std::map<std::string, uint32_t>{{"t", 0}}));
  auto up = lookup(dirs, "up");
  EXPECT_TRUE(S_ISLNK(up->st.st_mode));
  EXPECT_EQ(lookup(d->dirs, "secret").error(), ENOENT);
}

TEST_F(MergeTest, XattrWhiteoutsCountOnlyInMarkedDirectories) {
  test::write_file(top_ / "d/hidden", "");
  test::set_xattr(top_ / "d/hidden", "user.overlay.whiteout", "y");
  test::set_xattr(top_ / "d", "user.overlay.opaque", "x");
  test::write_file(base_ / "d/hidden", "base");
  test::write_file(base_ / "d/kept", "base");
  test::write_file(top_ / "n/hidden", "");  // same xattr, unmarked parent: an empty file
  test::set_xattr(top_ / "n/hidden", "user.overlay.whiteout", "y");
  auto dirs = roots();
  auto d = lookup(dirs, "d");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->dirs.size(), 2u);  // opaque=x is not opaque
  EXPECT_EQ(lookup(d->dirs, "hidden").error(), ENOENT);
  EXPECT_EQ(listing(d->dirs), (std::map<std::string, uint32_t>{{"kept", 2}}));
  auto n = lookup(dirs, "n");
  EXPECT_TRUE(lookup(n->dirs, "hidden").ok());
}

// Redirects, as kernel overlayfs writes them with redirect_dir=on (fs/overlayfs/namei.c).
class RedirectTest : public MergeTest {
 protected:
  std::vector<LayerDir> roots_ = {};
  std::vector<DirRef> root_refs_;
  Redirects follow() {
    roots_ = roots();
    root_refs_ = refs(roots_);
    return Redirects{true, root_refs_};
  }
  static std::map<std::string, uint32_t> names(const Result<Resolved>& r) {
    std::map<std::string, uint32_t> out;
    if (!r.ok()) return out;
    auto entries = list(std::span<const LayerDir>(r->dirs));
    if (entries.ok()) {
      for (const auto& e : *entries) out[e.name] = e.layer;
    }
    return out;
  }
};

TEST_F(RedirectTest, RelativeRedirectMergesTheOldNameBelow) {
  test::write_file(base_ / "old/f", "base");
  test::write_file(base_ / "new/hidden", "base");  // what was at the new name stays hidden
  test::write_file(top_ / "new/g", "top");
  test::set_xattr(top_ / "new", "user.overlay.redirect", "old");
  test::make_whiteout(top_ / "old");
  auto rules = follow();
  auto r = lookup(roots_, "new", rules);
  ASSERT_TRUE(r.ok()) << r.error();
  ASSERT_EQ(r->dirs.size(), 2u);
  EXPECT_EQ(r->dirs[1].found_as, "old");
  EXPECT_EQ(r->dirs[0].found_as, "");
  EXPECT_EQ(names(r), (std::map<std::string, uint32_t>{{"f", 2}, {"g", 0}}));
  EXPECT_EQ(lookup(roots_, "old", rules).error(), ENOENT);
}

TEST_F(RedirectTest, AbsoluteRedirectStartsAtTheRootsOfTheLayersBelow) {
  test::write_file(mid_ / "a/b/d/from_mid", "");
  test::write_file(base_ / "a/b/d/from_base", "");
  test::write_file(base_ / "x/y/e/unrelated", "");
  test::make_dir(top_ / "x/y/e");
  test::set_xattr(top_ / "x/y/e", "user.overlay.redirect", "/a/b/d");
  auto rules = follow();
  auto x = lookup(roots_, "x", rules);
  ASSERT_TRUE(x.ok());
  auto y = lookup(x->dirs, "y", rules);
  ASSERT_TRUE(y.ok());
  auto e = lookup(y->dirs, "e", rules);
  ASSERT_TRUE(e.ok()) << e.error();
  EXPECT_EQ(names(e), (std::map<std::string, uint32_t>{{"from_base", 2}, {"from_mid", 1}}));
  // A child of the redirected directory is looked up in the copies the redirect found.
  test::write_file(base_ / "a/b/d/sub/deep", "");
  auto sub = lookup(e->dirs, "sub", rules);
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ(names(sub), (std::map<std::string, uint32_t>{{"deep", 2}}));
}

TEST_F(RedirectTest, WhiteoutOrFileOnTheRedirectedPathEndsTheMerge) {
  test::write_file(base_ / "a/d/f", "");
  test::make_whiteout(mid_ / "a");  // deletes a, so nothing under it shows
  test::make_dir(top_ / "e");
  test::set_xattr(top_ / "e", "user.overlay.redirect", "/a/d");
  auto rules = follow();
  auto e = lookup(roots_, "e", rules);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->dirs.size(), 1u);
  EXPECT_TRUE(names(e).empty());
}

TEST_F(RedirectTest, OpaqueDirectoryIgnoresItsRedirect) {
  test::write_file(base_ / "old/f", "");
  test::make_dir(top_ / "new");
  test::set_xattr(top_ / "new", "user.overlay.redirect", "old");
  test::set_xattr(top_ / "new", "user.overlay.opaque", "y");
  auto e = lookup(roots(), "new");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->dirs.size(), 1u);
}

TEST_F(RedirectTest, NotFollowingRefusesWhatARedirectWouldShow) {
  test::write_file(base_ / "old/f", "");
  test::make_dir(top_ / "new");
  test::set_xattr(top_ / "new", "user.overlay.redirect", "old");
  test::make_dir(top_ / "dangling");
  test::set_xattr(top_ / "dangling", "user.overlay.redirect", "nothing-there");
  auto rules = follow();
  rules.follow = false;
  EXPECT_EQ(lookup(roots_, "new", rules).error(), EPERM);
  EXPECT_TRUE(lookup(roots_, "dangling", rules).ok());
}

TEST_F(RedirectTest, MalformedRedirectIsAnErrorNotAnEscape) {
  TempDir outside("outside");
  test::write_file(base_ / "d/f", "");
  for (const char* bad : {"../outside", "/a//b", "/a/", "/..", "a/b", ".wh.x", ".."}) {
    test::make_dir(top_ / "e");
    test::set_xattr(top_ / "e", "user.overlay.redirect", bad);
    auto rules = follow();
    EXPECT_EQ(lookup(roots_, "e", rules).error(), EINVAL) << "redirect '" << bad << "'";
  }
}

TEST_F(MergeTest, HundredsOfLayers) {
  TempDir many("many");
  std::vector<LayerDir> dirs;
  for (uint32_t i = 0; i < 300; ++i) {
    auto layer = many / std::to_string(i);
    test::write_file(layer / ("f" + std::to_string(i)), "");
    if (i % 2 == 1) test::make_whiteout(layer / ("f" + std::to_string(i + 1)));
    auto fd = sys::open_at(kCwd, layer.c_str(), O_PATH | O_DIRECTORY);
    dirs.push_back(std::move(*open_layer_dir(fd->get(), i)));
  }
  auto names = listing(dirs);
  // f0 and every odd fN show; even fN below an odd layer's whiteout do not.
  EXPECT_EQ(names.size(), 151u);
  EXPECT_TRUE(names.contains("f0"));
  EXPECT_TRUE(names.contains("f299"));
  EXPECT_FALSE(names.contains("f2"));
  EXPECT_EQ(lookup(dirs, "f298").error(), ENOENT);
  EXPECT_EQ(lookup(dirs, "f299")->layer, 299u);
}

}  // namespace
}  // namespace layerfs
