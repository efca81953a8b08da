// Where the bytes of a layer stack go (what layerdu reports). Bytes are the apparent sizes of
// regular-file content, as a layer tar holds them (directories and symlinks count 0), counted
// once per hard-link group of a layer. Each layer's bytes end one of three ways, found by
// replaying the merge of layers/tree.h with an observer:
// - live: shown in the merged view of the whole stack;
// - shadowed: replaced at its own path by a higher layer (a copy that keeps the content, as a
//   chmod, chown or touch makes, is a metadata-only copy and is called out);
// - removed: deleted by a higher whiteout, opaque directory or non-directory over a directory,
//   every descendant counted.
// Reclaimable bytes are every copy but the one that survives: shadowed + removed, so live +
// reclaimable = total, per layer and for the stack. Duplicate bytes are live content shown
// under more than one name (same size and XXH3-128, not one hard link): all copies but one.
// dive's efficiency score, wasted bytes and user-wasted share are computed by dive's own
// formulas beside ours (its filetree/efficiency.go and image analysis), so users can compare.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "layers/tree.h"

namespace layerfs {

enum class Fate { kLive, kShadowed, kRemoved };
const char* fate_name(Fate f);

// One entry of a layer and what became of it.
struct EntryFate {
  const Entry* entry = nullptr;
  char change = 'A';  // 'A' added, 'M' modified (the path was shown below), 'D' a whiteout
  Fate fate = Fate::kLive;
  int32_t by_layer = -1;          // the layer that shadowed or removed it
  const Entry* by = nullptr;      // the entry there that did (at this path or above it)
  bool metadata_copy = false;     // a copy of a file below with the same content
  uint64_t bytes = 0;             // what it counts (0 for a second name of a hard-link group)
  Fate bytes_fate = Fate::kLive;  // how those bytes end: a hard-link group's best-kept name
};

struct LayerUsage {
  uint32_t index = 0;
  uint64_t entries = 0;    // entries the layer holds (markers included, implied parents not)
  uint64_t bytes = 0;      // regular-file content
  uint64_t allocated = 0;  // bytes on disk (directory sources)
  uint64_t live_bytes = 0, shadowed_bytes = 0, removed_bytes = 0;
  uint64_t metadata_copy_bytes = 0;               // bytes of this layer's metadata-only copies
  uint64_t added = 0, modified = 0, removed = 0;  // paths (removed: every deleted descendant)
  std::vector<EntryFate> files;                   // every entry, in path order
};

// One copy of a path in the top list.
struct Copy {
  uint32_t layer = 0;
  uint64_t bytes = 0;
  std::string why;  // "live", "shadowed by layer N", "removed by layer N", ...
};

struct TopItem {
  std::string path;  // "/a/b"
  bool directory = false;
  uint64_t reclaimable_bytes = 0;
  std::vector<std::string> reasons;  // "shadowed", "removed", "metadata-only copy", "duplicate"
  std::vector<Copy> copies;
};

struct Usage {
  std::vector<LayerUsage> layers;
  uint64_t total_bytes = 0, live_bytes = 0, reclaimable_bytes = 0, duplicate_bytes = 0;
  uint64_t allocated_bytes = 0;
  uint64_t metadata_copy_bytes = 0;
  double efficiency = 1.0;  // live / total
  // dive's numbers, by its formulas: score = sum over leaf paths of the smallest copy / sum of
  // all copies; wasted = all copies of every leaf path found in two or more layers (the
  // surviving one included); user wasted = wasted / the bytes of every layer but the base.
  double dive_efficiency = 1.0;
  uint64_t dive_wasted_bytes = 0;
  double dive_user_wasted_percent = 0.0;
  std::vector<TopItem> top;  // by reclaimable bytes, largest first
  MergedView view;           // the merged view of the whole stack
};

// Analyses `layers` (base first). The result points into the trees, which must outlive it.
Usage analyse(std::span<const LayerTree* const> layers, size_t top_n);

}  // namespace layerfs
