// Inode numbers across layers on more than one filesystem.
#include "layers/layer_stack.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <set>

#include "tests/support/mounts.h"
#include "tests/support/tree.h"

namespace layerfs {
namespace {

using test::TempDir;

TEST(LayerStack, InodeNumbersStayUniqueAcrossFilesystemsEvenWhenTooLargeToTag) {
  TempDir a("stack-a");
  // /dev/shm is a tmpfs on every Linux machine this runs on; the scratch space rarely is.
  std::error_code ec;
  auto b = std::filesystem::path("/dev/shm") / ("layerfs-stack-" + std::to_string(getpid()));
  std::filesystem::create_directories(b, ec);
  if (ec) GTEST_SKIP() << "no /dev/shm";
  struct Cleanup {
    std::filesystem::path p;
    ~Cleanup() { std::filesystem::remove_all(p); }
  } cleanup{b};
  if (test::lstat_of(a.path()).st_dev == test::lstat_of(b).st_dev) {
    GTEST_SKIP() << a.path() << " and " << b << " are on one filesystem";
  }
  auto opened = LayerStack::open({a.path().string(), b.string()});
  ASSERT_TRUE(opened.ok()) << opened.err().message();
  const auto& stack = **opened;
  ASSERT_FALSE(stack.same_fs());
  // Small numbers are tagged with the filesystem: the same number in each differs.
  EXPECT_NE(stack.map_ino(0, 42), stack.map_ino(1, 42));
  EXPECT_EQ(stack.map_ino(0, 42), stack.map_ino(0, 42));
  // Numbers too large for the tag get numbers of their own, stable and distinct.
  const uint64_t huge = uint64_t{1} << 62;
  const uint64_t h0 = stack.map_ino(0, huge), h1 = stack.map_ino(1, huge);
  const uint64_t h0b = stack.map_ino(0, huge + 1);
  EXPECT_EQ(stack.map_ino(0, huge), h0);
  std::set<uint64_t> all = {h0,
                            h1,
                            h0b,
                            stack.map_ino(0, 42),
                            stack.map_ino(1, 42),
                            stack.map_ino(0, 1),
                            stack.map_ino(1, 1)};
  EXPECT_EQ(all.size(), 7u) << "every number is distinct";
}

TEST(LayerStack, OneFilesystemShowsTheRealNumbers) {
  TempDir a("stack-a"), b("stack-b");
  auto opened = LayerStack::open({a.path().string(), b.path().string()});
  ASSERT_TRUE(opened.ok()) << opened.err().message();
  const auto& stack = **opened;
  if (!stack.same_fs()) GTEST_SKIP() << "the scratch space spans filesystems";
  EXPECT_EQ(stack.map_ino(1, uint64_t{1} << 62), uint64_t{1} << 62);
  EXPECT_EQ(stack.map_ino(0, 42), 42u);
}

}  // namespace
}  // namespace layerfs
