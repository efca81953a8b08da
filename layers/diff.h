// What changed between two merged views, or what one layer changes over the layers below it,
// with podman's rules for which paths are listed (containers/storage's change walk):
// - a path only in the new view is added (A), every added descendant with it;
// - a path only in the old view is deleted (D); a deleted directory's descendants are listed
//   only when asked (recursive), as are those of a directory replaced by a non-directory;
// - a path in both is changed (C) when its type, mode, owner or device numbers differ, or (not
//   for directories) its mtime or size; layerfs also counts content (by hash), link target,
//   xattrs and hard-link group, which podman cannot see but which only move with those;
// - every directory above an added, changed or deleted path is changed, but the root.
// mtimes compare to the second where either side has only seconds (a tar), and not at all
// when `semantic`.
#pragma once

#include <string>
#include <vector>

#include "layers/tree.h"

namespace layerfs {

struct Change {
  char kind = 'C';   // 'A', 'C' or 'D'
  std::string path;  // "/a/b"
  // For 'C': what differs ("content", "size", "type", "mode", "owner", "mtime",
  // "xattr NAME", "link target", "device", "hard links"); empty for a directory listed only
  // because something below it changed.
  std::vector<std::string> what;
};

struct DiffOptions {
  bool recursive = false;  // list every deleted descendant
  bool semantic = false;   // ignore mtimes
};

// The aspects in which `a` and `b` (the same path) differ, and whether podman's rules list the
// path as changed for them.
std::vector<std::string> differences(const Entry& a, const Entry& b, const DiffOptions& opts);

// Old and new merged views (podman diff IMAGE1 IMAGE2), sorted by path.
std::vector<Change> diff_views(const MergedView& old_view, const MergedView& new_view,
                               const DiffOptions& opts);

// What the layer `top` changes over `below_layers` (base first), as podman diff CONTAINER
// reports a container's upper (containers/storage's overlay walk), and what
// `layerdiff diff --layer N` shows: each entry of `top` that no layer below holds is added
// (A); one that a layer below holds is changed (C), but a directory whose mode and mtime did
// not move (a copy-up for a change inside it); a whiteout of what is below, and an opaque
// directory over one below (deleted and made again), are deleted (D), the opaque directory's
// new children then added; the parent of an added or deleted path is changed. Sorted by path.
std::vector<Change> diff_layer(std::span<const LayerTree* const> below_layers, const LayerTree& top,
                               const DiffOptions& opts);

// The layer that, put over `below`, shows `view`: every path of `view` that `below` lacks or
// shows otherwise (any of `differences`, a directory's mtime too), with the directories above
// it taken from `view`; a whiteout for every path of `below` that `view` lacks, beneath a
// directory `view` still has. It points into nothing: entries are copied. What export writes
// for an upper whose markers a layer tar cannot say (redirects, metacopy files): the mount's
// merged view against its lowers'.
LayerTree layer_between(const MergedView& below, const MergedView& view);

// The paths podman leaves out of every diff (libpod's initInodes): what it writes into each
// container's root (/etc/hosts, /run/.containerenv, mount points). `--podman` drops them.
bool podman_hides(const std::string& path);

}  // namespace layerfs
