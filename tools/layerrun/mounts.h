// The container's mount namespace. The monitor (which serves the root's layerfs) mounts the
// root at STAGING/root, on a tmpfs it made shared so that the mount reaches the container's
// namespace, a copy made before the root existed. The container process then makes everything
// private, mounts the spec's filesystems inside the new root (destinations resolved inside
// it: a symlink in the image never leads a mount outside), masks and write-protects what the
// OCI runtime spec says, makes the root read-only where asked, and pivots into it with the
// old root detached (pivot_root(".", ".") then umount: no /oldroot ever exists).
#pragma once

#include <string>

#include "layers/base/result.h"
#include "tools/layerrun/spec.h"

namespace layerfs::run {

// In the monitor: makes `/` private, a shared tmpfs at `staging` and `staging`/root in it.
Result<void> prepare_staging(const std::string& staging);
// In the monitor: `rootfs` bind-mounted (with its submounts) at `target`.
Result<void> bind_root(const std::string& rootfs, const std::string& target);

// In the container process (a mount namespace of its own): everything above, then pivot_root.
Result<void> enter_root(const Spec& spec, const std::string& new_root);

}  // namespace layerfs::run
