// layerrun for real: a busybox-static root made here, as layers (layerfs started in-process)
// and as a plain directory, as root and as an unprivileged user (created here). Every test
// also checks that nothing is left: no mount, no staging directory, no cgroup, no process.
// The isolation probe runs under bubblewrap too, with the options that mean the same, and
// must print the same lines but for the differences layerrun chose (README, layerrun).
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/fuse/parity.h"
#include "tests/support/mounts.h"
#include "tests/support/tree.h"

namespace layerfs::test {
namespace {

// What the isolation tests look at, one fact per line, in a form that does not depend on
// which launcher made the container.
constexpr const char* kProbe = R"PROBE(
set -- /proc/[0-9]*; echo "processes $#"
echo "shell pid $$"
echo "hostname $(hostname)"
echo "ids $(id -u):$(id -g)"
grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs)' /proc/self/status
cd /.. && echo "dotdot $(pwd)"
[ -e /oldroot ] && echo "oldroot present" || echo "oldroot absent"
echo "root $(ls / | tr '\n' ' ')"
echo "dev $(ls /dev | grep -vx core | tr '\n' ' ')"
echo "pts $(ls /dev/pts | tr '\n' ' ')"
for p in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /proc/latency_stats /proc/timer_stats; do
  [ -e $p ] && echo "$p bytes $(cat $p 2>/dev/null | wc -c)"
done
for d in /proc/acpi /proc/scsi /proc/asound /sys/firmware; do
  [ -d $d ] && echo "$d entries $(ls -A $d | wc -l)"
done
for p in /proc/sys/kernel/hostname /proc/sysrq-trigger; do
  [ -e $p ] && { (echo x > $p) 2>/dev/null && echo "$p writable" || echo "$p read-only"; }
done
(touch /sys/kernel/probe) 2>/dev/null && echo "sys writable" || echo "sys read-only"
echo "links $(ip -o link | wc -l) lo $(ip -o link show lo | grep -c UP)"
echo "fds $(ls /proc/self/fd | wc -l)"
echo "own session $( [ "$(cut -d' ' -f6 /proc/self/stat)" = "$(cut -d' ' -f6 /proc/$$/stat)" ] && echo yes)"
)PROBE";

// Lines of `text`, for comparing probes.
std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

bool has_line(const std::string& text, const std::string& line) {
  for (const std::string& l : lines(text)) {
    if (l == line) return true;
  }
  return false;
}

// The directories the container's cgroups would be made in (the caller's own cgroups).
std::vector<fs::path> own_cgroups() {
  std::vector<fs::path> out;
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    const std::string controllers = line.substr(a + 1, b - a - 1);
    const std::string path = line.substr(b + 1);
    std::vector<fs::path> candidates;
    if (controllers.empty()) {
      candidates = {fs::path("/sys/fs/cgroup") / path.substr(1),
                    fs::path("/sys/fs/cgroup/unified") / path.substr(1)};
    } else {
      std::istringstream names(controllers);
      std::string name;
      while (std::getline(names, name, ',')) {
        candidates.push_back(fs::path("/sys/fs/cgroup") / name / path.substr(1));
      }
    }
    for (const fs::path& c : candidates) {
      std::error_code ec;
      if (fs::is_directory(c, ec)) out.push_back(c);
    }
  }
  return out;
}

// Busybox-static as a root filesystem: every applet a link to it.
void make_busybox_root(const fs::path& root) {
  for (const char* d : {"bin", "proc", "dev", "sys", "tmp", "etc", "root"}) make_dir(root / d);
  fs::copy_file("/bin/busybox", root / "bin/busybox");
  RunResult list = run({"/bin/busybox", "--list"});
  for (const std::string& applet : lines(list.out)) {
    if (applet != "busybox") make_symlink("busybox", root / "bin" / applet);
  }
  write_file(root / "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
}

class Layerrun : public ::testing::TestWithParam<bool> {
 protected:
  bool rootless() const { return GetParam(); }

  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "the tests make their users and roots as root";
    SKIP_WITHOUT_FUSE();
    if (access("/bin/busybox", X_OK) != 0) GTEST_SKIP() << "no /bin/busybox (busybox-static)";
    if (rootless()) {
      auto uid = test_user();
      if (!uid) GTEST_SKIP() << "cannot create the user " << kUserName << " (useradd)";
      uid_ = *uid;
      gid_ = getpwnam(kUserName)->pw_gid;
      dev_fuse_ = std::make_unique<DevFuseForEveryone>();
    }
    chmod(dir_.path().c_str(), 0755);
    base_ = dir_.path() / "base";
    mid_ = dir_.path() / "mid";
    top_ = dir_.path() / "top";
    make_busybox_root(base_);
    make_dir(mid_ / "etc");
    write_file(mid_ / "etc/release", "mid\n");
    make_dir(top_);
    write_file(top_ / "hello", "top\n");
    make_dir(dir_.path() / "upper");
    make_dir(dir_.path() / "work");
    make_dir(dir_.path() / "tmp");
    if (rootless()) {
      // As a rootless engine's storage: the user's own files, root's inside the container.
      for (const char* d : {"base", "mid", "top", "upper", "work", "tmp"}) {
        run({"chown", "-R", "-h", std::to_string(uid_) + ":" + std::to_string(gid_),
             (dir_.path() / d).string()});
      }
    }
    cgroups_before_ = leftover_cgroups();
  }

  void TearDown() override {
    if (IsSkipped()) return;
    // Nothing left behind: no mount, no staging directory, no cgroup, no process.
    std::ifstream mi("/proc/self/mountinfo");
    std::string line;
    while (std::getline(mi, line)) {
      EXPECT_EQ(line.find("layerrun"), std::string::npos) << "left mounted: " << line;
    }
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_.path() / "tmp", ec)) {
      ADD_FAILURE() << "staging directory left: " << e.path();
    }
    EXPECT_EQ(leftover_cgroups(), cgroups_before_);
    for (const auto& e : fs::directory_iterator("/proc")) {
      std::error_code rc;
      const fs::path exe = fs::read_symlink(e.path() / "exe", rc);
      if (!rc) {
        EXPECT_NE(exe.string(), LAYERRUN_BIN) << "still running: " << e.path();
      }
    }
  }

  static std::vector<fs::path> leftover_cgroups() {
    std::vector<fs::path> out;
    for (const fs::path& cg : own_cgroups()) {
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(cg, ec)) {
        if (e.path().filename().string().rfind("layerrun-", 0) == 0) out.push_back(e.path());
      }
    }
    return out;
  }

  // argv run as the test's user.
  std::vector<std::string> as_user(const std::vector<std::string>& args) const {
    std::vector<std::string> argv;
    if (rootless()) {
      argv = {"setpriv", "--reuid=" + std::to_string(uid_), "--regid=" + std::to_string(gid_),
              "--clear-groups"};
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  // The command line that runs layerrun as the test's user.
  std::vector<std::string> command(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{LAYERRUN_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    return as_user(argv);
  }

  // A bundle at `bundle` whose rootfs is the base layer and whose config.json is runc's
  // own (`runc spec`, --rootless when rootless), owned by the test's user with `owned`.
  void runc_bundle(const fs::path& bundle, const std::vector<std::string>& owned = {}) const {
    make_dir(bundle);
    fs::copy(base_, bundle / "rootfs",
             fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    if (rootless()) {
      std::vector<std::string> chown{
          "chown", "-R", "-h", std::to_string(uid_) + ":" + std::to_string(gid_), bundle.string()};
      chown.insert(chown.end(), owned.begin(), owned.end());
      ASSERT_EQ(run(chown).status, 0);
    }
    std::vector<std::string> spec{"runc", "spec", "--bundle", bundle.string()};
    if (rootless()) spec.push_back("--rootless");
    ASSERT_EQ(run(as_user(spec)).status, 0);
  }

  RunResult layerrun(const std::vector<std::string>& args) const {
    return run(command(args), {"TMPDIR=" + (dir_.path() / "tmp").string()});
  }

  std::vector<std::string> layers() const {
    return {"--lower", base_.string(), "--lower", mid_.string(), "--lower", top_.string()};
  }
  std::vector<std::string> writable_layers() const {
    std::vector<std::string> a = layers();
    a.insert(a.end(), {"--upper", (dir_.path() / "upper").string(), "--work",
                       (dir_.path() / "work").string()});
    return a;
  }
  // layerrun ARGS -- /bin/sh -c SCRIPT
  RunResult sh(std::vector<std::string> args, const std::string& script) const {
    args.insert(args.end(), {"--", "/bin/sh", "-c", script});
    return layerrun(args);
  }

  TempDir dir_{"layerrun"};
  fs::path base_, mid_, top_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::unique_ptr<DevFuseForEveryone> dev_fuse_;
  std::vector<fs::path> cgroups_before_;
};

TEST_P(Layerrun, IsolatesTheCommand) {
  std::vector<std::string> args = layers();
  args.insert(args.end(), {"--hostname", "box"});
  RunResult r = sh(args, kProbe);
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string& o = r.out;
  // Only the init and the shell; the shell is pid 2 under our init.
  EXPECT_TRUE(has_line(o, "processes 2")) << o;
  EXPECT_TRUE(has_line(o, "shell pid 2")) << o;
  EXPECT_TRUE(has_line(o, "hostname box")) << o;
  EXPECT_TRUE(has_line(o, "ids 0:0")) << o;
  for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
    EXPECT_TRUE(has_line(o, std::string(set) + ":\t0000000000000000")) << o;
  }
  EXPECT_TRUE(has_line(o, "NoNewPrivs:\t1")) << o;
  EXPECT_TRUE(has_line(o, "dotdot /")) << o;
  EXPECT_TRUE(has_line(o, "oldroot absent")) << o;
  EXPECT_TRUE(has_line(o, "root bin dev etc hello proc root sys tmp ")) << o;
  EXPECT_TRUE(has_line(
      o, "dev fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero "))
      << o;
  EXPECT_TRUE(has_line(o, "pts ptmx ")) << o;
  // Every masked path the kernel has reads as empty.
  for (const std::string& l : lines(o)) {
    if (l.find(" bytes ") != std::string::npos) {
      EXPECT_TRUE(l.ends_with(" bytes 0")) << l;
    }
    if (l.find(" entries ") != std::string::npos) {
      EXPECT_TRUE(l.ends_with(" entries 0")) << l;
    }
  }
  EXPECT_TRUE(has_line(o, "/proc/sys/kernel/hostname read-only")) << o;
  EXPECT_TRUE(has_line(o, "sys read-only")) << o;
  EXPECT_TRUE(has_line(o, "links 1 lo 1")) << o;
  // ls has 0, 1, 2 and the directory it reads: nothing was inherited.
  EXPECT_TRUE(has_line(o, "fds 4")) << o;
  EXPECT_TRUE(has_line(o, "own session yes")) << o;
  // The layers are merged: each layer's file is there.
  RunResult merged = sh(layers(), "cat /etc/release /hello");
  EXPECT_EQ(merged.out, "mid\ntop\n") << merged.err;
}

TEST_P(Layerrun, SameAnswersAsBubblewrap) {
  if (access("/usr/bin/bwrap", X_OK) != 0) GTEST_SKIP() << "no bwrap (Debian package bubblewrap)";
  RunResult ours = sh({"--rootfs", base_.string(), "--hostname", "box"}, kProbe);
  ASSERT_EQ(ours.status, 0) << ours.err;
  // bwrap with the options that mean what layerrun does by default.
  std::vector<std::string> bw{"/usr/bin/bwrap",
                              "--unshare-all",
                              "--hostname",
                              "box",
                              "--die-with-parent",
                              "--new-session",
                              "--cap-drop",
                              "ALL",
                              "--ro-bind",
                              base_.string(),
                              "/",
                              "--proc",
                              "/proc",
                              "--dev",
                              "/dev",
                              "--mqueue",
                              "/dev/mqueue",
                              "--ro-bind",
                              "/sys",
                              "/sys"};
  // /proc/sys read-only, as the OCI runtime spec says (bwrap leaves it writable in a user
  // namespace).
  bw.insert(bw.end(), {"--ro-bind", "/proc/sys", "/proc/sys"});
  for (const char* f : {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
                        "/proc/latency_stats", "/proc/timer_stats"}) {
    if (access(f, F_OK) == 0) bw.insert(bw.end(), {"--ro-bind", "/dev/null", f});
  }
  for (const char* d : {"/proc/acpi", "/proc/scsi", "/proc/asound", "/sys/firmware"}) {
    if (access(d, F_OK) == 0) bw.insert(bw.end(), {"--tmpfs", d, "--remount-ro", d});
  }
  bw.insert(bw.end(), {"/bin/sh", "-c", kProbe});
  if (rootless()) {
    // The caller as root inside, as layerrun makes it.
    bw.insert(bw.begin() + 1, {"--uid", "0", "--gid", "0"});
    bw.insert(bw.begin(), {"setpriv", "--reuid=" + std::to_string(uid_),
                           "--regid=" + std::to_string(gid_), "--clear-groups"});
  }
  RunResult theirs = run(bw);
  ASSERT_EQ(theirs.status, 0) << theirs.err;
  // Differences layerrun chose: bwrap passes the fds it inherits on to the command (layerrun
  // closes every one above 2: "fds 4" above), and its /dev has a core link to /proc/kcore
  // (filtered out by the probe; layerrun masks kcore). Everything else must agree.
  auto without_fds = [](const std::string& text) {
    std::vector<std::string> out;
    for (const std::string& l : lines(text)) {
      if (!l.starts_with("fds ")) out.push_back(l);
    }
    return out;
  };
  EXPECT_EQ(without_fds(ours.out), without_fds(theirs.out)) << "layerrun:\n"
                                                            << ours.out << "bwrap:\n"
                                                            << theirs.out;
}

TEST_P(Layerrun, WritesLandInTheUpperAndTheLowersStayAsTheyWere) {
  const auto before = snapshot(base_);
  RunResult r =
      sh(writable_layers(),
         "echo new > /new && echo changed > /etc/release && rm /hello && cat /etc/release");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "changed\n");
  const fs::path upper = dir_.path() / "upper";
  EXPECT_EQ(read_file(upper / "new"), "new\n");
  EXPECT_EQ(read_file(upper / "etc/release"), "changed\n");
  struct stat st {};
  ASSERT_EQ(lstat((upper / "hello").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode)) << "a whiteout for the deleted file";
  EXPECT_EQ(read_file(mid_ / "etc/release"), "mid\n");
  EXPECT_EQ(read_file(top_ / "hello"), "top\n");
  // Reading and executing updates atimes (relatime), nothing else may change.
  Ignore atimes;
  atimes.atime = true;
  const auto changes = compare(before, snapshot(base_), atimes);
  EXPECT_TRUE(changes.empty()) << changes.front();
  if (rootless()) {
    // The caller is root inside: what it writes belongs to the caller outside.
    ASSERT_EQ(lstat((upper / "new").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, uid_);
  }
  // The next container sees the change; without an upper the root is read-only.
  RunResult again = sh(writable_layers(), "cat /new");
  EXPECT_EQ(again.out, "new\n") << again.err;
  RunResult ro = sh(layers(), "echo x > /x");
  EXPECT_NE(ro.status, 0);
  EXPECT_NE(ro.err.find("Read-only file system"), std::string::npos) << ro.err;
}

TEST_P(Layerrun, ForwardsSignalsToTheCommand) {
  std::vector<std::string> argv = command(layers());
  argv.insert(argv.end(), {"--", "/bin/sh", "-c",
                           "trap 'exit 3' TERM; echo ready; while :; do sleep 0.1; done"});
  int out[2];
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  const std::string tmp = "TMPDIR=" + (dir_.path() / "tmp").string();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], 1);
    putenv(const_cast<char*>(tmp.c_str()));
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(out[1]);
  char buf[16] = {};
  const ssize_t n = read(out[0], buf, sizeof buf - 1);
  close(out[0]);
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "ready\n");
  kill(pid, SIGTERM);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3) << "the command trapped SIGTERM and exited 3";
}

TEST_P(Layerrun, DiesWithItsParent) {
  // A shell starts layerrun in the background and is killed; the container must end at once
  // (TearDown finds no layerrun process, mount or cgroup left), long before its sleep would.
  std::vector<std::string> args = layers();
  args.insert(args.end(), {"--die-with-parent", "--", "/bin/sleep", "30"});
  std::string line;
  for (const std::string& a : command(args)) line += "'" + a + "' ";
  const auto start = std::chrono::steady_clock::now();
  RunResult r = run({"sh", "-c", line + "& sleep 0.5; kill -KILL $$"},
                    {"TMPDIR=" + (dir_.path() / "tmp").string()});
  EXPECT_EQ(r.status, 128 + SIGKILL);
  bool gone = false;
  while (!gone && std::chrono::steady_clock::now() - start < std::chrono::seconds(20)) {
    gone = true;
    for (const auto& e : fs::directory_iterator("/proc")) {
      std::error_code rc;
      if (fs::read_symlink(e.path() / "exe", rc) == LAYERRUN_BIN) gone = false;
    }
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(gone) << "layerrun still runs after its parent died";
}

TEST_P(Layerrun, ReapsOrphans) {
  // The inner shell exits at once; its sleeper is re-parented to the init, which must reap it
  // when it ends.
  RunResult r =
      sh(layers(), "sh -c 'sleep 0.2 &'; sleep 1; grep -h '^State' /proc/[0-9]*/status | sort");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.find("zombie"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("State:\tS (sleeping)"), std::string::npos) << r.out;
}

TEST_P(Layerrun, ExitStatuses) {
  EXPECT_EQ(sh(layers(), "exit 7").status, 7);
  EXPECT_EQ(sh(layers(), "kill -KILL $$").status, 128 + SIGKILL);
  std::vector<std::string> args = layers();
  args.insert(args.end(), {"--", "/no/such/command"});
  RunResult missing = layerrun(args);
  EXPECT_EQ(missing.status, 127);
  EXPECT_NE(missing.err.find("exec '/no/such/command': No such file or directory"),
            std::string::npos)
      << missing.err;
  args = layers();
  args.insert(args.end(), {"--", "/etc/release"});  // not executable
  RunResult cannot = layerrun(args);
  EXPECT_EQ(cannot.status, 126);
  EXPECT_NE(cannot.err.find("Permission denied"), std::string::npos) << cannot.err;
  // A launcher error: one line naming the step and the path.
  RunResult bad = layerrun({"--rootfs", base_.string(), "--bind", "/no/such/dir:/x", "--", "true"});
  EXPECT_EQ(bad.status, 125);
  EXPECT_EQ(bad.err, "layerrun: --bind source '/no/such/dir': No such file or directory\n");
  RunResult bad_lower = layerrun(
      {"--lower", base_.string(), "--lower", (dir_.path() / "upper").string(), "--upper",
       (dir_.path() / "upper").string(), "--work", (dir_.path() / "work").string(), "--", "true"});
  EXPECT_EQ(bad_lower.status, 125);
  EXPECT_EQ(std::count(bad_lower.err.begin(), bad_lower.err.end(), '\n'), 1) << bad_lower.err;
  RunResult size = layerrun({"--rootfs", base_.string(), "--memory", "lots", "--", "true"});
  EXPECT_EQ(size.status, 125);
  EXPECT_NE(size.err.find("--memory 'lots': not a size"), std::string::npos) << size.err;
}

TEST_P(Layerrun, RunsTheBundleRuncSpecWrites) {
  if (access("/usr/bin/runc", X_OK) != 0) GTEST_SKIP() << "no runc (Debian package runc)";
  const fs::path bundle = dir_.path() / "bundle";
  runc_bundle(bundle);
  if (HasFatalFailure()) return;
  // The bundle as runc wrote it: sh reading its commands from stdin.
  std::vector<std::string> argv = command({"--bundle", bundle.string()});
  std::string script =
      "hostname; id -u; grep CapEff /proc/self/status; grep NoNewPrivs "
      "/proc/self/status; ls /dev/pts; cat /proc/keys | wc -c\n";
  std::string shell;
  for (const std::string& a : argv) shell += "'" + a + "' ";
  RunResult r = run({"sh", "-c", "printf '%s' \"$0\" | " + shell, script},
                    {"TMPDIR=" + (dir_.path() / "tmp").string()});
  ASSERT_EQ(r.status, 0) << r.err;
  // runc's defaults: hostname runc, root, its three capabilities, no_new_privs.
  EXPECT_EQ(r.out, "runc\n0\nCapEff:\t0000000020000420\nNoNewPrivs:\t1\nptmx\n0\n") << r.err;
  // What is not implemented is said, in one line.
  EXPECT_NE(r.err.find("not implemented, ignored: process.terminal"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_P(Layerrun, BundleBindsFollowLinksAndNameEachIgnoredCapability) {
  if (access("/usr/bin/runc", X_OK) != 0) GTEST_SKIP() << "no runc (Debian package runc)";
  const fs::path bundle = dir_.path() / "bundle";
  make_dir(dir_.path() / "shared");
  write_file(dir_.path() / "shared/note", "shared\n");
  fs::create_directory_symlink(dir_.path() / "shared", dir_.path() / "shared-link");
  runc_bundle(bundle, {(dir_.path() / "shared").string(), (dir_.path() / "shared-link").string()});
  if (HasFatalFailure()) return;
  nlohmann::json config;
  {
    std::ifstream in(bundle / "config.json");
    config = nlohmann::json::parse(in);
  }
  config["process"]["terminal"] = false;
  config["process"]["args"] = {"/bin/sh", "-c", "cat /linked/note; test -d /linked && echo dir"};
  // A source that is a link to a directory binds the directory, as mount(2) and runc do.
  config["mounts"].push_back({{"destination", "/linked"},
                              {"type", "bind"},
                              {"source", (dir_.path() / "shared-link").string()},
                              {"options", {"rbind", "ro"}}});
  // Not inheritable, so not raised; each is named once, duplicates included.
  config["process"]["capabilities"]["ambient"] = {"CAP_KILL", "CAP_KILL", "CAP_CHOWN"};
  {
    std::ofstream out(bundle / "config.json");
    out << config.dump(2);
  }
  if (rootless())
    run({"chown", std::to_string(uid_) + ":" + std::to_string(gid_),
         (bundle / "config.json").string()});
  RunResult r = layerrun({"--bundle", bundle.string()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "shared\ndir\n") << r.err;
  EXPECT_NE(r.err.find("process.capabilities.ambient CAP_KILL (not inheritable), "
                       "process.capabilities.ambient CAP_CHOWN (not inheritable)"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_P(Layerrun, InitHoldsNothingTheCommandCouldTakeOver) {
  // Even a command given CAP_SYS_PTRACE finds in pid 1 no capability but CAP_KILL and no fd
  // the caller passed in (fd 7 here).
  std::vector<std::string> args = layers();
  args.insert(args.end(), {"--cap-add", "CAP_SYS_PTRACE", "--", "/bin/sh", "-c",
                           "grep CapEff /proc/1/status; ls /proc/1/fd; ls /proc/self/fd"});
  std::string line;
  for (const std::string& a : command(args)) line += "'" + a + "' ";
  RunResult r = run({"sh", "-c", "exec 7</etc/hostname; " + line},
                    {"TMPDIR=" + (dir_.path() / "tmp").string()});
  ASSERT_EQ(r.status, 0) << r.err;
  // CAP_KILL is bit 5; ls of its own fds shows 0-2 and the one it reads the directory with.
  if (rootless()) {
    // In a user namespace the command's CAP_SYS_PTRACE does not reach a non-dumpable pid 1:
    // its fds cannot even be listed.
    EXPECT_EQ(r.out, "CapEff:\t0000000000000020\n0\n1\n2\n3\n") << r.err;
    EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << r.err;
  } else {
    EXPECT_EQ(r.out, "CapEff:\t0000000000000020\n0\n1\n2\n0\n1\n2\n3\n") << r.err;
  }
}

TEST_P(Layerrun, SignalsDuringStartUpLeaveNothingBehind) {
  // A SIGTERM at any moment of the start-up ends the container (forwarded once the init is
  // known) and leaves no cgroup, staging dir or mount (TearDown checks).
  std::vector<std::string> args = layers();
  if (!rootless()) args.insert(args.end(), {"--memory", "100MB", "--pids", "100"});
  args.insert(args.end(), {"--", "/bin/sleep", "30"});
  std::vector<std::string> argv = command(args);
  const std::string tmp = "TMPDIR=" + (dir_.path() / "tmp").string();
  for (int delay_ms : {0, 1, 2, 5, 10, 20, 40, 80, 160}) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      putenv(const_cast<char*>(tmp.c_str()));
      std::vector<char*> a;
      for (std::string& s : argv) a.push_back(s.data());
      a.push_back(nullptr);
      execvp(a[0], a.data());
      _exit(127);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    kill(pid, SIGTERM);
    int status = 0;
    pid_t got = 0;
    const auto start = std::chrono::steady_clock::now();
    while ((got = waitpid(pid, &status, WNOHANG)) == 0 &&
           std::chrono::steady_clock::now() - start < std::chrono::seconds(15)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (got == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      ADD_FAILURE() << "SIGTERM " << delay_ms << " ms after the start was lost";
      continue;
    }
    // Before layerrun set anything up the signal ends it; afterwards the command gets it.
    const bool ended = (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) ||
                       (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGTERM);
    EXPECT_TRUE(ended) << "after " << delay_ms << " ms: status " << status;
  }
}

// /etc/subuid and /etc/subgid with a range for the test user while it lives; the files are
// restored (or removed) afterwards.
class SubordinateIds {
 public:
  SubordinateIds(const std::string& line) {
    for (const char* f : {"/etc/subuid", "/etc/subgid"}) {
      std::error_code ec;
      const bool existed = fs::exists(f, ec);
      saved_.push_back({f, existed ? read_file(f) : std::optional<std::string>()});
      std::ofstream(f, std::ios::app) << line << "\n";
    }
  }
  ~SubordinateIds() {
    for (const auto& [file, content] : saved_) {
      if (content) {
        std::ofstream(file, std::ios::trunc) << *content;
      } else {
        fs::remove(file);
      }
    }
  }
  SubordinateIds(const SubordinateIds&) = delete;
  SubordinateIds& operator=(const SubordinateIds&) = delete;

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

TEST_P(Layerrun, SubordinateIdsGiveAnImageSeveralUsers) {
  if (!rootless()) GTEST_SKIP() << "subordinate ids are for ordinary users";
  if (access("/usr/bin/newuidmap", X_OK) != 0) GTEST_SKIP() << "no newuidmap (package uidmap)";
  SubordinateIds ranges(std::string(kUserName) + ":300000:65536");
  // A lower file of the image's user 1000 (host 300000 + 999: inside, 1 is the range's first).
  write_file(top_ / "owned", "x\n");
  ASSERT_EQ(lchown((top_ / "owned").c_str(), 300999, 300999), 0);
  std::vector<std::string> args = writable_layers();
  args.insert(args.end(), {"--cap-add", "CAP_CHOWN"});  // every other capability is dropped
  RunResult r = sh(args,
                   "cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //'; ls -n /owned | tr -s ' ' | "
                   "cut -d' ' -f3,4; echo hi > /mine && chown 2000:3000 /mine && echo chowned");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "0 " + std::to_string(uid_) + " 1\n1 300000 65536\n1000 1000\nchowned\n");
  struct stat st {};
  ASSERT_EQ(lstat((dir_.path() / "upper/mine").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 300000U + 1999);
  EXPECT_EQ(st.st_gid, 300000U + 2999);
}

INSTANTIATE_TEST_SUITE_P(AsRootAndRootless, Layerrun, ::testing::Values(false, true),
                         [](const auto& param) { return param.param ? "Rootless" : "Root"; });

// Limits, as root (this machine's cgroups are not delegated to ordinary users).
class LayerrunLimits : public Layerrun {
 protected:
  nlohmann::json stats() const {
    std::ifstream in(dir_.path() / "stats.json");
    return nlohmann::json::parse(in, nullptr, false);
  }
  std::string stats_file() const { return (dir_.path() / "stats.json").string(); }
};

TEST_P(LayerrunLimits, MemoryHogIsKilled) {
  if (rootless()) {
    // Rootless without a delegated cgroup: said in one line, and refused unless asked.
    RunResult r = sh({"--rootfs", base_.string(), "--memory", "100MB"}, "true");
    EXPECT_EQ(r.status, 125);
    EXPECT_NE(r.err.find("--no-limits-ok runs without the limits"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    RunResult ok = sh({"--rootfs", base_.string(), "--memory", "100MB", "--no-limits-ok"}, "true");
    EXPECT_EQ(ok.status, 0) << ok.err;
    EXPECT_NE(ok.err.find("running without limits"), std::string::npos) << ok.err;
    return;
  }
  RunResult r = layerrun({"--rootfs", base_.string(), "--memory", "100MB", "--", "/bin/dd",
                          "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1"});
  EXPECT_EQ(r.status, 137);
  EXPECT_NE(r.err.find("layerrun: out of memory (limit 100 MB)"), std::string::npos) << r.err;
  // Under the limit the same command runs.
  RunResult fits = layerrun({"--rootfs", base_.string(), "--memory", "100MB", "--", "/bin/dd",
                             "if=/dev/zero", "of=/dev/null", "bs=20M", "count=1"});
  EXPECT_EQ(fits.status, 0) << fits.err;
}

TEST_P(LayerrunLimits, ForkBombStopsAtThePidLimit) {
  if (rootless()) GTEST_SKIP() << "limits are the root run's (no delegated cgroup here)";
  // The shell's builtins count what is alive after the bomb (a fork would fail at the limit).
  RunResult r = sh({"--rootfs", base_.string(), "--pids", "64", "--stats", stats_file()},
                   "(i=0; while [ $i -lt 200 ]; do i=$((i+1)); sleep 5 & done) 2>/dev/null; "
                   "set -- /proc/[0-9]*; echo $#");
  ASSERT_EQ(r.status, 0) << r.err;
  const int alive = std::stoi(r.out);
  EXPECT_LE(alive, 64);
  EXPECT_GE(alive, 32) << "the bomb made processes up to the limit";
  const auto s = stats();
  EXPECT_GE(s["pids"]["refused"].get<int>(), 1) << s.dump();
  EXPECT_EQ(s["pids"]["limit"], 64);
}

TEST_P(LayerrunLimits, HalfACpuThrottlesABusyLoop) {
  if (rootless()) GTEST_SKIP() << "limits are the root run's (no delegated cgroup here)";
  RunResult r = layerrun({"--rootfs", base_.string(), "--cpus", "0.5", "--stats", stats_file(),
                          "--", "timeout", "2", "sh", "-c", "while :; do :; done"});
  EXPECT_EQ(r.status, 128 + SIGTERM) << r.err;
  const auto s = stats();
  const auto& cpu = s["cpu"];
  ASSERT_TRUE(cpu.is_object()) << s.dump();
  const double periods = cpu["nr_periods"].get<double>();
  ASSERT_GT(periods, 5) << s.dump();
  // The cgroup's own counters: throttled in most periods, and CPU time over the periods'
  // length about half.
  EXPECT_GE(cpu["nr_throttled"].get<double>(), periods / 2) << s.dump();
  const double share = cpu["usage_ns"].get<double>() / (periods * 100000.0 * 1000.0);
  EXPECT_LE(share, 0.6) << s.dump();
  EXPECT_GE(share, 0.25) << s.dump();
}

INSTANTIATE_TEST_SUITE_P(AsRootAndRootless, LayerrunLimits, ::testing::Values(false, true),
                         [](const auto& param) { return param.param ? "Rootless" : "Root"; });

}  // namespace
}  // namespace layerfs::test
