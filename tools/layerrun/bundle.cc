#include "tools/layerrun/bundle.h"

#include <sys/resource.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

namespace layerfs::run {
namespace {

using nlohmann::json;

const std::map<std::string, int>& rlimit_names() {
  static const std::map<std::string, int> kNames = {
      {"RLIMIT_AS", RLIMIT_AS},
      {"RLIMIT_CORE", RLIMIT_CORE},
      {"RLIMIT_CPU", RLIMIT_CPU},
      {"RLIMIT_DATA", RLIMIT_DATA},
      {"RLIMIT_FSIZE", RLIMIT_FSIZE},
      {"RLIMIT_LOCKS", RLIMIT_LOCKS},
      {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
      {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
      {"RLIMIT_NICE", RLIMIT_NICE},
      {"RLIMIT_NOFILE", RLIMIT_NOFILE},
      {"RLIMIT_NPROC", RLIMIT_NPROC},
      {"RLIMIT_RSS", RLIMIT_RSS},
      {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
      {"RLIMIT_RTTIME", RLIMIT_RTTIME},
      {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
      {"RLIMIT_STACK", RLIMIT_STACK},
  };
  return kNames;
}

// Every key of `obj` not in `known`, as "prefix.key", into `ignored`.
void unknown_keys(const json& obj, const std::string& prefix, const std::set<std::string>& known,
                  std::vector<std::string>* ignored) {
  if (!obj.is_object()) return;
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (!known.count(it.key())) ignored->push_back(prefix + it.key());
  }
}

std::vector<IdRange> id_map(const json& list) {
  std::vector<IdRange> out;
  for (const json& m : list) {
    out.push_back({m.at("containerID").get<uint32_t>(), m.at("hostID").get<uint32_t>(),
                   m.at("size").get<uint32_t>()});
  }
  return out;
}

Result<std::vector<int>> cap_list(const json& caps, const char* set) {
  if (!caps.contains(set)) return std::vector<int>{};
  return parse_capabilities(caps.at(set).get<std::vector<std::string>>());
}

Result<Bundle> parse(const json& config, const std::string& dir) {
  Bundle b;
  Spec& s = b.spec;
  std::vector<std::string>& ignored = b.ignored;
  unknown_keys(config, "",
               {"ociVersion", "process", "root", "hostname", "mounts", "linux", "annotations"},
               &ignored);

  const json& process = config.at("process");
  unknown_keys(
      process, "process.",
      {"terminal", "user", "args", "env", "cwd", "capabilities", "rlimits", "noNewPrivileges"},
      &ignored);
  if (process.value("terminal", false)) ignored.push_back("process.terminal");
  s.args = process.at("args").get<std::vector<std::string>>();
  s.env = process.value("env", std::vector<std::string>{});
  s.cwd = process.value("cwd", std::string("/"));
  if (process.contains("user")) {
    const json& user = process.at("user");
    unknown_keys(user, "process.user.", {"uid", "gid", "additionalGids"}, &ignored);
    s.uid = user.value("uid", 0U);
    s.gid = user.value("gid", 0U);
    s.groups = user.value("additionalGids", std::vector<gid_t>{});
  }
  s.no_new_privileges = process.value("noNewPrivileges", false);
  if (process.contains("capabilities")) {
    const json& caps = process.at("capabilities");
    struct Set {
      const char* name;
      std::vector<int>* into;
    } sets[] = {{"bounding", &b.caps.bounding},
                {"effective", &b.caps.effective},
                {"permitted", &b.caps.permitted},
                {"inheritable", &b.caps.inheritable},
                {"ambient", &b.caps.ambient}};
    for (const Set& set : sets) {
      auto list = cap_list(caps, set.name);
      if (!list.ok()) return list.err().context(std::string("process.capabilities.") + set.name);
      *set.into = *list;
    }
    // The kernel raises an ambient capability only where it is permitted and inheritable.
    std::vector<int> ambient;
    for (const int c : b.caps.ambient) {
      const bool can = std::count(b.caps.permitted.begin(), b.caps.permitted.end(), c) &&
                       std::count(b.caps.inheritable.begin(), b.caps.inheritable.end(), c);
      if (can) {
        ambient.push_back(c);
      } else {
        ignored.push_back("process.capabilities.ambient " + capability_name(c) +
                          " (not inheritable)");
      }
    }
    b.caps.ambient = ambient;
  }
  for (const json& r : process.value("rlimits", json::array())) {
    const std::string type = r.at("type").get<std::string>();
    auto it = rlimit_names().find(type);
    if (it == rlimit_names().end()) {
      return failure(EINVAL, "process.rlimits: unknown type '" + type + "'");
    }
    s.rlimits.push_back({it->second, r.at("soft").get<uint64_t>(), r.at("hard").get<uint64_t>()});
  }

  const json& root = config.at("root");
  const std::string path = root.at("path").get<std::string>();
  s.rootfs = path.empty() || path[0] == '/' ? path : dir + "/" + path;
  s.read_only_root = root.value("readonly", false);
  s.hostname = config.value("hostname", std::string());

  for (const json& m : config.value("mounts", json::array())) {
    unknown_keys(m, "mounts[].", {"destination", "type", "source", "options"}, &ignored);
    MountSpec ms{m.at("destination").get<std::string>(), m.value("type", std::string()),
                 m.value("source", std::string()), m.value("options", std::vector<std::string>{})};
    const bool bind = ms.type == "bind" || ms.type == "rbind" ||
                      std::count(ms.options.begin(), ms.options.end(), "bind") ||
                      std::count(ms.options.begin(), ms.options.end(), "rbind");
    if (bind && !ms.source.empty() && ms.source[0] != '/') ms.source = dir + "/" + ms.source;
    s.mounts.push_back(std::move(ms));
  }

  const json linux_ = config.value("linux", json::object());
  unknown_keys(
      linux_, "linux.",
      {"namespaces", "uidMappings", "gidMappings", "resources", "maskedPaths", "readonlyPaths"},
      &ignored);
  s.pid_ns = s.net_ns = s.ipc_ns = s.uts_ns = s.cgroup_ns = s.user_ns = false;
  bool mount_ns = false;
  for (const json& ns : linux_.value("namespaces", json::array())) {
    const std::string type = ns.at("type").get<std::string>();
    if (ns.contains("path")) ignored.push_back("linux.namespaces[" + type + "].path");
    if (type == "pid")
      s.pid_ns = true;
    else if (type == "network")
      s.net_ns = true;
    else if (type == "ipc")
      s.ipc_ns = true;
    else if (type == "uts")
      s.uts_ns = true;
    else if (type == "cgroup")
      s.cgroup_ns = true;
    else if (type == "user")
      s.user_ns = true;
    else if (type == "mount")
      mount_ns = true;
    else
      ignored.push_back("linux.namespaces[" + type + "]");
  }
  // The launcher always makes these two: its init is pid 1 and its root is pivoted into.
  if (!s.pid_ns) ignored.push_back("linux.namespaces (no pid namespace: one is made anyway)");
  if (!mount_ns) ignored.push_back("linux.namespaces (no mount namespace: one is made anyway)");
  s.pid_ns = true;
  if (linux_.contains("uidMappings")) s.uid_map = id_map(linux_.at("uidMappings"));
  if (linux_.contains("gidMappings")) s.gid_map = id_map(linux_.at("gidMappings"));

  const json resources = linux_.value("resources", json::object());
  unknown_keys(resources, "linux.resources.", {"memory", "pids", "cpu"}, &ignored);
  if (resources.contains("memory")) {
    const json& m = resources.at("memory");
    unknown_keys(m, "linux.resources.memory.", {"limit", "swap"}, &ignored);
    if (m.contains("limit")) s.limits.memory = m.at("limit").get<int64_t>();
    if (m.contains("swap")) s.limits.memory_swap = m.at("swap").get<int64_t>();
  }
  if (resources.contains("pids")) {
    const json& p = resources.at("pids");
    unknown_keys(p, "linux.resources.pids.", {"limit"}, &ignored);
    if (p.contains("limit") && p.at("limit").get<int64_t>() > 0) {
      s.limits.pids = p.at("limit").get<int64_t>();
    }
  }
  if (resources.contains("cpu")) {
    const json& c = resources.at("cpu");
    unknown_keys(c, "linux.resources.cpu.", {"quota", "period"}, &ignored);
    if (c.contains("quota") && c.at("quota").get<int64_t>() > 0) {
      s.limits.cpu_quota_us = c.at("quota").get<int64_t>();
    }
    if (c.contains("period")) s.limits.cpu_period_us = c.at("period").get<int64_t>();
  }
  s.masked_paths = linux_.value("maskedPaths", std::vector<std::string>{});
  s.readonly_paths = linux_.value("readonlyPaths", std::vector<std::string>{});
  return b;
}

}  // namespace

Result<Bundle> load_bundle(const std::string& dir) {
  const std::string file = dir + "/config.json";
  std::ifstream in(file);
  if (!in) return failure(ENOENT, "bundle '" + dir + "': no config.json");
  try {
    const json config = json::parse(in);
    auto bundle = parse(config, dir);
    if (!bundle.ok()) return bundle.err().context("bundle", file);
    return bundle;
  } catch (const json::exception& e) {
    return failure(EINVAL, "bundle '" + file + "': " + e.what());
  }
}

}  // namespace layerfs::run
