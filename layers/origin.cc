#include "layers/origin.h"

#include <cstring>

#include "layers/sys/handle.h"

namespace layerfs::origin {
namespace {

// struct ovl_fb: version, magic, len (header and handle), flags, handle type, uuid, handle.
constexpr uint8_t kVersion = 0;
constexpr uint8_t kMagic = 0xfb;
constexpr uint8_t kFlagAnyEndian = 1 << 1;
constexpr uint8_t kFlagBigEndian = 1 << 0;
constexpr uint8_t kFlagPathUpper = 1 << 2;
constexpr size_t kHeader = 5 + 16;

constexpr uint8_t native_endian_flag() {
  return __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__ ? kFlagBigEndian : 0;
}

}  // namespace

Uuid filesystem_uuid(BorrowedFd fd) { return sys::filesystem_uuid(fd); }

std::optional<std::string> encode(BorrowedFd path_fd, const Uuid& uuid) {
  auto fh = sys::handle_of(path_fd);
  if (!fh.ok() || kHeader + fh->bytes.size() > 255) return std::nullopt;
  std::string out;
  out += static_cast<char>(kVersion);
  out += static_cast<char>(kMagic);
  out += static_cast<char>(kHeader + fh->bytes.size());
  out += static_cast<char>(native_endian_flag());
  out += static_cast<char>(fh->type);
  out.append(reinterpret_cast<const char*>(uuid.data()), uuid.size());
  out += fh->bytes;
  return out;
}

Result<UniqueFd> decode(std::string_view value, BorrowedFd mount_fd, const Uuid& uuid) {
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
  return sys::open_handle(mount_fd, sys::FileHandle{static_cast<uint8_t>(value[4]),
                                                    std::string(value.substr(kHeader))});
}

}  // namespace layerfs::origin
