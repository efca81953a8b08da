// The values kernel overlayfs gives redirects (fs/overlayfs/dir.c, ovl_set_redirect).
#include "layers/redirect.h"

#include <gtest/gtest.h>

namespace layerfs {
namespace {

using redirect::Ancestor;

TEST(Redirect, ValuesForAMove) {
  // Within one parent: the old name; a redirect already there stays.
  EXPECT_EQ(**redirect::for_move("", true, "d", {}), "d");
  EXPECT_FALSE(*redirect::for_move("orig", true, "d", {}));
  EXPECT_FALSE(*redirect::for_move("/a/orig", false, "d", {}));
  // Across parents: the path from the root, ancestors standing for their own redirects, up to
  // the first absolute one.
  EXPECT_EQ(**redirect::for_move("", false, "d", {{"b", ""}, {"a", ""}}), "/a/b/d");
  EXPECT_EQ(**redirect::for_move("old", false, "d", {{"b", ""}}), "/b/old");
  EXPECT_EQ(**redirect::for_move("", false, "d", {{"b", "was_b"}, {"a", ""}}), "/a/was_b/d");
  EXPECT_EQ(**redirect::for_move("", false, "d", {{"b", "/x/y"}, {"a", "ignored"}}), "/x/y/d");
  EXPECT_EQ(**redirect::for_move("", false, "d", {}), "/d");  // the parent is the root
  // Past the kernel's redirect_max: EXDEV (the tree is copied instead).
  const std::vector<Ancestor> deep(40, Ancestor{"abcdefgh", ""});
  EXPECT_EQ(redirect::for_move("", false, "d", deep).error(), EXDEV);
  EXPECT_EQ(redirect::for_move("", true, std::string(300, 'n'), {}).error(), EXDEV);
}

TEST(Redirect, ValidValues) {
  for (const char* ok : {"d", "/a", "/a/b/c", "name with spaces"}) {
    EXPECT_TRUE(redirect::valid(ok)) << ok;
  }
  for (const char* bad :
       {"", "a/b", "/", "/a/", "//a", "/a//b", "..", "/..", "/a/./b", ".wh.x", "/a/.wh..wh..opq"}) {
    EXPECT_FALSE(redirect::valid(bad)) << bad;
  }
}

}  // namespace
}  // namespace layerfs
