// layerdiff export: reproducible bytes, digests that sha256sum agrees with, and an image umoci
// unpacks into the merged view the layers came from.
#include <gtest/gtest.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "layers/digest.h"
#include "tests/fuse/parity.h"
#include "tests/support/mounts.h"
#include "tests/support/tree.h"

namespace layerfs::test {
namespace {

std::string sha256_file(const fs::path& p) {
  auto r = run({"sha256sum", p.string()});
  return "sha256:" + r.out.substr(0, 64);
}

class Export : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_FUSE();
    write_file(t_ / "low/etc/a", "a");
    write_file(t_ / "low/etc/b", "b");
    write_file(t_ / "low/d/sub/s", "s");
    write_file(t_ / "low/bin/tool", std::string(200000, 't'), 0755);
    for (const char* d : {"up", "work", "m"}) make_dir(t_ / d);
    mount_ = std::make_unique<LayerfsMount>(
        std::vector<fs::path>{t_ / "low"}, t_ / "m",
        std::vector<std::string>{
            "-o", "upperdir=" + (t_ / "up").string() + ",workdir=" + (t_ / "work").string()});
    ASSERT_TRUE(mount_->ok()) << mount_->error();
    write_file(t_ / "m/etc/new", "new");
    fs::remove(t_ / "m/etc/b");
    fs::remove_all(t_ / "m/d");
    write_file(t_ / "m/d/x", "x");
    make_hardlink(t_ / "m/etc/new", t_ / "m/etc/new2");
    set_xattr(t_ / "m/etc/new", "user.k", "v");
    ASSERT_EQ(chmod((t_ / "m/bin/tool").c_str(), 0700), 0);
  }
  TempDir t_{"export"};
  std::unique_ptr<LayerfsMount> mount_;
};

TEST_F(Export, TwiceGivesTheSameBytesAndTheDigestsAreTheFiles) {
  for (const char* ext : {".tar", ".tar.gz", ".tar.zst"}) {
    SCOPED_TRACE(ext);
    const fs::path one = t_ / (std::string("one") + ext), two = t_ / (std::string("two") + ext);
    auto a = run({LAYERDIFF_BIN, "export", "--json", (t_ / "m").string(), "-o", one.string()});
    ASSERT_EQ(a.status, 0) << a.err;
    // The same layer, later, elsewhere: the bytes do not change.
    auto b = run({LAYERDIFF_BIN, "export", (t_ / "up").string(), "-o", two.string()});
    ASSERT_EQ(b.status, 0) << b.err;
    EXPECT_EQ(read_file(one), read_file(two));
    EXPECT_NE(a.out.find("\"digest\": \"" + sha256_file(one) + "\""), std::string::npos) << a.out;
    if (std::string(ext) == ".tar") {
      EXPECT_NE(a.out.find("\"diffID\": \"" + sha256_file(one) + "\""), std::string::npos);
    }
  }
  // SOURCE_DATE_EPOCH clamps mtimes, so the bytes change with it, and only with it.
  auto c = run({LAYERDIFF_BIN, "export", (t_ / "m").string(), "-o", (t_ / "c.tar").string()},
               {"SOURCE_DATE_EPOCH=1000000000"});
  ASSERT_EQ(c.status, 0) << c.err;
  EXPECT_NE(read_file(t_ / "c.tar"), read_file(t_ / "one.tar"));
  auto listing = run({"tar", "--full-time", "-tvf", (t_ / "c.tar").string()});
  EXPECT_NE(listing.out.find("2001-09-09"), std::string::npos) << listing.out;
  EXPECT_NE(listing.out.find("etc/.wh.b"), std::string::npos) << listing.out;
  EXPECT_NE(listing.out.find("d/.wh..wh..opq"), std::string::npos) << listing.out;
  EXPECT_NE(listing.out.find("etc/new2 link to etc/new"), std::string::npos) << listing.out;
}

TEST_F(Export, UmociUnpacksTheMergedView) {
  if (run({"sh", "-c", "command -v umoci"}).status != 0) GTEST_SKIP() << "no umoci";
  const std::string layout = "oci:" + (t_ / "image").string() + ":app";
  auto base = run({LAYERDIFF_BIN, "export", (t_ / "low").string(), "-o",
                   (t_ / "base.tar.gz").string(), "--into", layout});
  ASSERT_EQ(base.status, 0) << base.err;
  auto top = run({LAYERDIFF_BIN, "export", (t_ / "m").string(), "-o", (t_ / "top.tar.gz").string(),
                  "--into", layout});
  ASSERT_EQ(top.status, 0) << top.err;
  auto unpacked = run(
      {"umoci", "unpack", "--image", (t_ / "image").string() + ":app", (t_ / "bundle").string()});
  ASSERT_EQ(unpacked.status, 0) << unpacked.err;
  const Tree want = snapshot(t_ / "m");
  const Tree got = snapshot(t_ / "bundle/rootfs");
  auto d = compare(want, got, {.ino = true, .atime = true, .nlink = true, .blocks = true});
  std::erase_if(d, [](const std::string& l) { return l.find(" ctime: ") != std::string::npos; });
  std::erase_if(d, [](const std::string& l) { return l.starts_with("'' "); });  // the root's own
  EXPECT_TRUE(d.empty()) << ::testing::PrintToString(d);
  // And layerdiff reads the image it wrote as the view too.
  auto diff = run({LAYERDIFF_BIN, "diff", "--semantic", (t_ / "m").string(), layout});
  EXPECT_EQ(diff.status, 0) << diff.out << diff.err;
}

// An upper kernel overlayfs wrote with redirect_dir=on or metacopy=on cannot be said as a layer
// tar by itself: export refuses it, naming the path and why, and writes nothing.
TEST(ExportRedirects, AnUnmountedUpperIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "trusted.* xattrs need root";
  TempDir t("export");
  write_file(t / "meta/f", "");
  set_xattr(t / "meta/f", "trusted.overlay.metacopy", "");
  make_dir(t / "redir/moved");
  set_xattr(t / "redir/moved", "trusted.overlay.redirect", "old");
  for (const char* layer : {"meta", "redir"}) {
    SCOPED_TRACE(layer);
    const fs::path out = t / (std::string(layer) + ".tar");
    auto r = run({LAYERDIFF_BIN, "export", (t / layer).string(), "-o", out.string()});
    EXPECT_EQ(r.status, 2) << r.out;
    EXPECT_NE(
        r.err.find(std::string(layer) == "meta" ? "/f is a metacopy" : "/moved has a redirect"),
        std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("mount it and export the mount"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out));
  }
}

// A kernel overlayfs upper with a renamed directory (redirect_dir=on) and a chmod (metacopy=on)
// is exported from the mount's merged view; the tar applied as the upper of a plain mount over
// the same lowers shows that view again.
TEST(ExportRedirects, AMountWithRedirectsAndMetacopiesExportsItsMergedView) {
  SKIP_WITHOUT_KERNEL_OVERLAY();
  TempDir t("export");
  write_file(t / "low/d/one", "one");
  write_file(t / "low/d/sub/two", "two");
  write_file(t / "low/big", std::string(300000, 'b'));
  write_file(t / "low/gone", "gone");
  write_file(t / "low/keep", "keep");
  for (const char* d : {"up", "work", "m", "applied", "kwork", "k"}) make_dir(t / d);
  Tree want;
  {
    KernelOverlay k({t / "low"}, t / "m",
                    "upperdir=" + (t / "up").string() + ",workdir=" + (t / "work").string() +
                        ",redirect_dir=on,metacopy=on");
    if (!k.ok()) GTEST_SKIP() << "kernel overlayfs without redirect_dir/metacopy: " << k.error();
    ASSERT_EQ(rename((t / "m/d").c_str(), (t / "m/moved").c_str()), 0);
    ASSERT_EQ(chmod((t / "m/big").c_str(), 0600), 0);
    fs::remove(t / "m/gone");
    write_file(t / "m/moved/sub/three", "three");
    ASSERT_NE(xattr_of(t / "up/moved", "trusted.overlay.redirect"), "");
    ASSERT_GE(lgetxattr((t / "up/big").c_str(), "trusted.overlay.metacopy", nullptr, 0), 0)
        << "a chmod made no metacopy";
    want = snapshot(t / "m");
    auto r = run({LAYERDIFF_BIN, "export", (t / "m").string(), "-o", (t / "l.tar").string()});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("exported as its merged view compared with its lowers"), std::string::npos)
        << r.err;
  }
  auto applied = run({LAYERDIFF_BIN, "apply", (t / "l.tar").string(), (t / "applied").string()});
  ASSERT_EQ(applied.status, 0) << applied.err;
  Tree got;
  {
    KernelOverlay k({t / "low"}, t / "k",
                    "upperdir=" + (t / "applied").string() + ",workdir=" + (t / "kwork").string());
    ASSERT_TRUE(k.ok()) << k.error();
    got = snapshot(t / "k");
  }
  const Ignore ignore{.ino = true, .atime = true, .nlink = true, .blocks = true};
  auto d = compare(want, got, ignore);
  std::erase_if(d, [](const std::string& l) {
    return l.find(" ctime: ") != std::string::npos || l.starts_with("'' mtime");
  });
  EXPECT_TRUE(d.empty()) << ::testing::PrintToString(d);
}

}  // namespace
}  // namespace layerfs::test
