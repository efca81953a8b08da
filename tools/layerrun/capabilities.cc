#include "tools/layerrun/capabilities.h"

#include <sys/capability.h>

#include <algorithm>
#include <cctype>
#include <type_traits>

namespace layerfs::run {
namespace {

bool has(const std::vector<int>& set, int cap) {
  return std::find(set.begin(), set.end(), cap) != set.end();
}

int last_capability() {
  // The kernel's, which may know more than libcap's headers.
  const int bits = static_cast<int>(cap_max_bits());
  return bits > 0 ? bits - 1 : CAP_LAST_CAP;
}

}  // namespace

std::string capability_name(int cap) {
  char* name = cap_to_name(cap);
  std::string out = name != nullptr ? name : std::to_string(cap);
  cap_free(name);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return std::toupper(c); });
  return out;
}

CapabilitySets CapabilitySets::all_of(const std::vector<int>& caps) {
  return CapabilitySets{caps, caps, caps, caps, caps};
}

Result<std::vector<int>> parse_capabilities(const std::vector<std::string>& names) {
  std::vector<int> out;
  for (const std::string& given : names) {
    std::string name = given;
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (name == "all") {
      for (int c = 0; c <= last_capability(); ++c) out.push_back(c);
      continue;
    }
    if (name.rfind("cap_", 0) != 0) name = "cap_" + name;
    cap_value_t value;
    if (cap_from_name(name.c_str(), &value) != 0) {
      return failure(EINVAL, "capability '" + given + "': unknown (see capabilities(7))");
    }
    if (!has(out, value)) out.push_back(value);
  }
  return out;
}

Result<void> drop_bounding_set(const CapabilitySets& sets) {
  for (int c = 0; c <= last_capability(); ++c) {
    if (has(sets.bounding, c)) continue;
    if (cap_drop_bound(c) != 0 && errno != EINVAL) {
      return last_errno().context("capabilities: drop from the bounding set", capability_name(c));
    }
  }
  return {};
}

Result<void> apply_capabilities(const CapabilitySets& sets) {
  cap_t caps = cap_init();
  if (caps == nullptr) return last_errno().context("capabilities");
  // cap_value_t is int: the lists pass as they are.
  static_assert(std::is_same_v<cap_value_t, int>);
  auto add = [&](cap_flag_t flag, const std::vector<int>& list) {
    if (list.empty()) return 0;
    return cap_set_flag(caps, flag, static_cast<int>(list.size()), list.data(), CAP_SET);
  };
  if (add(CAP_EFFECTIVE, sets.effective) != 0 || add(CAP_PERMITTED, sets.permitted) != 0 ||
      add(CAP_INHERITABLE, sets.inheritable) != 0) {
    Errno e = last_errno();
    cap_free(caps);
    return e.context("capabilities");
  }
  const int set = cap_set_proc(caps);
  Errno e = last_errno();
  cap_free(caps);
  if (set != 0) return e.context("capabilities: capset");
  if (cap_reset_ambient() != 0 && errno != EINVAL) {
    return last_errno().context("capabilities: clear the ambient set");
  }
  for (int c : sets.ambient) {
    if (cap_set_ambient(c, CAP_SET) != 0) {
      return last_errno().context("capabilities: raise in the ambient set", capability_name(c));
    }
  }
  return {};
}

}  // namespace layerfs::run
