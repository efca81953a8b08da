// layerfs as an ordinary user: mounted through fusermount3, and as root of an unprivileged user
// namespace (unshare -Urm). The daemon runs as a real unprivileged user (created here if
// missing), with /dev/fuse usable by every user as Debian's udev rule makes it. Also the
// ownership options rootless engines pass: uidmapping=, gidmapping=, squash_to_*, static_nlink.
#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>

#include "tests/fuse/parity.h"

namespace layerfs::test {
namespace {

// Overlay xattrs in the trusted namespace anywhere below `root` (an unprivileged daemon cannot
// write them; finding one means the privileged form was used).
std::vector<std::string> trusted_overlay_xattrs(const fs::path& root) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    char names[4096];
    ssize_t n = llistxattr(e.path().c_str(), names, sizeof names);
    for (ssize_t i = 0; i > -1 && i < n; i += static_cast<ssize_t>(strlen(names + i)) + 1) {
      if (std::string_view(names + i).starts_with("trusted.overlay.")) {
        out.push_back(e.path().string() + " " + (names + i));
      }
    }
  }
  return out;
}

class Rootless : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_FUSE();
    if (geteuid() != 0) GTEST_SKIP() << "setting up another user's files needs root";
    if (access("/usr/bin/fusermount3", X_OK) != 0 && access("/bin/fusermount3", X_OK) != 0) {
      GTEST_SKIP() << "no fusermount3 (Debian package fuse3)";
    }
    auto uid = test_user();
    if (!uid) GTEST_SKIP() << "cannot create the user " << kUserName << " (useradd)";
    uid_ = *uid;
    gid_ = getpwnam(kUserName)->pw_gid;
    ASSERT_EQ(chmod(t_.path().c_str(), 0755), 0);
    // The base layer: another user's files (root's), markers in every form others write.
    write_file(t_ / "base/f", "base f");
    write_file(t_ / "base/g", "base g");
    write_file(t_ / "base/h", "hidden by a .wh. file");
    write_file(t_ / "base/o/y", "in o");
    write_file(t_ / "base/p/z", "hidden by user.fuseoverlayfs.opaque");
    write_file(t_ / "base/q/z", "hidden by user.overlay.opaque");
    write_file(t_ / "base/root-only", "secret", 0600);
    write_file(t_ / "top/.wh.h", "");
    write_file(t_ / "top/p/mine", "top p");
    set_xattr(t_ / "top/p", "user.fuseoverlayfs.opaque", "y");
    make_dir(t_ / "top/q");
    set_xattr(t_ / "top/q", "user.overlay.opaque", "y");
    for (const char* d : {"upper", "work", "mnt"}) make_dir(t_ / d);
    for (const char* d : {"upper", "work", "mnt", "base/o"}) {
      ASSERT_EQ(chown((t_ / d).c_str(), uid_, gid_), 0);
    }
    ASSERT_EQ(chown((t_ / "base").c_str(), uid_, gid_), 0);
    ASSERT_EQ(chown((t_ / "base/g").c_str(), uid_, gid_), 0);
  }
  std::vector<std::string> as_user() const {
    return {"setpriv", "--reuid=" + std::to_string(uid_), "--regid=" + std::to_string(gid_),
            "--clear-groups", "--"};
  }
  RunResult user_sh(const std::string& script) const {
    auto argv = as_user();
    for (const std::string& a :
         {std::string("sh"), std::string("-c"), script, t_.path().string()}) {
      argv.push_back(a);
    }
    return run(argv);
  }
  std::string opts() const {
    return "upperdir=" + (t_ / "upper").string() + ",workdir=" + (t_ / "work").string();
  }

  DevFuseForEveryone dev_fuse_;
  TempDir t_{"rootless"};
  uid_t uid_ = 0;
  gid_t gid_ = 0;
};

TEST_F(Rootless, AnOrdinaryUserMountsWritesAndUnmountsThroughFusermount3) {
  LayerfsMount m({t_ / "top", t_ / "base"}, t_ / "mnt", {"-o", opts()}, as_user());
  ASSERT_TRUE(m.ok()) << m.error();
  // Markers others wrote, read by an unprivileged daemon.
  RunResult seen = user_sh("cd \"$0/mnt\" && for d in . p q; do echo $(ls -A $d); done");
  ASSERT_EQ(seen.status, 0) << seen.err;
  EXPECT_EQ(seen.out, "f g o p q root-only\nmine\n\n") << "h, p/z and q/z are hidden";
  // Changes, as that user.
  RunResult r = user_sh(
      "cd \"$0/mnt\" && echo new > new && rm g && rm -r o && mkdir o && echo again > o/y2 && "
      "cat f >/dev/null");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(user_sh("cat \"$0/mnt/root-only\"").status, 0) << "the kernel checks permissions";
  EXPECT_NE(user_sh("echo x >> \"$0/mnt/f\"").status, 0) << "f belongs to root";
  // Unmounted by the user, as container engines do.
  RunResult u = user_sh("fusermount3 -u \"$0/mnt\"");
  EXPECT_EQ(u.status, 0) << u.err;
  EXPECT_EQ(m.stop(), 0);

  EXPECT_EQ(lstat_of(t_ / "upper/new").st_uid, uid_) << "the user's files stay the user's";
  EXPECT_TRUE(is_device_whiteout(t_ / "upper/g")) << "a 0/0 whiteout (unprivileged since 5.8)";
  EXPECT_EQ(xattr_of(t_ / "upper/o", "user.overlay.opaque"), "y");
  EXPECT_EQ(trusted_overlay_xattrs(t_ / "upper"), std::vector<std::string>{});
  EXPECT_TRUE(fs::is_empty(t_ / "work/work"));
}

// Passthrough needs CAP_SYS_ADMIN in the initial user namespace: an ordinary user's daemon
// serves every read and write itself, and nothing fails for it.
TEST_F(Rootless, AnOrdinaryUsersDaemonServesEveryReadItself) {
  LayerfsMount m({t_ / "top", t_ / "base"}, t_ / "mnt", {"-o", opts()}, as_user());
  ASSERT_TRUE(m.ok()) << m.error();
  RunResult r = user_sh(
      "cd \"$0/mnt\" && cat f && echo new > new && cat new && "
      "getfattr --only-values -n user.layerfs.requests .");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, 10), "base fnew\n") << r.out;
  EXPECT_NE(r.out.find("\nREAD "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nWRITE "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("passthrough-opens 0\n"), std::string::npos) << r.out;
}

// As kernel overlayfs with userxattr: an unprivileged daemon neither writes nor follows
// redirects, and refuses to be told to; a renamed directory's tree is copied instead.
TEST_F(Rootless, RedirectsNeedTrustedXattrs) {
  for (const char* mode : {"on", "follow"}) {
    LayerfsMount m({t_ / "top", t_ / "base"}, t_ / "mnt", {"-o", opts() + ",redirect_dir=" + mode},
                   as_user());
    EXPECT_FALSE(m.ok());
    EXPECT_NE(m.error().find(std::string("redirect_dir=") + mode + ": needs trusted.* xattrs"),
              std::string::npos)
        << m.error();
    EXPECT_FALSE(fs::exists(t_ / "work/work")) << "a refused mount leaves nothing";
  }
  LayerfsMount m({t_ / "top", t_ / "base"}, t_ / "mnt", {"-o", opts()}, as_user());
  ASSERT_TRUE(m.ok()) << m.error();
  RunResult r = user_sh("mv \"$0/mnt/o\" \"$0/mnt/o2\" && ls \"$0/mnt/o2\"");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(xattr_of(t_ / "upper/o2", "user.overlay.redirect"), "");
  EXPECT_EQ(xattr_of(t_ / "upper/o2", "user.overlay.opaque"), "y");
}

TEST_F(Rootless, RootOfAnUnprivilegedUserNamespaceMounts) {
  if (user_sh("unshare -Urm true").status != 0) {
    GTEST_SKIP() << "unprivileged user namespaces are disabled on this machine";
  }
  // The daemon runs in the background inside the namespace; the trap unmounts and reaps it
  // even when a step fails, so nothing outlives the script.
  const std::string script =
      "set -e; cd \"$0\"; " + std::string(LAYERFS_BIN) + " -f -o lowerdir=top:base," + opts() +
      " mnt & pid=$!; trap 'fusermount3 -u mnt 2>/dev/null || umount mnt 2>/dev/null; "
      "wait $pid' EXIT; "
      "for i in $(seq 100); do grep -q \" $0/mnt \" /proc/self/mounts && break; sleep 0.05; done; "
      "id -u; echo new > mnt/new; rm mnt/g; cat mnt/f; stat -c %u mnt/new";
  auto argv = as_user();
  for (const std::string& a : {std::string("unshare"), std::string("-Urm"), std::string("sh"),
                               std::string("-c"), script, t_.path().string()}) {
    argv.push_back(a);
  }
  RunResult r = run(argv);
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "0\nbase f0\n") << "uid 0 inside, owner 0 as the namespace shows it";
  EXPECT_EQ(lstat_of(t_ / "upper/new").st_uid, uid_) << "on disk: the user's own uid";
  EXPECT_TRUE(is_device_whiteout(t_ / "upper/g"));
  EXPECT_EQ(trusted_overlay_xattrs(t_ / "upper"), std::vector<std::string>{});
  EXPECT_FALSE(is_mounted(t_ / "mnt"));
}

// A mount point inside a lower layer. An ordinary user cannot make the private view of the
// layer that hides the mount from the daemon: the mount is refused in one line (it would
// deadlock). Root of a user namespace can, and the mount shows the layer's own directory.
TEST_F(Rootless, AMountPointInsideALowerLayer) {
  make_dir(t_ / "base/inner");
  ASSERT_EQ(chown((t_ / "base/inner").c_str(), uid_, gid_), 0);
  RunResult refused = run([&] {
    auto argv = as_user();
    for (const std::string& a :
         {std::string(LAYERFS_BIN), std::string("-o"), "lowerdir=" + (t_ / "base").string(),
          (t_ / "base/inner").string()})
      argv.push_back(a);
    return argv;
  }());
  EXPECT_EQ(refused.status, 1);
  EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;
  EXPECT_NE(refused.err.find("inside lowerdir"), std::string::npos) << refused.err;
  EXPECT_FALSE(is_mounted(t_ / "base/inner"));

  if (user_sh("unshare -Urm true").status != 0) {
    GTEST_SKIP() << "unprivileged user namespaces are disabled on this machine";
  }
  const std::string script =
      "set -e; cd \"$0\"; " + std::string(LAYERFS_BIN) +
      " -f -o lowerdir=base base/inner & pid=$!; trap 'fusermount3 -u base/inner 2>/dev/null || "
      "umount base/inner 2>/dev/null; wait $pid' EXIT; "
      "for i in $(seq 100); do grep -q \" $0/base/inner \" /proc/self/mounts && break; "
      "sleep 0.05; done; timeout -s KILL 20 stat -c %F base/inner/inner; cat base/inner/f";
  auto argv = as_user();
  for (const std::string& a : {std::string("unshare"), std::string("-Urm"), std::string("sh"),
                               std::string("-c"), script, t_.path().string()}) {
    argv.push_back(a);
  }
  RunResult r = run(argv);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "directory\nbase f");
  EXPECT_FALSE(is_mounted(t_ / "base/inner"));
}

class Ownership : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_FUSE();
    if (geteuid() != 0) GTEST_SKIP() << "files of several owners need root";
    ASSERT_EQ(chmod(t_.path().c_str(), 0755), 0);
    write_file(t_ / "lower/root", "0:0");
    write_file(t_ / "lower/one", "1:1");
    write_file(t_ / "lower/far", "unmapped");
    make_dir(t_ / "lower/d", 0777);
    ASSERT_EQ(chown((t_ / "lower/one").c_str(), 1, 1), 0);
    ASSERT_EQ(chown((t_ / "lower/far").c_str(), 5000000, 5000000), 0);
    for (const char* d : {"upper", "work", "mnt"}) make_dir(t_ / d);
  }
  std::unique_ptr<LayerfsMount> mount(const std::string& extra) {
    auto m = std::make_unique<LayerfsMount>(
        std::vector<fs::path>{t_ / "lower"}, t_ / "mnt",
        std::vector<std::string>{"-o", "upperdir=" + (t_ / "upper").string() +
                                           ",workdir=" + (t_ / "work").string() + "," + extra});
    EXPECT_TRUE(m->ok()) << m->error();
    return m;
  }
  fs::path mnt(const char* rel) const { return t_ / "mnt" / rel; }
  TempDir t_{"owners"};
};

TEST_F(Ownership, UidmappingShowsDiskIdsAsTheMappedOnesAndStoresTheReverse) {
  // The map a rootless engine passes: container 0 is host 1000, container 1.. is host 110000..
  auto m = mount("uidmapping=0:1000:1:1:110000:65536,gidmapping=0:1000:1:1:110000:65536");
  EXPECT_EQ(lstat_of(mnt("root")).st_uid, 1000u);
  EXPECT_EQ(lstat_of(mnt("one")).st_uid, 110000u);
  EXPECT_EQ(lstat_of(mnt("one")).st_gid, 110000u);
  EXPECT_EQ(lstat_of(mnt("far")).st_uid, 65534u) << "no range covers it: the overflow id";
  // A caller with host uid 110005 creates a file: on disk it is container uid 6.
  RunResult r = run({"setpriv", "--reuid=110005", "--regid=110005", "--clear-groups", "sh", "-c",
                     "echo x > \"$0\"", mnt("d/made").string()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(lstat_of(t_ / "upper/d/made").st_uid, 6u);
  EXPECT_EQ(lstat_of(mnt("d/made")).st_uid, 110005u);
  // chown through the mount takes shown ids.
  ASSERT_EQ(lchown(mnt("root").c_str(), 110002, 1000), 0);
  EXPECT_EQ(lstat_of(t_ / "upper/root").st_uid, 3u);
  EXPECT_EQ(lstat_of(t_ / "upper/root").st_gid, 0u);
  EXPECT_EQ(lstat_of(mnt("root")).st_uid, 110002u);
}

TEST_F(Ownership, SquashShowsOneOwnerAndStaticNlinkOneLinkCount) {
  make_dir(t_ / "lower/d/sub1");
  make_dir(t_ / "lower/d/sub2");
  auto m = mount("squash_to_uid=7,squash_to_root,static_nlink");
  for (const char* p : {"root", "one", "far", "d"}) {
    EXPECT_EQ(lstat_of(mnt(p)).st_uid, 7u) << p << ": squash_to_uid wins over squash_to_root";
    EXPECT_EQ(lstat_of(mnt(p)).st_gid, 0u) << p;
  }
  EXPECT_EQ(lstat_of(mnt("d")).st_nlink, 1u);
  EXPECT_EQ(lstat_of(t_ / "lower/d").st_nlink, 4u) << "the real count, for comparison";
}

TEST_F(Ownership, XattrPermissionsKeepOwnerAndModeInTheOverride) {
  write_file(t_ / "lower/over", "x");
  set_xattr(t_ / "lower/over", "user.fuseoverlayfs.override_stat", "7:8:0640");
  auto m = mount("xattr_permissions=2");
  struct stat over = lstat_of(mnt("over"));
  EXPECT_EQ(over.st_uid, 7u);
  EXPECT_EQ(over.st_gid, 8u);
  EXPECT_EQ(over.st_mode & 07777, 0640u);
  EXPECT_EQ(lstat_of(mnt("root")).st_uid, 0u) << "no override: the file's own owner";
  char names[256];
  ssize_t n = llistxattr(mnt("over").c_str(), names, sizeof names);
  EXPECT_EQ(std::string(names, static_cast<size_t>(std::max<ssize_t>(n, 0))).find("override"),
            std::string::npos);

  // A new file: the caller's owner and mode live in the override.
  RunResult r = run({"setpriv", "--reuid=1234", "--regid=1234", "--clear-groups", "sh", "-c",
                     "umask 022 && echo x > \"$0\"", mnt("d/made").string()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(lstat_of(mnt("d/made")).st_uid, 1234u);
  EXPECT_EQ(lstat_of(mnt("d/made")).st_mode & 07777, 0644u);
  EXPECT_EQ(lstat_of(t_ / "upper/d/made").st_uid, 0u) << "on disk the daemon owns it";
  EXPECT_EQ(xattr_of(t_ / "upper/d/made", "user.fuseoverlayfs.override_stat"), "1234:1234:0644");

  // chown and chmod change the override only; a copy-up carries it.
  ASSERT_EQ(lchown(mnt("d/made").c_str(), 42, 43), 0);
  EXPECT_EQ(lstat_of(mnt("d/made")).st_uid, 42u);
  EXPECT_EQ(lstat_of(t_ / "upper/d/made").st_uid, 0u);
  ASSERT_EQ(chmod(mnt("over").c_str(), 0600), 0);
  over = lstat_of(mnt("over"));
  EXPECT_EQ(over.st_uid, 7u);
  EXPECT_EQ(over.st_mode & 07777, 0600u);
  EXPECT_EQ(xattr_of(t_ / "upper/over", "user.fuseoverlayfs.override_stat"), "7:8:0600");
}

TEST_F(Ownership, ContainersStorageOverridesAreReadWhereALayerCarriesThem) {
  // containers-storage with force_mask marks the layer's root and every file.
  set_xattr(t_ / "lower", "user.containers.override_stat", "0:0:0755");
  write_file(t_ / "lower/c", "x", 0644);
  set_xattr(t_ / "lower/c", "user.containers.override_stat", "5:6:0600");
  auto m = mount("static_nlink");
  struct stat c = lstat_of(mnt("c"));
  EXPECT_EQ(c.st_uid, 5u);
  EXPECT_EQ(c.st_gid, 6u);
  EXPECT_EQ(c.st_mode & 07777, 0600u);
}

}  // namespace
}  // namespace layerfs::test
