#include "tools/layerrun/namespaces.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "layers/base/log.h"
#include "layers/sys/container.h"
#include "layers/sys/fs.h"
#include "layers/sys/process.h"
#include "tools/layerrun/cgroups.h"
#include "tools/layerrun/idmap.h"
#include "tools/layerrun/init.h"
#include "tools/layerrun/mounts.h"
#include "tools/layerrun/root.h"

namespace layerfs::run {
namespace {

// The container's init as the caller's pid namespace sees it, for the signal handler.
std::atomic<pid_t> g_init{0};

void forward(int sig) {
  const pid_t pid = g_init.load();
  if (pid > 0) (void)sys::send_signal(pid, sig);
}

// --die-with-parent: the caller of layerrun has died; the container ends as bwrap's does.
std::atomic<bool> g_orphaned{false};
void end_container(int) {
  g_orphaned = true;
  const pid_t pid = g_init.load();
  if (pid > 0) (void)sys::send_signal(pid, SIGKILL);
}

// Waits for the step before: true when it said go, false when its pipe closed without a word.
bool wait_for(const UniqueFd& fd) {
  char c;
  auto n = sys::read_some(fd.get(), &c, 1);
  return n.ok() && *n == 1;
}

void say_go(UniqueFd& fd) {
  (void)sys::write_all(fd.get(), "1");
  fd.reset();
}

[[noreturn]] void die(const Errno& e) {
  log::error("%s", e.message().c_str());
  _exit(kLauncherError);
}

struct Pipes {
  sys::Pipe to_monitor;    // layerrun -> monitor: the id maps are written
  sys::Pipe to_init;       // layerrun -> init: it is in the cgroup
  sys::Pipe from_monitor;  // monitor -> layerrun: the init's pid
};

[[noreturn]] void container_main(const Spec& spec, const CapabilitySets& caps,
                                 const std::string& staging, Pipes& pipes, sys::Pipe& root_ready) {
  // The monitor's death (and with it the root's daemon) ends the container.
  (void)sys::set_parent_death_signal(SIGKILL);
  // The forwarded signals stay blocked from layerrun's start: one sent now waits for the
  // init's sigwaitinfo.
  pipes.to_init.write.reset();
  pipes.from_monitor.write.reset();
  root_ready.write.reset();
  if (!wait_for(pipes.to_init.read) || !wait_for(root_ready.read)) _exit(kLauncherError);
  pipes.to_init.read.reset();
  root_ready.read.reset();
  if (spec.cgroup_ns) {
    // After the move: the container sees its own cgroup as the root.
    if (auto r = sys::unshare_namespaces(CLONE_NEWCGROUP); !r.ok()) {
      die(r.err().context("unshare cgroup namespace"));
    }
  }
  // Signals from the caller's terminal go to layerrun, which forwards them once.
  (void)sys::new_session();
  if (auto r = enter_root(spec, staging + "/root"); !r.ok()) die(r.err());
  // Nothing the caller passed in stays open in pid 1 (the command closes its own too).
  sys::close_fds_from(3);
  if (spec.uts_ns && !spec.hostname.empty()) {
    if (auto r = sys::set_hostname(spec.hostname); !r.ok()) {
      die(r.err().context("sethostname", spec.hostname));
    }
  }
  if (spec.net_ns) {
    if (auto r = sys::loopback_up(); !r.ok()) die(r.err().context("loopback up"));
  }
  _exit(run_init(spec, caps));
}

[[noreturn]] void monitor_main(const Spec& spec, const CapabilitySets& caps,
                               const std::string& staging, pid_t launcher, Pipes& pipes) {
  // Without layerrun nobody would remove the cgroup nor report the status: the monitor (and
  // with it the root's daemon and the container) does not outlive it.
  (void)sys::set_parent_death_signal(SIGKILL);
  if (sys::parent_id() != launcher) _exit(kLauncherError);
  pipes.to_monitor.write.reset();
  pipes.from_monitor.read.reset();
  if (!wait_for(pipes.to_monitor.read)) _exit(kLauncherError);
  pipes.to_monitor.read.reset();

  if (auto r = prepare_staging(staging); !r.ok()) die(r.err());
  auto root_ready = sys::make_pipe();
  if (!root_ready.ok()) die(root_ready.err().context("pipe"));
  int flags = CLONE_NEWNS | CLONE_NEWPID;
  if (spec.uts_ns) flags |= CLONE_NEWUTS;
  if (spec.ipc_ns) flags |= CLONE_NEWIPC;
  if (spec.net_ns) flags |= CLONE_NEWNET;
  auto init = sys::clone_process(flags);
  if (!init.ok()) die(init.err().context("clone the container's namespaces"));
  if (*init == 0) container_main(spec, caps, staging, pipes, *root_ready);
  // Ctrl-C reaches layerrun, which forwards it to the init: the monitor outlives the command.
  // Ignored only now, after the clone, so that the init does not inherit SIG_IGN.
  for (int s : kForwarded) signal(s, SIG_IGN);
  root_ready->read.reset();
  pipes.to_init.read.reset();
  (void)sys::write_all(pipes.from_monitor.write.get(), std::to_string(*init) + "\n");
  pipes.from_monitor.write.reset();

  std::unique_ptr<LayerRoot> layers;
  const std::string root = staging + "/root";
  auto fail = [&](const Errno& e) {
    log::error("%s", e.message().c_str());
    (void)sys::send_signal(*init, SIGKILL);
    (void)sys::wait_child(*init);
    _exit(kLauncherError);
  };
  if (!spec.lowers.empty()) {
    auto started = LayerRoot::start(spec, root);
    if (!started.ok()) fail(started.err());
    layers = std::move(*started);
  } else if (auto r = bind_root(spec.rootfs, root); !r.ok()) {
    fail(r.err());
  }
  say_go(root_ready->write);
  auto ended = sys::wait_child(*init);
  layers.reset();
  _exit(ended.ok() ? exit_code(ended->status) : kLauncherError);
}

std::string staging_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string path =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/layerrun.XXXXXX";
  if (mkdtemp(path.data()) == nullptr) return {};
  return path;
}

}  // namespace

int launch(const Spec& spec, const CapabilitySets& caps) {
  // A signal that arrives during the set-up waits until the init is known, and then goes to
  // it; it neither is lost nor ends layerrun before the cgroup and staging dir are removed.
  sigset_t forwarded;
  sigemptyset(&forwarded);
  for (int s : kForwarded) sigaddset(&forwarded, s);
  sigprocmask(SIG_BLOCK, &forwarded, nullptr);
  struct sigaction sa {};
  sa.sa_handler = forward;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int s : kForwarded) sigaction(s, &sa, nullptr);

  std::unique_ptr<Cgroup> cgroup;
  if (spec.limits.any() || !spec.stats_file.empty()) {
    auto made = Cgroup::create(spec.limits, !spec.stats_file.empty(),
                               "layerrun-" + std::to_string(sys::process_id()));
    if (made.ok()) {
      cgroup = std::move(*made);
    } else if (spec.no_limits_ok) {
      log::warn("%s; running without limits (--no-limits-ok)", made.err().message().c_str());
    } else {
      log::error("%s", made.err().message().c_str());
      return kLauncherError;
    }
  }
  const std::string staging = staging_dir();
  if (staging.empty()) {
    log::error("mkdtemp: %s", strerror(errno));
    return kLauncherError;
  }
  auto remove_staging = [&] { (void)sys::unlink_at(kCwd, staging.c_str(), AT_REMOVEDIR); };

  Pipes pipes;
  for (sys::Pipe* p : {&pipes.to_monitor, &pipes.to_init, &pipes.from_monitor}) {
    auto made = sys::make_pipe();
    if (!made.ok()) {
      log::error("pipe: %s", made.err().message().c_str());
      remove_staging();
      return kLauncherError;
    }
    *p = std::move(*made);
  }
  const pid_t launcher = sys::process_id();
  std::fflush(nullptr);
  auto monitor = sys::clone_process(CLONE_NEWNS | (spec.user_ns ? CLONE_NEWUSER : 0));
  if (!monitor.ok()) {
    log::error("%s", monitor.err()
                         .context(spec.user_ns ? "clone a user and mount namespace"
                                               : "clone a mount namespace")
                         .message()
                         .c_str());
    remove_staging();
    return kLauncherError;
  }
  if (*monitor == 0) monitor_main(spec, caps, staging, launcher, pipes);
  pipes.to_monitor.read.reset();
  pipes.to_init.read.reset();
  pipes.from_monitor.write.reset();

  auto give_up = [&](const Errno& e) {
    log::error("%s", e.message().c_str());
    (void)sys::send_signal(*monitor, SIGKILL);
    (void)sys::wait_child(*monitor);
    remove_staging();
    return kLauncherError;
  };
  if (spec.user_ns) {
    if (auto r = write_id_maps(*monitor, spec); !r.ok()) return give_up(r.err());
  }
  if (spec.die_with_parent) {
    // A signal of its own, so that layerrun still removes the cgroup and reports.
    const pid_t caller = spec.caller;
    struct sigaction end {};
    end.sa_handler = end_container;
    end.sa_flags = SA_RESTART;
    sigemptyset(&end.sa_mask);
    sigaction(SIGRTMIN, &end, nullptr);
    if (auto r = sys::set_parent_death_signal(SIGRTMIN); !r.ok()) {
      return give_up(r.err().context("PR_SET_PDEATHSIG"));
    }
    if (sys::parent_id() != caller) end_container(0);
  }
  say_go(pipes.to_monitor.write);

  std::string init_pid;
  char buf[32];
  for (;;) {
    auto n = sys::read_some(pipes.from_monitor.read.get(), buf, sizeof buf);
    if (!n.ok() || *n == 0) break;
    init_pid.append(buf, *n);
    if (init_pid.back() == '\n') break;
  }
  pipes.from_monitor.read.reset();
  if (!init_pid.empty()) {
    const pid_t init = static_cast<pid_t>(std::stol(init_pid));
    if (cgroup) {
      if (auto r = cgroup->attach(init); !r.ok()) return give_up(r.err());
    }
    g_init = init;
    if (g_orphaned) end_container(0);  // the caller died before the init was known
    say_go(pipes.to_init.write);
  }
  pipes.to_init.write.reset();
  // Any signal that came during the set-up is forwarded now.
  sigprocmask(SIG_UNBLOCK, &forwarded, nullptr);

  auto ended = sys::wait_child(*monitor);
  g_init = 0;
  int code = ended.ok() ? exit_code(ended->status) : kLauncherError;
  if (cgroup) {
    if (cgroup->oom_kills() > 0) {
      log::error("out of memory (limit %s)",
                 spec.limits.memory ? format_bytes(*spec.limits.memory).c_str() : "none");
    }
    if (!spec.stats_file.empty()) {
      std::ofstream out(spec.stats_file);
      out << cgroup->stats().dump(2) << "\n";
      if (!out) log::warn("stats '%s': cannot write", spec.stats_file.c_str());
    }
    cgroup.reset();
  }
  remove_staging();
  return code;
}

}  // namespace layerfs::run
