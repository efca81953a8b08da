// POSIX ACLs through a writable mount: the kernel enforces them, new objects inherit a
// directory's default ACL (or get the caller's umask), and setting one on a lower file copies it
// up. What a user sees must match kernel overlayfs.
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdint>
#include <tuple>

#include "tests/fuse/parity.h"

namespace layerfs::test {
namespace {

constexpr const char* kAccess = "system.posix_acl_access";
constexpr const char* kDefault = "system.posix_acl_default";
constexpr uint16_t kUserObj = 0x01, kUser = 0x02, kGroupObj = 0x04, kMask = 0x10, kOther = 0x20;
constexpr uint32_t kNobody = 65534;
constexpr uint32_t kNoId = 0xffffffff;  // the id of entries that name no user or group

// An ACL in xattr form: version 2, then (tag, perm, id) entries, little-endian.
std::string acl(std::initializer_list<std::tuple<uint16_t, uint16_t, uint32_t>> entries) {
  std::string out;
  auto put = [&](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  };
  put(2, 4);
  for (auto [tag, perm, id] : entries) {
    put(tag, 2);
    put(perm, 2);
    put(id, 4);
  }
  return out;
}

const std::string kNobodyMayWrite = acl({{kUserObj, 7, kNoId},
                                         {kUser, 7, kNobody},
                                         {kGroupObj, 5, kNoId},
                                         {kMask, 7, kNoId},
                                         {kOther, 5, kNoId}});
const std::string kNobodyMayRead = acl({{kUserObj, 6, kNoId},
                                        {kUser, 4, kNobody},
                                        {kGroupObj, 0, kNoId},
                                        {kMask, 4, kNoId},
                                        {kOther, 0, kNoId}});

// The ACL xattr's value, or "<errno N>".
std::string acl_of(const fs::path& p, const char* name) {
  char buf[512];
  ssize_t n = getxattr(p.c_str(), name, buf, sizeof buf);
  return n < 0 ? "<errno " + std::to_string(errno) + ">" : std::string(buf, static_cast<size_t>(n));
}

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(lstat(p.c_str(), &st), 0) << p;
  return st.st_mode;
}

// Whether uid/gid 65534 can open `p` for reading.
bool nobody_can_read(const fs::path& p) {
  return run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c",
              "cat \"$0\" >/dev/null 2>&1", p.string()})
             .status == 0;
}

class Acl : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_FUSE();
    if (geteuid() != 0) GTEST_SKIP() << "switching users needs root";
    ASSERT_EQ(chmod(t_.path().c_str(), 0755), 0);  // other users reach the mount point
    for (const char* d : {"lower", "upper", "work", "mnt"}) make_dir(t_ / d);
    if (setxattr((t_ / "lower").c_str(), kDefault, kNobodyMayWrite.data(), kNobodyMayWrite.size(),
                 0) != 0) {
      GTEST_SKIP() << "the filesystem under " << t_.path() << " has no POSIX ACLs";
    }
    ASSERT_EQ(removexattr((t_ / "lower").c_str(), kDefault), 0);
  }
  std::unique_ptr<LayerfsMount> mount(const std::string& extra = "") {
    auto m = std::make_unique<LayerfsMount>(
        std::vector<fs::path>{t_ / "lower"}, t_ / "mnt",
        std::vector<std::string>{"-o", "upperdir=" + (t_ / "upper").string() +
                                           ",workdir=" + (t_ / "work").string() + extra});
    EXPECT_TRUE(m->ok()) << m->error();
    return m;
  }
  TempDir t_{"acl"};
};

// Creates, under umask 077, a directory, a file and a fifo inside `d` (which has a default ACL)
// and a file beside it; grants nobody read on the lower file `g`.
void create_objects(const fs::path& root) {
  RunResult r = run({"sh", "-c",
                     "umask 077 && mkdir \"$0/d/sub\" && touch \"$0/d/new\" && "
                     "mkfifo \"$0/d/fifo\" && touch \"$0/plain\" && mkdir \"$0/d/sub/deeper\"",
                     root.string()});
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_EQ(
      setxattr((root / "g").c_str(), kAccess, kNobodyMayRead.data(), kNobodyMayRead.size(), 0), 0)
      << strerror(errno);
}

TEST_F(Acl, NewObjectsInheritDefaultAclsAsOnKernelOverlayfs) {
  SKIP_WITHOUT_KERNEL_OVERLAY();
  make_dir(t_ / "lower/d");
  set_xattr(t_ / "lower/d", kDefault, kNobodyMayWrite);
  write_file(t_ / "lower/g", "secret", 0600);
  for (const char* d : {"kupper", "kwork", "kmnt"}) make_dir(t_ / d);
  // Separate lowers: the kernel mount must not see what layerfs copies up.
  fs::copy(t_ / "lower", t_ / "klower", fs::copy_options::recursive);
  set_xattr(t_ / "klower/d", kDefault, kNobodyMayWrite);

  auto m = mount();
  KernelOverlay kernel(
      {t_ / "klower"}, t_ / "kmnt",
      "upperdir=" + (t_ / "kupper").string() + ",workdir=" + (t_ / "kwork").string());
  ASSERT_TRUE(kernel.ok()) << kernel.error();
  create_objects(t_ / "mnt");
  create_objects(t_ / "kmnt");

  for (const char* rel : {"d/sub", "d/sub/deeper", "d/new", "d/fifo", "plain", "g"}) {
    SCOPED_TRACE(rel);
    EXPECT_EQ(mode_of(t_ / "mnt" / rel), mode_of(t_ / "kmnt" / rel));
    EXPECT_EQ(acl_of(t_ / "mnt" / rel, kAccess), acl_of(t_ / "kmnt" / rel, kAccess));
    EXPECT_EQ(acl_of(t_ / "mnt" / rel, kDefault), acl_of(t_ / "kmnt" / rel, kDefault));
  }
  // What that agreement means: the default ACL replaced the umask below d, and applied beside.
  EXPECT_EQ(mode_of(t_ / "mnt/d/new") & 0777, 0664u);
  EXPECT_EQ(mode_of(t_ / "mnt/plain") & 0777, 0600u);
  EXPECT_EQ(acl_of(t_ / "mnt/d/sub/deeper", kDefault), kNobodyMayWrite);
  EXPECT_EQ(acl_of(t_ / "upper/d/new", kAccess), acl_of(t_ / "kupper/d/new", kAccess))
      << "on disk too";
  EXPECT_EQ(acl_of(t_ / "upper/g", kAccess), kNobodyMayRead) << "the ACL copied g up";
  EXPECT_EQ(acl_of(t_ / "lower/g", kAccess), "<errno " + std::to_string(ENODATA) + ">");
}

TEST_F(Acl, GrantedAndRevokedAccessIsEnforced) {
  write_file(t_ / "lower/g", "secret", 0600);
  auto m = mount();
  const fs::path g = t_ / "mnt/g";
  EXPECT_FALSE(nobody_can_read(g));
  ASSERT_EQ(setxattr(g.c_str(), kAccess, kNobodyMayRead.data(), kNobodyMayRead.size(), 0), 0);
  EXPECT_TRUE(nobody_can_read(g));
  EXPECT_EQ(mode_of(g) & 0777, 0640u) << "the group bits show the ACL mask";
  ASSERT_EQ(removexattr(g.c_str(), kAccess), 0);
  EXPECT_FALSE(nobody_can_read(g));
  // A lower file's ACL is enforced without any copy-up.
  write_file(t_ / "lower/h", "lower secret", 0600);
  set_xattr(t_ / "lower/h", kAccess, kNobodyMayRead);
  EXPECT_TRUE(nobody_can_read(t_ / "mnt/h"));
  EXPECT_FALSE(fs::exists(t_ / "upper/h"));
}

TEST_F(Acl, NoaclTurnsThemOff) {
  write_file(t_ / "lower/g", "secret", 0600);
  set_xattr(t_ / "lower/g", kAccess, kNobodyMayRead);
  auto m = mount(",noacl");
  write_file(t_ / "mnt/f", "x");
  EXPECT_NE(
      setxattr((t_ / "mnt/f").c_str(), kAccess, kNobodyMayRead.data(), kNobodyMayRead.size(), 0),
      0);
  EXPECT_EQ(errno, EOPNOTSUPP);
  EXPECT_EQ(acl_of(t_ / "mnt/g", kAccess), "<errno " + std::to_string(EOPNOTSUPP) + ">");
  EXPECT_FALSE(nobody_can_read(t_ / "mnt/g")) << "the mode alone decides";
  RunResult r = run({"sh", "-c", "umask 027 && touch \"$0/made\"", (t_ / "mnt").string()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(mode_of(t_ / "mnt/made") & 0777, 0640u) << "the kernel still applies the umask";
}

}  // namespace
}  // namespace layerfs::test
