// The upper layer's plumbing on real directories (no mount): opening and locking, installing,
// and the same write rules applied onto a plain directory.
#include "layers/upper.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include "layers/sys/fs.h"
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

std::string open_error(const fs::path& upper, const fs::path& work) {
  auto r = Upper::open(upper, work);
  return r.ok() ? "<opened>" : r.err().message();
}

TEST(Upper, OpeningEmptiesTheWorkDirAndLocksBoth) {
  TempDir t("upper");
  test::make_dir(t / "upper");
  test::write_file(t / "work/work/#leftover/deep/file", "from a crash");
  test::write_file(t / "work/work/#7", "from a crash");
  auto first = open_upper(t / "upper", t / "work");
  ASSERT_NE(first, nullptr);
  EXPECT_TRUE(fs::is_empty(t / "work/work"));
  EXPECT_EQ(open_error(t / "upper", t / "work"),
            "upperdir '" + (t / "upper").string() + "': in use by another layerfs mount");
  test::make_dir(t / "work2");
  EXPECT_EQ(open_error(t / "upper", t / "work2"),
            "upperdir '" + (t / "upper").string() + "': in use by another layerfs mount");
  test::make_dir(t / "upper2");
  EXPECT_EQ(open_error(t / "upper2", t / "work"),
            "workdir '" + (t / "work").string() + "': in use by another layerfs mount");
  first.reset();
  EXPECT_NE(open_upper(t / "upper", t / "work"), nullptr) << "the locks go with the Upper";
}

TEST(Upper, BadDirectoriesAreNamed) {
  TempDir t("upper");
  test::make_dir(t / "upper");
  test::make_dir(t / "upper/inner");
  EXPECT_EQ(open_error(t / "missing", t / "upper"),
            "upperdir '" + (t / "missing").string() + "': No such file or directory");
  EXPECT_EQ(open_error(t / "upper", t / "upper/inner"),
            "workdir '" + (t / "upper/inner").string() +
                "': upperdir and workdir must not contain each other");
}

TEST(Upper, WorkdirOnAnotherFilesystemIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  TempDir t("upper");
  test::make_dir(t / "upper");
  test::make_dir(t / "tmpfs");
  ASSERT_EQ(mount("tmpfs", (t / "tmpfs").c_str(), "tmpfs", 0, "size=1m"), 0);
  std::string err = open_error(t / "upper", t / "tmpfs");
  test::unmount(t / "tmpfs");
  EXPECT_EQ(err,
            "workdir '" + (t / "tmpfs").string() + "': not on the same filesystem as upperdir");
}

// Installing over an entry of the other kind (a directory over a file, a file over a
// directory) swaps the two and removes what was replaced; without `replace` nothing changes.
TEST(Upper, InstallReplacesAcrossKindsByExchange) {
  TempDir t("install");
  for (const char* d : {"upper", "work"}) test::make_dir(t / d);
  auto upper = open_upper(t / "upper", t / "work");
  ASSERT_TRUE(upper);
  auto up = dir_fd(t / "upper");
  test::write_file(t / "upper/was_file", "old");
  test::write_file(t / "upper/was_dir/inner", "old");
  const std::string dir_temp = upper->temp_name();
  ASSERT_EQ(mkdirat(upper->work_fd(), dir_temp.c_str(), 0755), 0);
  EXPECT_EQ(upper->install(dir_temp, up.get(), "was_file", false).error(), EEXIST);
  ASSERT_TRUE(upper->install(dir_temp, up.get(), "was_file", true).ok());
  EXPECT_TRUE(std::filesystem::is_directory(t / "upper/was_file"));
  const std::string file_temp = upper->temp_name();
  int fd = openat(upper->work_fd(), file_temp.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  close(fd);
  ASSERT_TRUE(upper->install(file_temp, up.get(), "was_dir", true).ok());
  EXPECT_TRUE(std::filesystem::is_regular_file(t / "upper/was_dir"));
  EXPECT_TRUE(std::filesystem::is_empty(t / "work/work")) << "the replaced entries are gone";
}

// `layerdiff apply` writes a plain directory with the rules that write an upper: no work dir,
// no lock, nothing left behind but what was applied.
TEST(Upper, ApplyOntoAPlainDirectoryDeletesInsteadOfWritingWhiteouts) {
  TempDir t("apply");
  test::write_file(t / "root/keep", "kept");
  test::write_file(t / "root/gone", "old");
  test::write_file(t / "root/tree/deep/file", "old");
  test::write_file(t / "root/replaced", "old");
  auto opened = Upper::open_target(t / "root");
  ASSERT_TRUE(opened.ok()) << opened.err().message();
  Upper& target = **opened;
  auto second = Upper::open_target(t / "root");
  EXPECT_TRUE(second.ok()) << "a target is not locked: " << second.err().message();
  second = Errno{0};

  const BorrowedFd root = target.upper_fd();
  EXPECT_TRUE(target.remove(root, "gone", true, false, false).ok());
  EXPECT_TRUE(target.remove(root, "tree", true, true, false).ok());
  struct stat parent = *sys::stat_fd(root);
  NewEntry dir =
      NewEntry::plan(NewEntry::Kind::kDir, parent, geteuid(), getegid(), 0750, "", "", "");
  auto made = target.create(root, "new_dir", dir);
  ASSERT_TRUE(made.ok()) << made.err().message();
  NewEntry file =
      NewEntry::plan(NewEntry::Kind::kFile, parent, geteuid(), getegid(), 0640, "", "", "");
  file.open_flags = O_WRONLY;
  auto f = target.create(root, "new_file", file);
  ASSERT_TRUE(f.ok()) << f.err().message();
  EXPECT_EQ(target.create(root, "keep", file).error(), EEXIST) << "create never replaces";
  opened = Errno{0};  // the Upper goes: its staging directory with it

  const test::Tree tree = test::snapshot(t / "root");
  std::string names;
  for (const auto& [path, info] : tree) names += path.empty() ? "" : path + " ";
  EXPECT_EQ(names, "keep new_dir new_file replaced ") << "no marker, no staging dir";
  EXPECT_EQ(tree.at("new_dir").st.st_mode, S_IFDIR | 0750u);
  EXPECT_EQ(tree.at("new_file").st.st_mode, S_IFREG | 0640u);
  EXPECT_TRUE(tree.at("new_dir").xattrs.empty()) << "a new directory in a target is not opaque";
}

TEST(Upper, AMissingTargetIsNamed) {
  TempDir t("apply");
  auto r = Upper::open_target(t / "missing");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().message(),
            "target '" + (t / "missing").string() + "': No such file or directory");
}

}  // namespace
}  // namespace layerfs
