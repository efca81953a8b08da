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

#include "fuse/options.h"
#include "fuse/session.h"
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

int run(const Options& opts) {
  auto session = Session::prepare(opts);
  if (!session.ok()) {
    log::error("%s", session.err().message().c_str());
    return 1;
  }
  Session& s = **session;
  if (auto signals = s.handle_signals(); !signals.ok()) {
    log::error("%s", signals.err().message().c_str());
    return 1;
  }
  if (auto mounted = s.mount(); !mounted.ok()) {
    log::error("%s", mounted.err().message().c_str());
    return 1;
  }
  // The process that was started returns only now, with the mount live.
  if (!opts.foreground) fuse_daemonize(0);
  return s.serve();
}

int main_impl(int argc, char** argv) {
  log::set_program("layerfs");
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = parse_command_line(args);
  if (!parsed.ok()) {
    log::error("%s", parsed.err().message().c_str());
    return 1;
  }
  Options& opts = *parsed;
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
