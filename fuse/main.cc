// layerfs: mounts a union of read-only layers with FUSE. See fuse/options.h for the command
// line. The process that was started returns only once the mount is live (container engines
// rely on it): the mount is made before daemonizing, and the parent exits after it.
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "fuse/daemon.h"
#include "fuse/options.h"
#include "layers/acl.h"
#include "layers/base/log.h"
#include "layers/sys/fs.h"
#include "layers/sys/process.h"
#include "layers/sys/xattr.h"
#include "layers/whiteout.h"

#ifndef LAYERFS_VERSION
#define LAYERFS_VERSION "0.0.0"
#endif

namespace layerfs {
namespace {

constexpr const char* kUsage =
    "usage: layerfs [-f] [-d] [-o OPT[,OPT]...]... [SOURCE] MOUNTPOINT\n"
    "\n"
    "Mounts the union of read-only lower directories at MOUNTPOINT, writable with an upper.\n"
    "\n"
    "  -f                    stay in the foreground\n"
    "  -d, --debug           print every FUSE request (implies -f)\n"
    "  -s                    single-threaded (same as -o threaded=0)\n"
    "  -o lowerdir=A:B:C     lower directories, top first; '\\:' escapes a colon in a path\n"
    "  -o upperdir=U,workdir=W   write changes to U (W: scratch space on the same filesystem)\n"
    "  -o fsync=0, volatile  copy-ups are not made durable\n"
    "  -o noacl              no POSIX ACLs\n"
    "  -o uidmapping=DISK:SHOWN:COUNT[:...], gidmapping=...   ids on disk <-> ids shown\n"
    "  -o squash_to_root, squash_to_uid=N, squash_to_gid=N    show every object owned so\n"
    "  -o static_nlink       directories report one link\n"
    "  -o timeout=SECONDS    how long the kernel caches entries and attributes (default 1e6)\n"
    "  -o threaded=0|1       serve requests from one thread or many (default 1)\n"
    "  -o max_threads=N      most worker threads\n"
    "  -o allow_other, default_permissions, ro, nodev, nosuid, noexec, noatime, fsname=,\n"
    "     subtype=, context=, ...   passed to the kernel mount\n"
    "  -h, --help            this text\n"
    "  -V, --version         the version\n"
    "\n"
    "Unmount with `fusermount3 -u MOUNTPOINT` (or umount as root), or send SIGTERM.\n";

// Fds a request may open for a while (a copy being merged, a directory being read, a file).
constexpr int64_t kFdsInFlight = 8;
// libfuse's default number of worker threads.
constexpr int kDefaultWorkers = 10;

int run(const Options& opts) {
  for (const auto& w : opts.warnings) log::warn("%s", w.c_str());

  // Xattrs (and so opaque dirs and xattr whiteouts) are read through /proc/self/fd.
  if (!sys::path_exists("/proc/self/fd")) {
    log::error("/proc/self/fd: %s (layerfs needs /proc mounted)", strerror(errno));
    return 1;
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
  if (!opened.ok()) {
    log::error("%s", opened.err().message().c_str());
    return 1;
  }
  auto stack = std::move(*opened);

  auto real = sys::real_path(opts.mountpoint.c_str());
  if (!real.ok()) {
    log::error("mountpoint '%s': %s", opts.mountpoint.c_str(), real.err().message().c_str());
    return 1;
  }
  const std::string mountpoint = std::move(*real);
  auto mst = sys::stat_at(AT_FDCWD, mountpoint.c_str());
  if (!mst.ok()) {
    log::error("mountpoint '%s': %s", opts.mountpoint.c_str(), mst.err().message().c_str());
    return 1;
  }
  if (!S_ISDIR(mst->st_mode)) {
    log::error("mountpoint '%s': %s", opts.mountpoint.c_str(), strerror(ENOTDIR));
    return 1;
  }
  // A mount point inside a layer: the daemon would meet its own mount when it looks there and
  // wait for itself. A private clone of the layer's mount does not show it; without one (an
  // ordinary user outside a user namespace cannot make one, nor can the upper have one, which
  // must share its mount with the work dir), the mount is refused.
  if (auto mfd = sys::open_at(AT_FDCWD, mountpoint.c_str(), O_PATH | O_DIRECTORY); mfd.ok()) {
    if (auto in = stack->containing(mfd->get()); in && !stack->layer(*in).private_mount) {
      log::error("mountpoint '%s': inside %s '%s', which layerfs cannot see past its own mount %s",
                 opts.mountpoint.c_str(), roles[*in].c_str(), layer_paths[*in].c_str(),
                 *in == 0 && !opts.upperdir.empty()
                     ? "(an upper is used as it is)"
                     : "without CAP_SYS_ADMIN (run as root or in a user namespace)");
      return 1;
    }
  }

  std::unique_ptr<Upper> upper;
  if (!opts.upperdir.empty()) {
    auto u = Upper::open(opts.upperdir, opts.workdir, opts.device_whiteouts);
    if (!u.ok()) {
      log::error("%s", u.err().message().c_str());
      return 1;
    }
    upper = std::move(*u);
  }

  // The fds of directory copies are cached within what the limit leaves beside what is open
  // now (the layer roots, held for as long as the mount lives), open files, requests in flight
  // and each worker's splice pipe. Where the layers leave little (1,000 layers under
  // `ulimit -n 1024`), fewer workers serve.
  const int64_t spare =
      static_cast<int64_t>(fd_limit) - static_cast<int64_t>(sys::count_open_fds()) - kFdsInFlight;
  const int64_t wanted_workers = opts.max_threads > 0 ? opts.max_threads : kDefaultWorkers;
  const int64_t workers = std::clamp<int64_t>((spare - 8) / 2, 1, wanted_workers);
  DirFds dir_fds(static_cast<size_t>(std::clamp<int64_t>((spare - 2 * workers) / 2, 2, 8192)));
  Inode::dir_fds = &dir_fds;

  // The root merges every layer's root (kernel overlayfs ignores opaque marks on layer roots),
  // with the layers' own fds.
  std::vector<DirRef> roots;
  for (size_t i = 0; i < stack->size(); ++i) {
    const Layer& layer = stack->layer(i);
    auto marks = Whiteout::dir_marks(layer.root.get());
    if (!marks.ok()) {
      log::error("%s '%s': %s", roles[i].c_str(), layer.path.c_str(), strerror(marks.error()));
      if (upper) upper->abandon();
      return 1;
    }
    roots.push_back(DirRef{static_cast<uint32_t>(i), layer.root.get(), marks->xwhiteouts, layer.dev,
                           layer.ino});
  }
  {
    std::vector<int> root_fds;
    for (const DirRef& r : roots) root_fds.push_back(r.fd);
    dir_fds.set_roots(std::move(root_fds));
  }
  auto root_st = sys::stat_fd(stack->layer(0).root.get());
  if (!root_st.ok()) {
    log::error("'%s': %s", stack->layer(0).path.c_str(), strerror(root_st.error()));
    if (upper) upper->abandon();
    return 1;
  }
  const uint64_t root_ino = stack->map_ino(0, root_st->st_ino);
  auto root =
      std::make_shared<Inode>(InodeKey{root_st->st_dev, root_st->st_ino}, S_IFDIR, root_ino);
  root->init_location(nullptr, "", 0, roots);

  // New objects get exactly the mode computed for them (the kernel applied the caller's umask,
  // or, with ACLs, the daemon does).
  sys::set_umask(0);

  Daemon daemon;
  daemon.stack = stack;
  daemon.upper = std::move(upper);
  daemon.table = std::make_unique<InodeTable>(root);
  daemon.cache = CachePolicy{opts.timeout, opts.timeout, true, true};
  daemon.fsync_copy_up = opts.fsync;
  daemon.view.uid_map = opts.uid_map;
  daemon.view.gid_map = opts.gid_map;
  daemon.view.squash_uid = opts.squash_uid;
  daemon.view.squash_gid = opts.squash_gid;
  daemon.view.static_nlink = opts.static_nlink;
  // As kernel overlayfs: with userxattr, redirects are neither written nor followed unless
  // asked for.
  const bool user_xattrs =
      daemon.upper ? daemon.upper->xattr_prefix() == "user.overlay." : !sys::running_as_root();
  if (user_xattrs && (opts.redirect_dir == "on" || opts.redirect_dir == "follow")) {
    // What kernel overlayfs says to userxattr with redirects: an upper written so could not
    // be mounted by it.
    log::error(
        "redirect_dir=%s: needs trusted.* xattrs (run as root); with user.overlay.* "
        "ones, as kernel overlayfs with userxattr, redirects are neither written nor "
        "followed",
        opts.redirect_dir.c_str());
    if (daemon.upper) daemon.upper->abandon();
    return 1;
  }
  daemon.write_redirects = opts.redirect_dir == "on";
  daemon.follow_redirects = opts.redirect_dir == "on" || opts.redirect_dir == "follow" ||
                            (opts.redirect_dir == "off" && !user_xattrs);
  daemon.roots = roots;
  if (opts.xattr_permissions != XattrPermissions::kOff) {
    daemon.view.override_xattr = opts.xattr_permissions == XattrPermissions::kPrivileged
                                     ? StatOverride::kPrivileged
                                     : StatOverride::kUser;
  }
  for (size_t i = 0; i < stack->size(); ++i) {
    if (sys::get_xattr(stack->layer(i).root.get(), StatOverride::kContainers, nullptr, 0).ok()) {
      daemon.view.containers_overrides = true;
    }
  }
  // ACLs where the filesystem the mount writes to (or, read-only, the top layer) has them.
  if (opts.acl) {
    auto probe = sys::get_xattr(stack->layer(0).root.get(), acl::kAccess, nullptr, 0);
    daemon.acl_wanted = probe.ok() || probe.error() == ENODATA;
  }

  std::vector<std::string> warnings;
  const MountEnvironment env{.root = sys::running_as_root(),
                             .selinux = sys::path_exists("/sys/fs/selinux/enforce"),
                             .read_only = !daemon.writable()};
  std::vector<std::string> fuse_opts = kernel_mount_options(opts, env, &warnings);
  for (const auto& w : warnings) log::warn("%s", w.c_str());

  std::string joined = join_fuse_options(fuse_opts);
  std::vector<const char*> argv = {"layerfs", "-o", joined.c_str()};
  if (opts.debug) argv.push_back("-d");
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), const_cast<char**>(argv.data()));

  fuse_lowlevel_ops ops = make_ops();
  fuse_session* se = fuse_session_new(&args, &ops, sizeof ops, &daemon);
  if (se == nullptr) {
    log::error("cannot start a FUSE session (options: %s)", joined.c_str());
    fuse_opt_free_args(&args);
    return 1;
  }
  daemon.session = se;
  int status = 1;
  if (fuse_set_signal_handlers(se) != 0) {
    log::error("cannot install signal handlers");
  } else if (fuse_session_mount(se, mountpoint.c_str()) != 0) {
    // libfuse has printed the kernel's or fusermount3's reason.
    log::error("mountpoint '%s': mount failed (options: %s)", opts.mountpoint.c_str(),
               joined.c_str());
    if (daemon.upper) daemon.upper->abandon();
  } else {
    if (!opts.foreground) fuse_daemonize(0);
    if (opts.threaded) {
      fuse_loop_config* cfg = fuse_loop_cfg_create();
      fuse_loop_cfg_set_max_threads(cfg, static_cast<unsigned>(workers));
      // The loops return a negative errno on failure and the number of the signal that ended
      // them (SIGTERM, SIGINT, SIGHUP) on a requested stop, which is a clean exit.
      status = fuse_session_loop_mt(se, cfg) < 0 ? 1 : 0;
      fuse_loop_cfg_destroy(cfg);
    } else {
      status = fuse_session_loop(se) < 0 ? 1 : 0;
    }
    fuse_session_unmount(se);
  }
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  fuse_opt_free_args(&args);
  return status;
}

int main_impl(int argc, char** argv) {
  log::set_program("layerfs");
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = parse_command_line(args);
  if (auto* e = std::get_if<ParseError>(&parsed)) {
    log::error("%s", e->message.c_str());
    return 1;
  }
  Options& opts = std::get<Options>(parsed);
  // fuse-overlayfs's switch for uppers whose readers only know ".wh." whiteouts.
  if (getenv("FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT") != nullptr) opts.device_whiteouts = false;
  if (opts.help) {
    fputs(kUsage, stdout);
    return 0;
  }
  if (opts.version) {
    printf("layerfs: version %s\nFUSE library version %s\n", LAYERFS_VERSION, fuse_pkgversion());
    return 0;
  }
  return run(opts);
}

}  // namespace
}  // namespace layerfs

int main(int argc, char** argv) {
  try {
    return layerfs::main_impl(argc, argv);
  } catch (const std::exception& e) {
    // Allocation failure while starting up; inside the request loop it would terminate.
    layerfs::log::error("%s", e.what());
    return 1;
  }
}
