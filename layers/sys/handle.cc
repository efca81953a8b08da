#include "layers/sys/handle.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <cstring>
#include <vector>

#include "layers/sys/fs.h"

namespace layerfs::sys {
namespace {

constexpr size_t kMaxHandle = 128;  // MAX_HANDLE_SZ

// FS_IOC_GETFSUUID, defined here for older headers.
struct FsUuid {
  uint8_t len;
  uint8_t uuid[16];
};
constexpr unsigned long kGetFsUuid = _IOR(0x15, 0, FsUuid);

}  // namespace

Result<FileHandle> handle_of(BorrowedFd fd) {
  std::vector<char> buf(sizeof(file_handle) + kMaxHandle);
  auto* fh = reinterpret_cast<file_handle*>(buf.data());
  fh->handle_bytes = kMaxHandle;
  int mount_id = 0;
  if (::name_to_handle_at(fd, "", fh, &mount_id, AT_EMPTY_PATH) != 0) return last_errno();
  return FileHandle{fh->handle_type,
                    std::string(reinterpret_cast<const char*>(fh->f_handle), fh->handle_bytes)};
}

Result<UniqueFd> open_handle(BorrowedFd mount_fd, const FileHandle& handle) {
  std::vector<char> buf(sizeof(file_handle) + handle.bytes.size());
  auto* fh = reinterpret_cast<file_handle*>(buf.data());
  fh->handle_bytes = static_cast<unsigned>(handle.bytes.size());
  fh->handle_type = handle.type;
  memcpy(fh->f_handle, handle.bytes.data(), handle.bytes.size());
  int fd = ::open_by_handle_at(mount_fd, fh, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return last_errno();
  return UniqueFd(fd);
}

std::array<uint8_t, 16> filesystem_uuid(BorrowedFd fd) {
  std::array<uint8_t, 16> out{};
  auto dir = reopen(fd, O_RDONLY | O_DIRECTORY);
  if (!dir.ok()) return out;
  FsUuid u{};
  if (::ioctl(dir->get(), kGetFsUuid, &u) == 0 && u.len == out.size()) {
    memcpy(out.data(), u.uuid, out.size());
  }
  return out;
}

}  // namespace layerfs::sys
