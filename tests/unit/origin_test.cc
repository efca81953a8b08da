// The kernel's origin xattr (struct ovl_fb), encoded from and decoded to real files.
#include "layers/origin.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "layers/sys/fs.h"
#include "tests/support/mounts.h"
#include "tests/support/tree.h"

namespace layerfs {
namespace {

using test::TempDir;

TEST(Origin, EncodesTheKernelLayoutAndDecodesToTheSameFile) {
  TempDir t("origin");
  test::write_file(t / "f", "x");
  auto fd = sys::open_path(kCwd, (t / "f").c_str());
  ASSERT_TRUE(fd.ok());
  const origin::Uuid uuid = origin::filesystem_uuid(fd->get());
  auto value = origin::encode(fd->get(), uuid);
  if (!value) GTEST_SKIP() << "the filesystem of " << t.path() << " cannot encode file handles";
  ASSERT_GE(value->size(), 21u);
  EXPECT_EQ(static_cast<uint8_t>((*value)[0]), 0);     // version
  EXPECT_EQ(static_cast<uint8_t>((*value)[1]), 0xfb);  // magic
  EXPECT_EQ(static_cast<uint8_t>((*value)[2]), value->size());
  EXPECT_EQ(value->substr(5, 16), std::string(reinterpret_cast<const char*>(uuid.data()), 16));

  auto mount_fd = sys::open_at(kCwd, t.path().c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_TRUE(mount_fd.ok());
  // What is not an origin, or names another filesystem, is told apart before any decoding.
  std::string bad_magic = *value;
  bad_magic[1] = 0x00;
  EXPECT_EQ(origin::decode(bad_magic, mount_fd->get(), uuid).error(), EINVAL);
  EXPECT_EQ(origin::decode(value->substr(0, 10), mount_fd->get(), uuid).error(), EINVAL);
  std::string upper_flag = *value;
  upper_flag[3] = static_cast<char>(upper_flag[3] | (1 << 2));
  EXPECT_EQ(origin::decode(upper_flag, mount_fd->get(), uuid).error(), EINVAL);
  origin::Uuid other = uuid;
  other[0] ^= 0xff;
  EXPECT_EQ(origin::decode(*value, mount_fd->get(), other).error(), EXDEV);

  auto decoded = origin::decode(*value, mount_fd->get(), uuid);
  if (!decoded.ok() && decoded.error() == EPERM) {
    GTEST_SKIP() << "decoding a handle needs CAP_DAC_READ_SEARCH";
  }
  ASSERT_TRUE(decoded.ok()) << strerror(decoded.error());
  EXPECT_EQ(sys::stat_fd(decoded->get())->st_ino, test::lstat_of(t / "f").st_ino);
  // A removed file's handle no longer decodes (once nothing holds the file open).
  fd->reset();
  decoded->reset();
  std::filesystem::remove(t / "f");
  EXPECT_FALSE(origin::decode(*value, mount_fd->get(), uuid).ok());
}

}  // namespace
}  // namespace layerfs
