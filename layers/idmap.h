// User and group id mappings between what is on disk and what a mount shows, in the form
// fuse-overlayfs takes them: uidmapping=DISK:SHOWN:COUNT[:DISK:SHOWN:COUNT...]. A rootless
// container engine passes its user namespace's map, so that files stored with the container's
// ids (0, 1, ...) show as the host ids the namespace maps back to those same ids.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "layers/base/result.h"

namespace layerfs {

class IdMap {
 public:
  struct Range {
    uint32_t disk;
    uint32_t shown;
    uint32_t count;
  };

  // EINVAL, with a message naming the value and what is wrong with it.
  static Result<IdMap> parse(std::string_view value);

  bool empty() const { return ranges_.empty(); }
  // Ids no range covers become the overflow id (65534), as in a user namespace.
  uint32_t to_shown(uint32_t disk) const;
  uint32_t to_disk(uint32_t shown) const;

  static constexpr uint32_t kOverflow = 65534;

 private:
  std::vector<Range> ranges_;
};

}  // namespace layerfs
