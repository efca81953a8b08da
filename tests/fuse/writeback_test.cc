// The kernel's writeback cache, where files are not passed through: writes gather in the page
// cache and reach the daemon a page run at a time, the kernel owns size and mtime, and what
// lands in the upper is what the mount showed.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <iterator>

#include "tests/fuse/parity.h"

namespace layerfs::test {
namespace {

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class Writeback : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_FUSE();
    for (const char* d : {"lower", "upper", "work", "mnt"}) make_dir(t_ / d);
    write_file(t_ / "lower/read-then-removed", "lower data");
  }
  std::unique_ptr<LayerfsMount> mount(const std::string& extra) {
    auto m = std::make_unique<LayerfsMount>(
        std::vector<fs::path>{t_ / "lower"}, t_ / "mnt",
        std::vector<std::string>{"-o", "upperdir=" + (t_ / "upper").string() + ",workdir=" +
                                           (t_ / "work").string() + ",passthrough=0" + extra});
    EXPECT_TRUE(m->ok()) << m->error();
    return m;
  }
  fs::path mnt(const std::string& rel) const { return t_ / "mnt" / rel; }
  // 256 writes of 4 KiB, then the WRITE requests the daemon served for them.
  uint64_t small_writes() {
    const uint64_t before = requests_of(t_ / "mnt")["WRITE"];
    int fd = open(mnt("small").c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    EXPECT_GE(fd, 0) << strerror(errno);
    std::string page(4096, 'w');
    for (int i = 0; i < 256; ++i) {
      page[0] = static_cast<char>('a' + i % 26);
      EXPECT_EQ(write(fd, page.data(), page.size()), 4096);
    }
    EXPECT_EQ(close(fd), 0);
    return requests_of(t_ / "mnt")["WRITE"] - before;
  }
  TempDir t_{"writeback"};
};

TEST_F(Writeback, SmallWritesReachTheDaemonInPageRunsAndLandWhole) {
  auto m = mount("");
  ASSERT_TRUE(m->ok());
  EXPECT_LE(small_writes(), 256u / 8) << "the kernel gathered the writes";
  std::string expected;
  for (int i = 0; i < 256; ++i) {
    std::string page(4096, 'w');
    page[0] = static_cast<char>('a' + i % 26);
    expected += page;
  }
  // Closed, so written back: the upper holds it all, with the size and mtime the mount shows.
  EXPECT_EQ(read_all(t_ / "upper/small"), expected);
  struct stat shown, upper;
  ASSERT_EQ(stat(mnt("small").c_str(), &shown), 0);
  ASSERT_EQ(stat((t_ / "upper/small").c_str(), &upper), 0);
  EXPECT_EQ(shown.st_size, upper.st_size);
  EXPECT_EQ(shown.st_mtim.tv_sec, upper.st_mtim.tv_sec);
  EXPECT_EQ(shown.st_mtim.tv_nsec, upper.st_mtim.tv_nsec) << "the kernel's mtime reached the upper";

  // O_APPEND from two handles: the kernel places each write at the end it knows.
  for (const char* line : {"one\n", "two\n"}) {
    int fd = open(mnt("log").c_str(), O_CREAT | O_WRONLY | O_APPEND, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, line, 4), 4);
    ASSERT_EQ(close(fd), 0);
  }
  EXPECT_EQ(read_all(mnt("log")), "one\ntwo\n");
  EXPECT_EQ(read_all(t_ / "upper/log"), "one\ntwo\n");
}

TEST_F(Writeback, TheCtimeTheKernelSendsAfterAnUnlinkCopiesNothingUp) {
  // With ".wh." whiteouts the removed name stays free in the upper, where a copy-up for the
  // kernel's ctime would put the file back.
  ScopedEnv files("FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT", "1");
  auto m = mount("");
  ASSERT_TRUE(m->ok());
  EXPECT_EQ(read_all(mnt("read-then-removed")), "lower data");
  ASSERT_EQ(unlink(mnt("read-then-removed").c_str()), 0);
  EXPECT_FALSE(fs::exists(mnt("read-then-removed")));
  m->stop();
  EXPECT_TRUE(fs::exists(t_ / "upper/.wh.read-then-removed"));
  EXPECT_FALSE(fs::exists(t_ / "upper/read-then-removed")) << "copied up after its unlink";
  EXPECT_EQ(read_all(t_ / "lower/read-then-removed"), "lower data");
}

TEST_F(Writeback, OffEveryWriteIsARequest) {
  auto m = mount(",writeback=0");
  ASSERT_TRUE(m->ok());
  EXPECT_EQ(small_writes(), 256u);
}

}  // namespace
}  // namespace layerfs::test
