// The container's root from layers: a layerfs session run inside the monitor process (its
// workers are threads there, outside the container's pid namespace and cgroup), mounted at
// the staging root and stopped when the container has ended.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "fuse/session.h"
#include "layers/base/result.h"
#include "tools/layerrun/spec.h"

namespace layerfs::run {

class LayerRoot {
 public:
  // Checks the layers, mounts them at `mountpoint` and serves them; the tree is live on return.
  static Result<std::unique_ptr<LayerRoot>> start(const Spec& spec, const std::string& mountpoint);
  // Detaches the mount and waits for the workers.
  ~LayerRoot();
  LayerRoot(const LayerRoot&) = delete;
  LayerRoot& operator=(const LayerRoot&) = delete;

 private:
  LayerRoot() = default;
  std::unique_ptr<Session> session_;
  std::thread server_;
};

}  // namespace layerfs::run
