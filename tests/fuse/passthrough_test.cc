// FUSE passthrough: which opens the kernel serves from the backing file itself (no READ or
// WRITE reaches the daemon), and that every other open, and every machine without it, still
// gets the daemon's path. The daemon's request counts (requests_of) show which.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>

#include "tests/fuse/parity.h"

namespace layerfs::test {
namespace {

// Why this kernel cannot pass files through, or nullopt when it can.
std::optional<std::string> kernel_without_passthrough() {
  RunResult r = run({"sh", "-c",
                     "{ zcat /proc/config.gz 2>/dev/null || cat /boot/config-$(uname -r); } | "
                     "grep -x CONFIG_FUSE_PASSTHROUGH=y"});
  if (r.status != 0) return "kernel built without CONFIG_FUSE_PASSTHROUGH (or its config unknown)";
  return std::nullopt;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string data(size_t size, char seed) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>(seed + (i * 7) % 61);
  return s;
}

class Passthrough : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_FUSE();
    if (geteuid() != 0) GTEST_SKIP() << "passthrough needs CAP_SYS_ADMIN (run as root)";
    if (auto why = kernel_without_passthrough()) GTEST_SKIP() << *why;
    for (const char* d : {"lower", "upper", "work", "mnt"}) make_dir(t_ / d);
    write_file(t_ / "lower/big", data(1 << 20, 'a'));
  }
  std::unique_ptr<LayerfsMount> mount(bool writable, const std::string& extra = "") {
    std::string opts =
        writable ? "upperdir=" + (t_ / "upper").string() + ",workdir=" + (t_ / "work").string()
                 : "";
    if (!extra.empty()) opts += (opts.empty() ? "" : ",") + extra;
    std::vector<std::string> args;
    if (!opts.empty()) args = {"-o", opts};
    auto m = std::make_unique<LayerfsMount>(std::vector<fs::path>{t_ / "lower"}, t_ / "mnt", args);
    EXPECT_TRUE(m->ok()) << m->error();
    return m;
  }
  fs::path mnt(const std::string& rel) const { return t_ / "mnt" / rel; }
  // Reads and maps "big" whole: the kernel serves both from the backing file.
  void read_and_map_big() {
    EXPECT_EQ(read_all(mnt("big")), data(1 << 20, 'a'));
    int fd = open(mnt("big").c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    void* map = mmap(nullptr, 1 << 20, PROT_READ, MAP_SHARED, fd, 0);
    ASSERT_NE(map, MAP_FAILED) << strerror(errno);
    EXPECT_EQ(std::string(static_cast<char*>(map), 1 << 20), data(1 << 20, 'a'));
    munmap(map, 1 << 20);
    close(fd);
    auto req = requests_of(t_ / "mnt");
    EXPECT_EQ(req["READ"], 0u);
    EXPECT_GE(req["passthrough-opens"], 2u);
  }

  TempDir t_{"passthrough"};
};

TEST_F(Passthrough, AReadOnlyMountsReadsAndMapsNeverReachTheDaemon) {
  auto m = mount(false);
  ASSERT_TRUE(m->ok());
  read_and_map_big();
}

TEST_F(Passthrough, NewAndUpperFilesAreWrittenAndReadByTheKernel) {
  auto m = mount(true);
  ASSERT_TRUE(m->ok());
  // Created: written, synced, mapped and written through the map, read back.
  int fd = open(mnt("new").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  const std::string written = data(1 << 20, 'n');
  ASSERT_EQ(write(fd, written.data(), written.size()), static_cast<ssize_t>(written.size()));
  ASSERT_EQ(fsync(fd), 0);
  void* map = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(map, MAP_FAILED) << strerror(errno);
  memcpy(map, "mapped", 6);
  ASSERT_EQ(msync(map, 4096, MS_SYNC), 0);
  munmap(map, 4096);
  close(fd);
  std::string expected = written;
  expected.replace(0, 6, "mapped");
  EXPECT_EQ(read_all(t_ / "upper/new"), expected) << "the upper file holds every write";
  EXPECT_EQ(read_all(mnt("new")), expected);
  EXPECT_EQ(fs::file_size(mnt("new")), expected.size()) << "the size the kernel shows";
  // A lower file once copied up is an upper file: its later opens are passed through too.
  { std::ofstream(mnt("big"), std::ios::app) << "!"; }
  EXPECT_EQ(read_all(mnt("big")), data(1 << 20, 'a') + "!");
  auto req = requests_of(t_ / "mnt");
  EXPECT_EQ(req["WRITE"], 0u);
  EXPECT_EQ(req["READ"], 0u);
  EXPECT_GE(req["passthrough-opens"], 4u);
}

// A container's reads: lower files of a writable mount, read and mapped by the kernel.
TEST_F(Passthrough, LowerFilesOfAWritableMountAreReadByTheKernel) {
  auto m = mount(true);
  ASSERT_TRUE(m->ok());
  read_and_map_big();
  EXPECT_FALSE(fs::exists(t_ / "upper/big")) << "reading copies nothing up";
}

// A copy-up while a passed-through handle reads the lower file: the writer's open succeeds
// (never EIO), every open after it reads the upper copy, and the file keeps its inode number;
// the handle opened before keeps the data it opened (the documented difference; see
// passthrough=safe below for kernel overlayfs's read(2)).
TEST_F(Passthrough, ACopyUpUnderALowerHandleGivesEveryLaterOpenTheNewData) {
  write_file(t_ / "lower/cut", "twelve bytes");
  auto m = mount(true);
  ASSERT_TRUE(m->ok());
  struct stat before {};
  ASSERT_EQ(stat(mnt("big").c_str(), &before), 0);
  int reader = open(mnt("big").c_str(), O_RDONLY);
  ASSERT_GE(reader, 0);
  char c = 0;
  ASSERT_EQ(pread(reader, &c, 1, 0), 1);
  int writer = open(mnt("big").c_str(), O_WRONLY);
  ASSERT_GE(writer, 0) << strerror(errno);
  ASSERT_EQ(pwrite(writer, "U", 1, 0), 1);
  int second = open(mnt("big").c_str(), O_RDONLY);
  ASSERT_GE(second, 0) << strerror(errno);
  ASSERT_EQ(pread(second, &c, 1, 0), 1);
  EXPECT_EQ(c, 'U') << "an open after the copy-up reads the upper copy";
  close(second);
  close(writer);
  EXPECT_EQ(read_all(mnt("big")).substr(0, 2), "U" + data(2, 'a').substr(1));
  struct stat after {};
  ASSERT_EQ(stat(mnt("big").c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino) << "the copy-up keeps the inode number";
  ASSERT_EQ(pread(reader, &c, 1, 0), 1);
  EXPECT_EQ(c, data(1, 'a')[0]) << "the handle opened before reads the lower file";
  // Linked by its name: the upper copy. Linked or reopened through the old handle, which only
  // reaches the old node id: ESTALE (the documented difference), and the name is unharmed.
  ASSERT_EQ(link(mnt("big").c_str(), mnt("big-link").c_str()), 0) << strerror(errno);
  EXPECT_EQ(read_all(mnt("big-link")).substr(0, 1), "U");
  struct stat linked {};
  ASSERT_EQ(stat(mnt("big").c_str(), &linked), 0);
  EXPECT_EQ(linked.st_nlink, 2u);
  const std::string old_handle = "/proc/self/fd/" + std::to_string(reader);
  EXPECT_EQ(
      linkat(AT_FDCWD, old_handle.c_str(), AT_FDCWD, mnt("from-old").c_str(), AT_SYMLINK_FOLLOW),
      -1);
  EXPECT_EQ(errno, ESTALE);
  EXPECT_EQ(open(old_handle.c_str(), O_RDONLY), -1);
  EXPECT_EQ(errno, ESTALE);
  EXPECT_EQ(read_all(mnt("big")).substr(0, 1), "U");
  close(reader);

  // Truncated by path and opened with O_TRUNC under a lower handle: later opens see it.
  int held = open(mnt("cut").c_str(), O_RDONLY);
  ASSERT_GE(held, 0);
  ASSERT_EQ(truncate(mnt("cut").c_str(), 6), 0) << strerror(errno);
  EXPECT_EQ(read_all(mnt("cut")), "twelve");
  EXPECT_EQ(fs::file_size(mnt("cut")), 6u);
  write_file(mnt("cut"), "new");
  EXPECT_EQ(read_all(mnt("cut")), "new");
  close(held);
  EXPECT_EQ(read_all(t_ / "lower/cut"), "twelve bytes") << "lower layers never change";
  EXPECT_EQ(read_all(mnt("cut")), "new");
}

// passthrough=safe: a lower file's handle stays on the daemon's path and moves to the upper
// copy when another handle copies the file up, as kernel overlayfs's read(2).
TEST_F(Passthrough, SafeKeepsLowerHandlesFollowingTheCopyUp) {
  auto m = mount(true, "passthrough=safe");
  ASSERT_TRUE(m->ok());
  int reader = open(mnt("big").c_str(), O_RDONLY);
  ASSERT_GE(reader, 0);
  char c = 0;
  ASSERT_EQ(pread(reader, &c, 1, 0), 1);
  // The copy-up while the lower handle is open: the kernel's one io mode per inode means
  // this open, and the next, must not be passed through (they would fail with EIO).
  int writer = open(mnt("big").c_str(), O_WRONLY);
  ASSERT_GE(writer, 0) << strerror(errno);
  ASSERT_EQ(pwrite(writer, "U", 1, 0), 1);
  int second = open(mnt("big").c_str(), O_RDONLY);
  ASSERT_GE(second, 0) << strerror(errno);
  close(writer);
  ASSERT_EQ(posix_fadvise(reader, 0, 0, POSIX_FADV_DONTNEED), 0);
  ASSERT_EQ(pread(reader, &c, 1, 0), 1);
  EXPECT_EQ(c, 'U') << "the handle opened before the copy-up moved to the upper copy";
  ASSERT_EQ(pread(second, &c, 1, 0), 1);
  EXPECT_EQ(c, 'U');
  close(second);
  close(reader);
  EXPECT_GT(requests_of(t_ / "mnt")["READ"], 0u);
}

TEST_F(Passthrough, OffWhenAskedEveryReadGoesThroughTheDaemon) {
  auto m = mount(false, "passthrough=0");
  ASSERT_TRUE(m->ok());
  EXPECT_EQ(read_all(mnt("big")), data(1 << 20, 'a'));
  auto req = requests_of(t_ / "mnt");
  EXPECT_GT(req["READ"], 0u);
  EXPECT_EQ(req["passthrough-opens"], 0u);
}

// An open file whose name goes keeps its data, through the kernel's backing file.
TEST_F(Passthrough, AnUnlinkedOpenFileStaysReadable) {
  auto m = mount(true);
  ASSERT_TRUE(m->ok());
  write_file(mnt("gone"), "still here");
  int fd = open(mnt("gone").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(unlink(mnt("gone").c_str()), 0);
  char buf[16] = {};
  EXPECT_EQ(pread(fd, buf, sizeof buf, 0), 10);
  EXPECT_STREQ(buf, "still here");
  close(fd);
}

}  // namespace
}  // namespace layerfs::test
