// The user namespace's id maps, written from outside it by the launcher while the child waits:
// the caller becomes root inside; where /etc/subuid and /etc/subgid give the caller ranges and
// newuidmap/newgidmap exist, those ranges follow from id 1, so that images whose files belong
// to several users work. With a single id, setgroups is denied before gid_map is written, as
// the kernel requires of an unprivileged writer.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "layers/base/result.h"
#include "tools/layerrun/spec.h"

namespace layerfs::run {

// The ranges of /etc/subuid (or /etc/subgid) for the user `name` (or its numeric id).
std::vector<IdRange> subordinate_ranges(const char* file, const std::string& name, uint32_t id);

// The maps chosen when the spec gives none: the caller as 0, then its subordinate ranges.
std::vector<IdRange> default_map(bool uid, uint32_t caller);

// Writes `pid`'s uid_map and gid_map (the spec's, or the default ones).
Result<void> write_id_maps(pid_t pid, const Spec& spec);

}  // namespace layerfs::run
