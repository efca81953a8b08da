#include "layers/idmap.h"

#include <charconv>

namespace layerfs {

Result<IdMap> IdMap::parse(std::string_view value) {
  std::vector<uint32_t> numbers;
  std::string_view rest = value;
  while (!rest.empty()) {
    size_t colon = rest.find(':');
    std::string_view part = rest.substr(0, colon);
    uint32_t n = 0;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), n);
    if (part.empty() || ec != std::errc() || end != part.data() + part.size()) {
      return failure(EINVAL,
                     "'" + std::string(value) + "': '" + std::string(part) + "' is not an id");
    }
    numbers.push_back(n);
    rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
    if (colon != std::string_view::npos && rest.empty()) {
      return failure(EINVAL, "'" + std::string(value) + "': ends with ':'");
    }
  }
  if (numbers.empty() || numbers.size() % 3 != 0) {
    return failure(EINVAL, "'" + std::string(value) + "': not a list of DISK:SHOWN:COUNT triplets");
  }
  IdMap map;
  for (size_t i = 0; i < numbers.size(); i += 3) {
    const Range r{numbers[i], numbers[i + 1], numbers[i + 2]};
    if (r.count == 0 || uint64_t{r.disk} + r.count > (uint64_t{1} << 32) ||
        uint64_t{r.shown} + r.count > (uint64_t{1} << 32)) {
      return failure(EINVAL, "'" + std::string(value) + "': range " + std::to_string(i / 3 + 1) +
                                 " is empty or runs past the largest id");
    }
    // Overlapping ranges would make an id map two ways: the map must be one to one.
    auto overlap = [](uint32_t a, uint32_t b, uint32_t count_a, uint32_t count_b) {
      return uint64_t{a} < uint64_t{b} + count_b && uint64_t{b} < uint64_t{a} + count_a;
    };
    for (size_t j = 0; j < map.ranges_.size(); ++j) {
      const Range& o = map.ranges_[j];
      const bool disk = overlap(r.disk, o.disk, r.count, o.count);
      if (disk || overlap(r.shown, o.shown, r.count, o.count)) {
        return failure(EINVAL, "'" + std::string(value) + "': ranges " + std::to_string(j + 1) +
                                   " and " + std::to_string(i / 3 + 1) + " overlap (" +
                                   (disk ? "DISK" : "SHOWN") + " ids)");
      }
    }
    map.ranges_.push_back(r);
  }
  return map;
}

uint32_t IdMap::to_shown(uint32_t disk) const {
  for (const Range& r : ranges_) {
    if (disk >= r.disk && disk - r.disk < r.count) return r.shown + (disk - r.disk);
  }
  return kOverflow;
}

uint32_t IdMap::to_disk(uint32_t shown) const {
  for (const Range& r : ranges_) {
    if (shown >= r.shown && shown - r.shown < r.count) return r.disk + (shown - r.shown);
  }
  return kOverflow;
}

}  // namespace layerfs
