#include "layers/layer_stack.h"

#include <fcntl.h>

#include <bit>
#include <map>

#include "layers/sys/fs.h"
#include "layers/sys/mount.h"

namespace layerfs {
namespace {

constexpr uint64_t kOverflowBit = uint64_t{1} << 63;

using Identity = std::pair<dev_t, ino_t>;

// The identities of a directory and of every directory above it, up to its filesystem root.
std::vector<Identity> ancestry(BorrowedFd dir_fd) {
  std::vector<Identity> chain;
  auto fd = sys::open_at(dir_fd, ".", O_PATH | O_DIRECTORY);
  while (fd.ok()) {
    auto st = sys::stat_fd(fd->get());
    if (!st.ok()) break;
    Identity id{st->st_dev, st->st_ino};
    if (!chain.empty() && chain.back() == id) break;  // "/" is its own parent
    chain.push_back(id);
    fd = sys::open_at(fd->get(), "..", O_PATH | O_DIRECTORY);
  }
  return chain;
}

}  // namespace

Result<std::shared_ptr<const LayerStack>> LayerStack::open(const std::vector<std::string>& paths,
                                                           const std::vector<std::string>& roles,
                                                           size_t writable) {
  auto role = [&](size_t i) { return i < roles.size() ? roles[i] : std::string("lowerdir"); };
  auto name = [&](size_t i) { return role(i) + " '" + paths[i] + "'"; };
  auto refuse = [&](size_t i, const std::string& why) {
    return failure(EINVAL, name(i) + ": " + why);
  };
  auto stack = std::make_shared<LayerStack>();
  std::map<dev_t, uint32_t> fsids;
  std::map<Identity, size_t> roots;  // layer roots, for the overlap check
  for (size_t i = 0; i < paths.size(); ++i) {
    const std::string& path = paths[i];
    auto fd = sys::open_at(kCwd, path.c_str(), O_PATH | O_DIRECTORY);
    if (!fd.ok()) return fd.err().context(role(i), path);
    // A layer must be listable; an O_PATH open alone succeeds without read permission.
    auto probe = sys::open_at(fd->get(), ".", O_RDONLY | O_DIRECTORY);
    if (!probe.ok()) return probe.err().context(role(i), path);
    auto st = sys::stat_fd(fd->get());
    if (!st.ok()) return st.err().context(role(i), path);
    auto [same, fresh] = roots.emplace(Identity{st->st_dev, st->st_ino}, roots.size());
    if (!fresh) return refuse(i, "same directory as " + name(same->second));
    auto [it, inserted] = fsids.emplace(st->st_dev, static_cast<uint32_t>(fsids.size()));
    const origin::Uuid uuid = origin::filesystem_uuid(fd->get());
    stack->layers_.push_back(Layer{.path = path,
                                   .root = std::move(*fd),
                                   .dev = st->st_dev,
                                   .ino = st->st_ino,
                                   .fsid = it->second,
                                   .uuid = uuid});
  }
  for (size_t i = 0; i < stack->layers_.size(); ++i) {
    auto chain = ancestry(stack->layers_[i].root.get());
    for (size_t up = 1; up < chain.size(); ++up) {
      auto it = roots.find(chain[up]);
      if (it != roots.end()) {
        return refuse(i, "inside " + name(it->second) + "; layers must not overlap");
      }
    }
  }
  // After the overlap check, which walks up from each root: a clone's root is its own parent.
  for (size_t i = writable; i < stack->layers_.size(); ++i) {
    Layer& layer = stack->layers_[i];
    if (auto clone = sys::clone_mount(layer.root.get()); clone.ok()) {
      layer.root = std::move(*clone);
      layer.private_mount = true;
    }
  }
  stack->fs_count_ = static_cast<uint32_t>(fsids.size());
  if (stack->fs_count_ > 1) {
    // One bit above the fsid bits stays clear for the overflow range.
    stack->fsid_shift_ = 63 - static_cast<unsigned>(std::bit_width(stack->fs_count_ - 1));
  }
  return std::shared_ptr<const LayerStack>(std::move(stack));
}

std::optional<size_t> LayerStack::containing(BorrowedFd dir_fd) const {
  for (const Identity& id : ancestry(dir_fd)) {
    for (size_t i = 0; i < layers_.size(); ++i) {
      if (layers_[i].dev == id.first && layers_[i].ino == id.second) return i;
    }
  }
  return std::nullopt;
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
