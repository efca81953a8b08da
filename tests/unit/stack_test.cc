// A stack of plain directories merged with the layers/ API alone (no daemon, no FUSE): every
// name gets the answer a layerfs mount of the same directories shows, attributes included,
// and explain() says what became of each layer's entry.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <functional>

#include "layers/attributes.h"
#include "layers/layer_stack.h"
#include "layers/merge.h"
#include "layers/sys/fs.h"
#include "layers/whiteout.h"
#include "tests/support/mounts.h"
#include "tests/support/tree.h"

namespace layerfs {
namespace {

using test::TempDir;
using State = NameInLayer::State;

class StackModel : public ::testing::Test {
 protected:
  void SetUp() override {
    using test::make_dir;
    using test::write_file;
    write_file(top_ / "shadowed", "top");
    write_file(mid_ / "shadowed", "mid");
    write_file(base_ / "shadowed", "base");
    write_file(base_ / "removed", "base");
    test::make_whiteout(mid_ / "removed");
    write_file(base_ / "removed_oci", "base");
    write_file(mid_ / ".wh.removed_oci", "");
    write_file(top_ / "d/from_top", "t");
    write_file(mid_ / "d/from_mid", "m");
    write_file(base_ / "d/from_base", "b");
    write_file(base_ / "d/deep/x", "x");
    write_file(mid_ / "opq/mine", "m");
    test::set_xattr(mid_ / "opq", "user.overlay.opaque", "y");
    write_file(base_ / "opq/hidden", "b");
    write_file(top_ / "file_over_dir", "f");
    write_file(base_ / "file_over_dir/inside", "i");
    write_file(top_ / "dir_over_file/inside", "i");
    write_file(mid_ / "dir_over_file", "f");
    write_file(base_ / "dir_over_file/below", "b");
    test::make_symlink("shadowed", top_ / "link");
    write_file(base_ / "hard1", "h");
    test::make_hardlink(base_ / "hard1", base_ / "hard2");
    make_dir(mid_ / "empty");
    test::pin_atimes(t_.path());
  }

  // The merged tree, as layers/ computes it: names from list(), objects from lookup(), inode
  // numbers and link counts by the attribute rules.
  test::Tree model() {
    auto opened = LayerStack::open({top_.string(), mid_.string(), base_.string()});
    EXPECT_TRUE(opened.ok()) << opened.err().message();
    const LayerStack& stack = **opened;
    std::vector<LayerDir> roots;
    for (uint32_t i = 0; i < stack.size(); ++i) {
      roots.push_back(std::move(*open_layer_dir(stack.layer(i).root.get(), i)));
    }
    test::Tree out;
    auto root_st = *sys::stat_fd(stack.layer(0).root.get());
    root_st.st_ino = stack.map_ino(0, root_st.st_ino);
    root_st.st_nlink = shown_dir_nlink(root_st.st_nlink, roots.size() > 1);
    out[""].st = root_st;
    std::function<void(std::span<const LayerDir>, const std::string&)> walk =
        [&](std::span<const LayerDir> dirs, const std::string& rel) {
          auto entries = list(dirs);
          ASSERT_TRUE(entries.ok());
          for (const ListEntry& e : *entries) {
            auto r = lookup(dirs, e.name);
            ASSERT_TRUE(r.ok()) << e.name;
            const std::string path = rel.empty() ? e.name : rel + "/" + e.name;
            test::NodeInfo info;
            info.st = r->st;
            // A read-only stack: no upper prefix, no upper directory.
            info.st.st_ino = shown_ino(stack, "", BorrowedFd(), e.name.c_str(), *r);
            if (S_ISDIR(r->st.st_mode)) {
              info.st.st_nlink = shown_dir_nlink(r->st.st_nlink, r->dirs.size() > 1);
            }
            auto refs_ = refs(dirs);
            EXPECT_EQ(listed_ino(stack, "", BorrowedFd(), e, refs_, nullptr, {}), info.st.st_ino)
                << path << ": the listing's number is the object's";
            const auto real = (r->layer == 0 ? top_ : r->layer == 1 ? mid_ : base_) / path;
            if (S_ISREG(r->st.st_mode)) info.content = test::read_file(real);
            if (S_ISLNK(r->st.st_mode)) info.link = *sys::read_link_at(kCwd, real.c_str());
            const test::Tree own = test::snapshot(real, {.content = false});
            for (const auto& [k, v] : own.at("").xattrs) {
              if (!Whiteout::is_private_xattr(k)) info.xattrs[k] = v;
            }
            out[path] = std::move(info);
            if (S_ISDIR(r->st.st_mode)) walk(r->dirs, path);
          }
        };
    walk(roots, "");
    return out;
  }

  TempDir t_{"stack"};
  std::filesystem::path top_ = t_ / "top", mid_ = t_ / "mid", base_ = t_ / "base";
};

TEST_F(StackModel, TheLayersApiAloneShowsWhatTheMountShows) {
  if (auto why = test::fuse_unavailable()) GTEST_SKIP() << *why;
  test::Tree ours = model();
  test::make_dir(t_ / "mnt");
  test::LayerfsMount mount({top_, mid_, base_}, t_ / "mnt");
  ASSERT_TRUE(mount.ok()) << mount.error();
  test::Tree shown = test::snapshot(t_ / "mnt");
  auto diffs = test::compare(ours, shown, {.atime = true});
  EXPECT_TRUE(diffs.empty()) << ::testing::PrintToString(diffs);
  EXPECT_EQ(ours.size(), shown.size()) << test::paths_of(shown);
}

TEST_F(StackModel, ExplainSaysWhatBecameOfEachLayersEntry) {
  std::vector<LayerDir> roots;
  uint32_t i = 0;
  for (const auto& p : {top_, mid_, base_}) {
    auto fd = sys::open_at(kCwd, p.c_str(), O_PATH | O_DIRECTORY);
    roots.push_back(std::move(*open_layer_dir(fd->get(), i++)));
  }
  auto refs_ = refs(roots);
  auto states = [&](const char* name) {
    std::vector<std::pair<uint32_t, std::pair<State, uint32_t>>> out;
    auto r = explain(std::span<const DirRef>(refs_), name);
    EXPECT_TRUE(r.ok()) << name;
    for (const auto& e : *r) {
      const bool has_by =
          e.state != State::kShown && e.state != State::kMerged && e.state != State::kWhiteout;
      out.push_back({e.layer, {e.state, has_by ? e.by : 0}});
    }
    return out;
  };
  using V = std::vector<std::pair<uint32_t, std::pair<State, uint32_t>>>;
  EXPECT_EQ(states("shadowed"),
            (V{{0, {State::kShown, 0}}, {1, {State::kShadowed, 0}}, {2, {State::kShadowed, 0}}}));
  EXPECT_EQ(states("removed"), (V{{1, {State::kWhiteout, 0}}, {2, {State::kRemoved, 1}}}));
  EXPECT_EQ(states("removed_oci"), (V{{1, {State::kWhiteout, 0}}, {2, {State::kRemoved, 1}}}));
  EXPECT_EQ(states("d"),
            (V{{0, {State::kShown, 0}}, {1, {State::kMerged, 0}}, {2, {State::kMerged, 0}}}));
  EXPECT_EQ(states("opq"), (V{{1, {State::kShown, 0}}, {2, {State::kHidden, 1}}}));
  EXPECT_EQ(states("file_over_dir"), (V{{0, {State::kShown, 0}}, {2, {State::kShadowed, 0}}}));
  EXPECT_EQ(states("dir_over_file"),
            (V{{0, {State::kShown, 0}}, {1, {State::kShadowed, 0}}, {2, {State::kShadowed, 0}}}));
  EXPECT_TRUE(states("nothing").empty());
}

}  // namespace
}  // namespace layerfs
