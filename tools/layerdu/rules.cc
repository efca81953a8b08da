#include "tools/layerdu/rules.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace layerfs::du {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool disabled(const std::string& v) {
  const std::string l = lower(v);
  return l.empty() || l == "disabled" || l == "off" || l == "false";
}

Result<double> parse_fraction(const std::string& key, const std::string& v) {
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (end == v.c_str() || *end != '\0' || !std::isfinite(d) || d < 0 || d > 1) {
    return failure(EINVAL, key + " '" + v + "': not a number from 0 to 1");
  }
  return d;
}

std::string fixed(double d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", d);
  return buf;
}

// A relative symlink target that climbs above the root from where the link is.
bool escapes(const std::string& link_path, const std::string& target) {
  if (target.starts_with("/")) return false;  // absolute: resolved inside the root
  int depth = static_cast<int>(std::count(link_path.begin(), link_path.end(), '/'));
  size_t start = 0;
  while (start <= target.size()) {
    const size_t slash = target.find('/', start);
    const std::string part =
        target.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part == "..") {
      if (--depth < 0) return true;
    } else if (!part.empty() && part != ".") {
      ++depth;
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return false;
}

}  // namespace

Rules default_rules() {
  Rules r;
  r.lowest_efficiency = 0.9;
  r.highest_user_wasted_percent = 0.1;
  return r;
}

Result<uint64_t> parse_size(const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || !std::isfinite(v) || v < 0) {
    return failure(EINVAL, "'" + text + "': not a size");
  }
  std::string unit = lower(end);
  unit.erase(std::remove(unit.begin(), unit.end(), ' '), unit.end());
  static const std::pair<const char*, double> kUnits[] = {{"", 1},
                                                          {"b", 1},
                                                          {"k", 1e3},
                                                          {"kb", 1e3},
                                                          {"m", 1e6},
                                                          {"mb", 1e6},
                                                          {"g", 1e9},
                                                          {"gb", 1e9},
                                                          {"t", 1e12},
                                                          {"tb", 1e12},
                                                          {"ki", 1024.0},
                                                          {"kib", 1024.0},
                                                          {"mi", 1048576.0},
                                                          {"mib", 1048576.0},
                                                          {"gi", 1073741824.0},
                                                          {"gib", 1073741824.0},
                                                          {"ti", 1099511627776.0},
                                                          {"tib", 1099511627776.0}};
  for (const auto& [name, scale] : kUnits) {
    if (unit != name) continue;
    if (v * scale >= 9.2e18) return failure(EINVAL, "'" + text + "': too large");
    return static_cast<uint64_t>(std::llround(v * scale));
  }
  return failure(EINVAL, "'" + text + "': unknown unit '" + std::string(end) + "'");
}

Result<void> set_rule(Rules& r, const std::string& key, const std::string& v) {
  auto flag = [&](bool& out) -> Result<void> {
    const std::string l = lower(v);
    if (l == "true" || l == "yes" || l == "on") {
      out = true;
    } else if (l == "false" || l == "no" || l == "off" || l == "disabled") {
      out = false;
    } else {
      return failure(EINVAL, key + " '" + v + "': not true or false");
    }
    return {};
  };
  if (key == "lowest-efficiency" || key == "highest-user-wasted-percent") {
    std::optional<double>& slot =
        key == "lowest-efficiency" ? r.lowest_efficiency : r.highest_user_wasted_percent;
    if (disabled(v)) {
      slot.reset();
      return {};
    }
    auto d = parse_fraction(key, v);
    if (!d.ok()) return d.err();
    slot = *d;
    return {};
  }
  if (key == "highest-wasted-bytes" || key == "max-layer-size" || key == "max-duplicate-bytes") {
    std::optional<uint64_t>& slot = key == "highest-wasted-bytes" ? r.highest_wasted_bytes
                                    : key == "max-layer-size"     ? r.max_layer_size
                                                                  : r.max_duplicate_bytes;
    if (disabled(v)) {
      slot.reset();
      return {};
    }
    auto n = parse_size(v);
    if (!n.ok()) return failure(EINVAL, key + " " + n.err().message());
    slot = *n;
    return {};
  }
  if (key == "forbid-setuid") return flag(r.forbid_setuid);
  if (key == "forbid-world-writable") return flag(r.forbid_world_writable);
  if (key == "forbid-devices") return flag(r.forbid_devices);
  if (key == "forbid-capabilities") return flag(r.forbid_capabilities);
  if (key == "forbid-escaping-symlinks") return flag(r.forbid_escaping_symlinks);
  return failure(EINVAL, "unknown rule '" + key + "'");
}

Result<Rules> load_rules(const std::string& path, Rules r) {
  YAML::Node doc;
  try {
    doc = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    return failure(EINVAL, "CI config '" + path + "': " + e.what());
  }
  YAML::Node rules = doc["rules"] ? doc["rules"] : doc;
  if (!rules.IsMap()) return failure(EINVAL, "CI config '" + path + "': not a mapping of rules");
  for (const auto& kv : rules) {
    const std::string key = kv.first.as<std::string>();
    if (!kv.second.IsScalar()) {
      return failure(EINVAL, "CI config '" + path + "': " + key + ": not a single value");
    }
    auto set = set_rule(r, key, kv.second.as<std::string>());
    if (!set.ok()) return failure(EINVAL, "CI config '" + path + "': " + set.err().message());
  }
  return r;
}

std::vector<Verdict> evaluate(const Rules& rules, const Analysed& a) {
  const Usage& u = a.usage;
  std::vector<Verdict> out;
  auto top_offenders = [&]() {
    std::vector<std::string> o;
    for (const TopItem& t : u.top) {
      if (o.size() == 5) break;
      o.push_back(t.path + " " + human_bytes(t.reclaimable_bytes, false));
    }
    return o;
  };
  if (rules.lowest_efficiency) {
    Verdict v{
        "lowest-efficiency",
        u.efficiency >= *rules.lowest_efficiency,
        "efficiency " + fixed(u.efficiency) + ", lowest allowed " + fixed(*rules.lowest_efficiency),
        {}};
    if (!v.passed) v.offenders = top_offenders();
    out.push_back(std::move(v));
  }
  if (rules.highest_wasted_bytes) {
    Verdict v{"highest-wasted-bytes",
              u.reclaimable_bytes <= *rules.highest_wasted_bytes,
              "reclaimable " + std::to_string(u.reclaimable_bytes) + " bytes, highest allowed " +
                  std::to_string(*rules.highest_wasted_bytes),
              {}};
    if (!v.passed) v.offenders = top_offenders();
    out.push_back(std::move(v));
  }
  if (rules.highest_user_wasted_percent) {
    uint64_t user = 0;
    for (size_t i = 1; i < u.layers.size(); ++i) user += u.layers[i].bytes;
    const double share =
        user == 0 ? 0.0 : static_cast<double>(u.reclaimable_bytes) / static_cast<double>(user);
    Verdict v{"highest-user-wasted-percent",
              share <= *rules.highest_user_wasted_percent,
              "reclaimable / bytes above the base " + fixed(share) + ", highest allowed " +
                  fixed(*rules.highest_user_wasted_percent),
              {}};
    if (!v.passed) v.offenders = top_offenders();
    out.push_back(std::move(v));
  }
  if (rules.max_layer_size) {
    Verdict v{
        "max-layer-size", true, "largest allowed " + std::to_string(*rules.max_layer_size), {}};
    for (const LayerUsage& l : u.layers) {
      if (l.bytes > *rules.max_layer_size) {
        v.passed = false;
        v.offenders.push_back("layer " + std::to_string(l.index) + " " + std::to_string(l.bytes) +
                              " bytes");
      }
    }
    out.push_back(std::move(v));
  }
  if (rules.max_duplicate_bytes) {
    Verdict v{"max-duplicate-bytes",
              u.duplicate_bytes <= *rules.max_duplicate_bytes,
              "duplicates " + std::to_string(u.duplicate_bytes) + " bytes, highest allowed " +
                  std::to_string(*rules.max_duplicate_bytes),
              {}};
    for (const TopItem& t : u.top) {
      if (!v.passed && v.offenders.size() < 5 &&
          std::find(t.reasons.begin(), t.reasons.end(), "duplicate") != t.reasons.end()) {
        v.offenders.push_back(t.path + " " + human_bytes(t.reclaimable_bytes, false));
      }
    }
    out.push_back(std::move(v));
  }
  // The forbid-* rules look at what the merged view shows.
  struct Forbid {
    bool on;
    const char* name;
    std::function<bool(const Entry&)> bad;
  };
  const Forbid forbids[] = {
      {rules.forbid_setuid, "forbid-setuid",
       [](const Entry& e) { return !e.is_dir() && (e.mode & (S_ISUID | S_ISGID)) != 0; }},
      {rules.forbid_world_writable, "forbid-world-writable",
       [](const Entry& e) {
         if (S_ISLNK(e.mode)) return false;
         if (e.is_dir() && (e.mode & S_ISVTX) != 0) return false;
         return (e.mode & S_IWOTH) != 0;
       }},
      {rules.forbid_devices, "forbid-devices",
       [](const Entry& e) { return S_ISCHR(e.mode) || S_ISBLK(e.mode); }},
      {rules.forbid_capabilities, "forbid-capabilities",
       [](const Entry& e) { return e.xattrs.contains("security.capability"); }},
      {rules.forbid_escaping_symlinks, "forbid-escaping-symlinks",
       [](const Entry& e) { return S_ISLNK(e.mode) && escapes(e.path, e.link); }},
  };
  for (const Forbid& f : forbids) {
    if (!f.on) continue;
    Verdict v{f.name, true, "", {}};
    size_t count = 0;
    for (const auto& [path, shown] : a.usage.view) {
      if (path.empty() || !f.bad(*shown.entry)) continue;
      v.passed = false;
      if (++count <= 10) {
        v.offenders.push_back("/" + path +
                              (S_ISLNK(shown.entry->mode) ? " -> " + shown.entry->link : "") +
                              " (layer " + std::to_string(shown.layer) + ")");
      }
    }
    v.detail = std::to_string(count) + " found";
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace layerfs::du
