// layerdiff apply against hostile layer tars, made here with libarchive: every one is refused
// entry by entry, and nothing outside the target exists or changes afterwards. And the round
// trip: an exported upper applied onto an empty directory mounts, under kernel overlayfs and
// under layerfs over the same lowers, as the view it came from.
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <functional>

#include "tests/fuse/parity.h"
#include "tests/support/mounts.h"
#include "tests/support/tree.h"

namespace layerfs::test {
namespace {

// One tar member as a test writes it.
struct Member {
  std::string name;
  mode_t type = AE_IFREG;
  std::string data;
  std::string link;           // symlink target
  std::string hardlink;       // hard link target
  int64_t claimed_size = -1;  // a size claim without the data behind it
  uint32_t uid = 0;
  dev_t rdev = 0;
};

// Where the tar goes: a file, cut off once `limit` bytes are written (a size claim whose data
// never comes: libarchive would pad it out in full).
struct Cut {
  FILE* f;
  size_t written = 0;
  size_t limit;
};

la_ssize_t write_cut(archive*, void* client, const void* buf, size_t n) {
  auto* c = static_cast<Cut*>(client);
  if (c->written >= c->limit) return -1;
  const size_t take = std::min(n, c->limit - c->written);
  fwrite(buf, 1, take, c->f);
  c->written += take;
  return static_cast<la_ssize_t>(n);
}

void write_tar(const fs::path& out, const std::vector<Member>& members) {
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  Cut cut{fopen(out.c_str(), "wb"), 0, size_t{64} << 20};
  ASSERT_NE(cut.f, nullptr);
  ASSERT_EQ(archive_write_open(a, &cut, nullptr, write_cut, nullptr), ARCHIVE_OK);
  for (const Member& m : members) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, m.name.c_str());
    archive_entry_set_filetype(e, m.type);
    archive_entry_set_perm(e, m.type == AE_IFDIR ? 0755 : 0644);
    if (!m.link.empty()) archive_entry_set_symlink(e, m.link.c_str());
    if (!m.hardlink.empty()) archive_entry_set_hardlink(e, m.hardlink.c_str());
    archive_entry_set_uid(e, m.uid);
    archive_entry_set_gid(e, m.uid);
    if (m.rdev != 0) archive_entry_set_rdev(e, m.rdev);
    const int64_t size = m.claimed_size >= 0 ? m.claimed_size : static_cast<int64_t>(m.data.size());
    if (m.type == AE_IFREG && m.hardlink.empty()) archive_entry_set_size(e, size);
    archive_write_header(a, e);
    if (!m.data.empty()) archive_write_data(a, m.data.data(), m.data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);  // a short entry (a size claim) is cut off at the limit
  archive_write_free(a);
  fclose(cut.f);
}

class Hostile : public ::testing::Test {
 protected:
  void SetUp() override {
    write_file(t_ / "outside/secret", "untouched");
    make_dir(t_ / "target");
    before_ = snapshot(t_.path() / "outside");
  }
  // Applies `members` as a tar onto target; the outside must be as it was, and nothing may
  // appear beside the target.
  RunResult apply(const std::vector<Member>& members, std::vector<std::string> extra = {}) {
    const fs::path tar = t_ / "hostile.tar";
    write_tar(tar, members);
    std::vector<std::string> argv = {LAYERDIFF_BIN, "apply"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(tar.string());
    argv.push_back((t_ / "target").string());
    RunResult r = run(argv);
    auto diffs = compare(before_, snapshot(t_.path() / "outside"), {.atime = true});
    EXPECT_TRUE(diffs.empty()) << ::testing::PrintToString(diffs);
    std::set<std::string> beside;
    for (const auto& e : fs::directory_iterator(t_.path())) beside.insert(e.path().filename());
    EXPECT_EQ(beside, (std::set<std::string>{"hostile.tar", "outside", "target"}));
    for (const auto& e : fs::directory_iterator(t_ / "target")) {
      EXPECT_FALSE(e.path().filename().string().starts_with(".layerfs-apply"))
          << "the staging directory is removed";
    }
    return r;
  }
  TempDir t_{"apply"};
  Tree before_;
};

TEST_F(Hostile, AbsoluteNamesAndDotDotAreRefused) {
  auto r = apply({{.name = "/abs", .data = "x"},
                  {.name = "../outside/secret", .data = "overwritten"},
                  {.name = "ok/../../outside/new", .data = "x"},
                  {.name = "fine", .data = "kept"}});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("/abs: refused: an absolute name"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("refused: a '..' in the name"), std::string::npos) << r.err;
  EXPECT_EQ(read_file(t_ / "target/fine"), "kept") << "the rest goes on";
  EXPECT_FALSE(fs::exists(t_ / "target/abs"));
}

TEST_F(Hostile, ASymlinkIsNeverWrittenThrough) {
  auto r = apply({{.name = "link", .type = AE_IFLNK, .link = "../outside"},
                  {.name = "link/secret", .data = "overwritten"},
                  {.name = "abs", .type = AE_IFLNK, .link = (t_ / "outside").string()},
                  {.name = "abs/new", .data = "x"}});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("/link/secret: refused"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("/abs/new: refused"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::is_symlink(t_ / "target/link")) << "the symlink itself is fine";
}

TEST_F(Hostile, ADirectoryReplacedByASymlinkBetweenEntries) {
  auto r = apply({{.name = "d/", .type = AE_IFDIR},
                  {.name = "d/first", .data = "1"},
                  {.name = "d", .type = AE_IFLNK, .link = "../outside"},
                  {.name = "d/secret", .data = "overwritten"}});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("/d/secret: refused"), std::string::npos) << r.err;
}

TEST_F(Hostile, HardLinksMustPointInside) {
  auto r = apply({{.name = "h1", .hardlink = "../outside/secret"},
                  {.name = "h2", .hardlink = (t_ / "outside/secret").string()},
                  {.name = "h3", .hardlink = "missing"},
                  {.name = "real", .data = "r"},
                  {.name = "h4", .hardlink = "real"}});
  EXPECT_EQ(r.status, 1) << r.err;
  for (const char* h : {"h1", "h2", "h3"}) {
    EXPECT_NE(r.err.find(std::string("/") + h + ": refused"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(t_ / "target" / h));
  }
  EXPECT_EQ(lstat_of(t_ / "target/h4").st_ino, lstat_of(t_ / "target/real").st_ino);
}

TEST_F(Hostile, AWhiteoutWithNoNameIsAnError) {
  auto r = apply({{.name = "dir/.wh.", .data = ""}, {.name = "after", .data = "a"}}, {"--strict"});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("a whiteout with no name"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(t_ / "target/after")) << "--strict stops at the first refusal";
}

TEST_F(Hostile, AHugeSizeClaimIsRefused) {
  // A terabyte claimed, a few kilobytes there: the tar is cut short.
  auto r =
      apply({{.name = "small", .data = "s"},
             {.name = "bomb", .data = std::string(4096, 'b'), .claimed_size = int64_t{1} << 40}});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("hostile.tar"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(t_ / "target/bomb")) << "no half-written file";
}

TEST_F(Hostile, MaxSizeBoundsWhatALayerWrites) {
  auto r =
      apply({{.name = "small", .data = "s"}, {.name = "big", .data = std::string(3 << 20, 'b')}},
            {"--max-size", "1M"});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("--max-size"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(t_ / "target/big")) << "no half-written file";
  EXPECT_EQ(read_file(t_ / "target/small"), "s");
}

TEST_F(Hostile, DeeplyNestedPathsStayInside) {
  std::string deep;
  for (int i = 0; i < 600; ++i) deep += "n/";
  auto r = apply({{.name = deep + "f", .data = "deep"}, {.name = "top", .data = "t"}});
  EXPECT_LE(r.status, 1) << r.err;
  EXPECT_EQ(read_file(t_ / "target/top"), "t");
}

// An ordinary user's apply: devices become empty files (with a warning), and owners it cannot
// set are kept where containers-storage keeps them.
TEST(Apply, UnprivilegedDevicesAndOwnersAreKeptAsTheyCanBe) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run as another user";
  TempDir t("apply");
  make_dir(t / "target");
  ASSERT_EQ(chown((t / "target").c_str(), 1234, 1234), 0);
  ASSERT_EQ(chmod(t.path().c_str(), 0755), 0);
  write_tar(t / "l.tar", {{.name = "dev/", .type = AE_IFDIR},
                          {.name = "dev/null", .type = AE_IFCHR, .rdev = makedev(1, 3)},
                          {.name = "etc/shadow", .data = "root's", .uid = 0},
                          {.name = "mine", .data = "m", .uid = 1234}});
  ASSERT_EQ(chmod((t / "l.tar").c_str(), 0644), 0);
  auto r = run({"setpriv", "--reuid=1234", "--regid=1234", "--clear-groups", LAYERDIFF_BIN, "apply",
                (t / "l.tar").string(), (t / "target").string()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("/dev/null: a device, made as an empty file"), std::string::npos) << r.err;
  EXPECT_TRUE(S_ISREG(lstat_of(t / "target/dev/null").st_mode));
  EXPECT_EQ(xattr_of(t / "target/etc/shadow", "user.containers.override_stat"), "0:0:0644");
  EXPECT_EQ(xattr_of(t / "target/mine", "user.containers.override_stat"), "");
  EXPECT_EQ(lstat_of(t / "target/mine").st_uid, 1234u);
}

// An exported upper, applied onto an empty directory, mounts as the upper over the same lowers
// as the view it came from, under kernel overlayfs and under layerfs.
TEST(Apply, AnExportedUpperAppliedMountsAsItsView) {
  SKIP_WITHOUT_KERNEL_OVERLAY();
  TempDir t("apply");
  write_file(t / "low/etc/a", "a");
  write_file(t / "low/etc/b", "b");
  write_file(t / "low/d/sub/s", "s");
  for (const char* d : {"up", "work", "m", "k", "m2", "applied", "kwork", "work2", "again"}) {
    make_dir(t / d);
  }
  {
    LayerfsMount m({t / "low"}, t / "m",
                   {"-o", "upperdir=" + (t / "up").string() + ",workdir=" + (t / "work").string()});
    ASSERT_TRUE(m.ok()) << m.error();
    write_file(t / "m/etc/new", "new");
    fs::remove(t / "m/etc/b");
    fs::remove_all(t / "m/d");
    write_file(t / "m/d/x", "x");
    make_symlink("etc/new", t / "m/link");
    auto e = run({LAYERDIFF_BIN, "export", (t / "m").string(), "-o", (t / "l.tar.gz").string()});
    ASSERT_EQ(e.status, 0) << e.err;
  }
  auto a = run({LAYERDIFF_BIN, "apply", (t / "l.tar.gz").string(), (t / "applied").string()});
  ASSERT_EQ(a.status, 0) << a.err;
  auto b = run({LAYERDIFF_BIN, "apply", (t / "l.tar.gz").string(), (t / "again").string()});
  ASSERT_EQ(b.status, 0) << b.err;
  Tree want, kernel, ours;
  {
    LayerfsMount m({t / "up", t / "low"}, t / "m");
    ASSERT_TRUE(m.ok()) << m.error();
    want = snapshot(t / "m");
  }
  {
    KernelOverlay k({t / "low"}, t / "k",
                    "upperdir=" + (t / "applied").string() + ",workdir=" + (t / "kwork").string());
    ASSERT_TRUE(k.ok()) << k.error();
    kernel = snapshot(t / "k");
  }
  {
    LayerfsMount m(
        {t / "low"}, t / "m2",
        {"-o", "upperdir=" + (t / "again").string() + ",workdir=" + (t / "work2").string()});
    ASSERT_TRUE(m.ok()) << m.error();
    ours = snapshot(t / "m2");
  }
  // ctimes are the apply's own, and the root's times the target's: a layer tar has no entry for
  // the root.
  const Ignore ignore{.ino = true, .atime = true, .nlink = true, .blocks = true};
  auto relevant = [](std::vector<std::string> d) {
    std::erase_if(d, [](const std::string& l) {
      return l.find(" ctime: ") != std::string::npos || l.starts_with("'' mtime");
    });
    return d;
  };
  auto d1 = relevant(compare(want, kernel, ignore));
  EXPECT_TRUE(d1.empty()) << ::testing::PrintToString(d1);
  auto d2 = relevant(compare(want, ours, ignore));
  EXPECT_TRUE(d2.empty()) << ::testing::PrintToString(d2);
}

}  // namespace
}  // namespace layerfs::test
