#include "layers/tree.h"

#include <sys/sysmacros.h>

namespace layerfs {

std::string_view Entry::name() const {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string_view(path)
                                    : std::string_view(path).substr(slash + 1);
}

std::string_view Entry::parent() const {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string_view() : std::string_view(path).substr(0, slash);
}

const Entry* LayerTree::find(const std::string& path) const {
  auto it = entries_.find(path);
  return it == entries_.end() ? nullptr : &it->second;
}

Entry& LayerTree::implied_dir(const std::string& path) {
  auto it = entries_.find(path);
  if (it != entries_.end() && it->second.is_dir()) return it->second;
  // A directory over a whiteout of its own layer: nothing below shows through it.
  const bool over_whiteout = it != entries_.end() && it->second.kind == Entry::Kind::kWhiteout;
  if (!path.empty()) {
    const size_t slash = path.rfind('/');
    implied_dir(slash == std::string::npos ? std::string() : path.substr(0, slash));
  }
  Entry dir;
  dir.path = path;
  dir.mode = S_IFDIR | 0755;
  dir.implied = true;
  dir.opaque = over_whiteout;
  auto& slot = entries_[path];
  slot = std::move(dir);
  return slot;
}

void LayerTree::implied_whiteout(const std::string& parent, Entry w) {
  implied_dir(parent);
  auto it = entries_.find(w.path);
  if (it == entries_.end()) {
    std::string path = w.path;
    entries_.emplace(std::move(path), std::move(w));
  } else if (it->second.is_dir()) {
    it->second.opaque = true;  // the directory of this layer stays, alone
  }
}

void LayerTree::add(Entry e) {
  if (!e.hardlink.empty()) {
    // A tar's hard link: the object of an earlier entry under a second name.
    auto target = entries_.find(e.hardlink);
    if (target != entries_.end() && target->second.kind == Entry::Kind::kObject &&
        !target->second.is_dir()) {
      Entry& t = target->second;
      if (t.link_group == 0) t.link_group = ++groups_;
      std::string path = std::move(e.path);
      std::string hardlink = std::move(e.hardlink);
      e = t;
      e.path = std::move(path);
      e.hardlink = std::move(hardlink);
    } else {
      e.mode = S_IFREG | 0644;  // dangling: an empty file (LayerTree never fails)
    }
  }
  const std::string parent(e.parent());
  const std::string_view name = e.name();
  if (!e.path.empty()) {
    switch (Whiteout::classify_name(name)) {
      case Whiteout::Name::kMeta:
        // ".wh..wh..opq" makes its directory opaque; other bookkeeping (aufs's ".wh..wh.plnk")
        // means nothing to a merge.
        if (name == Whiteout::kOpaqueFile) implied_dir(parent).opaque = true;
        ++whiteouts_;
        return;
      case Whiteout::Name::kWhiteoutFile: {
        const std::string_view target = Whiteout::target(name);
        Entry w;
        w.kind = Entry::Kind::kWhiteout;
        w.path = parent.empty() ? std::string(target) : parent + "/" + std::string(target);
        ++whiteouts_;
        implied_whiteout(parent, std::move(w));
        return;
      }
      case Whiteout::Name::kPlain:
        break;
    }
  }
  struct stat st {};
  st.st_mode = e.mode;
  st.st_rdev = e.rdev;
  st.st_size = static_cast<off_t>(e.size);
  const bool xattr_whiteout =
      xwhiteout_dirs_.contains(parent) && Whiteout::is_xattr_whiteout_of(st, e.xattrs);
  if (!e.path.empty() && (Whiteout::is_device_whiteout(st) || xattr_whiteout)) {
    Entry w;
    w.kind = Entry::Kind::kWhiteout;
    w.path = std::move(e.path);
    ++whiteouts_;
    implied_whiteout(parent, std::move(w));
    return;
  }
  if (S_ISDIR(e.mode)) {
    const Whiteout::DirMarks marks = Whiteout::dir_marks_of(e.xattrs, false);
    e.opaque = e.opaque || marks.opaque;
    if (marks.xwhiteouts) xwhiteout_dirs_.insert(e.path);
    if (!marks.redirect.empty()) redirects_.push_back(e.path);
  }
  if (e.xattrs.contains("trusted.overlay.metacopy") || e.xattrs.contains("user.overlay.metacopy")) {
    metacopies_.push_back(e.path);
  }
  std::erase_if(e.xattrs, [](const auto& kv) { return Whiteout::is_private_xattr(kv.first); });
  // Readers deliver parents before children, mostly in path order: the last directory added
  // and the end of the map are where most entries go, found without a search.
  if (!e.path.empty() && parent != last_dir_) implied_dir(parent);
  if (S_ISDIR(e.mode)) {
    last_dir_ = e.path;
  } else if (e.path == last_dir_) {
    last_dir_ = "\n";  // a directory replaced by a later entry of the same layer
  }
  if (entries_.empty() || entries_.rbegin()->first < e.path) {
    std::string path = e.path;
    entries_.emplace_hint(entries_.end(), std::move(path), std::move(e));
    return;
  }
  auto it = entries_.find(e.path);
  if (it != entries_.end()) {
    // A ".wh..wh..opq" seen before its directory's own entry still counts, and so does a
    // whiteout of the same name: nothing below shows through a directory that replaced one.
    if (S_ISDIR(e.mode)) {
      e.opaque = e.opaque || it->second.opaque || it->second.kind == Entry::Kind::kWhiteout;
    }
    it->second = std::move(e);
  } else {
    std::string path = e.path;
    entries_.emplace(std::move(path), std::move(e));
  }
}

void apply_layer(MergedView& view, const LayerTree& layer, uint32_t i,
                 const HideObserver& observe) {
  // Takes `path` and everything below it out of the view, telling the observer.
  auto hide_tree = [&](const std::string& path, const Entry& by) {
    if (observe) {
      if (auto it = view.find(path); it != view.end()) observe(path, it->second, by, i);
      const std::string below = path + '/';
      for (auto it = view.lower_bound(below); it != view.end() && it->first.starts_with(below);
           ++it) {
        observe(it->first, it->second, by, i);
      }
    }
    erase_tree(view, path);
  };
  for (const auto& [path, e] : layer.entries()) {
    if (path.empty()) {
      // A layer root never hides the roots below (kernel overlayfs ignores opaque there).
      auto it = view.find(path);
      if (it == view.end()) {
        view.emplace(path, Shown{&e, i});
      } else if (!e.implied) {
        if (observe) observe(path, it->second, e, i);
        it->second = Shown{&e, i};
      }
      continue;
    }
    if (e.kind == Entry::Kind::kWhiteout) {
      hide_tree(path, e);
      continue;
    }
    if (view.empty() || view.rbegin()->first < path) {
      view.emplace_hint(view.end(), path, Shown{&e, i});  // the first layer: every path
      continue;
    }
    auto it = view.lower_bound(path);
    if (it == view.end() || it->first != path) {
      // Nothing there, so nothing below it either (a view holds every parent of its paths).
      view.emplace_hint(it, path, Shown{&e, i});
      continue;
    }
    const bool was_dir = it->second.entry->is_dir();
    if (was_dir && e.is_dir() && !e.opaque) {
      if (!e.implied) {
        if (observe) observe(path, it->second, e, i);
        it->second = Shown{&e, i};
      }
      continue;
    }
    if (was_dir) {
      hide_tree(path, e);
      view[path] = Shown{&e, i};
    } else {
      if (observe) observe(path, it->second, e, i);
      it->second = Shown{&e, i};  // a non-directory has nothing below it
    }
  }
}

MergedView merge(std::span<const LayerTree* const> layers) {
  MergedView view;
  for (uint32_t i = 0; i < layers.size(); ++i) apply_layer(view, *layers[i], i);
  return view;
}

}  // namespace layerfs
