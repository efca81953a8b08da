#include "layers/sys/mount.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include "layers/sys/process.h"

namespace layerfs::sys {

Result<UniqueFd> clone_mount(BorrowedFd fd) {
  long r = ::syscall(SYS_open_tree, fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
  if (r < 0) return last_errno();
  return UniqueFd(static_cast<int>(r));
}

Result<void> detach_mount(const char* path) {
  if (::umount2(path, MNT_DETACH) == 0) return {};
  if (errno != EPERM) return last_errno();
  auto status = run_program({"fusermount3", "-u", "-z", path});
  if (!status.ok()) return status.err();
  if (*status != 0) return failure(EPERM, std::string("fusermount3 -u -z '") + path + "' failed");
  return {};
}

}  // namespace layerfs::sys
