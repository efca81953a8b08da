// The daemon's command line, a drop-in for fuse-overlayfs:
//   layerfs [-f] [-d] [-o OPT[,OPT]...]... [SOURCE] MOUNTPOINT
// `-o` may repeat and may come before or after the positional arguments (mount.fuse3 puts it
// last). Inside an option list a backslash escapes the next character and double quotes protect
// commas (SELinux context= values). In lowerdir= an escaped colon belongs to a path.
// Unknown options produce a warning and are otherwise ignored, as fuse-overlayfs does.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "layers/base/result.h"
#include "layers/idmap.h"

namespace layerfs {

// xattr_permissions=: where owner and mode are kept, for a daemon that cannot chown.
enum class XattrPermissions {
  kOff,         // 0: on the files themselves
  kPrivileged,  // 1: security.fuseoverlayfs.override_stat
  kUser,        // 2: user.fuseoverlayfs.override_stat
};

struct Options {
  std::vector<std::string> lowerdirs;  // top first
  std::string upperdir;
  std::string workdir;
  std::string source;   // mount source, shown as the fsname
  std::string fsname;   // fsname=: the source the kernel shows (default: SOURCE, else "layerfs")
  std::string subtype;  // subtype=: the type shows as fuse.SUBTYPE (default: layerfs)
  std::string mountpoint;

  bool foreground = false;
  bool debug = false;
  bool help = false;
  bool version = false;

  double timeout = 1e6;  // seconds the kernel may cache entries and attributes
  bool fsync = true;     // copy-ups reach the disk before they appear (fsync=0, volatile: no)
  // The kernel caches writes and owns size and mtime (writeback=0: no), on a writable mount
  // whose files are not passed through (the kernel takes one or the other).
  bool writeback = true;
  bool threaded = true;
  bool acl = true;                     // POSIX ACLs enforced and inherited (noacl: no)
  IdMap uid_map;                       // uidmapping=: disk ids <-> the ids the mount shows
  IdMap gid_map;                       // gidmapping=
  std::optional<uint32_t> squash_uid;  // squash_to_root / squash_to_uid=: every object's owner
  std::optional<uint32_t> squash_gid;  // squash_to_root / squash_to_gid=
  bool static_nlink = false;           // directories report st_nlink 1
  XattrPermissions xattr_permissions = XattrPermissions::kOff;
  bool squash_uid_set = false;  // squash_to_uid= given: it wins over squash_to_root
  bool squash_gid_set = false;
  // redirect_dir=, as kernel overlayfs: "on" writes a redirect when a directory with lower
  // copies is renamed (otherwise its tree is copied up); "on" and "follow" follow redirects,
  // "nofollow" refuses them, "off" (the default) follows them unless the mount keeps its
  // markers in user.overlay.* xattrs (an unprivileged daemon), as the kernel with userxattr.
  std::string redirect_dir = "off";
  bool device_whiteouts = true;  // FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT set: ".wh." files
  int max_threads = 0;           // 0: libfuse's default
  // FUSE passthrough where the kernel and the daemon's privileges allow it: kAll (passthrough=1,
  // the default) for every open, kSafe (passthrough=safe) only for opens whose file cannot change
  // under the handle, kOff (passthrough=0) for none. See fuse/passthrough.h.
  enum class PassthroughMode : uint8_t { kOff, kSafe, kAll };
  PassthroughMode passthrough = PassthroughMode::kAll;

  bool allow_other_set = false;        // allow_other given explicitly
  std::vector<std::string> fuse_opts;  // passed on to libfuse / the kernel mount
  std::vector<std::string> warnings;   // one line each, printed before mounting
};

// A malformed command line fails with EINVAL and one line saying what is wrong.
Result<Options> parse_command_line(const std::vector<std::string>& args);

// Splits an -o list on unescaped, unquoted commas. Escapes are kept for the value parsers.
std::vector<std::string> split_option_list(std::string_view list);
// Splits a lowerdir value on unescaped colons and unescapes each path. An empty part (a leading
// or trailing colon, "::") is an error (EINVAL) saying why.
Result<std::vector<std::string>> split_lowerdir(std::string_view value);
// Removes one level of backslash escapes and of double quotes.
std::string unescape(std::string_view value);

// What the machine and the mount are, for kernel_mount_options.
struct MountEnvironment {
  bool root = false;       // the daemon runs as root
  bool selinux = false;    // the kernel takes SELinux context= options
  bool read_only = false;  // no upperdir
};

// The options layerfs mounts with: the user's kernel options (context= options dropped where
// SELinux is off, each with a warning), then what layerfs adds: ro without an upper,
// default_permissions, fsname and subtype, and as root suid, dev and allow_other unless nosuid,
// nodev or allow_other were given.
std::vector<std::string> kernel_mount_options(const Options& o, const MountEnvironment& env,
                                              std::vector<std::string>* warnings);

// The -o string for libfuse: commas and backslashes inside an option are escaped for it.
std::string join_fuse_options(const std::vector<std::string>& opts);

}  // namespace layerfs
