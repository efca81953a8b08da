// The processes of a container and the namespaces they live in:
//
//   layerrun (the caller's namespaces): makes the cgroup, writes the id maps, moves the
//   |   container's init into the cgroup, forwards signals to it, reports OOM kills, removes
//   |   the cgroup, exits with the command's status.
//   +- monitor (new user namespace when rootless, new mount namespace): mounts the root (a
//      |   layerfs session served by its own threads, or a bind of --rootfs) and unmounts it
//      |   once the init has ended. Outside the container's pid namespace and cgroup, so the
//      |   daemon is neither seen by `ps` inside nor counted against its limits.
//      +- init, pid 1 (new mount, pid, uts, ipc, net and cgroup namespaces): enters the root
//         |   and runs the command (init.h).
//         +- the command
//
// Each waits on a pipe for the step before it (maps written, moved into the cgroup, root
// mounted); a pipe that closes without a word means the step before failed, and the waiting
// process ends quietly with 125, the one that failed having said why.
#pragma once

#include "tools/layerrun/capabilities.h"
#include "tools/layerrun/spec.h"

namespace layerfs::run {

// Runs the container; the exit code of layerrun.
int launch(const Spec& spec, const CapabilitySets& caps);

}  // namespace layerfs::run
