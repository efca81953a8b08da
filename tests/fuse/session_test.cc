// fuse/session: a mount run in-process, as a launcher runs one: ready once mount() returns,
// served on a thread of the caller's, stopped by the caller; a failure says why.
#include "fuse/session.h"

#include <gtest/gtest.h>

#include <thread>

#include "tests/fuse/parity.h"

namespace layerfs::test {
namespace {

Options options_for(const std::vector<std::string>& args) {
  auto parsed = parse_command_line(args);
  EXPECT_TRUE(parsed.ok()) << parsed.err().message();
  return parsed.ok() ? *parsed : Options{};
}

TEST(Session, RunsInProcessAndStopsOnRequest) {
  SKIP_WITHOUT_FUSE();
  TempDir t("session");
  write_file(t / "low/f", "from the layer");
  for (const char* d : {"up", "work", "mnt"}) make_dir(t / d);
  Options opts =
      options_for({"-o",
                   "lowerdir=" + (t / "low").string() + ",upperdir=" + (t / "up").string() +
                       ",workdir=" + (t / "work").string(),
                   (t / "mnt").string()});
  auto session = Session::prepare(opts);
  ASSERT_TRUE(session.ok()) << session.err().message();
  ASSERT_TRUE((*session)->mount().ok());
  EXPECT_TRUE(is_mounted(t / "mnt")) << "mount() returning is readiness";
  int status = -1;
  std::thread server([&] { status = (*session)->serve(); });
  EXPECT_EQ(read_file(t / "mnt/f"), "from the layer");
  write_file(t / "mnt/new", "written");
  (*session)->stop();
  server.join();
  EXPECT_EQ(status, 0);
  EXPECT_FALSE(is_mounted(t / "mnt"));
  EXPECT_EQ(read_file(t / "up/new"), "written");
}

TEST(Session, APreparationThatFailsSaysWhyAndLeavesNothing) {
  TempDir t("session");
  for (const char* d : {"low", "up", "work", "mnt"}) make_dir(t / d);
  auto missing = Session::prepare(
      options_for({"-o", "lowerdir=" + (t / "nothing").string(), (t / "mnt").string()}));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.err().message(),
            "lowerdir '" + (t / "nothing").string() + "': No such file or directory");
  auto bad_mountpoint = Session::prepare(
      options_for({"-o",
                   "lowerdir=" + (t / "low").string() + ",upperdir=" + (t / "up").string() +
                       ",workdir=" + (t / "work").string(),
                   (t / "no-such-mountpoint").string()}));
  ASSERT_FALSE(bad_mountpoint.ok());
  EXPECT_NE(bad_mountpoint.err().message().find("mountpoint"), std::string::npos)
      << bad_mountpoint.err().message();
  EXPECT_FALSE(fs::exists(t / "work/work")) << "nothing was made";
}

}  // namespace
}  // namespace layerfs::test
