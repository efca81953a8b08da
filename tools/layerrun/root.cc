#include "tools/layerrun/root.h"

#include "fuse/options.h"

namespace layerfs::run {

Result<std::unique_ptr<LayerRoot>> LayerRoot::start(const Spec& spec,
                                                    const std::string& mountpoint) {
  Options opts;
  opts.lowerdirs.assign(spec.lowers.rbegin(), spec.lowers.rend());  // layerfs takes top first
  opts.upperdir = spec.upper;
  opts.workdir = spec.work;
  opts.mountpoint = mountpoint;
  opts.fsname = "layerrun";
  auto session = Session::prepare(opts);
  if (!session.ok()) return session.err();
  std::unique_ptr<LayerRoot> root(new LayerRoot());
  root->session_ = std::move(*session);
  LAYERFS_TRY(root->session_->mount());
  Session* s = root->session_.get();
  root->server_ = std::thread([s] { s->serve(); });
  return root;
}

LayerRoot::~LayerRoot() {
  if (session_) session_->stop();
  if (server_.joinable()) server_.join();
}

}  // namespace layerfs::run
