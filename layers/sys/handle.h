// File handles (name_to_handle_at, open_by_handle_at) and the filesystem uuid: what overlay
// origin xattrs are made of.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "layers/base/result.h"
#include "layers/base/unique_fd.h"

namespace layerfs::sys {

struct FileHandle {
  int type = 0;
  std::string bytes;  // f_handle, handle_bytes long
};

// The handle of the object behind an fd of any kind (O_PATH included).
Result<FileHandle> handle_of(BorrowedFd fd);
// Opens (O_PATH, never following a symlink) the object `handle` names on the filesystem of
// mount_fd. Needs CAP_DAC_READ_SEARCH.
Result<UniqueFd> open_handle(BorrowedFd mount_fd, const FileHandle& handle);
// The uuid of the filesystem behind an fd of any kind (FS_IOC_GETFSUUID, Linux 6.5); all
// zeros where the filesystem has none or the kernel cannot say.
std::array<uint8_t, 16> filesystem_uuid(BorrowedFd fd);

}  // namespace layerfs::sys
