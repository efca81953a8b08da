#include "layers/diff.h"

#include <algorithm>
#include <map>
#include <set>

namespace layerfs {
namespace {

std::string shown_path(const std::string& path) { return "/" + path; }

bool same_mtime(const Entry& a, const Entry& b) {
  if (a.mtime.tv_sec != b.mtime.tv_sec) return false;
  if (!a.mtime_ns || !b.mtime_ns) return true;
  // As containers/storage's sameFsTimeSpec: a zero nanosecond part matches any.
  return a.mtime.tv_nsec == b.mtime.tv_nsec || a.mtime.tv_nsec == 0 || b.mtime.tv_nsec == 0;
}

// Collects changes by path; the kind of a path is decided once.
class Changes {
 public:
  void add(char kind, const std::string& path, std::vector<std::string> what = {}) {
    by_path_.try_emplace(path, Change{kind, shown_path(path), std::move(what)});
  }
  bool has(const std::string& path) const { return by_path_.contains(path); }
  // Every directory above a change is changed too (not the root).
  void add_parents() {
    std::vector<std::string> parents;
    for (const auto& [path, c] : by_path_) {
      for (size_t slash = path.rfind('/'); slash != std::string::npos && slash > 0;
           slash = path.rfind('/', slash - 1)) {
        parents.push_back(path.substr(0, slash));
      }
    }
    for (const std::string& p : parents) add('C', p);
  }
  std::vector<Change> sorted() {
    std::vector<Change> out;
    out.reserve(by_path_.size());
    for (auto& [path, c] : by_path_) out.push_back(std::move(c));
    std::sort(out.begin(), out.end(),
              [](const Change& a, const Change& b) { return a.path < b.path; });
    return out;
  }

 private:
  std::map<std::string, Change> by_path_;
};

// A deleted path is listed on its own only below a directory that is still there (unless
// every deleted descendant is asked for): the rest go with their deleted ancestor, or with the
// directory a non-directory replaced.
bool listed_deletion(const MergedView& now, const std::string& path, const DiffOptions& opts) {
  if (opts.recursive) return true;
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return true;
  auto parent = now.find(path.substr(0, slash));
  return parent != now.end() && parent->second.entry->is_dir();
}

}  // namespace

std::vector<std::string> differences(const Entry& a, const Entry& b, const DiffOptions& opts) {
  std::vector<std::string> out;
  if (a.type() != b.type()) {
    out.emplace_back("type");
    return out;
  }
  if ((a.mode & 07777) != (b.mode & 07777)) out.emplace_back("mode");
  if (a.uid != b.uid || a.gid != b.gid) out.emplace_back("owner");
  if (a.rdev != b.rdev) out.emplace_back("device");
  if (!a.is_dir()) {
    if (a.size != b.size) out.emplace_back("size");
    if (a.size == b.size && a.hash && b.hash && *a.hash != *b.hash) out.emplace_back("content");
    if (!opts.semantic && !same_mtime(a, b)) out.emplace_back("mtime");
  }
  if (a.link != b.link) out.emplace_back("link target");
  if ((a.link_group != 0) != (b.link_group != 0)) out.emplace_back("hard links");
  for (const auto& [name, value] : a.xattrs) {
    auto it = b.xattrs.find(name);
    if (it == b.xattrs.end() || it->second != value) out.push_back("xattr " + name);
  }
  for (const auto& [name, value] : b.xattrs) {
    if (!a.xattrs.contains(name)) out.push_back("xattr " + name);
  }
  return out;
}

std::vector<Change> diff_views(const MergedView& old_view, const MergedView& new_view,
                               const DiffOptions& opts) {
  Changes changes;
  // Both views are sorted by path: one pass over the two at once.
  auto old = old_view.begin();
  for (auto now = new_view.begin(); now != new_view.end(); ++now) {
    const std::string& path = now->first;
    while (old != old_view.end() && old->first < path) {
      if (!old->first.empty() && listed_deletion(new_view, old->first, opts)) {
        changes.add('D', old->first);
      }
      ++old;
    }
    const bool both = old != old_view.end() && old->first == path;
    if (path.empty()) {
      if (both) ++old;
      continue;
    }
    if (!both) {
      changes.add('A', path);
      continue;
    }
    auto what = differences(*old->second.entry, *now->second.entry, opts);
    if (!what.empty()) changes.add('C', path, std::move(what));
    ++old;
  }
  for (; old != old_view.end(); ++old) {
    if (!old->first.empty() && listed_deletion(new_view, old->first, opts)) {
      changes.add('D', old->first);
    }
  }
  changes.add_parents();
  return changes.sorted();
}

std::vector<Change> diff_layer(std::span<const LayerTree* const> below_layers, const LayerTree& top,
                               const DiffOptions& opts) {
  // containers/storage's overlay walk (OverlayChanges): the top layer's entries in path order,
  // each looked for in the layers below as they are on disk (a path any of them holds counts,
  // whatever hides it in the merge).
  auto below_has = [&](const std::string& path) -> const Entry* {
    for (auto it = below_layers.rbegin(); it != below_layers.rend(); ++it) {
      const Entry* e = (*it)->find(path);
      if (e != nullptr && e->kind == Entry::Kind::kObject) return e;
    }
    return nullptr;
  };
  Changes changes;
  std::set<std::string> changed_dirs;
  auto parent_changed = [&](const std::string& path) {
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos) return;  // the root's children: the root is never listed
    const std::string parent = path.substr(0, slash);
    if (changed_dirs.insert(parent).second) changes.add('C', parent);
  };
  for (const auto& [path, e] : top.entries()) {
    if (path.empty() || e.implied) continue;
    const Entry* old = below_has(path);
    if (e.kind == Entry::Kind::kWhiteout || (e.is_dir() && e.opaque && old != nullptr)) {
      // A whiteout, or a directory deleted and made again (opaque), deletes what was there.
      if (e.kind == Entry::Kind::kWhiteout && old == nullptr) continue;
      changes.add('D', path);
      if (opts.recursive) {
        for (const LayerTree* l : below_layers) {
          for (auto it = l->entries().lower_bound(path + '/');
               it != l->entries().end() && it->first.starts_with(path + '/'); ++it) {
            if (top.find(it->first) == nullptr) changes.add('D', it->first);
          }
        }
      }
      if (e.is_dir()) changed_dirs.insert(path);
      parent_changed(path);
      continue;
    }
    if (old == nullptr) {
      changes.add('A', path);
      if (e.is_dir()) changed_dirs.insert(path);
      parent_changed(path);
      continue;
    }
    auto what = differences(*old, e, opts);
    if (e.is_dir() && old->is_dir()) {
      // A directory is listed only where its mode, size or mtime moved: a copy-up alone
      // (for a change below it) is not a change of its own.
      if (!opts.semantic && !same_mtime(*old, e)) what.emplace_back("mtime");
      if (what.empty()) continue;
    }
    changes.add('C', path, std::move(what));
    if (e.is_dir()) changed_dirs.insert(path);
  }
  return changes.sorted();
}

LayerTree layer_between(const MergedView& below, const MergedView& view) {
  std::set<std::string> objects;  // paths of `view` the layer holds
  auto with_parents = [&](const std::string& path) {
    for (std::string p = path; objects.insert(p).second;) {
      const size_t slash = p.rfind('/');
      if (slash == std::string::npos) break;
      p.resize(slash);
    }
  };
  for (const auto& [path, shown] : view) {
    if (path.empty()) continue;
    auto old = below.find(path);
    if (old == below.end()) {
      with_parents(path);
      continue;
    }
    const Entry& was = *old->second.entry;
    const Entry& now = *shown.entry;
    if (!differences(was, now, DiffOptions{}).empty() || (now.is_dir() && !same_mtime(was, now))) {
      with_parents(path);
    }
  }
  std::vector<std::string> whiteouts;
  for (const auto& [path, shown] : below) {
    if (path.empty() || view.contains(path)) continue;
    const size_t slash = path.rfind('/');
    if (slash != std::string::npos) {
      auto parent = view.find(path.substr(0, slash));
      if (parent == view.end() || !parent->second.entry->is_dir()) continue;  // gone with it
      with_parents(parent->first);
    }
    whiteouts.push_back(path);
  }
  LayerTree layer;
  if (auto root = view.find(""); root != view.end()) layer.add(*root->second.entry);
  // Parents before children: the set is sorted, and "a" sorts before "a/b".
  for (const std::string& path : objects) {
    Entry e = *view.at(path).entry;
    e.implied = false;
    e.opaque = false;
    layer.add(std::move(e));
  }
  for (const std::string& path : whiteouts) {
    const size_t slash = path.rfind('/');
    Entry w;
    w.mode = S_IFREG | 0644;
    w.path =
        slash == std::string::npos
            ? std::string(Whiteout::kPrefix) + path
            : path.substr(0, slash + 1) + std::string(Whiteout::kPrefix) + path.substr(slash + 1);
    layer.add(std::move(w));
  }
  return layer;
}

}  // namespace layerfs

namespace layerfs {

bool podman_hides(const std::string& path) {
  static const std::set<std::string, std::less<>> kInit = {
      "/dev",         "/etc/hostname", "/etc/hosts",  "/etc/resolv.conf",
      "/proc",        "/run",          "/run/notify", "/run/.containerenv",
      "/run/secrets", "/sys",          "/etc/mtab",   "/run/podman-init"};
  return kInit.contains(path);
}

}  // namespace layerfs
