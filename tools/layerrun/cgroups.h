// The container's cgroup: made under the caller's own cgroup before the command runs, the
// limits written, the container's init moved in, the counters read at the end, and removed.
//
// Each controller is taken from the hierarchy that offers it: cgroup v2 where the caller's
// cgroup lists it in cgroup.controllers (enabled top-down through cgroup.subtree_control),
// otherwise the v1 hierarchy that has it mounted. A hybrid machine whose v2 part has no
// controllers (this one) is limited through v1.
#pragma once

#include <sys/types.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "layers/base/result.h"
#include "tools/layerrun/spec.h"

namespace layerfs::run {

class Cgroup {
 public:
  // Makes the cgroup `name` for `limits` (every controller when `accounting`, for --stats).
  // An error names the knob and the path ("cgroup memory.limit_in_bytes '/sys/...': ...").
  static Result<std::unique_ptr<Cgroup>> create(const Limits& limits, bool accounting,
                                                const std::string& name);
  ~Cgroup();
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;

  // Moves `pid` (and the children it makes from now on) into the cgroup.
  Result<void> attach(pid_t pid) const;
  // How many processes the kernel's OOM killer ended inside the cgroup.
  uint64_t oom_kills() const;
  // The limits and the counters: memory peak and OOM kills, refused forks, CPU time, periods
  // and throttled periods.
  nlohmann::json stats() const;
  // "v1", "v2" or "v1+v2": the hierarchies the limits went to.
  std::string versions() const;

 private:
  struct Dir {
    std::string controller;  // memory, pids, cpu, cpuacct
    std::string path;
    bool v2 = false;
  };
  Cgroup() = default;
  const Dir* find(const std::string& controller) const;

  Limits limits_;
  std::vector<Dir> dirs_;
};

// A size for people: "100 MB", "64 MiB", "1234 bytes".
std::string format_bytes(int64_t bytes);

}  // namespace layerfs::run
