#include "tools/layerrun/idmap.h"

#include <pwd.h>

#include <fstream>
#include <sstream>

#include "layers/sys/container.h"
#include "layers/sys/process.h"

namespace layerfs::run {
namespace {

std::string map_text(const std::vector<IdRange>& map) {
  std::string text;
  for (const IdRange& r : map) {
    text += std::to_string(r.inside) + " " + std::to_string(r.outside) + " " +
            std::to_string(r.count) + "\n";
  }
  return text;
}

// Whether `map` is one the process may write itself: a single id, its own (or any, as root).
bool writable_directly(const std::vector<IdRange>& map, uint32_t caller) {
  if (sys::running_as_root()) return true;
  return map.size() == 1 && map[0].count == 1 && map[0].outside == caller;
}

Result<void> write_map(pid_t pid, bool uid, const std::vector<IdRange>& map, uint32_t caller) {
  const std::string dir = "/proc/" + std::to_string(pid);
  const std::string file = dir + (uid ? "/uid_map" : "/gid_map");
  if (writable_directly(map, caller)) {
    if (!uid && !sys::running_as_root()) {
      const std::string setgroups = dir + "/setgroups";
      LAYERFS_TRY(sys::write_text(setgroups.c_str(), "deny").context("setgroups", setgroups));
    }
    return sys::write_text(file.c_str(), map_text(map)).context(uid ? "uid_map" : "gid_map", file);
  }
  // Ranges beyond the caller's own id: the set-uid helpers check them against /etc/sub[ug]id.
  std::vector<std::string> argv{uid ? "newuidmap" : "newgidmap", std::to_string(pid)};
  for (const IdRange& r : map) {
    argv.push_back(std::to_string(r.inside));
    argv.push_back(std::to_string(r.outside));
    argv.push_back(std::to_string(r.count));
  }
  auto status = sys::run_program(argv);
  if (!status.ok()) return status.err().context(argv[0]);
  if (*status != 0) {
    return failure(EPERM, argv[0] + " " + std::to_string(pid) + ": failed with status " +
                              std::to_string(*status) + " (see /etc/sub" + (uid ? "uid" : "gid") +
                              ")");
  }
  return {};
}

}  // namespace

std::vector<IdRange> subordinate_ranges(const char* file, const std::string& name, uint32_t id) {
  std::vector<IdRange> out;
  std::ifstream in(file);
  std::string line;
  uint32_t next_inside = 1;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string who, start, count;
    if (!std::getline(fields, who, ':') || !std::getline(fields, start, ':') ||
        !std::getline(fields, count)) {
      continue;
    }
    if (who != name && who != std::to_string(id)) continue;
    char* end = nullptr;
    const unsigned long s = std::strtoul(start.c_str(), &end, 10);
    if (end == start.c_str() || *end != '\0') continue;
    const unsigned long c = std::strtoul(count.c_str(), &end, 10);
    if (end == count.c_str() || *end != '\0' || c == 0) continue;
    out.push_back({next_inside, static_cast<uint32_t>(s), static_cast<uint32_t>(c)});
    next_inside += static_cast<uint32_t>(c);
  }
  return out;
}

std::vector<IdRange> default_map(bool uid, uint32_t caller) {
  if (caller == 0 && sys::running_as_root()) return {{0, 0, 4294967295U}};
  std::vector<IdRange> map{{0, caller, 1}};
  const char* helper = uid ? "/usr/bin/newuidmap" : "/usr/bin/newgidmap";
  if (!sys::path_exists(helper)) return map;
  // Both files name the user (or its uid), whose gid ranges are in /etc/subgid.
  const uint32_t owner = sys::real_uid();
  std::string name;
  if (passwd* pw = getpwuid(owner); pw != nullptr) name = pw->pw_name;
  for (const IdRange& r : subordinate_ranges(uid ? "/etc/subuid" : "/etc/subgid", name, owner)) {
    map.push_back(r);
  }
  return map;
}

Result<void> write_id_maps(pid_t pid, const Spec& spec) {
  const uint32_t uid = sys::real_uid();
  const uint32_t gid = sys::real_gid();
  const std::vector<IdRange> uids = spec.uid_map.empty() ? default_map(true, uid) : spec.uid_map;
  const std::vector<IdRange> gids = spec.gid_map.empty() ? default_map(false, gid) : spec.gid_map;
  LAYERFS_TRY(write_map(pid, true, uids, uid));
  return write_map(pid, false, gids, gid);
}

}  // namespace layerfs::run
