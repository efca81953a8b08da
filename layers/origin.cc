#include "layers/origin.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "layers/sys/fs.h"

namespace layerfs::origin {
namespace {

// struct ovl_fb: version, magic, len (header and handle), flags, handle type, uuid, handle.
constexpr uint8_t kVersion = 0;
constexpr uint8_t kMagic = 0xfb;
constexpr uint8_t kFlagAnyEndian = 1 << 1;
constexpr uint8_t kFlagBigEndian = 1 << 0;
constexpr uint8_t kFlagPathUpper = 1 << 2;
constexpr size_t kHeader = 5 + 16;
constexpr size_t kMaxHandle = 128;  // MAX_HANDLE_SZ

// FS_IOC_GETFSUUID (Linux 6.5), defined here for older headers.
struct FsUuid {
  uint8_t len;
  uint8_t uuid[16];
};
constexpr unsigned long kGetFsUuid = _IOR(0x15, 0, FsUuid);

constexpr uint8_t native_endian_flag() {
  return __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__ ? kFlagBigEndian : 0;
}

}  // namespace

Uuid filesystem_uuid(int fd) {
  Uuid out{};
  auto dir = sys::reopen(fd, O_RDONLY | O_DIRECTORY);
  if (!dir.ok()) return out;
  FsUuid u{};
  if (ioctl(dir->get(), kGetFsUuid, &u) == 0 && u.len == out.size()) {
    memcpy(out.data(), u.uuid, out.size());
  }
  return out;
}

std::optional<std::string> encode(int path_fd, const Uuid& uuid) {
  std::vector<char> buf(sizeof(file_handle) + kMaxHandle);
  auto* fh = reinterpret_cast<file_handle*>(buf.data());
  fh->handle_bytes = kMaxHandle;
  int mount_id = 0;
  if (name_to_handle_at(path_fd, "", fh, &mount_id, AT_EMPTY_PATH) != 0) return std::nullopt;
  if (kHeader + fh->handle_bytes > 255) return std::nullopt;
  std::string out;
  out += static_cast<char>(kVersion);
  out += static_cast<char>(kMagic);
  out += static_cast<char>(kHeader + fh->handle_bytes);
  out += static_cast<char>(native_endian_flag());
  out += static_cast<char>(fh->handle_type);
  out.append(reinterpret_cast<const char*>(uuid.data()), uuid.size());
  out.append(reinterpret_cast<const char*>(fh->f_handle), fh->handle_bytes);
  return out;
}

Result<UniqueFd> decode(std::string_view value, int mount_fd, const Uuid& uuid) {
  if (value.size() < kHeader || static_cast<uint8_t>(value[0]) != kVersion ||
      static_cast<uint8_t>(value[1]) != kMagic || static_cast<uint8_t>(value[2]) != value.size()) {
    return Errno{EINVAL};
  }
  const auto flags = static_cast<uint8_t>(value[3]);
  // A handle of an upper object (index entries), or one written on a machine of the other
  // byte order, is not a lower origin this machine can decode.
  if ((flags & kFlagPathUpper) != 0) return Errno{EINVAL};
  if ((flags & kFlagAnyEndian) == 0 && (flags & kFlagBigEndian) != native_endian_flag()) {
    return Errno{EINVAL};
  }
  if (memcmp(value.data() + 5, uuid.data(), uuid.size()) != 0) return Errno{EXDEV};
  const size_t bytes = value.size() - kHeader;
  std::vector<char> buf(sizeof(file_handle) + bytes);
  auto* fh = reinterpret_cast<file_handle*>(buf.data());
  fh->handle_bytes = static_cast<unsigned>(bytes);
  fh->handle_type = static_cast<uint8_t>(value[4]);
  memcpy(fh->f_handle, value.data() + kHeader, bytes);
  int fd = open_by_handle_at(mount_fd, fh, O_PATH | O_NOFOLLOW);
  if (fd < 0) return last_errno();
  return UniqueFd(fd);
}

}  // namespace layerfs::origin
