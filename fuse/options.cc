#include "fuse/options.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
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

// A finite, non-negative number: "nan", "inf" and values past a double's range are refused.
bool parse_double(const std::string& s, double* out) {
  char* end = nullptr;
  errno = 0;
  double v = strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v) || v < 0) return false;
  *out = v;
  return true;
}

// A switch written 0 or 1, as fuse-overlayfs documents them.
std::optional<bool> parse_switch(const std::string& s) {
  if (s == "0") return false;
  if (s == "1") return true;
  return {};
}

// The options layerfs itself reads, one row each: how it is written and what it sets. A
// handler gets the value as written (escapes kept) and fails with what is wrong with it; the
// message then reads "KEY=VALUE: reason".
enum class Form { kFlag, kValue, kEither };
using Handler = Result<void> (*)(Options&, const std::string& raw);
struct OptionRow {
  std::string_view key;
  Form form;
  Handler apply;
};

Errno not_a(const std::string& raw, const char* what) {
  return failure(EINVAL, raw + ": not " + what);
}

template <std::string Options::*Field>
Result<void> set_string(Options& o, const std::string& raw) {
  o.*Field = unescape(raw);
  return {};
}

template <bool Options::*Field, bool Value>
Result<void> set_flag(Options& o, const std::string&) {
  o.*Field = Value;
  return {};
}

Result<void> set_switch(bool* field, const std::string& raw) {
  auto v = parse_switch(unescape(raw));
  if (!v) return not_a(raw, "0 or 1");
  *field = *v;
  return {};
}

Result<void> set_squash(Options& o, const std::string& raw, bool uid) {
  double v = -1;
  if (!parse_double(unescape(raw), &v) || v < 0 || v > 4294967294.0 ||
      v != static_cast<double>(static_cast<uint32_t>(v))) {
    return not_a(raw, "an id");
  }
  (uid ? o.squash_uid : o.squash_gid) = static_cast<uint32_t>(v);
  (uid ? o.squash_uid_set : o.squash_gid_set) = true;
  return {};
}

Result<void> set_idmap(IdMap* field, const std::string& raw) {
  auto parsed = IdMap::parse(unescape(raw));
  if (!parsed.ok()) return parsed.err();
  *field = std::move(*parsed);
  return {};
}

constexpr OptionRow kOptions[] = {
    {"lowerdir", Form::kValue,
     [](Options& o, const std::string& raw) -> Result<void> {
       auto dirs = split_lowerdir(raw);
       if (!dirs.ok()) return failure(EINVAL, raw + ": " + dirs.err().message());
       o.lowerdirs.insert(o.lowerdirs.end(), dirs->begin(), dirs->end());
       return {};
     }},
    {"upperdir", Form::kValue, set_string<&Options::upperdir>},
    {"workdir", Form::kValue, set_string<&Options::workdir>},
    {"timeout", Form::kValue,
     [](Options& o, const std::string& raw) -> Result<void> {
       if (!parse_double(unescape(raw), &o.timeout)) return not_a(raw, "a number of seconds");
       return {};
     }},
    {"threaded", Form::kValue,
     [](Options& o, const std::string& raw) { return set_switch(&o.threaded, raw); }},
    {"max_threads", Form::kValue,
     [](Options& o, const std::string& raw) -> Result<void> {
       double v = 0;
       if (!parse_double(unescape(raw), &v) || v < 1 || v > 100000) {
         return not_a(raw, "a count from 1 to 100000");
       }
       o.max_threads = static_cast<int>(v);
       return {};
     }},
    {"fsync", Form::kValue,
     [](Options& o, const std::string& raw) { return set_switch(&o.fsync, raw); }},
    {"passthrough", Form::kValue,
     [](Options& o, const std::string& raw) -> Result<void> {
       const std::string v = unescape(raw);
       if (v == "safe") {
         o.passthrough = Options::PassthroughMode::kSafe;
         return {};
       }
       auto on = parse_switch(v);
       if (!on) return not_a(raw, "0, 1 or safe");
       o.passthrough = *on ? Options::PassthroughMode::kAll : Options::PassthroughMode::kOff;
       return {};
     }},
    // As fuse-overlayfs takes it: `writeback` alone is writeback=1.
    {"writeback", Form::kEither,
     [](Options& o, const std::string& raw) -> Result<void> {
       if (raw.empty()) {
         o.writeback = true;
         return {};
       }
       return set_switch(&o.writeback, raw);
     }},
    {"volatile", Form::kFlag, set_flag<&Options::fsync, false>},  // fsync=0
    {"uidmapping", Form::kValue,
     [](Options& o, const std::string& raw) { return set_idmap(&o.uid_map, raw); }},
    {"gidmapping", Form::kValue,
     [](Options& o, const std::string& raw) { return set_idmap(&o.gid_map, raw); }},
    {"squash_to_root", Form::kFlag,
     [](Options& o, const std::string&) -> Result<void> {
       // squash_to_uid= and squash_to_gid= take precedence, in whichever order they come.
       if (!o.squash_uid_set) o.squash_uid = 0;
       if (!o.squash_gid_set) o.squash_gid = 0;
       return {};
     }},
    {"squash_to_uid", Form::kValue,
     [](Options& o, const std::string& raw) { return set_squash(o, raw, true); }},
    {"squash_to_gid", Form::kValue,
     [](Options& o, const std::string& raw) { return set_squash(o, raw, false); }},
    {"xattr_permissions", Form::kValue,
     [](Options& o, const std::string& raw) -> Result<void> {
       const std::string v = unescape(raw);
       if (v == "0") {
         o.xattr_permissions = XattrPermissions::kOff;
       } else if (v == "1") {
         o.xattr_permissions = XattrPermissions::kPrivileged;
       } else if (v == "2") {
         o.xattr_permissions = XattrPermissions::kUser;
       } else {
         return not_a(raw, "0, 1 or 2");
       }
       return {};
     }},
    {"static_nlink", Form::kFlag, set_flag<&Options::static_nlink, true>},
    {"noacl", Form::kFlag, set_flag<&Options::acl, false>},
    {"redirect_dir", Form::kValue,
     [](Options& o, const std::string& raw) -> Result<void> {
       const std::string v = unescape(raw);
       if (v != "on" && v != "follow" && v != "off" && v != "nofollow") {
         return not_a(raw, "on, follow, off or nofollow");
       }
       o.redirect_dir = v;
       return {};
     }},
    {"fsname", Form::kValue, set_string<&Options::fsname>},
    {"subtype", Form::kValue, set_string<&Options::subtype>},
    {"debug", Form::kEither, set_flag<&Options::debug, true>},
};

// Applies one KEY[=VALUE] from an -o list: a row of kOptions, else an option the FUSE mount
// takes (passed on), one that means nothing here (accepted quietly), or a warning.
Result<void> apply_option(Options& o, const std::string& opt) {
  const size_t eq = opt.find('=');
  const std::string key = opt.substr(0, eq);
  const std::string raw = eq == std::string::npos ? "" : opt.substr(eq + 1);
  const bool has_value = eq != std::string::npos;

  for (const OptionRow& row : kOptions) {
    if (row.key != key) continue;
    if (row.form == Form::kValue && !has_value) return failure(EINVAL, key + ": needs a value");
    if (row.form == Form::kFlag && has_value) break;  // not this option: warned about below
    if (auto done = row.apply(o, raw); !done.ok()) {
      return failure(EINVAL, key + "=" + done.err().message());
    }
    return {};
  }
  if ((one_of(kIgnoredFlags, key) && !has_value) || key.starts_with("x-")) {
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
  return {};
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

Result<std::vector<std::string>> split_lowerdir(std::string_view value) {
  std::vector<std::string> parts{""};  // raw, escapes kept; an unescaped colon starts the next
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\\' && i + 1 < value.size()) {
      parts.back() += value[i];
      parts.back() += value[++i];
    } else if (value[i] == ':') {
      parts.emplace_back();
    } else {
      parts.back() += value[i];
    }
  }
  // As kernel overlayfs (6.x): a trailing colon is refused, and "::" starts the data-only lower
  // layers, whose files are reached only through metacopy redirects, which layerfs neither
  // writes nor follows.
  const size_t n = parts.size();
  if (std::all_of(parts.begin(), parts.end(), [](const std::string& p) { return p.empty(); })) {
    return failure(EINVAL, "names no directory");
  }
  if (n >= 2 && parts[n - 1].empty() && !parts[n - 2].empty()) {
    return failure(EINVAL, "unescaped trailing colon");
  }
  if (parts.front().empty()) return failure(EINVAL, "starts with a colon");
  for (const std::string& p : parts) {
    if (p.empty()) return failure(EINVAL, "data-only lower layers ('::') are not supported");
  }
  std::vector<std::string> out;
  for (const std::string& p : parts) out.push_back(unescape(p));
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

std::vector<std::string> kernel_mount_options(const Options& o, const MountEnvironment& env,
                                              std::vector<std::string>* warnings) {
  std::vector<std::string> out;
  auto given = [&](std::string_view flag) {
    return std::find(o.fuse_opts.begin(), o.fuse_opts.end(), flag) != o.fuse_opts.end();
  };
  // Kernel overlayfs honours set-id bits and device nodes; libfuse mounts nosuid,nodev unless
  // told otherwise. As root, layerfs asks for both (fuse-overlayfs adds suid as root), and an
  // explicit nosuid or nodev (containers-storage passes nodev) still wins.
  if (env.root && !given("nosuid")) out.emplace_back("suid");
  if (env.root && !given("nodev")) out.emplace_back("dev");
  for (const std::string& opt : o.fuse_opts) {
    const std::string key = opt.substr(0, opt.find('='));
    if (key.ends_with("context") && !env.selinux) {
      // The kernel refuses SELinux labels where SELinux is off (EINVAL from mount): the label
      // means nothing there, so it goes, as fuse-overlayfs lets it.
      if (warnings) warnings->push_back("option '" + opt + "' ignored: SELinux is not enabled");
      continue;
    }
    out.push_back(opt);
  }
  if (env.read_only && !given("ro")) out.emplace_back("ro");
  out.emplace_back("default_permissions");
  out.push_back("subtype=" + (o.subtype.empty() ? std::string("layerfs") : o.subtype));
  std::string fsname = o.fsname.empty() ? o.source : o.fsname;
  out.push_back("fsname=" + (fsname.empty() ? std::string("layerfs") : fsname));
  // Kernel overlayfs mounts are visible to every user; root's layerfs mounts are too.
  if (env.root && !o.allow_other_set) out.emplace_back("allow_other");
  return out;
}

Result<Options> parse_command_line(const std::vector<std::string>& args) {
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
        if (i + 1 >= args.size()) return failure(EINVAL, "-o needs an option list");
        list = args[++i];
      } else {
        list = a.substr(2);
      }
      for (const auto& opt : split_option_list(list)) {
        LAYERFS_TRY(apply_option(o, opt));
      }
    } else {
      o.warnings.push_back("unknown argument '" + a + "' ignored");
    }
  }
  if (o.help || o.version) return o;
  if (positional.empty()) return failure(EINVAL, "no mountpoint given (see --help)");
  if (positional.size() > 2) {
    return failure(EINVAL, "too many arguments: '" + positional[2] + "' (see --help)");
  }
  o.mountpoint = positional.back();
  if (positional.size() == 2) o.source = positional[0];
  if (o.lowerdirs.empty()) return failure(EINVAL, "no lowerdir= given (see --help)");
  if (o.upperdir.empty() != o.workdir.empty()) {
    return failure(EINVAL, o.upperdir.empty() ? "workdir= given without upperdir="
                                              : "upperdir= given without workdir=");
  }
  return o;
}

}  // namespace layerfs
