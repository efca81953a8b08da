// Mount-table calls: private views of a layer, and where a mount is.
#pragma once

#include <sys/types.h>

#include "layers/base/result.h"
#include "layers/base/unique_fd.h"

namespace layerfs::sys {

// A detached private copy of the mount at `fd` (open_tree(OPEN_TREE_CLONE) without
// AT_RECURSIVE): names resolved below it never cross into a mount made inside the directory,
// as kernel overlayfs sees its layers through private clones of their mounts. Needs
// CAP_SYS_ADMIN over the mount namespace; EPERM or EINVAL (locked submounts) otherwise.
Result<UniqueFd> clone_mount(BorrowedFd fd);

// Detaches the mount at `path` (umount2 with MNT_DETACH); where the process may not, a FUSE
// mount is detached by fusermount3 -u -z, as an ordinary user unmounts one.
Result<void> detach_mount(const char* path);

}  // namespace layerfs::sys
