#include "tools/layerrun/init.h"

#include <signal.h>
#include <sys/capability.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "layers/sys/container.h"

namespace layerfs::run {
namespace {

sigset_t init_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : kForwarded) sigaddset(&set, s);
  sigaddset(&set, SIGCHLD);
  return set;
}

std::string env_path(const std::vector<std::string>& env) {
  for (const std::string& e : env) {
    if (e.rfind("PATH=", 0) == 0) return e.substr(5);
  }
  return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}

void say_go_to(UniqueFd& fd) {
  (void)sys::write_all(fd.get(), "1");
  fd.reset();
}

// In the command's process: tells the init why it will not exec, and ends.
[[noreturn]] void fail(BorrowedFd report, int code, const std::string& message) {
  (void)sys::write_all(report, std::to_string(code) + " " + message);
  _exit(code);
}

[[noreturn]] void start_command(const Spec& spec, const CapabilitySets& caps, BorrowedFd report,
                                UniqueFd go) {
  // Not before pid 1 has given up its capabilities (see run_init).
  char c;
  auto said = sys::read_some(go.get(), &c, 1);
  if (!said.ok() || *said != 1) _exit(kLauncherError);
  go.reset();
  // The init's blocked signals and the monitor's ignored ones are not the command's.
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_UNBLOCK, &all, nullptr);
  for (int s = 1; s < NSIG; ++s) {
    if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);
  }
  // A session of its own: no controlling terminal, so no TIOCSTI into the caller's.
  if (auto r = sys::new_session(); !r.ok())
    fail(report, kLauncherError, "setsid: " + r.err().message());
  for (const Rlimit& l : spec.rlimits) {
    if (auto r = sys::set_resource_limit(l.resource, l.soft, l.hard); !r.ok()) {
      fail(report, kLauncherError,
           "setrlimit " + std::to_string(l.resource) + ": " + r.err().message());
    }
  }
  if (auto r = drop_bounding_set(caps); !r.ok()) fail(report, kLauncherError, r.err().message());
  if (spec.uid != 0) {
    if (auto r = sys::set_keep_capabilities(true); !r.ok()) {
      fail(report, kLauncherError, "PR_SET_KEEPCAPS: " + r.err().message());
    }
  }
  if (auto r = sys::set_identity(spec.uid, spec.gid, spec.groups); !r.ok()) {
    fail(report, kLauncherError,
         "user " + std::to_string(spec.uid) + ":" + std::to_string(spec.gid) + ": " +
             r.err().message() +
             (r.error() == EINVAL ? " (not mapped in the container's user namespace)" : ""));
  }
  if (auto r = apply_capabilities(caps); !r.ok()) fail(report, kLauncherError, r.err().message());
  if (spec.no_new_privileges) {
    if (auto r = sys::set_no_new_privs(); !r.ok()) {
      fail(report, kLauncherError, "PR_SET_NO_NEW_PRIVS: " + r.err().message());
    }
  }
  if (auto r = sys::change_dir(spec.cwd.c_str()); !r.ok()) {
    fail(report, kLauncherError, "cwd '" + spec.cwd + "': " + r.err().message());
  }
  sys::close_fds_from(3, {report.raw()});
  Errno e = sys::exec_program(spec.args[0], spec.args, spec.env, env_path(spec.env));
  fail(report, e.code == ENOENT ? kNotFound : kCannotExecute,
       "exec '" + spec.args[0] + "': " + e.message());
}

}  // namespace

int exit_code(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return kLauncherError;
}

int run_init(const Spec& spec, const CapabilitySets& caps) {
  const sigset_t set = init_signals();
  sigprocmask(SIG_BLOCK, &set, nullptr);
  auto report = sys::make_pipe();
  auto go = sys::make_pipe();
  if (!report.ok() || !go.ok()) {
    std::fprintf(stderr, "layerrun: pipe: %s\n",
                 (report.ok() ? go : report).err().message().c_str());
    return kLauncherError;
  }
  auto child = sys::fork_process();
  if (!child.ok()) {
    std::fprintf(stderr, "layerrun: fork the command: %s\n", child.err().message().c_str());
    return kLauncherError;
  }
  if (*child == 0) {
    report->read.reset();
    go->write.reset();
    start_command(spec, caps, report->write.get(), std::move(go->read));
  }
  const pid_t command = *child;
  report->write.reset();
  go->read.reset();
  // pid 1 only waits and forwards signals (CAP_KILL, for a command of another uid), and is not
  // dumpable: a command given CAP_SYS_PTRACE finds nothing in it to take over.
  const CapabilitySets init_caps{{}, {CAP_KILL}, {CAP_KILL}, {}, {}};
  Result<void> dropped = apply_capabilities(init_caps);
  if (dropped.ok()) dropped = sys::set_dumpable(false);
  if (!dropped.ok()) {
    std::fprintf(stderr, "layerrun: init: %s\n", dropped.err().message().c_str());
    (void)sys::send_signal(command, SIGKILL);
    (void)sys::wait_child(command);
    return kLauncherError;
  }
  say_go_to(go->write);
  // The report pipe closes on exec: an empty read means the command is running.
  std::string why;
  char buf[512];
  for (;;) {
    auto n = sys::read_some(report->read.get(), buf, sizeof buf);
    if (!n.ok() || *n == 0) break;
    why.append(buf, *n);
  }
  report->read.reset();

  int status = 0;
  bool ended = false;
  while (!ended) {
    siginfo_t info{};
    if (sigwaitinfo(&set, &info) < 0) continue;
    if (info.si_signo != SIGCHLD) {
      (void)sys::send_signal(command, info.si_signo);
      continue;
    }
    // One SIGCHLD may stand for several children: reap until none is left to reap.
    for (;;) {
      auto got = sys::wait_child(-1, WNOHANG);
      if (!got.ok() || got->pid == 0) break;
      if (got->pid == command) {
        status = got->status;
        ended = true;
      }
    }
  }
  if (!why.empty()) {
    const size_t space = why.find(' ');
    std::fprintf(stderr, "layerrun: %s\n", why.substr(space + 1).c_str());
    return std::atoi(why.c_str());
  }
  return exit_code(status);
}

}  // namespace layerfs::run
