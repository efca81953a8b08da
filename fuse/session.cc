#include "fuse/session.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "layers/acl.h"
#include "layers/base/log.h"
#include "layers/sys/fs.h"
#include "layers/sys/mount.h"
#include "layers/sys/process.h"
#include "layers/sys/xattr.h"
#include "layers/whiteout.h"

namespace layerfs {
namespace {

// Fds a request may open for a while (a copy being merged, a directory being read, a file).
constexpr int64_t kFdsInFlight = 8;
// libfuse's default number of worker threads.
constexpr int kDefaultWorkers = 10;

[[gnu::format(printf, 2, 3)]] Errno refused(int code, const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return failure(code, buf);
}

}  // namespace

Result<std::unique_ptr<Session>> Session::prepare(const Options& opts) {
  for (const auto& w : opts.warnings) log::warn("%s", w.c_str());
  std::unique_ptr<Session> s(new Session());
  s->opts_ = opts;

  // Xattrs (and so opaque dirs and xattr whiteouts) are read through /proc/self/fd.
  if (!sys::path_exists("/proc/self/fd")) {
    return refused(ENOENT, "/proc/self/fd: %s (layerfs needs /proc mounted)", strerror(errno));
  }
  // Before the layers are opened: a thousand of them need more than a default soft limit.
  const uint64_t fd_limit = sys::raise_fd_limit();

  // Everything is checked before anything is made: a mount that fails changes nothing on disk.
  std::vector<std::string> layer_paths = opts.lowerdirs;
  std::vector<std::string> roles(layer_paths.size(), "lowerdir");
  if (!opts.upperdir.empty()) {
    layer_paths.insert(layer_paths.begin(), opts.upperdir);
    roles.insert(roles.begin(), "upperdir");
  }
  auto opened = LayerStack::open(layer_paths, roles, opts.upperdir.empty() ? 0 : 1);
  if (!opened.ok()) return opened.err();
  std::shared_ptr<const LayerStack> stack = std::move(*opened);

  auto real = sys::real_path(opts.mountpoint.c_str());
  if (!real.ok()) return real.err().context("mountpoint", opts.mountpoint);
  s->mountpoint_ = std::move(*real);
  auto mst = sys::stat_at(kCwd, s->mountpoint_.c_str());
  if (!mst.ok()) return mst.err().context("mountpoint", opts.mountpoint);
  if (!S_ISDIR(mst->st_mode)) return Errno{ENOTDIR}.context("mountpoint", opts.mountpoint);
  // A mount point inside a layer: the daemon would meet its own mount when it looks there and
  // wait for itself. A private clone of the layer's mount does not show it; without one (an
  // ordinary user outside a user namespace cannot make one, nor can the upper have one, which
  // must share its mount with the work dir), the mount is refused.
  if (auto mfd = sys::open_at(kCwd, s->mountpoint_.c_str(), O_PATH | O_DIRECTORY); mfd.ok()) {
    if (auto in = stack->containing(mfd->get()); in && !stack->layer(*in).private_mount) {
      return refused(EDEADLK,
                     "mountpoint '%s': inside %s '%s', which layerfs cannot see past its own "
                     "mount %s",
                     opts.mountpoint.c_str(), roles[*in].c_str(), layer_paths[*in].c_str(),
                     *in == 0 && !opts.upperdir.empty()
                         ? "(an upper is used as it is)"
                         : "without CAP_SYS_ADMIN (run as root or in a user namespace)");
    }
  }

  std::unique_ptr<Upper> upper;
  if (!opts.upperdir.empty()) {
    auto u = Upper::open(opts.upperdir, opts.workdir, opts.device_whiteouts);
    if (!u.ok()) return u.err();
    upper = std::move(*u);
  }
  // From here on a failure removes the work dir the upper's opening made.
  Upper* made = upper.get();
  auto fail = [made](Errno e) -> Result<std::unique_ptr<Session>> {
    if (made != nullptr) made->abandon();
    return e;
  };

  // As kernel overlayfs: with userxattr, redirects are neither written nor followed, nor may
  // they be asked for.
  const bool user_xattrs =
      upper ? upper->xattr_prefix() == "user.overlay." : !sys::running_as_root();
  if (user_xattrs && (opts.redirect_dir == "on" || opts.redirect_dir == "follow")) {
    return fail(refused(EINVAL,
                        "redirect_dir=%s: needs trusted.* xattrs (run as root); with "
                        "user.overlay.* ones, as kernel overlayfs with userxattr, redirects are "
                        "neither written nor followed",
                        opts.redirect_dir.c_str()));
  }

  // The fds of directory copies are cached within what the limit leaves beside what is open
  // now (the layer roots, held for as long as the mount lives), open files, requests in flight
  // and each worker's splice pipe. Where the layers leave little (1,000 layers under
  // `ulimit -n 1024`), fewer workers serve.
  const int64_t spare =
      static_cast<int64_t>(fd_limit) - static_cast<int64_t>(sys::count_open_fds()) - kFdsInFlight;
  const int64_t wanted_workers = opts.max_threads > 0 ? opts.max_threads : kDefaultWorkers;
  s->workers_ = std::clamp<int64_t>((spare - 8) / 2, 1, wanted_workers);
  s->dir_fds_ = std::make_unique<DirFds>(
      static_cast<size_t>(std::clamp<int64_t>((spare - 2 * s->workers_) / 2, 2, 8192)));
  Inode::dir_fds = s->dir_fds_.get();

  // The root merges every layer's root (kernel overlayfs ignores opaque marks on layer roots),
  // with the layers' own fds.
  std::vector<DirRef> roots;
  std::vector<BorrowedFd> root_fds;
  for (size_t i = 0; i < stack->size(); ++i) {
    const Layer& layer = stack->layer(i);
    auto marks = Whiteout::dir_marks(layer.root.get());
    if (!marks.ok()) return fail(marks.err().context(roles[i], layer.path));
    roots.push_back(DirRef{static_cast<uint32_t>(i), layer.root.get(), marks->xwhiteouts, layer.dev,
                           layer.ino});
    root_fds.push_back(layer.root.get());
  }
  s->dir_fds_->set_roots(std::move(root_fds));
  auto root_st = sys::stat_fd(stack->layer(0).root.get());
  if (!root_st.ok()) return fail(root_st.err().context(roles[0], layer_paths[0]));
  auto root = std::make_shared<Inode>(InodeKey{root_st->st_dev, root_st->st_ino}, S_IFDIR,
                                      stack->map_ino(0, root_st->st_ino));
  root->init_location(nullptr, "", 0, roots);

  MountConfig config;
  config.stack = stack;
  config.cache = CachePolicy{opts.timeout, opts.timeout, true, true};
  config.fsync_copy_up = opts.fsync;
  config.writeback_wanted = opts.writeback;
  config.view.uid_map = opts.uid_map;
  config.view.gid_map = opts.gid_map;
  config.view.squash_uid = opts.squash_uid;
  config.view.squash_gid = opts.squash_gid;
  config.view.static_nlink = opts.static_nlink;
  config.write_redirects = opts.redirect_dir == "on";
  config.follow_redirects = opts.redirect_dir == "on" || opts.redirect_dir == "follow" ||
                            (opts.redirect_dir == "off" && !user_xattrs);
  config.roots = roots;
  auto answer = [&](const char* key, const std::string& path) {
    auto full = sys::real_path(path.c_str());
    config.layers_answer += std::string(key) + "=" + (full.ok() ? *full : path);
    config.layers_answer += '\0';
  };
  if (!opts.upperdir.empty()) {
    answer("upperdir", opts.upperdir);
    answer("workdir", opts.workdir);
  }
  for (const std::string& lower : opts.lowerdirs) answer("lowerdir", lower);
  if (opts.xattr_permissions != XattrPermissions::kOff) {
    config.view.override_xattr = opts.xattr_permissions == XattrPermissions::kPrivileged
                                     ? StatOverride::kPrivileged
                                     : StatOverride::kUser;
  }
  for (size_t i = 0; i < stack->size(); ++i) {
    if (sys::get_xattr(stack->layer(i).root.get(), StatOverride::kContainers, nullptr, 0).ok()) {
      config.view.containers_overrides = true;
    }
  }
  // ACLs where the filesystem the mount writes to (or, read-only, the top layer) has them.
  if (opts.acl) {
    auto probe = sys::get_xattr(stack->layer(0).root.get(), acl::kAccess, nullptr, 0);
    config.acl_wanted = probe.ok() || probe.error() == ENODATA;
  }
  auto daemon = std::make_unique<Daemon>(std::move(config), std::move(upper), std::move(root));
  const Daemon& d = *daemon;

  std::vector<std::string> warnings;
  const MountEnvironment env{.root = sys::running_as_root(),
                             .selinux = sys::path_exists("/sys/fs/selinux/enforce"),
                             .read_only = !d.writable()};
  const std::vector<std::string> fuse_opts = kernel_mount_options(opts, env, &warnings);
  for (const auto& w : warnings) log::warn("%s", w.c_str());
  s->fuse_argv_ = {"layerfs", "-o", join_fuse_options(fuse_opts)};
  if (opts.debug) s->fuse_argv_.push_back("-d");
  std::vector<char*> argv;
  for (std::string& a : s->fuse_argv_) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  const fuse_lowlevel_ops ops = make_ops();
  s->se_ = fuse_session_new(&args, &ops, sizeof ops, daemon.get());
  fuse_opt_free_args(&args);
  if (s->se_ == nullptr) {
    return fail(
        refused(EINVAL, "cannot start a FUSE session (options: %s)", s->fuse_argv_[2].c_str()));
  }
  daemon->session = s->se_;
  s->daemon_ = std::move(daemon);
  return s;
}

Result<void> Session::mount() {
  // New objects get exactly the mode computed for them (the kernel applied the caller's umask,
  // or, with ACLs, the daemon does).
  sys::set_umask(0);
  if (daemon_->upper) daemon_->upper->creates_under_zero_umask();
  const std::string& joined = fuse_argv_[2];
  if (fuse_session_mount(se_, mountpoint_.c_str()) != 0) {
    // libfuse has printed the kernel's or fusermount3's reason.
    if (daemon_->upper) daemon_->upper->abandon();
    return refused(EIO, "mountpoint '%s': mount failed (options: %s)", opts_.mountpoint.c_str(),
                   joined.c_str());
  }
  mounted_ = true;
  // The device traffic goes through the daemon's own io: it counts requests and asks for
  // passthrough at FUSE_INIT, which only a daemon that may register backing files does (the
  // mount's stack depth grows with it).
  const int dev = fuse_session_fd(se_);
  if (fuse_session_custom_io(se_, &Passthrough::kDeviceIo, dev) == 0) {
    daemon_->passthrough.set_device(BorrowedFd(dev));
    daemon_->passthrough.want(opts_.passthrough != Options::PassthroughMode::kOff &&
                                  sys::admin_of_initial_user_namespace(),
                              opts_.passthrough == Options::PassthroughMode::kAll);
  }
  return {};
}

Result<void> Session::handle_signals() {
  if (fuse_set_signal_handlers(se_) != 0) return failure(EINVAL, "cannot install signal handlers");
  signals_ = true;
  return {};
}

int Session::serve() {
  if (se_ == nullptr || !mounted_) return 1;
  int status;
  if (opts_.threaded) {
    fuse_loop_config* cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(cfg, static_cast<unsigned>(workers_));
    // The loops return a negative errno on failure and the number of the signal that ended
    // them (SIGTERM, SIGINT, SIGHUP) on a requested stop, which is a clean exit.
    status = fuse_session_loop_mt(se_, cfg) < 0 ? 1 : 0;
    fuse_loop_cfg_destroy(cfg);
  } else {
    status = fuse_session_loop(se_) < 0 ? 1 : 0;
  }
  return status;
}

void Session::stop() {
  if (se_ == nullptr) return;
  fuse_session_exit(se_);
  // The workers wait in a read of /dev/fuse: detaching the mount ends the connection, and the
  // reads with it. The fd stays open until serve() has returned (the destructor closes it).
  if (mounted_) (void)sys::detach_mount(mountpoint_.c_str());
}

Session::~Session() {
  if (se_ != nullptr) {
    if (mounted_.exchange(false)) fuse_session_unmount(se_);
    if (signals_) fuse_remove_signal_handlers(se_);
    fuse_session_destroy(se_);
  }
  if (Inode::dir_fds == dir_fds_.get()) Inode::dir_fds = nullptr;
}

}  // namespace layerfs
