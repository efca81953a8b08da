// layerrun: runs a command in its own namespaces and cgroup, with a layerfs mount (or a
// directory, or an OCI bundle's root) as its root filesystem.
//   layerrun [OPTIONS] (--rootfs DIR | --lower L... [--upper U --work W] | --bundle DIR)
//            [--] CMD [ARGS...]
// Exit status: the command's; 128+N when signal N ended it; 125 when the launcher failed (one
// line naming the step, the path and the errno), 126 when the command cannot be executed, 127
// when it is not found.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "layers/base/log.h"
#include "layers/sys/container.h"
#include "layers/sys/fs.h"
#include "layers/sys/process.h"
#include "tools/layerrun/bundle.h"
#include "tools/layerrun/init.h"
#include "tools/layerrun/namespaces.h"

extern char** environ;

namespace layerfs::run {
namespace {

int refuse(const std::string& message) {
  log::error("%s", message.c_str());
  return kLauncherError;
}

// "100MB" (decimal), "100MiB" or "100m" (binary, as podman), or bytes.
Result<int64_t> parse_size(const std::string& option, const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const std::pair<const char*, double> kUnits[] = {{"", 1},
                                                          {"b", 1},
                                                          {"k", 1024.0},
                                                          {"kib", 1024.0},
                                                          {"kb", 1e3},
                                                          {"m", 1048576.0},
                                                          {"mib", 1048576.0},
                                                          {"mb", 1e6},
                                                          {"g", 1073741824.0},
                                                          {"gib", 1073741824.0},
                                                          {"gb", 1e9}};
  for (const auto& [name, factor] : kUnits) {
    if (used > 0 && unit == name && std::isfinite(value) && value > 0 && value * factor < 9e18) {
      return static_cast<int64_t>(value * factor);
    }
  }
  return failure(EINVAL, option + " '" + text +
                             "': not a size (bytes, or with k/m/g, KB/MB/GB, "
                             "KiB/MiB/GiB)");
}

Result<std::vector<MountSpec>> bind_mounts(const std::vector<std::string>& binds) {
  std::vector<MountSpec> out;
  for (const std::string& b : binds) {
    const size_t colon = b.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 >= b.size()) {
      return failure(EINVAL, "--bind '" + b + "': not SRC:DST[:ro]");
    }
    std::string dst = b.substr(colon + 1);
    std::vector<std::string> options;
    if (const size_t ro = dst.rfind(":ro"); ro != std::string::npos && ro + 3 == dst.size()) {
      dst.resize(ro);
      options.push_back("ro");
    }
    if (dst.empty() || dst[0] != '/') {
      return failure(EINVAL, "--bind '" + b + "': the destination must be an absolute path");
    }
    auto src = sys::real_path(b.substr(0, colon).c_str());
    if (!src.ok()) return src.err().context("--bind source", b.substr(0, colon));
    out.push_back({dst, "rbind", *src, options});
  }
  return out;
}

int main_impl(int argc, char** argv) {
  log::set_program("layerrun");
  // Read first: a caller that dies during start-up is then still noticed.
  const pid_t caller = sys::parent_id();
  // Everything after the first "--" is the command, untouched by the option parser.
  std::vector<std::string> command;
  int split = argc;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--") {
      split = i;
      break;
    }
  }
  for (int i = split + 1; i < argc; ++i) command.emplace_back(argv[i]);

  CLI::App app{
      "Runs a command in its own namespaces and cgroup, with a layerfs mount as its "
      "root.\n  layerrun [OPTIONS] (--rootfs DIR | --lower L... [--upper U --work W] | "
      "--bundle DIR) -- CMD [ARGS...]",
      "layerrun"};
  Spec spec;
  std::vector<std::string> binds, tmpfs, env, cap_add;
  std::string bundle, net = "none", user, memory, memory_swap, cpus;
  int64_t pids = 0;
  bool clear_env = false, userns = false;
  app.add_option("--rootfs", spec.rootfs, "a directory used as the root as it is")
      ->check(CLI::ExistingDirectory);
  app.add_option("--lower", spec.lowers, "a lower layer, base first (repeat)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--upper", spec.upper, "where changes go (with --work)");
  app.add_option("--work", spec.work, "the upper's scratch dir, on its filesystem");
  app.add_option("--bundle", bundle, "an OCI runtime bundle (DIR/config.json)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--hostname", spec.hostname, "the hostname inside");
  app.add_option("--net", net, "none (a new network namespace with loopback; default) or host")
      ->check(CLI::IsMember({"none", "host"}));
  app.add_option("--bind", binds, "SRC:DST[:ro]: bind-mount a host path (repeat)");
  app.add_option("--tmpfs", tmpfs, "a fresh tmpfs at DST (repeat)");
  app.add_flag("--ro-root", spec.read_only_root, "the root read-only");
  app.add_option("--env", env, "K=V in the command's environment (repeat)");
  app.add_flag("--clear-env", clear_env, "start from an empty environment");
  app.add_option("--cwd", spec.cwd, "the working directory inside (default /)");
  app.add_option("--user", user, "UID[:GID] inside (default 0:0)");
  app.add_option("--cap-add", cap_add, "keep this capability (CAP_NET_ADMIN, ...; repeat)");
  app.add_flag("--die-with-parent", spec.die_with_parent, "end the container when layerrun dies");
  app.add_flag("--userns", userns, "a user namespace even as root");
  app.add_option("--memory", memory, "memory limit (100MB, 1g, ...)");
  app.add_option("--memory-swap", memory_swap, "memory + swap limit, or -1 for unlimited swap");
  app.add_option("--pids", pids, "most processes and threads")->check(CLI::PositiveNumber);
  app.add_option("--cpus", cpus, "CPU share, in cores (0.5: half a core)");
  app.add_flag("--no-limits-ok", spec.no_limits_ok,
               "run without the limits where they cannot be applied (rootless)");
  app.add_option("--stats", spec.stats_file, "write the cgroup's counters here (JSON) at the end");
  if (split == argc) app.prefix_command();
  try {
    app.parse(split, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kLauncherError;
  }
  if (split == argc) command = app.remaining();

  CapabilitySets caps;
  const int sources = !spec.rootfs.empty() + !spec.lowers.empty() + !bundle.empty();
  if (sources != 1) return refuse("give one of --rootfs, --lower or --bundle");
  if (spec.upper.empty() != spec.work.empty()) return refuse("--upper and --work go together");
  if (!spec.upper.empty() && spec.lowers.empty()) return refuse("--upper needs --lower");
  if (!bundle.empty()) {
    auto loaded = load_bundle(bundle);
    if (!loaded.ok()) return refuse(loaded.err().message());
    if (!loaded->ignored.empty()) {
      std::string list;
      for (const std::string& f : loaded->ignored) list += (list.empty() ? "" : ", ") + f;
      log::warn("%s/config.json: not implemented, ignored: %s", bundle.c_str(), list.c_str());
    }
    // The bundle says what the container is; the command line may add to it.
    const Spec given = spec;
    spec = loaded->spec;
    if (!given.hostname.empty()) spec.hostname = given.hostname;
    spec.read_only_root = spec.read_only_root || given.read_only_root;
    if (given.cwd != "/") spec.cwd = given.cwd;
    if (!command.empty()) spec.args = command;
    command = spec.args;
    spec.die_with_parent = given.die_with_parent;
    spec.no_limits_ok = given.no_limits_ok;
    spec.stats_file = given.stats_file;
    caps = loaded->caps;
    if (!sys::path_exists(spec.rootfs.c_str())) {
      return refuse("bundle '" + bundle + "': root.path '" + spec.rootfs + "' does not exist");
    }
  } else {
    spec.mounts = default_mounts();
    spec.masked_paths = default_masked_paths();
    spec.readonly_paths = default_readonly_paths();
    spec.net_ns = net == "none";
    if (!clear_env) {
      for (char** e = environ; *e != nullptr; ++e) spec.env.emplace_back(*e);
    }
    // Without an upper the layers are read-only, as the root then is.
    if (!spec.lowers.empty() && spec.upper.empty()) spec.read_only_root = true;
    auto kept = parse_capabilities(cap_add);
    if (!kept.ok()) return refuse(kept.err().message());
    caps = CapabilitySets::all_of(*kept);
  }
  if (command.empty()) return refuse("no command given (layerrun [OPTIONS] -- CMD [ARGS...])");
  spec.args = command;

  auto extra = bind_mounts(binds);
  if (!extra.ok()) return refuse(extra.err().message());
  spec.mounts.insert(spec.mounts.end(), extra->begin(), extra->end());
  for (const std::string& t : tmpfs) {
    if (t.empty() || t[0] != '/') return refuse("--tmpfs '" + t + "': not an absolute path");
    spec.mounts.push_back({t, "tmpfs", "tmpfs", {"nosuid", "nodev", "mode=1777"}});
  }
  for (const std::string& e : env) {
    const size_t eq = e.find('=');
    if (eq == std::string::npos || eq == 0) return refuse("--env '" + e + "': not K=V");
    std::erase_if(spec.env, [&](const std::string& have) {
      return have.compare(0, eq + 1, e, 0, eq + 1) == 0;
    });
    spec.env.push_back(e);
  }
  if (!user.empty()) {
    char* end = nullptr;
    const unsigned long uid = std::strtoul(user.c_str(), &end, 10);
    unsigned long gid = uid;
    if (end == user.c_str() || (*end != '\0' && *end != ':')) {
      return refuse("--user '" + user + "': not UID[:GID] (numbers)");
    }
    if (*end == ':') {
      const char* g = end + 1;
      gid = std::strtoul(g, &end, 10);
      if (end == g || *end != '\0') return refuse("--user '" + user + "': not UID[:GID] (numbers)");
    }
    spec.uid = static_cast<uid_t>(uid);
    spec.gid = static_cast<gid_t>(gid);
  }
  if (!memory.empty()) {
    auto v = parse_size("--memory", memory);
    if (!v.ok()) return refuse(v.err().message());
    spec.limits.memory = *v;
  }
  if (!memory_swap.empty()) {
    if (memory_swap == "-1") {
      spec.limits.memory_swap = -1;
    } else {
      auto v = parse_size("--memory-swap", memory_swap);
      if (!v.ok()) return refuse(v.err().message());
      if (spec.limits.memory && *v < *spec.limits.memory) {
        return refuse("--memory-swap '" + memory_swap + "': less than --memory");
      }
      spec.limits.memory_swap = *v;
    }
  }
  if (pids > 0) spec.limits.pids = pids;
  if (!cpus.empty()) {
    char* end = nullptr;
    const double c = std::strtod(cpus.c_str(), &end);
    if (end == cpus.c_str() || *end != '\0' || !std::isfinite(c) || c <= 0 || c > 4096) {
      return refuse("--cpus '" + cpus + "': not a positive number of cores");
    }
    spec.limits.cpu_quota_us =
        static_cast<int64_t>(c * static_cast<double>(spec.limits.cpu_period_us));
  }
  // Rootless, a user namespace is what makes the caller root over the container's mounts.
  if (!sys::running_as_root() || userns) spec.user_ns = true;
  spec.caller = caller;
  return launch(spec, caps);
}

}  // namespace
}  // namespace layerfs::run

int main(int argc, char** argv) { return layerfs::run::main_impl(argc, argv); }
