#include "fuse/options.h"

#include <algorithm>
#include <array>
#include <cstdlib>

namespace layerfs {
namespace {

// Mount options libfuse forwards to the kernel or to fusermount3 (lib/mount.c, fuse_lowlevel.c).
constexpr std::array<std::string_view, 22> kFuseFlags = {"ro",
                                                         "rw",
                                                         "suid",
                                                         "nosuid",
                                                         "dev",
                                                         "nodev",
                                                         "exec",
                                                         "noexec",
                                                         "async",
                                                         "sync",
                                                         "dirsync",
                                                         "noatime",
                                                         "nodiratime",
                                                         "relatime",
                                                         "norelatime",
                                                         "strictatime",
                                                         "nostrictatime",
                                                         "allow_other",
                                                         "allow_root",
                                                         "auto_unmount",
                                                         "default_permissions",
                                                         "blkdev"};
constexpr std::array<std::string_view, 8> kFuseValued = {"fsname",     "subtype",    "max_read",
                                                         "blksize",    "context",    "fscontext",
                                                         "defcontext", "rootcontext"};
// Flags libfuse does not take but that mean nothing to a FUSE mount here (mount(8) passes some).
// `private` is what podman passes for overlay volumes: a new FUSE mount is private already.
constexpr std::array<std::string_view, 7> kIgnoredFlags = {
    "atime", "diratime", "lazytime", "nolazytime", "defaults", "auto", "private"};

// fuse-overlayfs options whose behaviour belongs to the writable upper and rootless work.
constexpr std::array<std::string_view, 2> kLaterOptions = {"fast_ino", "noxattrs"};

template <size_t N>
bool one_of(const std::array<std::string_view, N>& set, std::string_view v) {
  return std::find(set.begin(), set.end(), v) != set.end();
}

bool parse_double(const std::string& s, double* out) {
  char* end = nullptr;
  double v = strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || v < 0) return false;
  *out = v;
  return true;
}

// Applies one KEY[=VALUE] from an -o list.
std::variant<std::monostate, ParseError> apply_option(Options& o, const std::string& opt) {
  size_t eq = opt.find('=');
  std::string key = opt.substr(0, eq);
  std::string raw = eq == std::string::npos ? "" : opt.substr(eq + 1);
  bool has_value = eq != std::string::npos;

  if (key == "lowerdir") {
    auto dirs = split_lowerdir(raw);
    if (dirs.empty()) return ParseError{"lowerdir= names no directory"};
    o.lowerdirs.insert(o.lowerdirs.end(), dirs.begin(), dirs.end());
  } else if (key == "upperdir") {
    o.upperdir = unescape(raw);
  } else if (key == "workdir") {
    o.workdir = unescape(raw);
  } else if (key == "timeout") {
    if (!parse_double(unescape(raw), &o.timeout)) {
      return ParseError{"timeout=" + raw + ": not a number of seconds"};
    }
  } else if (key == "threaded") {
    o.threaded = unescape(raw) != "0";
  } else if (key == "max_threads") {
    double v = 0;
    if (!parse_double(unescape(raw), &v) || v < 1) {
      return ParseError{"max_threads=" + raw + ": not a positive count"};
    }
    o.max_threads = static_cast<int>(v);
  } else if (key == "fsync") {
    o.fsync = unescape(raw) != "0";
  } else if (key == "volatile" && !has_value) {
    o.fsync = false;
  } else if (key == "uidmapping" || key == "gidmapping") {
    auto parsed = IdMap::parse(unescape(raw));
    if (auto* e = std::get_if<std::string>(&parsed)) return ParseError{key + "=" + *e};
    (key == "uidmapping" ? o.uid_map : o.gid_map) = std::get<IdMap>(parsed);
  } else if (key == "squash_to_root" && !has_value) {
    // squash_to_uid= and squash_to_gid= take precedence, in whichever order they come.
    if (!o.squash_uid_set) o.squash_uid = 0;
    if (!o.squash_gid_set) o.squash_gid = 0;
  } else if (key == "squash_to_uid" || key == "squash_to_gid") {
    double v = -1;
    if (!parse_double(unescape(raw), &v) || v < 0 || v > 4294967294.0 ||
        v != static_cast<double>(static_cast<uint32_t>(v))) {
      return ParseError{key + "=" + raw + ": not an id"};
    }
    const bool uid = key == "squash_to_uid";
    (uid ? o.squash_uid : o.squash_gid) = static_cast<uint32_t>(v);
    (uid ? o.squash_uid_set : o.squash_gid_set) = true;
  } else if (key == "writeback") {
    // fuse-overlayfs's switch for the kernel's writeback cache, which layerfs does not use:
    // writes reach the upper as they arrive either way.
  } else if (key == "xattr_permissions") {
    const std::string v = unescape(raw);
    if (v != "0" && v != "1" && v != "2") {
      return ParseError{"xattr_permissions=" + raw + ": not 0, 1 or 2"};
    }
    o.xattr_permissions = v[0] - '0';
  } else if (key == "static_nlink" && !has_value) {
    o.static_nlink = true;
  } else if (key == "noacl" && !has_value) {
    o.acl = false;
  } else if (key == "redirect_dir" && unescape(raw) == "off") {
    // What layerfs does anyway: it never writes redirects.
  } else if (key == "debug") {
    o.debug = true;
  } else if ((one_of(kIgnoredFlags, key) && !has_value) || key.starts_with("x-")) {
    // Accepted silently: flags the FUSE mount has no use for, and userspace-only options
    // (x-systemd.*, ...) meant for other programs.
  } else if ((one_of(kFuseFlags, key) && !has_value) || (one_of(kFuseValued, key) && has_value)) {
    if (key == "allow_other") o.allow_other_set = true;
    o.fuse_opts.push_back(key + (has_value ? "=" + unescape(raw) : ""));
  } else if (one_of(kLaterOptions, key)) {
    o.warnings.push_back("option '" + opt + "' is not supported yet; ignored");
  } else {
    o.warnings.push_back("unknown option '" + opt + "' ignored");
  }
  return std::monostate{};
}

}  // namespace

std::vector<std::string> split_option_list(std::string_view list) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < list.size(); ++i) {
    char c = list[i];
    if (c == '\\' && i + 1 < list.size()) {
      cur += c;
      cur += list[++i];
    } else if (c == '"') {
      quoted = !quoted;
      cur += c;
    } else if (c == ',' && !quoted) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

std::string unescape(std::string_view value) {
  std::string out;
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\\' && i + 1 < value.size()) {
      out += value[++i];
    } else if (value[i] != '"') {
      out += value[i];
    }
  }
  return out;
}

std::vector<std::string> split_lowerdir(std::string_view value) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) out.push_back(unescape(cur));
    cur.clear();
  };
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\\' && i + 1 < value.size()) {
      cur += value[i];
      cur += value[++i];
    } else if (value[i] == ':') {
      flush();
    } else {
      cur += value[i];
    }
  }
  flush();
  return out;
}

std::string join_fuse_options(const std::vector<std::string>& opts) {
  std::string out;
  for (const auto& opt : opts) {
    if (!out.empty()) out += ',';
    for (char c : opt) {
      if (c == ',' || c == '\\') out += '\\';
      out += c;
    }
  }
  return out;
}

std::variant<Options, ParseError> parse_command_line(const std::vector<std::string>& args) {
  Options o;
  std::vector<std::string> positional;
  bool only_positional = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (only_positional || a.empty() || a[0] != '-' || a == "-") {
      positional.push_back(a);
    } else if (a == "--") {
      only_positional = true;
    } else if (a == "-f") {
      o.foreground = true;
    } else if (a == "-d" || a == "--debug") {
      o.debug = true;
      o.foreground = true;
    } else if (a == "-s") {
      o.threaded = false;
    } else if (a == "-h" || a == "--help") {
      o.help = true;
    } else if (a == "-V" || a == "--version") {
      o.version = true;
    } else if (a == "-o" || a.starts_with("-o")) {
      std::string list;
      if (a == "-o") {
        if (i + 1 >= args.size()) return ParseError{"-o needs an option list"};
        list = args[++i];
      } else {
        list = a.substr(2);
      }
      for (const auto& opt : split_option_list(list)) {
        auto r = apply_option(o, opt);
        if (auto* e = std::get_if<ParseError>(&r)) return *e;
      }
    } else {
      o.warnings.push_back("unknown argument '" + a + "' ignored");
    }
  }
  if (o.help || o.version) return o;
  if (positional.empty()) return ParseError{"no mountpoint given (see --help)"};
  if (positional.size() > 2) {
    return ParseError{"too many arguments: '" + positional[2] + "' (see --help)"};
  }
  o.mountpoint = positional.back();
  if (positional.size() == 2) o.source = positional[0];
  if (o.lowerdirs.empty()) return ParseError{"no lowerdir= given (see --help)"};
  if (o.upperdir.empty() != o.workdir.empty()) {
    return ParseError{o.upperdir.empty() ? "workdir= given without upperdir="
                                         : "upperdir= given without workdir="};
  }
  return o;
}

}  // namespace layerfs
