// Set-id bits under writes: a write, truncate or fallocate by a caller without CAP_FSETID drops
// them, as on any Linux filesystem. Under FUSE_HANDLE_KILLPRIV_V2 the daemon drops them itself
// (the kernel asks with the request, or, for a write passed through, with a SETATTR of no
// fields), and the kernel stops asking for security.capability before every write(2).
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <sstream>

#include "tests/fuse/parity.h"

namespace layerfs::test {
namespace {

constexpr const char* kNobody = "65534";

// Each case: a file, the mode it starts with (set in the lower layer), and what the caller does.
struct Case {
  const char* name;
  mode_t mode;
  const char* as;  // "nobody" or "root"
  const char* does;
  gid_t gid = 0;  // the file's group
};

// `$f` is the file. The set-group-ID cases: with group execute it goes for anyone without
// CAP_FSETID; without, only for a caller outside the file's group (nobody is outside group 0,
// inside 65534). chown(f, -1, -1) drops them even for root.
constexpr Case kCases[] = {
    {"append-suid", 04777, "nobody", "echo more >> \"$f\""},
    {"append-sgid-x", 02777, "nobody", "echo more >> \"$f\""},
    {"append-sgid-nox", 02767, "nobody", "echo more >> \"$f\""},
    {"append-sgid-nox-own-group", 02767, "nobody", "echo more >> \"$f\"", 65534},
    {"truncate-suid", 04777, "nobody", "truncate -s 1 \"$f\""},
    {"otrunc-suid", 04777, "nobody", ": > \"$f\""},
    {"fallocate-suid", 04777, "nobody", "fallocate -l 8192 \"$f\""},
    {"many-writes-suid", 04777, "nobody",
     "dd if=/dev/zero of=\"$f\" bs=4k count=16 conv=notrunc status=none"},
    {"root-appends", 06777, "root", "echo more >> \"$f\""},
    {"root-truncates", 06777, "root", "truncate -s 1 \"$f\""},
    {"root-chown-same", 06777, "root", "perl -e 'chown -1, -1, $ARGV[0] or die $!' \"$f\""},
};

// What kernel overlayfs shows (checked against it in the test below too).
const std::map<std::string, mode_t> kExpected = {
    {"append-suid", 0777},      {"append-sgid-x", 0777},
    {"append-sgid-nox", 0767},  {"truncate-suid", 0777},
    {"otrunc-suid", 0777},      {"fallocate-suid", 0777},
    {"many-writes-suid", 0777}, {"root-appends", 06777},
    {"root-truncates", 06777},  {"append-sgid-nox-own-group", 02767},
    {"root-chown-same", 0777},
};

class SetIdBits : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_FUSE();
    if (geteuid() != 0) GTEST_SKIP() << "writes as another user need root";
    ASSERT_EQ(chmod(t_.path().c_str(), 0755), 0);
    for (const char* d : {"lower", "upper", "work", "mnt"}) make_dir(t_ / d);
    for (const Case& c : kCases) {
      write_file(t_ / "lower" / c.name, "x", c.mode);
      ASSERT_EQ(chown((t_ / "lower" / c.name).c_str(), 0, c.gid), 0);
      ASSERT_EQ(chmod((t_ / "lower" / c.name).c_str(), c.mode), 0);  // chown dropped set-id
    }
  }

  // Runs every case on the mount at `mnt`; gives the modes it leaves.
  std::map<std::string, mode_t> run_cases(const fs::path& mnt) {
    std::map<std::string, mode_t> modes;
    for (const Case& c : kCases) {
      const std::string f = (mnt / c.name).string();
      std::vector<std::string> argv;
      if (std::string(c.as) == "nobody") {
        argv = {"setpriv", std::string("--reuid=") + kNobody, std::string("--regid=") + kNobody,
                "--clear-groups"};
      }
      for (const char* a : {"sh", "-c", c.does}) argv.emplace_back(a);
      argv.push_back("sh");
      RunResult r = run(argv, {"f=" + f});
      EXPECT_EQ(r.status, 0) << c.name << ": " << r.err;
      struct stat st;
      EXPECT_EQ(stat(f.c_str(), &st), 0) << f << ": " << strerror(errno);
      modes[c.name] = st.st_mode & 07777;
    }
    return modes;
  }

  TempDir t_{"setid"};
};

std::string modes_text(const std::map<std::string, mode_t>& modes) {
  std::ostringstream out;
  for (const auto& [name, mode] : modes) out << name << "=" << std::oct << mode << " ";
  return out.str();
}

TEST_F(SetIdBits, WritesAndTruncatesDropThemAsKernelOverlayfs) {
  const std::string upper =
      "upperdir=" + (t_ / "upper").string() + ",workdir=" + (t_ / "work").string();
  if (!kernel_overlay_unavailable()) {
    KernelOverlay kernel({t_ / "lower"}, t_ / "mnt", upper);
    ASSERT_TRUE(kernel.ok()) << kernel.error();
    EXPECT_EQ(modes_text(run_cases(t_ / "mnt")), modes_text(kExpected)) << "kernel overlayfs";
  }
  // Passed through as root, through the daemon, and with the modes kept in an override xattr.
  for (const char* extra :
       {"", ",passthrough=0", ",passthrough=0,writeback=0", ",xattr_permissions=2"}) {
    SCOPED_TRACE(std::string("layerfs -o ...") + extra);
    for (const char* d : {"upper", "work"}) {
      fs::remove_all(t_ / d);
      make_dir(t_ / d);
    }
    LayerfsMount m({t_ / "lower"}, t_ / "mnt", {"-o", upper + extra});
    ASSERT_TRUE(m.ok()) << m.error();
    EXPECT_EQ(modes_text(run_cases(t_ / "mnt")), modes_text(kExpected));
    // The kernel asks for security.capability once per file, not before each write(2)
    // (FUSE_HANDLE_KILLPRIV_V2): 64 writes by an ordinary user, passed through or not.
    const uint64_t before = requests_of(t_ / "mnt")["GETXATTR"];
    RunResult r =
        run({"setpriv", std::string("--reuid=") + kNobody, std::string("--regid=") + kNobody,
             "--clear-groups", "dd", "if=/dev/zero", "of=" + (t_ / "mnt/append-suid").string(),
             "bs=4k", "count=64", "status=none"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_LE(requests_of(t_ / "mnt")["GETXATTR"] - before, 8u);
  }
  for (const Case& c : kCases) {
    struct stat st;
    ASSERT_EQ(stat((t_ / "lower" / c.name).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, c.mode) << c.name << ": the lower file is never changed";
  }
}

}  // namespace
}  // namespace layerfs::test
