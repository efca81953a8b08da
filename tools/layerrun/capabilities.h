// Capabilities: every one dropped from all five sets (bounding, effective, permitted,
// inheritable, ambient) except those named; set in the command's process after its identity,
// with no_new_privs, just before it execs.
#pragma once

#include <string>
#include <vector>

#include "layers/base/result.h"

namespace layerfs::run {

struct CapabilitySets {
  std::vector<int> bounding, effective, permitted, inheritable, ambient;
  // The same capabilities in every set (the command line's --cap-add).
  static CapabilitySets all_of(const std::vector<int>& caps);
};

// "CAP_NET_ADMIN", "net_admin" or "ALL" to numbers; an unknown name is an error naming it.
// "CAP_SYS_ADMIN", as the OCI runtime spec and capabilities(7) spell it.
std::string capability_name(int cap);

Result<std::vector<int>> parse_capabilities(const std::vector<std::string>& names);

// Drops from the bounding set what `sets` does not keep (needs CAP_SETPCAP, so before the
// identity changes).
Result<void> drop_bounding_set(const CapabilitySets& sets);
// Sets the process's effective, permitted, inheritable and ambient sets to `sets`' (after the
// identity change, which PR_SET_KEEPCAPS survived).
Result<void> apply_capabilities(const CapabilitySets& sets);

}  // namespace layerfs::run
