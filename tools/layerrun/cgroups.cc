#include "tools/layerrun/cgroups.h"

#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "layers/sys/container.h"
#include "layers/sys/fs.h"

namespace layerfs::run {
namespace {

struct Hierarchy {
  std::string mountpoint;
  std::string cgroup;  // the caller's cgroup in it, as a path below the mount point
  bool v2 = false;
  std::vector<std::string> controllers;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, sep)) out.push_back(part);
  return out;
}

// The cgroup hierarchies mounted here, each with the caller's cgroup in it.
std::vector<Hierarchy> hierarchies() {
  // /proc/self/cgroup: "ID:controllers:path" per v1 hierarchy, "0::path" for v2.
  std::map<std::string, std::string> path_of;  // sorted controller list ("" for v2) -> path
  std::ifstream cg("/proc/self/cgroup");
  std::string line;
  while (std::getline(cg, line)) {
    const size_t a = line.find(':');
    const size_t b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    path_of[line.substr(a + 1, b - a - 1)] = line.substr(b + 1);
  }
  std::vector<Hierarchy> out;
  std::ifstream mi("/proc/self/mountinfo");
  while (std::getline(mi, line)) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - TYPE SOURCE SUPEROPTS
    const std::vector<std::string> f = split(line, ' ');
    auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() < 5 || dash == f.end() || f.end() - dash < 4) continue;
    const std::string& type = *(dash + 1);
    const std::string& root = f[3];
    Hierarchy h;
    h.mountpoint = f[4];
    std::string key;
    if (type == "cgroup2") {
      h.v2 = true;
    } else if (type == "cgroup") {
      std::vector<std::string> names;
      for (const std::string& o : split(*(dash + 3), ',')) {
        if (o == "memory" || o == "pids" || o == "cpu" || o == "cpuacct" || o == "cpuset" ||
            o == "blkio" || o == "devices" || o == "freezer" || o == "net_cls" || o == "net_prio" ||
            o == "perf_event" || o == "hugetlb" || o == "rdma" || o == "misc" ||
            o.rfind("name=", 0) == 0) {
          names.push_back(o);
        }
      }
      h.controllers = names;
      // /proc/self/cgroup lists them in the kernel's order, which is the mount's too.
      for (size_t i = 0; i < names.size(); ++i) key += (i ? "," : "") + names[i];
    } else {
      continue;
    }
    auto it = path_of.find(key);
    if (it == path_of.end()) continue;
    std::string path = it->second;
    // A mount of a subtree shows the cgroups below its root.
    if (root != "/" && path.rfind(root, 0) == 0) path = path.substr(root.size());
    if (path.empty()) path = "/";
    h.cgroup = path;
    if (h.v2) {
      auto listed = sys::read_text((h.mountpoint + path + "/cgroup.controllers").c_str());
      if (listed.ok()) {
        std::istringstream words(*listed);
        std::string w;
        while (words >> w) h.controllers.push_back(w);
      }
    }
    out.push_back(std::move(h));
  }
  return out;
}

// Whole words only: "cpu" is not in "cpuset io".
bool has_word(const std::string& words, const std::string& word) {
  std::istringstream in(words);
  std::string w;
  while (in >> w) {
    if (w == word) return true;
  }
  return false;
}

bool has_word(const std::vector<std::string>& words, const std::string& word) {
  return std::find(words.begin(), words.end(), word) != words.end();
}

Result<void> write_knob(const std::string& dir, const char* knob, const std::string& value) {
  const std::string path = dir + "/" + knob;
  return sys::write_text(path.c_str(), value).context(std::string("cgroup ") + knob, path);
}

// The counters of a "key value" file (cpu.stat, memory.events, pids.events).
std::map<std::string, uint64_t> read_counters(const std::string& path) {
  std::map<std::string, uint64_t> out;
  auto text = sys::read_text(path.c_str());
  if (!text.ok()) return out;
  std::istringstream in(*text);
  std::string key;
  uint64_t value;
  while (in >> key >> value) out[key] = value;
  return out;
}

std::optional<uint64_t> read_number(const std::string& path) {
  auto text = sys::read_text(path.c_str());
  if (!text.ok()) return std::nullopt;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text->c_str(), &end, 10);
  if (end == text->c_str()) return std::nullopt;
  return v;
}

}  // namespace

std::string format_bytes(int64_t bytes) {
  constexpr int64_t kMiB = 1 << 20;
  if (bytes >= 1000000 && bytes % 1000000 == 0) return std::to_string(bytes / 1000000) + " MB";
  if (bytes >= kMiB && bytes % kMiB == 0) return std::to_string(bytes / kMiB) + " MiB";
  return std::to_string(bytes) + " bytes";
}

Result<std::unique_ptr<Cgroup>> Cgroup::create(const Limits& limits, bool accounting,
                                               const std::string& name) {
  std::unique_ptr<Cgroup> cg(new Cgroup());
  cg->limits_ = limits;
  std::vector<std::pair<std::string, bool>> wanted;  // controller, required
  auto want = [&](const char* c, bool required) {
    if (required || accounting) wanted.emplace_back(c, required);
  };
  want("memory", limits.memory.has_value() || limits.memory_swap.has_value());
  want("pids", limits.pids.has_value());
  want("cpu", limits.cpu_quota_us.has_value());
  want("cpuacct", false);
  const std::vector<Hierarchy> all = hierarchies();
  for (const auto& [controller, required] : wanted) {
    const Hierarchy* pick = nullptr;
    for (const Hierarchy& h : all) {
      const bool has =
          std::find(h.controllers.begin(), h.controllers.end(), controller) != h.controllers.end();
      // v2 accounts CPU time in cpu.stat: no cpuacct there.
      if (has && (pick == nullptr || (h.v2 && !pick->v2))) pick = &h;
    }
    if (pick == nullptr) {
      if (controller == "cpuacct" && std::any_of(all.begin(), all.end(), [](const Hierarchy& h) {
            return h.v2 && has_word(h.controllers, "cpu");
          })) {
        continue;
      }
      if (!required) continue;
      return failure(ENOTSUP, "cgroup " + controller +
                                  ": no cgroup hierarchy here has the controller (needed for the "
                                  "limit asked for)");
    }
    // v1: a child of the caller's cgroup. v2: a sibling, because a v2 cgroup with processes
    // in it cannot enable controllers for its children (the no-internal-processes rule); the
    // caller's cgroup is only the parent when it is the root.
    std::string at_cgroup = pick->cgroup;
    if (pick->v2 && at_cgroup != "/") {
      at_cgroup = at_cgroup.substr(0, at_cgroup.rfind('/'));
      if (at_cgroup.empty()) at_cgroup = "/";
    }
    const std::string parent = pick->mountpoint + (at_cgroup == "/" ? "" : at_cgroup);
    const std::string dir = parent + "/" + name;
    if (std::any_of(cg->dirs_.begin(), cg->dirs_.end(),
                    [&](const Dir& d) { return d.path == dir; })) {
      cg->dirs_.push_back({controller, dir, pick->v2});
      continue;
    }
    if (pick->v2) {
      // Controllers are enabled top-down: every cgroup from the root to the new one's parent.
      std::string at = pick->mountpoint;
      std::vector<std::string> steps{at};
      for (const std::string& part : split(at_cgroup, '/')) {
        if (part.empty()) continue;
        at += "/" + part;
        steps.push_back(at);
      }
      for (const std::string& step : steps) {
        auto enabled = sys::read_text((step + "/cgroup.subtree_control").c_str());
        if (enabled.ok() && has_word(*enabled, controller)) continue;
        if (auto r = write_knob(step, "cgroup.subtree_control", "+" + controller); !r.ok()) {
          return failure(r.error(), r.err().message() +
                                        " (cannot enable the controller there; --no-limits-ok "
                                        "runs without the limits)");
        }
      }
    }
    if (auto made = sys::make_dir_at(kCwd, dir.c_str(), 0755); !made.ok()) {
      const bool denied = made.error() == EACCES || made.error() == EPERM || made.error() == EROFS;
      return failure(made.error(),
                     "cgroup " + controller + ": mkdir '" + dir + "': " + made.err().message() +
                         (denied ? " (no cgroup delegated to this user; --no-limits-ok runs "
                                   "without the limits)"
                                 : ""));
    }
    cg->dirs_.push_back({controller, dir, pick->v2});
    const Dir& d = cg->dirs_.back();
    if (controller == "memory") {
      if (limits.memory) {
        LAYERFS_TRY(write_knob(d.path, d.v2 ? "memory.max" : "memory.limit_in_bytes",
                               std::to_string(*limits.memory)));
      }
      if (limits.memory_swap) {
        if (d.v2) {
          const int64_t swap =
              *limits.memory_swap < 0 ? -1 : *limits.memory_swap - limits.memory.value_or(0);
          LAYERFS_TRY(write_knob(d.path, "memory.swap.max",
                                 swap < 0 ? std::string("max") : std::to_string(swap)));
        } else {
          LAYERFS_TRY(write_knob(d.path, "memory.memsw.limit_in_bytes",
                                 std::to_string(*limits.memory_swap)));
        }
      }
    } else if (controller == "pids" && limits.pids) {
      LAYERFS_TRY(write_knob(d.path, "pids.max", std::to_string(*limits.pids)));
    } else if (controller == "cpu" && limits.cpu_quota_us) {
      if (d.v2) {
        LAYERFS_TRY(write_knob(
            d.path, "cpu.max",
            std::to_string(*limits.cpu_quota_us) + " " + std::to_string(limits.cpu_period_us)));
      } else {
        LAYERFS_TRY(write_knob(d.path, "cpu.cfs_period_us", std::to_string(limits.cpu_period_us)));
        LAYERFS_TRY(write_knob(d.path, "cpu.cfs_quota_us", std::to_string(*limits.cpu_quota_us)));
      }
    }
  }
  return cg;
}

const Cgroup::Dir* Cgroup::find(const std::string& controller) const {
  for (const Dir& d : dirs_) {
    if (d.controller == controller) return &d;
  }
  return nullptr;
}

Result<void> Cgroup::attach(pid_t pid) const {
  std::vector<std::string> done;
  for (const Dir& d : dirs_) {
    if (std::find(done.begin(), done.end(), d.path) != done.end()) continue;
    LAYERFS_TRY(write_knob(d.path, "cgroup.procs", std::to_string(pid)));
    done.push_back(d.path);
  }
  return {};
}

uint64_t Cgroup::oom_kills() const {
  const Dir* d = find("memory");
  if (d == nullptr) return 0;
  auto counters = read_counters(d->path + (d->v2 ? "/memory.events" : "/memory.oom_control"));
  return counters["oom_kill"];
}

nlohmann::json Cgroup::stats() const {
  nlohmann::json out = nlohmann::json::object();
  out["cgroup"] = versions();
  if (const Dir* d = find("memory")) {
    nlohmann::json m;
    m["limit"] = limits_.memory ? nlohmann::json(*limits_.memory) : nlohmann::json(nullptr);
    auto peak = read_number(d->path + (d->v2 ? "/memory.peak" : "/memory.max_usage_in_bytes"));
    m["peak"] = peak ? nlohmann::json(*peak) : nlohmann::json(nullptr);
    m["oom_kills"] = oom_kills();
    out["memory"] = m;
  }
  if (const Dir* d = find("pids")) {
    nlohmann::json p;
    p["limit"] = limits_.pids ? nlohmann::json(*limits_.pids) : nlohmann::json(nullptr);
    p["refused"] = read_counters(d->path + "/pids.events")["max"];
    out["pids"] = p;
  }
  if (const Dir* d = find("cpu")) {
    nlohmann::json c;
    c["quota_us"] =
        limits_.cpu_quota_us ? nlohmann::json(*limits_.cpu_quota_us) : nlohmann::json(nullptr);
    c["period_us"] = limits_.cpu_period_us;
    auto stat = read_counters(d->path + "/cpu.stat");
    c["nr_periods"] = stat["nr_periods"];
    c["nr_throttled"] = stat["nr_throttled"];
    if (d->v2) {
      c["usage_ns"] = stat["usage_usec"] * 1000;
      c["throttled_ns"] = stat["throttled_usec"] * 1000;
    } else {
      c["throttled_ns"] = stat["throttled_time"];
      const Dir* acct = find("cpuacct");
      auto usage = acct ? read_number(acct->path + "/cpuacct.usage") : std::nullopt;
      c["usage_ns"] = usage ? nlohmann::json(*usage) : nlohmann::json(nullptr);
    }
    out["cpu"] = c;
  }
  return out;
}

std::string Cgroup::versions() const {
  bool v1 = false, v2 = false;
  for (const Dir& d : dirs_) (d.v2 ? v2 : v1) = true;
  return v1 && v2 ? "v1+v2" : v2 ? "v2" : "v1";
}

Cgroup::~Cgroup() {
  std::vector<std::string> done;
  for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
    if (std::find(done.begin(), done.end(), it->path) != done.end()) continue;
    done.push_back(it->path);
    // The last tasks may still be leaving (EBUSY) for a moment after the container's init
    // has been reaped.
    for (int tries = 0; tries < 200; ++tries) {
      auto removed = sys::unlink_at(kCwd, it->path.c_str(), AT_REMOVEDIR);
      if (removed.ok() || removed.error() == ENOENT || removed.error() != EBUSY) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

}  // namespace layerfs::run
