// ACL inheritance, checked against the kernel: the same default ACL on a real directory, an
// object created in it by the kernel, and what acl::inherit computes for the same request.
#include "layers/acl.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "tests/support/mounts.h"
#include "tests/support/tree.h"

namespace layerfs {
namespace {

using test::TempDir;

// The xattr form: version 2, then (tag, perm, id) entries, little-endian.
struct AclEntry {
  uint16_t tag;
  uint16_t perm;
  uint32_t id = 0xffffffff;
};
constexpr uint16_t kUserObj = 0x01, kUser = 0x02, kGroupObj = 0x04, kGroup = 0x08, kMask = 0x10,
                   kOther = 0x20;

std::string acl_xattr(const std::vector<AclEntry>& entries) {
  std::string out;
  auto put = [&](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  };
  put(2, 4);
  for (const auto& e : entries) {
    put(e.tag, 2);
    put(e.perm, 2);
    put(e.id, 4);
  }
  return out;
}

std::string get(const std::filesystem::path& p, const char* name) {
  char buf[1024];
  ssize_t n = lgetxattr(p.c_str(), name, buf, sizeof buf);
  return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
}

struct Case {
  const char* what;
  std::vector<AclEntry> default_acl;
  mode_t mode;
  bool is_dir;
};

TEST(Acl, InheritanceIsWhatTheKernelGivesAnObjectMadeInPlace) {
  TempDir t("acl");
  {
    test::make_dir(t / "probe");
    std::string minimal = acl_xattr({{kUserObj, 7}, {kGroupObj, 5}, {kOther, 5}});
    if (lsetxattr((t / "probe").c_str(), acl::kDefault, minimal.data(), minimal.size(), 0) != 0) {
      GTEST_SKIP() << "the filesystem of " << t.path() << " has no POSIX ACLs";
    }
  }
  const std::vector<Case> cases = {
      {"minimal, file 0666", {{kUserObj, 7}, {kGroupObj, 5}, {kOther, 5}}, 0666, false},
      {"minimal, dir 0777", {{kUserObj, 7}, {kGroupObj, 5}, {kOther, 0}}, 0777, true},
      {"named user and mask, file 0640",
       {{kUserObj, 7}, {kUser, 7, 1234}, {kGroupObj, 5}, {kMask, 7}, {kOther, 5}},
       0640,
       false},
      {"named group, narrow mask, dir 0755",
       {{kUserObj, 6}, {kGroupObj, 7}, {kGroup, 7, 4321}, {kMask, 3}, {kOther, 4}},
       0755,
       true},
      {"setgid dir 02770",
       {{kUserObj, 7}, {kUser, 5, 99}, {kGroupObj, 7}, {kMask, 7}, {kOther, 0}},
       02770,
       true},
  };
  umask(0);  // with a default ACL the kernel ignores it anyway; inherit() never applies it
  int n = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const auto dir = t / ("d" + std::to_string(n));
    const auto made = dir / "new";
    ++n;
    test::make_dir(dir);
    const std::string def = acl_xattr(c.default_acl);
    ASSERT_EQ(lsetxattr(dir.c_str(), acl::kDefault, def.data(), def.size(), 0), 0)
        << strerror(errno);
    if (c.is_dir) {
      ASSERT_EQ(mkdir(made.c_str(), c.mode), 0);
    } else {
      int fd = open(made.c_str(), O_CREAT | O_EXCL | O_WRONLY, c.mode);
      ASSERT_GE(fd, 0);
      close(fd);
    }
    auto ours = acl::inherit(def, c.mode, c.is_dir);
    ASSERT_TRUE(ours.ok());
    const struct stat st = test::lstat_of(made);
    // (mkdir keeps only the permission bits it is given; the setgid bit of a directory comes
    // from its parent, which this one does not have.)
    const mode_t kernel_bits = st.st_mode & (c.is_dir ? 0777 : 07777);
    EXPECT_EQ(ours->mode & (c.is_dir ? 0777 : 07777), kernel_bits);
    EXPECT_EQ(ours->access, get(made, acl::kAccess));
    EXPECT_EQ(ours->default_acl, get(made, acl::kDefault));
  }
}

// A new object's bits: the umask where its directory has no default ACL (and ACLs are on:
// with them off the kernel applied the umask already), the default ACL where it has one.
TEST(Acl, ANewObjectGetsTheDefaultAclOrTheUmask) {
  TempDir t("acl");
  test::make_dir(t / "plain");
  test::make_dir(t / "inheriting");
  const std::string def = acl_xattr({{kUserObj, 7}, {kGroupObj, 5}, {kOther, 0}});
  const bool has_acls =
      lsetxattr((t / "inheriting").c_str(), acl::kDefault, def.data(), def.size(), 0) == 0;
  auto fd = [&](const char* d) {
    return BorrowedFd(open((t / d).c_str(), O_RDONLY | O_DIRECTORY));
  };
  const BorrowedFd plain = fd("plain");
  auto on = acl::for_new_object(plain, 0666, false, 022, true);
  ASSERT_TRUE(on.ok());
  EXPECT_EQ(on->mode, 0644u);
  EXPECT_TRUE(on->access.empty());
  auto off = acl::for_new_object(plain, 0666, false, 022, false);
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off->mode, 0666u);
  close(plain);
  if (!has_acls) GTEST_SKIP() << "the filesystem of " << t.path() << " has no POSIX ACLs";
  const BorrowedFd inheriting = fd("inheriting");
  auto from_acl = acl::for_new_object(inheriting, 0777, true, 077, true);
  close(inheriting);
  ASSERT_TRUE(from_acl.ok());
  auto expected = acl::inherit(def, 0777, true);
  EXPECT_EQ(from_acl->mode, expected->mode) << "the umask does not apply";
  EXPECT_EQ(from_acl->default_acl, def);
}

TEST(Acl, MalformedDefaultAclIsRefused) {
  EXPECT_EQ(acl::inherit("", 0644, false).error(), EINVAL);
  EXPECT_EQ(acl::inherit(std::string("\x01\0\0\0", 4), 0644, false).error(), EINVAL);
  EXPECT_EQ(acl::inherit(acl_xattr({{kUserObj, 7}}).substr(0, 9), 0644, false).error(), EINVAL);
}

}  // namespace
}  // namespace layerfs
