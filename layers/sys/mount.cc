#include "layers/sys/mount.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace layerfs::sys {

Result<UniqueFd> clone_mount(int fd) {
  long r = ::syscall(SYS_open_tree, fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
  if (r < 0) return last_errno();
  return UniqueFd(static_cast<int>(r));
}

}  // namespace layerfs::sys
