// What a container is, whether it came from the command line or from an OCI bundle's
// config.json: the root, the mounts over it, the namespaces, the process and its limits. The
// setup steps (namespaces, idmap, mounts, cgroups, capabilities, init) each read their part.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace layerfs::run {

// One mount over the new root, in order (the OCI runtime spec's `mounts` entry).
struct MountSpec {
  std::string destination;  // inside the container
  std::string type;         // proc, tmpfs, devpts, mqueue, sysfs, cgroup, bind, ...
  std::string source;       // host path for a bind
  std::vector<std::string> options;
};

// One id range of a user namespace map (container id, host id, count).
struct IdRange {
  uint32_t inside = 0;
  uint32_t outside = 0;
  uint32_t count = 0;
};

struct Limits {
  std::optional<int64_t> memory;       // bytes
  std::optional<int64_t> memory_swap;  // memory + swap, bytes; -1 unlimited
  std::optional<int64_t> pids;
  std::optional<int64_t> cpu_quota_us;  // per period
  int64_t cpu_period_us = 100000;
  bool any() const { return memory || memory_swap || pids || cpu_quota_us; }
};

struct Rlimit {
  int resource = 0;
  uint64_t soft = 0;
  uint64_t hard = 0;
};

struct Spec {
  // The root: a directory used as it is, or layers merged by an in-process layerfs.
  std::string rootfs;
  std::vector<std::string> lowers;  // base first
  std::string upper;
  std::string work;
  bool read_only_root = false;

  // Namespaces. A user namespace is made when the caller is not root, or when asked.
  bool user_ns = false;
  bool net_ns = true;  // --net none (loopback only); false: the host's network
  bool pid_ns = true;
  bool ipc_ns = true;
  bool uts_ns = true;
  bool cgroup_ns = true;
  std::string hostname;
  std::vector<IdRange> uid_map;  // empty: chosen (the caller as root, subuid ranges if any)
  std::vector<IdRange> gid_map;

  std::vector<MountSpec> mounts;
  std::vector<std::string> masked_paths;
  std::vector<std::string> readonly_paths;

  // The process.
  std::vector<std::string> args;
  std::vector<std::string> env;  // K=V
  std::string cwd = "/";
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  std::vector<int> capabilities;  // kept in every set; all others dropped
  bool no_new_privileges = true;
  std::vector<Rlimit> rlimits;
  bool die_with_parent = false;
  pid_t caller = 0;  // layerrun's parent when it started, for --die-with-parent

  Limits limits;
  bool no_limits_ok = false;
  std::string stats_file;  // where the cgroup's counters are written at the end (JSON)
};

// The OCI runtime spec's default masked and read-only paths, which the command line uses.
std::vector<std::string> default_masked_paths();
std::vector<std::string> default_readonly_paths();
// The mounts every container gets from the command line: /proc, a minimal /dev, /dev/pts,
// /dev/shm, /dev/mqueue and /sys (read-only).
std::vector<MountSpec> default_mounts();

}  // namespace layerfs::run
