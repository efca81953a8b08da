// The command line as users and container engines use it.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "tests/fuse/parity.h"

namespace layerfs::test {
namespace {

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find('\n', pos);
    if (end == std::string::npos) end = s.size();
    out.push_back(s.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

TEST(Cli, VersionAndHelp) {
  RunResult v = run({LAYERFS_BIN, "--version"});
  EXPECT_EQ(v.status, 0);
  ASSERT_FALSE(lines_of(v.out).empty());
  EXPECT_EQ(lines_of(v.out)[0].rfind("layerfs: version ", 0), 0u) << v.out;
  RunResult h = run({LAYERFS_BIN, "--help"});
  EXPECT_EQ(h.status, 0);
  EXPECT_NE(h.out.find("lowerdir="), std::string::npos);
}

TEST(Cli, MissingLowerdirFailsWithOneLineNamingIt) {
  TempDir t("cli");
  make_dir(t / "mnt");
  write_file(t / "present/f", "f");
  std::string missing = (t / "no-such-layer").string();
  RunResult r = run({LAYERFS_BIN, "-o", "lowerdir=" + (t / "present").string() + ":" + missing,
                     (t / "mnt").string()});
  EXPECT_EQ(r.status, 1);
  ASSERT_EQ(lines_of(r.err).size(), 1u) << r.err;
  EXPECT_NE(r.err.find(missing), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("No such file or directory"), std::string::npos) << r.err;
  EXPECT_FALSE(is_mounted(t / "mnt"));
}

TEST(Cli, UnusableLowerdirFailsWithOneLineNamingIt) {
  TempDir t("cli");
  make_dir(t / "mnt");
  write_file(t / "a-file", "not a directory");
  RunResult r =
      run({LAYERFS_BIN, "-o", "lowerdir=" + (t / "a-file").string(), (t / "mnt").string()});
  EXPECT_EQ(r.status, 1);
  ASSERT_EQ(lines_of(r.err).size(), 1u) << r.err;
  EXPECT_NE(r.err.find((t / "a-file").string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Not a directory"), std::string::npos) << r.err;
  if (geteuid() != 0) {
    make_dir(t / "locked", 0000);
    RunResult u =
        run({LAYERFS_BIN, "-o", "lowerdir=" + (t / "locked").string(), (t / "mnt").string()});
    EXPECT_EQ(u.status, 1);
    EXPECT_NE(u.err.find("Permission denied"), std::string::npos) << u.err;
    chmod((t / "locked").c_str(), 0755);
  }
}

TEST(Cli, OverlappingLayersAreRefused) {
  // Kernel overlayfs refuses these too: the merge would contain itself.
  TempDir t("cli");
  write_file(t / "a/sub/f", "f");
  make_dir(t / "mnt");
  RunResult inside =
      run({LAYERFS_BIN, "-o", "lowerdir=" + (t / "a").string() + ":" + (t / "a/sub").string(),
           (t / "mnt").string()});
  EXPECT_EQ(inside.status, 1);
  ASSERT_EQ(lines_of(inside.err).size(), 1u) << inside.err;
  EXPECT_NE(inside.err.find("lowerdir '" + (t / "a/sub").string() + "': inside lowerdir '" +
                            (t / "a").string() + "'"),
            std::string::npos)
      << inside.err;
  RunResult twice =
      run({LAYERFS_BIN, "-o", "lowerdir=" + (t / "a").string() + ":" + (t / "a/sub/..").string(),
           (t / "mnt").string()});
  EXPECT_EQ(twice.status, 1);
  EXPECT_NE(twice.err.find("same directory as lowerdir"), std::string::npos) << twice.err;
  EXPECT_FALSE(is_mounted(t / "mnt"));
}

TEST(Cli, BadMountpointFailsWithOneLine) {
  TempDir t("cli");
  write_file(t / "l/f", "f");
  RunResult r =
      run({LAYERFS_BIN, "-o", "lowerdir=" + (t / "l").string(), (t / "nowhere").string()});
  EXPECT_EQ(r.status, 1);
  ASSERT_EQ(lines_of(r.err).size(), 1u) << r.err;
  EXPECT_NE(r.err.find("nowhere"), std::string::npos);
}

TEST(Cli, UpperAndWorkErrorsAreOneLineAndMountNothing) {
  TempDir t("cli");
  make_dir(t / "l");
  make_dir(t / "u");
  make_dir(t / "mnt");
  RunResult missing_work =
      run({LAYERFS_BIN, "-o", "lowerdir=" + (t / "l").string() + ",upperdir=" + (t / "u").string(),
           (t / "mnt").string()});
  EXPECT_EQ(missing_work.status, 1);
  EXPECT_EQ(missing_work.err, "layerfs: upperdir= given without workdir=\n");
  RunResult bad_work = run({LAYERFS_BIN, "-o",
                            "lowerdir=" + (t / "l").string() + ",upperdir=" + (t / "u").string() +
                                ",workdir=" + (t / "u/w").string(),
                            (t / "mnt").string()});
  EXPECT_EQ(bad_work.status, 1);
  ASSERT_EQ(lines_of(bad_work.err).size(), 1u) << bad_work.err;
  EXPECT_NE(bad_work.err.find("workdir '" + (t / "u/w").string() + "'"), std::string::npos)
      << bad_work.err;
  EXPECT_FALSE(is_mounted(t / "mnt"));
  EXPECT_TRUE(fs::is_empty(t / "u")) << "nothing written to the upper";
}

// Without -f, layerfs returns once the mount is live; relative paths and escaped colons work.
TEST(Cli, DaemonizesOnlyOnceMountedWithRelativeAndEscapedPaths) {
  SKIP_WITHOUT_FUSE();
  TempDir t("cli");
  write_file(t / "with:colon/top-file", "top");
  write_file(t / "base/base-file", "base");
  const std::string mnt_name = "mnt-" + t.path().filename().string();
  make_dir(t / mnt_name);
  DaemonGuard guard(t / mnt_name, mnt_name);
  RunResult r = run({"sh", "-c", "cd \"$0\" && exec \"$1\" -o 'lowerdir=with\\:colon:base' \"$2\"",
                     t.path().string(), LAYERFS_BIN, mnt_name});
  ASSERT_EQ(r.status, 0) << r.err;
  // No waiting: the mount must already be there when the command returns.
  EXPECT_TRUE(is_mounted(t / mnt_name, "fuse.layerfs"));
  EXPECT_EQ(snapshot(t / mnt_name)["top-file"].content, "top");
  EXPECT_EQ(snapshot(t / mnt_name)["base-file"].content, "base");
  ASSERT_EQ(layerfs_daemons(mnt_name).size(), 1u);
  RunResult u = run({"fusermount3", "-u", (t / mnt_name).string()});
  EXPECT_EQ(u.status, 0) << u.err;
  EXPECT_TRUE(guard.wait_exit(10)) << "the daemon did not exit after fusermount3 -u";
  EXPECT_FALSE(is_mounted(t / mnt_name));
}

TEST(Cli, UnknownOptionsWarnAndTheMountGoesOn) {
  SKIP_WITHOUT_FUSE();
  TempDir t("cli");
  write_file(t / "l/f", "f");
  make_dir(t / "mnt");
  DaemonGuard guard(t / "mnt", t.path().string());
  RunResult r = run({LAYERFS_BIN, "-o", "lowerdir=" + (t / "l").string() + ",frobnicate=1",
                     (t / "mnt").string()});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("frobnicate=1"), std::string::npos) << r.err;
  EXPECT_TRUE(is_mounted(t / "mnt", "fuse.layerfs"));
  EXPECT_TRUE(fs::exists(t / "mnt/f"));
}

TEST(Cli, SigtermUnmountsCleanly) {
  SKIP_WITHOUT_FUSE();
  TempDir t("cli");
  write_file(t / "l/f", "f");
  TempDir mnt("mnt");
  LayerfsMount mount({t / "l"}, mnt.path());
  ASSERT_TRUE(mount.ok()) << mount.error();
  ASSERT_EQ(kill(mount.pid(), SIGTERM), 0);
  for (int i = 0; i < 500 && is_mounted(mnt.path()); ++i) usleep(10000);
  EXPECT_FALSE(is_mounted(mnt.path()));
  EXPECT_EQ(mount.stop(), 0);
}

TEST(Cli, FusermountUnmountsAndTheDaemonExits) {
  SKIP_WITHOUT_FUSE();
  TempDir t("cli");
  write_file(t / "l/f", "f");
  TempDir mnt("mnt");
  LayerfsMount mount({t / "l"}, mnt.path());
  ASSERT_TRUE(mount.ok()) << mount.error();
  RunResult u = run({"fusermount3", "-u", mnt.path().string()});
  EXPECT_EQ(u.status, 0) << u.err;
  EXPECT_EQ(mount.stop(), 0);
}

// mount.fuse3 runs the program named by the type through `sh -c` with PATH removed from the
// environment, so the shell's default PATH must find it: layerfs must be installed
// (`cmake --install build`, which the README's commands do).
TEST(Cli, MountTypeFuseLayerfs) {
  SKIP_WITHOUT_FUSE();
  if (geteuid() != 0) GTEST_SKIP() << "mount(8) of a FUSE type needs root";
  if (run({"sh", "-c", "command -v mount.fuse3"}).status != 0) {
    GTEST_SKIP() << "mount.fuse3 (fuse3 package) is not installed";
  }
  RunResult found = run({"env", "-u", "PATH", "/bin/sh", "-c", "command -v layerfs"});
  std::string installed = found.out.substr(0, found.out.find('\n'));
  if (found.status != 0 || run({"cmp", "-s", installed, LAYERFS_BIN}).status != 0) {
    GTEST_SKIP() << "this build of layerfs is not installed in the default PATH "
                    "(cmake --install build); found '"
                 << installed << "'";
  }
  TempDir t("cli");
  write_file(t / "top/a", "top");
  write_file(t / "base/b", "base");
  make_dir(t / "mnt");
  DaemonGuard guard(t / "mnt", t.path().string());
  RunResult r = run({"mount", "-t", "fuse.layerfs", "my-layers", (t / "mnt").string(), "-o",
                     "lowerdir=" + (t / "top").string() + ":" + (t / "base").string()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(is_mounted(t / "mnt", "fuse.layerfs"));
  EXPECT_EQ(snapshot(t / "mnt")["a"].content, "top");
  EXPECT_EQ(snapshot(t / "mnt")["b"].content, "base");
  RunResult findmnt = run({"findmnt", "-n", "-o", "SOURCE", (t / "mnt").string()});
  EXPECT_EQ(findmnt.out, "my-layers\n");
  RunResult u = run({"umount", (t / "mnt").string()});
  EXPECT_EQ(u.status, 0) << u.err;
  EXPECT_TRUE(guard.wait_exit(10)) << "the daemon did not exit after umount";
}

TEST(Cli, AnOverlapNamesTheRoleOfEachDirectory) {
  TempDir t("cli");
  make_dir(t / "u/x");
  make_dir(t / "w");
  make_dir(t / "mnt");
  RunResult r = run({LAYERFS_BIN, "-o",
                     "lowerdir=" + (t / "u/x").string() + ",upperdir=" + (t / "u").string() +
                         ",workdir=" + (t / "w").string(),
                     (t / "mnt").string()});
  EXPECT_EQ(r.status, 1);
  ASSERT_EQ(lines_of(r.err).size(), 1u) << r.err;
  EXPECT_NE(r.err.find("lowerdir '" + (t / "u/x").string() + "': inside upperdir '" +
                       (t / "u").string() + "'"),
            std::string::npos)
      << r.err;
}

// Whatever is wrong, a failed mount leaves the upper and work dirs as they were.
TEST(Cli, AFailedMountChangesNothingOnDisk) {
  TempDir t("cli");
  make_dir(t / "l");
  make_dir(t / "u");
  make_dir(t / "w");
  make_dir(t / "mnt");
  write_file(t / "a-file", "x");
  const std::string upper = ",upperdir=" + (t / "u").string() + ",workdir=" + (t / "w").string();
  struct Case {
    std::string what, lowerdir, upper, mountpoint;
  };
  const std::vector<Case> cases = {
      {"missing lowerdir", (t / "nope").string(), upper, (t / "mnt").string()},
      {"upper inside lower", t.path().string(), upper, (t / "mnt").string()},
      {"missing mountpoint", (t / "l").string(), upper, (t / "no-mnt").string()},
      {"mountpoint not a dir", (t / "l").string(), upper, (t / "a-file").string()},
      {"bad option", (t / "l").string(), upper + ",fsync=banana", (t / "mnt").string()},
  };
  for (const Case& c : cases) {
    RunResult r = run({LAYERFS_BIN, "-o", "lowerdir=" + c.lowerdir + c.upper, c.mountpoint});
    EXPECT_EQ(r.status, 1) << c.what;
    EXPECT_EQ(lines_of(r.err).size(), 1u) << c.what << ": " << r.err;
    EXPECT_TRUE(fs::is_empty(t / "w")) << c.what << ": workdir was written";
    EXPECT_TRUE(fs::is_empty(t / "u")) << c.what << ": upperdir was written";
  }
  EXPECT_FALSE(is_mounted(t / "mnt"));
}

// The mount's own refusal (here: a kernel option FUSE does not take) also leaves no work dir.
TEST(Cli, AMountTheKernelRefusesLeavesNoWorkDir) {
  SKIP_WITHOUT_FUSE();
  if (geteuid() != 0) GTEST_SKIP() << "needs root to mount without fusermount3";
  TempDir t("cli");
  for (const char* d : {"l", "u", "w", "mnt"}) make_dir(t / d);
  RunResult r = run({LAYERFS_BIN, "-f", "-o",
                     "lowerdir=" + (t / "l").string() + ",upperdir=" + (t / "u").string() +
                         ",workdir=" + (t / "w").string() + ",blksize=4096",
                     (t / "mnt").string()});
  if (r.status == 0) {
    unmount(t / "mnt");
    GTEST_SKIP() << "the kernel took the options";
  }
  EXPECT_NE(r.err.find("mount failed"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::is_empty(t / "w")) << "workdir/work was left behind";
  EXPECT_FALSE(is_mounted(t / "mnt"));
}

// containers-storage's exact command line with SELinux labelling on, on a machine without
// SELinux: the label is dropped with a warning, and the mount works.
TEST(Cli, ContainersStorageArgvWithContextMountsWhereSELinuxIsOff) {
  SKIP_WITHOUT_FUSE();
  if (fs::exists("/sys/fs/selinux/enforce")) GTEST_SKIP() << "SELinux is on here";
  TempDir t("cli");
  write_file(t / "l/f", "lower");
  for (const char* d : {"u", "w", "merged"}) make_dir(t / d);
  DaemonGuard guard(t / "merged", t.path().string());
  RunResult r = run({LAYERFS_BIN, "-o",
                     "lowerdir=" + (t / "l").string() + ",upperdir=" + (t / "u").string() +
                         ",workdir=" + (t / "w").string() +
                         ",nodev,volatile,context=\"system_u:object_r:container_file_t:s0\"",
                     (t / "merged").string()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("SELinux"), std::string::npos) << r.err;
  EXPECT_TRUE(is_mounted(t / "merged", "fuse.layerfs"));
  EXPECT_EQ(snapshot(t / "merged")["f"].content, "lower");
  EXPECT_NE(mountinfo_line(t / "merged").find("nodev"), std::string::npos);
  RunResult u = run({"fusermount3", "-u", (t / "merged").string()});
  EXPECT_EQ(u.status, 0) << u.err;
  EXPECT_TRUE(guard.wait_exit(10));
}

TEST(Cli, FsnameAndSubtypeAreWhatTheKernelShows) {
  SKIP_WITHOUT_FUSE();
  TempDir t("cli");
  write_file(t / "l/f", "f");
  TempDir mnt("mnt");
  LayerfsMount mount({t / "l"}, mnt.path(), {"-o", "fsname=my-image-layers,subtype=mine"});
  ASSERT_TRUE(mount.ok()) << mount.error();
  EXPECT_TRUE(is_mounted(mnt.path(), "fuse.mine"));
  RunResult findmnt = run({"findmnt", "-n", "-o", "SOURCE,FSTYPE", mnt.path().string()});
  EXPECT_EQ(findmnt.out, "my-image-layers fuse.mine\n");
}

// As root, setuid binaries run with their owner's privilege and device nodes work, as on
// kernel overlayfs; nosuid and nodev given explicitly still win.
TEST(Cli, AsRootSetuidBinariesRunAsTheirOwner) {
  SKIP_WITHOUT_FUSE();
  if (geteuid() != 0) GTEST_SKIP() << "suid mounts need root";
  TempDir t("cli");
  make_dir(t / "l");
  ASSERT_EQ(run({"cp", "/usr/bin/id", (t / "l/id").string()}).status, 0);
  ASSERT_EQ(chmod((t / "l/id").c_str(), 04755), 0);
  ASSERT_EQ(chmod(t.path().c_str(), 0755), 0);
  TempDir mnt("mnt");
  ASSERT_EQ(chmod(mnt.path().c_str(), 0755), 0);
  {
    LayerfsMount mount({t / "l"}, mnt.path());
    ASSERT_TRUE(mount.ok()) << mount.error();
    const std::string line = mountinfo_line(mnt.path());
    EXPECT_EQ(line.find("nosuid"), std::string::npos) << line;
    EXPECT_EQ(line.find("nodev"), std::string::npos) << line;
    RunResult id = run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        (mnt.path() / "id").string(), "-u"});
    EXPECT_EQ(id.status, 0) << id.err;
    EXPECT_EQ(id.out, "0\n") << "the setuid bit was not honoured";
  }
  LayerfsMount mount({t / "l"}, mnt.path(), {"-o", "nosuid,nodev"});
  ASSERT_TRUE(mount.ok()) << mount.error();
  const std::string line = mountinfo_line(mnt.path());
  EXPECT_NE(line.find("nosuid"), std::string::npos) << line;
  EXPECT_NE(line.find("nodev"), std::string::npos) << line;
  RunResult id = run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                      (mnt.path() / "id").string(), "-u"});
  EXPECT_EQ(id.out, "65534\n");
}

}  // namespace
}  // namespace layerfs::test
