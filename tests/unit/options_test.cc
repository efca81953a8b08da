#include "fuse/options.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace layerfs {
namespace {

Options parse_ok(const std::vector<std::string>& args) {
  auto r = parse_command_line(args);
  if (!r.ok()) ADD_FAILURE() << "unexpected error: " << r.err().message();
  return r.ok() ? *r : Options{};
}

std::string parse_error(const std::vector<std::string>& args) {
  auto r = parse_command_line(args);
  if (!r.ok()) {
    EXPECT_EQ(r.error(), EINVAL);
  }
  return r.ok() ? "<no error>" : r.err().message();
}

TEST(Options, LowerdirListsTopFirstAndMountpointIsLast) {
  Options o = parse_ok({"-o", "lowerdir=/top:/mid:/base", "/mnt"});
  EXPECT_EQ(o.lowerdirs, (std::vector<std::string>{"/top", "/mid", "/base"}));
  EXPECT_EQ(o.mountpoint, "/mnt");
  EXPECT_TRUE(o.source.empty());
  EXPECT_FALSE(o.foreground);
}

TEST(Options, EscapedColonStaysInsideAPath) {
  Options o = parse_ok({"-o", "lowerdir=/a\\:b:/c\\\\d:/e", "/mnt"});
  EXPECT_EQ(o.lowerdirs, (std::vector<std::string>{"/a:b", "/c\\d", "/e"}));
}

TEST(Options, EscapedCommaStaysInsideAPath) {
  Options o = parse_ok({"-o", "lowerdir=/a\\,b,ro", "/mnt"});
  EXPECT_EQ(o.lowerdirs, (std::vector<std::string>{"/a,b"}));
  EXPECT_EQ(o.fuse_opts, (std::vector<std::string>{"ro"}));
}

TEST(Options, RepeatedDashOAndOptionsAfterPositionals) {
  // The shape mount.fuse3 uses: SOURCE MOUNTPOINT -o OPTS.
  Options o = parse_ok({"overlay", "/mnt", "-o", "rw,nodev", "-olowerdir=/l", "-f"});
  EXPECT_EQ(o.source, "overlay");
  EXPECT_EQ(o.mountpoint, "/mnt");
  EXPECT_EQ(o.lowerdirs, (std::vector<std::string>{"/l"}));
  EXPECT_EQ(o.fuse_opts, (std::vector<std::string>{"rw", "nodev"}));
  EXPECT_TRUE(o.foreground);
}

TEST(Options, ContainersStorageShape) {
  Options o = parse_ok({"-o",
                        "lowerdir=/l1:/l2,upperdir=/u,workdir=/"
                        "w,context=\"system_u:object_r:container_file_t:s0:c1,c2\"",
                        "/merged"});
  EXPECT_EQ(o.lowerdirs.size(), 2u);
  EXPECT_EQ(o.upperdir, "/u");
  EXPECT_EQ(o.workdir, "/w");
  ASSERT_EQ(o.fuse_opts.size(), 1u);
  EXPECT_EQ(o.fuse_opts[0], "context=system_u:object_r:container_file_t:s0:c1,c2");
  // The comma inside the quoted context survives into libfuse's option string escaped.
  EXPECT_EQ(join_fuse_options(o.fuse_opts),
            "context=system_u:object_r:container_file_t:s0:c1\\,c2");
}

TEST(Options, PodmanOverlayVolumeShape) {
  // Byte for byte what podman passes for an overlay volume whose source has colons.
  Options o = parse_ok({"-o",
                        "lowerdir=/src\\:with\\:colons,upperdir=/vol/upper,workdir=/vol/work,"
                        "private",
                        "/merged"});
  EXPECT_EQ(o.lowerdirs, (std::vector<std::string>{"/src:with:colons"}));
  EXPECT_EQ(o.upperdir, "/vol/upper");
  EXPECT_TRUE(o.warnings.empty());
  EXPECT_TRUE(o.fuse_opts.empty()) << "private needs nothing from the kernel mount";
}

TEST(Options, UnknownOptionsWarnAndParsingGoesOn) {
  Options o = parse_ok({"-o", "lowerdir=/l,frobnicate=3,bogus", "--weird", "/mnt"});
  ASSERT_EQ(o.warnings.size(), 3u);
  EXPECT_NE(o.warnings[0].find("frobnicate=3"), std::string::npos);
  EXPECT_NE(o.warnings[1].find("bogus"), std::string::npos);
  EXPECT_NE(o.warnings[2].find("--weird"), std::string::npos);
  EXPECT_EQ(o.mountpoint, "/mnt");
}

TEST(Options, MountFlagsThatMeanNothingToFuseAreQuiet) {
  Options o = parse_ok({"-o", "lowerdir=/l,defaults,lazytime,x-systemd.automount", "/mnt"});
  EXPECT_TRUE(o.warnings.empty());
  EXPECT_TRUE(o.fuse_opts.empty());
}

TEST(Options, TimeoutAndThreads) {
  Options o = parse_ok({"-o", "lowerdir=/l,timeout=2.5,threaded=0", "/mnt"});
  EXPECT_DOUBLE_EQ(o.timeout, 2.5);
  EXPECT_FALSE(o.threaded);
  EXPECT_EQ(parse_error({"-o", "lowerdir=/l,timeout=soon", "/mnt"}),
            "timeout=soon: not a number of seconds");
}

TEST(Options, DebugImpliesForeground) {
  Options o = parse_ok({"-d", "-o", "lowerdir=/l", "/mnt"});
  EXPECT_TRUE(o.debug);
  EXPECT_TRUE(o.foreground);
}

TEST(Options, HelpAndVersionNeedNothingElse) {
  EXPECT_TRUE(parse_ok({"--help"}).help);
  EXPECT_TRUE(parse_ok({"--version"}).version);
  EXPECT_TRUE(parse_ok({"-V"}).version);
}

TEST(Options, ErrorsNameWhatIsWrong) {
  EXPECT_EQ(parse_error({"-o", "lowerdir=/l"}), "no mountpoint given (see --help)");
  EXPECT_EQ(parse_error({"/mnt"}), "no lowerdir= given (see --help)");
  EXPECT_EQ(parse_error({"-o", "lowerdir=::", "/mnt"}), "lowerdir=::: names no directory");
  EXPECT_EQ(parse_error({"a", "b", "c"}), "too many arguments: 'c' (see --help)");
  EXPECT_EQ(parse_error({"-o"}), "-o needs an option list");
  EXPECT_EQ(parse_error({"-o", "lowerdir=/l,upperdir=/u", "/mnt"}),
            "upperdir= given without workdir=");
}

TEST(Options, SplitOptionList) {
  EXPECT_EQ(split_option_list("a,b\\,c,\"d,e\",,f"),
            (std::vector<std::string>{"a", "b\\,c", "\"d,e\"", "f"}));
  EXPECT_EQ(unescape("\"d,e\""), "d,e");
  EXPECT_EQ(unescape("a\\\\b\\:c"), "a\\b:c");
}

TEST(Options, IdMappingsAreColonJoinedTriplets) {
  Options o =
      parse_ok({"-o", "lowerdir=/l,uidmapping=0:1000:1:1:110000:65536,gidmapping=0:50:10", "/m"});
  EXPECT_EQ(o.uid_map.to_shown(0), 1000u);
  EXPECT_EQ(o.uid_map.to_shown(1), 110000u);
  EXPECT_EQ(o.uid_map.to_shown(65536), 175535u);
  EXPECT_EQ(o.uid_map.to_shown(65537), IdMap::kOverflow);
  EXPECT_EQ(o.uid_map.to_disk(110004), 5u);
  EXPECT_EQ(o.uid_map.to_disk(999), IdMap::kOverflow);
  EXPECT_EQ(o.gid_map.to_shown(9), 59u);
  EXPECT_EQ(o.gid_map.to_shown(10), IdMap::kOverflow);
}

TEST(Options, BadIdMappingsAreErrorsNamingTheValue) {
  for (const char* bad : {"uidmapping=0:1000", "uidmapping=0:1000:x", "gidmapping=0:1:0",
                          "uidmapping=0:1:2:", "uidmapping=4294967295:0:2"}) {
    std::string message = parse_error({"-o", std::string("lowerdir=/l,") + bad, "/m"});
    EXPECT_EQ(message.substr(0, 11), std::string(bad).substr(0, 11)) << message;
  }
}

TEST(Options, SquashToUidWinsOverSquashToRootInAnyOrder) {
  Options a = parse_ok({"-o", "lowerdir=/l,squash_to_uid=7,squash_to_root", "/m"});
  Options b = parse_ok({"-o", "lowerdir=/l,squash_to_root,squash_to_gid=9", "/m"});
  EXPECT_EQ(a.squash_uid, 7u);
  EXPECT_EQ(a.squash_gid, 0u);
  EXPECT_EQ(b.squash_uid, 0u);
  EXPECT_EQ(b.squash_gid, 9u);
  EXPECT_TRUE(parse_ok({"-o", "lowerdir=/l,static_nlink", "/m"}).static_nlink);
  EXPECT_TRUE(a.warnings.empty());
  EXPECT_EQ(parse_ok({"-o", "lowerdir=/l,xattr_permissions=2", "/m"}).xattr_permissions,
            XattrPermissions::kUser);
  EXPECT_EQ(parse_error({"-o", "lowerdir=/l,xattr_permissions=3", "/m"}),
            "xattr_permissions=3: not 0, 1 or 2");
}

TEST(Options, BadValuesFailNamingTheOptionAndTheValue) {
  EXPECT_EQ(parse_error({"-o", "lowerdir=/l,timeout=nan", "/m"}),
            "timeout=nan: not a number of seconds");
  EXPECT_EQ(parse_error({"-o", "lowerdir=/l,timeout=1e400", "/m"}),
            "timeout=1e400: not a number of seconds");
  EXPECT_EQ(parse_error({"-o", "lowerdir=/l,timeout=inf", "/m"}),
            "timeout=inf: not a number of seconds");
  EXPECT_EQ(parse_error({"-o", "lowerdir=/l,threaded=2", "/m"}), "threaded=2: not 0 or 1");
  EXPECT_EQ(parse_error({"-o", "lowerdir=/l,fsync=banana", "/m"}), "fsync=banana: not 0 or 1");
  EXPECT_FALSE(parse_ok({"-o", "lowerdir=/l,fsync=0", "/m"}).fsync);
  EXPECT_FALSE(parse_ok({"-o", "lowerdir=/l,threaded=0", "/m"}).threaded);
  EXPECT_TRUE(parse_ok({"-o", "lowerdir=/l", "/m"}).writeback);
  EXPECT_FALSE(parse_ok({"-o", "lowerdir=/l,writeback=0", "/m"}).writeback);
  EXPECT_TRUE(parse_ok({"-o", "lowerdir=/l,writeback=0,writeback", "/m"}).writeback);
  EXPECT_EQ(parse_error({"-o", "lowerdir=/l,writeback=yes", "/m"}), "writeback=yes: not 0 or 1");
  using Mode = Options::PassthroughMode;
  EXPECT_EQ(parse_ok({"-o", "lowerdir=/l", "/m"}).passthrough, Mode::kAll);
  EXPECT_EQ(parse_ok({"-o", "lowerdir=/l,passthrough=safe", "/m"}).passthrough, Mode::kSafe);
  EXPECT_EQ(parse_ok({"-o", "lowerdir=/l,passthrough=0", "/m"}).passthrough, Mode::kOff);
  EXPECT_EQ(parse_error({"-o", "lowerdir=/l,passthrough=lower", "/m"}),
            "passthrough=lower: not 0, 1 or safe");
  EXPECT_EQ(parse_ok({"-o", "lowerdir=/l,timeout=0.5", "/m"}).timeout, 0.5);
  EXPECT_EQ(parse_error({"-o", "lowerdir=/l,timeout", "/m"}), "timeout: needs a value");
  EXPECT_EQ(parse_error({"-o", "lowerdir", "/m"}), "lowerdir: needs a value");
  EXPECT_EQ(parse_error({"-o", "lowerdir=/l,redirect_dir=yes", "/m"}),
            "redirect_dir=yes: not on, follow, off or nofollow");
  EXPECT_EQ(parse_ok({"-o", "lowerdir=/l,redirect_dir=on", "/m"}).redirect_dir, "on");
  EXPECT_EQ(parse_ok({"-o", "lowerdir=/l", "/m"}).redirect_dir, "off");
}

TEST(Options, OverlappingIdRangesAreRefused) {
  EXPECT_EQ(parse_error({"-o", "lowerdir=/l,uidmapping=0:1000:10:5:2000:10", "/m"}),
            "uidmapping='0:1000:10:5:2000:10': ranges 1 and 2 overlap (DISK ids)");
  EXPECT_EQ(parse_error({"-o", "lowerdir=/l,gidmapping=0:1000:10:100:1009:1", "/m"}),
            "gidmapping='0:1000:10:100:1009:1': ranges 1 and 2 overlap (SHOWN ids)");
  // Ranges that touch without overlapping are fine.
  Options o = parse_ok({"-o", "lowerdir=/l,uidmapping=0:1000:10:10:1010:10", "/m"});
  EXPECT_EQ(o.uid_map.to_shown(15), 1015u);
}

TEST(Options, DataOnlyLayersAndTrailingColonsAreRefused) {
  // Kernel overlayfs 6.x reads "::" as data-only lower layers and refuses a trailing colon.
  EXPECT_EQ(parse_error({"-o", "lowerdir=/a::/b", "/m"}),
            "lowerdir=/a::/b: data-only lower layers ('::') are not supported");
  EXPECT_EQ(parse_error({"-o", "lowerdir=/a:", "/m"}), "lowerdir=/a:: unescaped trailing colon");
  EXPECT_EQ(parse_error({"-o", "lowerdir=/a::", "/m"}),
            "lowerdir=/a::: data-only lower layers ('::') are not supported");
  EXPECT_EQ(parse_error({"-o", "lowerdir=:/a", "/m"}), "lowerdir=:/a: starts with a colon");
  EXPECT_EQ(parse_error({"-o", "lowerdir=", "/m"}), "lowerdir=: names no directory");
  // An escaped colon at the end belongs to the path.
  EXPECT_EQ(parse_ok({"-o", "lowerdir=/a\\:", "/m"}).lowerdirs, (std::vector<std::string>{"/a:"}));
}

TEST(Options, KernelOptionsAsRootHonourSetIdAndDevicesUnlessToldNot) {
  Options o = parse_ok({"-o", "lowerdir=/l", "/m"});
  auto opts = kernel_mount_options(o, {.root = true}, nullptr);
  EXPECT_EQ(opts, (std::vector<std::string>{"suid", "dev", "default_permissions", "subtype=layerfs",
                                            "fsname=layerfs", "allow_other"}));
  Options nodev = parse_ok({"-o", "lowerdir=/l,nodev,nosuid", "/m"});
  auto explicit_opts = kernel_mount_options(nodev, {.root = true}, nullptr);
  EXPECT_EQ(std::count(explicit_opts.begin(), explicit_opts.end(), "suid"), 0);
  EXPECT_EQ(std::count(explicit_opts.begin(), explicit_opts.end(), "dev"), 0);
  EXPECT_EQ(std::count(explicit_opts.begin(), explicit_opts.end(), "nodev"), 1);
  // An ordinary user cannot have either (fusermount3 refuses them).
  auto user = kernel_mount_options(o, {.root = false, .read_only = true}, nullptr);
  EXPECT_EQ(user, (std::vector<std::string>{"ro", "default_permissions", "subtype=layerfs",
                                            "fsname=layerfs"}));
}

TEST(Options, ContextIsPassedOnlyWhereSELinuxIsOn) {
  // The argv containers-storage sends with labelling on.
  Options o = parse_ok({"-o",
                        "lowerdir=/l,upperdir=/u,workdir=/w,nodev,volatile,"
                        "context=\"system_u:object_r:container_file_t:s0\"",
                        "/merged"});
  std::vector<std::string> warnings;
  auto off = kernel_mount_options(o, {.root = true, .selinux = false}, &warnings);
  EXPECT_EQ(std::count_if(off.begin(), off.end(),
                          [](const std::string& s) { return s.starts_with("context="); }),
            0);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("SELinux"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("container_file_t"), std::string::npos) << warnings[0];
  auto on = kernel_mount_options(o, {.root = true, .selinux = true}, nullptr);
  EXPECT_EQ(std::count(on.begin(), on.end(), "context=system_u:object_r:container_file_t:s0"), 1);
}

TEST(Options, FsnameAndSubtypeReachTheKernel) {
  Options o = parse_ok({"src", "-o", "lowerdir=/l,fsname=my-layers,subtype=mine", "/m"});
  auto opts = kernel_mount_options(o, {}, nullptr);
  EXPECT_EQ(std::count(opts.begin(), opts.end(), "fsname=my-layers"), 1);
  EXPECT_EQ(std::count(opts.begin(), opts.end(), "subtype=mine"), 1);
  EXPECT_EQ(std::count(opts.begin(), opts.end(), "subtype=layerfs"), 0);
  Options plain = parse_ok({"src", "-o", "lowerdir=/l", "/m"});
  auto defaults = kernel_mount_options(plain, {}, nullptr);
  EXPECT_EQ(std::count(defaults.begin(), defaults.end(), "fsname=src"), 1);
}

}  // namespace
}  // namespace layerfs
