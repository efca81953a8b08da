#include "layers/stat_override.h"

#include <charconv>
#include <cstdio>

namespace layerfs {

std::optional<StatOverride> StatOverride::parse(std::string_view value) {
  StatOverride out;
  const char* p = value.data();
  const char* end = value.data() + value.size();
  auto number = [&](uint32_t* v, int base) {
    auto [next, ec] = std::from_chars(p, end, *v, base);
    if (ec != std::errc() || next == p) return false;
    p = next;
    return true;
  };
  uint32_t mode = 0;
  if (!number(&out.uid, 10) || p == end || *p++ != ':') return std::nullopt;
  if (!number(&out.gid, 10) || p == end || *p++ != ':') return std::nullopt;
  if (!number(&mode, 8) || (p != end && *p != ':') || mode > 07777) return std::nullopt;
  out.mode = mode;
  return out;
}

std::string StatOverride::format() const {
  char buf[48];
  snprintf(buf, sizeof buf, "%u:%u:0%o", uid, gid, static_cast<unsigned>(mode & 07777));
  return buf;
}

void StatOverride::apply(struct stat& st) const {
  st.st_uid = uid;
  st.st_gid = gid;
  st.st_mode = (st.st_mode & S_IFMT) | (mode & 07777);
}

}  // namespace layerfs
