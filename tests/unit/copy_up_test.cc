// Copy-up, on real directories (no mount).
#include "layers/copy_up.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "layers/sys/fs.h"
#include "layers/upper.h"
#include "tests/support/mounts.h"
#include "tests/support/tree.h"

namespace layerfs {
namespace {

using test::TempDir;
namespace fs = std::filesystem;

UniqueFd dir_fd(const fs::path& p) {
  return std::move(*sys::open_at(kCwd, p.c_str(), O_PATH | O_DIRECTORY));
}

std::unique_ptr<Upper> open_upper(const fs::path& upper, const fs::path& work) {
  auto r = Upper::open(upper, work);
  if (!r.ok()) {
    ADD_FAILURE() << r.err().message();
    return nullptr;
  }
  return std::move(*r);
}

class CopyUpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto d : {"lower", "upper", "work"}) test::make_dir(t_ / d);
    upper_ = open_upper(t_ / "upper", t_ / "work");
    ASSERT_NE(upper_, nullptr);
  }
  size_t work_entries() {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(t_ / "work/work")) ++n;
    return n;
  }
  TempDir t_{"copyup"};
  std::unique_ptr<Upper> upper_;
};

TEST_F(CopyUpTest, RegularFileKeepsDataOwnerModeTimesAndXattrs) {
  test::write_file(t_ / "lower/f", std::string(300000, 'q') + "end", 04751);
  test::set_xattr(t_ / "lower/f", "user.keep", "me");
  test::set_xattr(t_ / "lower/f", "user.overlay.origin", "private: not copied");
  if (geteuid() == 0) {
    ASSERT_EQ(lchown((t_ / "lower/f").c_str(), 1234, 5678), 0);
  }
  const timespec times[2] = {{1000000000, 5}, {1200000000, 7}};
  ASSERT_EQ(utimensat(AT_FDCWD, (t_ / "lower/f").c_str(), times, 0), 0);

  auto r = copy_up(*upper_, dir_fd(t_ / "lower").get(), "f", upper_->upper_fd(), "f",
                   {.fsync = true, .origin_ino = 4242});
  ASSERT_TRUE(r.ok()) << r.err().message();
  auto tree = test::snapshot(t_ / "upper");
  auto lower = test::snapshot(t_ / "lower");
  const auto& up = tree["f"];
  EXPECT_EQ(up.content, lower["f"].content);
  EXPECT_EQ(up.st.st_mode, lower["f"].st.st_mode);
  EXPECT_EQ(up.st.st_mtim.tv_sec, 1200000000);
  EXPECT_EQ(up.st.st_mtim.tv_nsec, 7);
  EXPECT_EQ(up.st.st_atim.tv_sec, 1000000000);
  if (geteuid() == 0) {
    EXPECT_EQ(up.st.st_uid, 1234u);
    EXPECT_EQ(up.st.st_gid, 5678u);
  }
  EXPECT_EQ(up.xattrs.at("user.keep"), "me");
  EXPECT_FALSE(up.xattrs.contains("user.overlay.origin"));
  EXPECT_EQ(up.xattrs.at(origin_ino_xattr(*upper_)), "4242");
  EXPECT_EQ(work_entries(), 0u) << "the work dir is left empty";
}

TEST_F(CopyUpTest, SparseFileStaysSparse) {
  {
    int fd = open((t_ / "lower/sparse").c_str(), O_WRONLY | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, "head", 4, 0), 4);
    ASSERT_EQ(pwrite(fd, "middle", 6, off_t{512} << 20), 6);
    ASSERT_EQ(ftruncate(fd, off_t{1} << 30), 0);  // 1 GiB, ending in a hole
    close(fd);
  }
  auto r = copy_up(*upper_, dir_fd(t_ / "lower").get(), "sparse", upper_->upper_fd(), "sparse",
                   {.fsync = false});
  ASSERT_TRUE(r.ok()) << r.err().message();
  EXPECT_EQ(r->st.st_size, off_t{1} << 30);
  EXPECT_LT(r->st.st_blocks, 1024) << "holes were filled: " << r->st.st_blocks << " blocks";
  int fd = open((t_ / "upper/sparse").c_str(), O_RDONLY);
  char buf[8] = {};
  ASSERT_EQ(pread(fd, buf, 6, off_t{512} << 20), 6);
  EXPECT_EQ(std::string(buf, 6), "middle");
  ASSERT_EQ(pread(fd, buf, 4, 0), 4);
  EXPECT_EQ(std::string(buf, 4), "head");
  close(fd);
}

TEST_F(CopyUpTest, DirectorySymlinkAndFifo) {
  test::make_dir(t_ / "lower/d", 0710);
  test::write_file(t_ / "lower/d/child", "not copied");
  test::set_xattr(t_ / "lower/d", "user.d", "1");
  test::make_symlink("../somewhere", t_ / "lower/link");
  test::make_fifo(t_ / "lower/fifo");
  UniqueFd lower_fd = dir_fd(t_ / "lower");
  for (const char* name : {"d", "link", "fifo"}) {
    auto r = copy_up(*upper_, lower_fd.get(), name, upper_->upper_fd(), name, {.fsync = false});
    ASSERT_TRUE(r.ok()) << name << ": " << r.err().message();
  }
  auto up = test::snapshot(t_ / "upper");
  auto low = test::snapshot(t_ / "lower");
  EXPECT_FALSE(up.contains("d/child")) << "a directory is copied without its contents";
  EXPECT_EQ(up["d"].st.st_mode, low["d"].st.st_mode);
  EXPECT_EQ(up["d"].xattrs.at("user.d"), "1");
  EXPECT_EQ(up["link"].link, "../somewhere");
  EXPECT_TRUE(S_ISFIFO(up["fifo"].st.st_mode));
  EXPECT_EQ(up["fifo"].st.st_mtim.tv_sec, low["fifo"].st.st_mtim.tv_sec);
  EXPECT_EQ(work_entries(), 0u);
}

TEST_F(CopyUpTest, ExistingTargetFailsAndLeavesNothingBehind) {
  test::write_file(t_ / "lower/f", "lower");
  test::write_file(t_ / "upper/f", "upper");
  auto r = copy_up(*upper_, dir_fd(t_ / "lower").get(), "f", upper_->upper_fd(), "f", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), EEXIST);
  EXPECT_EQ(test::snapshot(t_ / "upper")["f"].content, "upper");
  EXPECT_EQ(work_entries(), 0u);
}

TEST_F(CopyUpTest, WhiteoutsAndOpaqueInTheKernelFormat) {
  test::write_file(t_ / "upper/victim", "x");
  ASSERT_TRUE(upper_->make_whiteout(upper_->upper_fd(), "victim").ok());
  ASSERT_TRUE(upper_->make_whiteout(upper_->upper_fd(), "never-there").ok());
  struct stat st;
  ASSERT_EQ(lstat((t_ / "upper/victim").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  ASSERT_EQ(lstat((t_ / "upper/never-there").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  test::make_dir(t_ / "upper/d");
  ASSERT_TRUE(upper_->mark_opaque(dir_fd(t_ / "upper/d").get()).ok());
  char v[4] = {};
  std::string name = upper_->xattr_prefix() + "opaque";
  ASSERT_EQ(lgetxattr((t_ / "upper/d").c_str(), name.c_str(), v, sizeof v), 1);
  EXPECT_EQ(v[0], 'y');
  EXPECT_EQ(upper_->xattr_prefix(), geteuid() == 0 ? "trusted.overlay." : "user.overlay.");
  EXPECT_EQ(work_entries(), 0u);
}

}  // namespace
}  // namespace layerfs
