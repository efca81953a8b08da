#include "layers/acl.h"

#include <sys/stat.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "layers/sys/xattr.h"

namespace layerfs::acl {
namespace {

// The xattr form (linux/posix_acl_xattr.h): a little-endian version header, then entries.
constexpr uint32_t kVersion = 2;
constexpr uint16_t kUserObj = 0x01, kUser = 0x02, kGroupObj = 0x04, kGroup = 0x08, kMask = 0x10,
                   kOther = 0x20;

struct Entry {
  uint16_t tag;
  uint16_t perm;
  uint32_t id;
};

uint32_t load32(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
}
uint16_t load16(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>(b[0] | (b[1] << 8));
}
void store32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}
void store16(std::string& out, uint16_t v) {
  out += static_cast<char>(v & 0xff);
  out += static_cast<char>(v >> 8);
}

Result<std::vector<Entry>> parse(std::string_view x) {
  if (x.size() < 4 || (x.size() - 4) % 8 != 0 || load32(x.data()) != kVersion) {
    return Errno{EINVAL};
  }
  std::vector<Entry> out;
  for (size_t pos = 4; pos < x.size(); pos += 8) {
    out.push_back(
        Entry{load16(x.data() + pos), load16(x.data() + pos + 2), load32(x.data() + pos + 4)});
  }
  return out;
}

std::string serialize(const std::vector<Entry>& entries) {
  std::string out;
  store32(out, kVersion);
  for (const Entry& e : entries) {
    store16(out, e.tag);
    store16(out, e.perm);
    store32(out, e.id);
  }
  return out;
}

}  // namespace

Result<Inherited> inherit(std::string_view parent_default, mode_t mode, bool is_dir) {
  auto parsed = parse(parent_default);
  if (!parsed.ok()) return parsed.err();
  std::vector<Entry> acl = std::move(*parsed);
  Inherited out;
  if (is_dir) out.default_acl = std::string(parent_default);

  // posix_acl_create_masq: the owner, mask (or group) and other entries keep only what the
  // mode allows, and the mode keeps only what they allow.
  mode_t bits = mode & 0777;
  Entry* group_obj = nullptr;
  Entry* mask = nullptr;
  bool extended = false;
  bool have_user_obj = false, have_other = false;
  for (Entry& e : acl) {
    switch (e.tag) {
      case kUserObj:
        e.perm &= (bits >> 6) & 7;
        bits &= static_cast<mode_t>(e.perm << 6) | ~static_cast<mode_t>(S_IRWXU);
        have_user_obj = true;
        break;
      case kUser:
      case kGroup:
        extended = true;
        break;
      case kGroupObj:
        group_obj = &e;
        break;
      case kOther:
        e.perm &= bits & 7;
        bits &= e.perm | ~static_cast<mode_t>(S_IRWXO);
        have_other = true;
        break;
      case kMask:
        mask = &e;
        extended = true;
        break;
      default:
        return Errno{EINVAL};
    }
  }
  if (!have_user_obj || !have_other || group_obj == nullptr) return Errno{EINVAL};
  Entry* group_bits = mask ? mask : group_obj;
  group_bits->perm &= (bits >> 3) & 7;
  bits &= static_cast<mode_t>(group_bits->perm << 3) | ~static_cast<mode_t>(S_IRWXG);

  out.mode = (mode & ~static_cast<mode_t>(0777)) | bits;
  if (extended) out.access = serialize(acl);
  return out;
}

Result<Inherited> for_new_object(BorrowedFd dir_fd, mode_t mode, bool is_dir, mode_t umask,
                                 bool acls) {
  Inherited out{.mode = mode & 07777};
  if (!acls) return out;
  auto inherited = sys::get_xattr(dir_fd, kDefault);
  if (inherited.ok() && !inherited->empty()) return inherit(*inherited, out.mode, is_dir);
  if (!inherited.ok() && inherited.error() != ENODATA && inherited.error() != EOPNOTSUPP) {
    return inherited.err();
  }
  out.mode &= ~umask;
  return out;
}

}  // namespace layerfs::acl
