#include "layers/layer_stack.h"

#include <fcntl.h>

#include <bit>
#include <map>

#include "layers/sys/fs.h"

namespace layerfs {
namespace {

constexpr uint64_t kOverflowBit = uint64_t{1} << 63;

}  // namespace

std::variant<std::shared_ptr<const LayerStack>, LayerStack::OpenError> LayerStack::open(
    const std::vector<std::string>& paths) {
  auto stack = std::make_shared<LayerStack>();
  std::map<dev_t, uint32_t> fsids;
  for (const auto& path : paths) {
    auto fd = sys::open_at(AT_FDCWD, path.c_str(), O_PATH | O_DIRECTORY);
    if (!fd.ok()) return OpenError{path, fd.error()};
    // A layer must be listable; an O_PATH open alone succeeds without read permission.
    auto probe = sys::open_at(fd->get(), ".", O_RDONLY | O_DIRECTORY);
    if (!probe.ok()) return OpenError{path, probe.error()};
    auto st = sys::stat_fd(fd->get());
    if (!st.ok()) return OpenError{path, st.error()};
    auto [it, inserted] = fsids.emplace(st->st_dev, static_cast<uint32_t>(fsids.size()));
    stack->layers_.push_back(Layer{path, std::move(*fd), st->st_dev, it->second});
  }
  stack->fs_count_ = static_cast<uint32_t>(fsids.size());
  if (stack->fs_count_ > 1) {
    // One bit above the fsid bits stays clear for the overflow range.
    stack->fsid_shift_ = 63 - static_cast<unsigned>(std::bit_width(stack->fs_count_ - 1));
  }
  return std::shared_ptr<const LayerStack>(std::move(stack));
}

uint64_t LayerStack::map_ino(size_t layer, uint64_t ino) const {
  if (fs_count_ <= 1) return ino;
  const Layer& l = layers_[layer];
  if ((ino >> fsid_shift_) == 0) return (uint64_t{l.fsid} << fsid_shift_) | ino;
  std::lock_guard lock(overflow_mu_);
  auto& per_fs = overflow_[l.fsid];
  auto it = per_fs.find(ino);
  if (it != per_fs.end()) return it->second;
  size_t next = 0;
  for (const auto& [fsid, m] : overflow_) next += m.size();
  uint64_t mapped = kOverflowBit | (next + 1);
  per_fs.emplace(ino, mapped);
  return mapped;
}

}  // namespace layerfs
