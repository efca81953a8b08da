// A layer as the tools hold it (every entry's metadata by path, markers already read as what
// they mean), and the merged view of a stack of them. The markers are classified by the
// functions the daemon's merge uses (Whiteout::classify_name, dir_marks_of,
// is_xattr_whiteout_of), and the merge follows the same rules as layers/merge.h, applied base
// first the way an OCI runtime unpacks a stack:
// - a whiteout deletes the name, and everything below it, from the layers beneath;
// - a directory over a directory merges with it (its children stay) unless it is opaque;
// - anything else replaces what was there, with everything below it;
// - a whiteout never deletes an object of its own layer; a directory beside a whiteout of its
//   own name is opaque (what the whiteout deleted below stays deleted).
// Redirects (kernel overlayfs's redirect_dir) are not followed: a layer that has them says so.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "layers/entry.h"

namespace layerfs {

class LayerTree {
 public:
  // Takes an entry as its source holds it. Marker entries (".wh.NAME", ".wh..wh..opq", a 0/0
  // char device, an xattr whiteout) become what they mean; overlay-private xattrs go; missing
  // parents are implied. A later entry for a path replaces an earlier one, but an object is
  // never replaced by a whiteout of its own layer.
  void add(Entry e);

  const std::map<std::string, Entry>& entries() const { return entries_; }
  const Entry* find(const std::string& path) const;
  size_t size() const { return entries_.size(); }
  // Directories with a redirect (which the tools' merge does not follow).
  const std::vector<std::string>& redirects() const { return redirects_; }
  // Files with a metacopy xattr (kernel overlayfs's metacopy=on: the data is in a layer below).
  const std::vector<std::string>& metacopies() const { return metacopies_; }
  // Marker entries read (for people: "12 whiteouts, 1 opaque directory").
  size_t whiteouts() const { return whiteouts_; }

 private:
  Entry& implied_dir(const std::string& path);
  void implied_whiteout(const std::string& parent, Entry w);

  std::map<std::string, Entry> entries_;
  std::set<std::string, std::less<>> xwhiteout_dirs_;
  std::vector<std::string> redirects_;
  std::vector<std::string> metacopies_;
  std::string last_dir_ = "\n";  // the directory last added (none yet: no path is "\n")
  size_t whiteouts_ = 0;
  uint64_t groups_ = 1ull << 32;  // hard-link groups this tree numbers (above a reader's)
};

// One path of a merged view: the entry shown and the layer (base first) it comes from.
struct Shown {
  const Entry* entry = nullptr;
  uint32_t layer = 0;
};

// The merged view of `layers` (base first). It points into the trees, which must outlive it.
using MergedView = std::map<std::string, Shown>;
MergedView merge(std::span<const LayerTree* const> layers);
// What a merge hides as it applies a layer (for the tools that tell where bytes go): the path
// and what was shown there, the entry of the new layer that hid it, and that layer. The entry
// is at the same path when it replaced the object there (shadowed), or is a whiteout, an
// opaque directory or a non-directory at the path or above it when it deleted it (removed).
using HideObserver = std::function<void(const std::string& path, const Shown& was, const Entry& by,
                                        uint32_t by_layer)>;
// Applies one more layer on top of `view`, shown as layer `index`.
void apply_layer(MergedView& view, const LayerTree& layer, uint32_t index,
                 const HideObserver& observe = {});

// Removes `path` and everything below it from `view`.
template <class V>
void erase_tree(std::map<std::string, V>& view, const std::string& path) {
  view.erase(path);
  if (path.empty()) {
    view.clear();
    return;
  }
  auto from = view.lower_bound(path + '/');
  auto to = view.lower_bound(path + static_cast<char>('/' + 1));
  view.erase(from, to);
}

}  // namespace layerfs
