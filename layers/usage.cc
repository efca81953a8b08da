#include "layers/usage.h"

#include <algorithm>
#include <map>
#include <set>
#include <string_view>
#include <tuple>
#include <unordered_map>

namespace layerfs {
namespace {

// The entry of `layer` at `path` (its files are in path order); const or not as `layer` is.
template <class Layer>
auto find_path(Layer& layer, const std::string& path) -> decltype(&layer.files[0]) {
  auto it =
      std::lower_bound(layer.files.begin(), layer.files.end(), path,
                       [](const EntryFate& f, const std::string& p) { return f.entry->path < p; });
  return it != layer.files.end() && it->entry->path == path ? &*it : nullptr;
}

// The fate of `e`, where it is one of `layer`'s entries (not an implied parent).
EntryFate* find_file(LayerUsage& layer, const Entry* e) {
  EntryFate* f = find_path(layer, e->path);
  return f != nullptr && f->entry == e ? f : nullptr;
}

bool same_content(const Entry& a, const Entry& b) {
  return a.is_reg() && b.is_reg() && a.size == b.size && a.hash && b.hash && *a.hash == *b.hash;
}

int rank(Fate f) { return f == Fate::kLive ? 0 : f == Fate::kShadowed ? 1 : 2; }

std::string layer_word(int32_t layer) { return "layer " + std::to_string(layer); }

}  // namespace

const char* fate_name(Fate f) {
  switch (f) {
    case Fate::kLive:
      return "live";
    case Fate::kShadowed:
      return "shadowed";
    case Fate::kRemoved:
      break;
  }
  return "removed";
}

Usage analyse(std::span<const LayerTree* const> layers, size_t top_n) {
  Usage u;
  u.layers.resize(layers.size());
  // Every entry of every layer, and the bytes it counts: once per hard-link group.
  for (uint32_t i = 0; i < layers.size(); ++i) {
    LayerUsage& l = u.layers[i];
    l.index = i;
    // A hard-link group's bytes go to one name: the one a tar stores the content with (no
    // hard-link target of its own), else the first by path.
    std::unordered_map<uint64_t, const Entry*> carrier;
    for (const auto& [path, e] : layers[i]->entries()) {
      if (!e.is_reg() || e.link_group == 0) continue;
      auto [it, fresh] = carrier.try_emplace(e.link_group, &e);
      if (!fresh && !it->second->hardlink.empty() && e.hardlink.empty()) it->second = &e;
    }
    for (const auto& [path, e] : layers[i]->entries()) {
      if (path.empty() || e.implied) continue;
      EntryFate f;
      f.entry = &e;
      f.change = e.kind == Entry::Kind::kWhiteout ? 'D' : 'A';
      if (e.is_reg() && (e.link_group == 0 || carrier.at(e.link_group) == &e)) {
        f.bytes = e.size;
        l.allocated += e.allocated;
      }
      l.bytes += f.bytes;
      l.files.push_back(f);
    }
    l.entries = l.files.size();
  }

  // The merge, replayed base first, says what each layer hides.
  std::unordered_map<const Entry*, uint64_t> dive_whiteout;  // what dive sizes a whiteout at
  MergedView view;
  for (uint32_t j = 0; j < layers.size(); ++j) {
    apply_layer(view, *layers[j], j,
                [&](const std::string& path, const Shown& was, const Entry& by, uint32_t) {
                  if (path.empty()) return;
                  const bool removed = by.kind == Entry::Kind::kWhiteout || by.path != path;
                  EntryFate* f = find_file(u.layers[was.layer], was.entry);
                  if (f != nullptr) {
                    f->fate = removed ? Fate::kRemoved : Fate::kShadowed;
                    f->by_layer = static_cast<int32_t>(j);
                    f->by = &by;
                    if (by.kind == Entry::Kind::kWhiteout && by.path != path) {
                      dive_whiteout[&by] += f->bytes;
                    }
                  }
                  if (removed) {
                    ++u.layers[j].removed;
                    return;
                  }
                  EntryFate* mine = find_file(u.layers[j], &by);
                  if (mine == nullptr) return;
                  mine->change = 'M';
                  if (same_content(*was.entry, by)) mine->metadata_copy = true;
                });
  }

  // A hard-link group's bytes end as its best-kept name does.
  for (LayerUsage& l : u.layers) {
    std::unordered_map<uint64_t, Fate> best;
    for (const EntryFate& f : l.files) {
      if (f.entry->link_group == 0 || !f.entry->is_reg()) continue;
      auto [it, fresh] = best.try_emplace(f.entry->link_group, f.fate);
      if (!fresh && rank(f.fate) < rank(it->second)) it->second = f.fate;
    }
    for (EntryFate& f : l.files) {
      if (f.entry->kind == Entry::Kind::kWhiteout) continue;
      if (f.change == 'A') ++l.added;
      if (f.change == 'M') ++l.modified;
      if (f.metadata_copy) l.metadata_copy_bytes += f.bytes;
      const Fate fate =
          f.entry->link_group != 0 && f.entry->is_reg() ? best.at(f.entry->link_group) : f.fate;
      f.bytes_fate = fate;
      (fate == Fate::kLive       ? l.live_bytes
       : fate == Fate::kShadowed ? l.shadowed_bytes
                                 : l.removed_bytes) += f.bytes;
    }
    u.total_bytes += l.bytes;
    u.live_bytes += l.live_bytes;
    u.allocated_bytes += l.allocated;
    u.metadata_copy_bytes += l.metadata_copy_bytes;
  }
  u.reclaimable_bytes = u.total_bytes - u.live_bytes;
  u.efficiency = u.total_bytes == 0
                     ? 1.0
                     : static_cast<double>(u.live_bytes) / static_cast<double>(u.total_bytes);

  // Duplicates: live content under more than one name (one hard-link group counts once).
  // (Sorted records pointing into the trees, not a map of copies: a few words per file.)
  struct Copy1 {
    uint64_t size, high, low;
    const std::string* path;
    uint32_t layer;
  };
  std::vector<Copy1> live_files;
  {
    std::set<std::pair<uint32_t, uint64_t>> seen_groups;
    for (const auto& [path, shown] : view) {
      const Entry& e = *shown.entry;
      if (!e.is_reg() || e.size == 0 || !e.hash) continue;
      if (e.link_group != 0 && !seen_groups.emplace(shown.layer, e.link_group).second) continue;
      live_files.push_back(Copy1{e.size, e.hash->high, e.hash->low, &path, shown.layer});
    }
    std::stable_sort(live_files.begin(), live_files.end(), [](const Copy1& a, const Copy1& b) {
      return std::tie(a.size, a.high, a.low) < std::tie(b.size, b.high, b.low);
    });
  }

  // The top list: a path's copies that did not survive, a deleted directory as one item, and
  // content shown under several names.
  std::map<std::string, TopItem> items;
  for (const LayerUsage& l : u.layers) {
    for (const EntryFate& f : l.files) {
      // (A hard-link group's bytes are lost only where no name of it survives.)
      if (f.bytes == 0 || f.fate == Fate::kLive || f.bytes_fate == Fate::kLive) continue;
      const LayerUsage& by = u.layers[static_cast<size_t>(f.by_layer)];
      if (f.fate == Fate::kRemoved) {
        // Removed by a marker at the path or above it: the item is that path.
        const std::string& root = f.by->path;
        TopItem& item = items["/" + root];
        item.path = "/" + root;
        item.directory = root != f.entry->path;
        item.reclaimable_bytes += f.bytes;
        if (std::find(item.reasons.begin(), item.reasons.end(), "removed") == item.reasons.end()) {
          item.reasons.emplace_back("removed");
        }
        auto c = std::find_if(item.copies.begin(), item.copies.end(),
                              [&](const Copy& x) { return x.layer == l.index; });
        if (c == item.copies.end()) {
          item.copies.push_back(Copy{l.index, 0, "removed by " + layer_word(f.by_layer)});
          c = item.copies.end() - 1;
        }
        c->bytes += f.bytes;
        continue;
      }
      TopItem& item = items["/" + f.entry->path];
      item.path = "/" + f.entry->path;
      item.reclaimable_bytes += f.bytes;
      const EntryFate* above = find_path(by, f.entry->path);
      const bool meta = above != nullptr && above->metadata_copy;
      const std::string reason = meta ? "metadata-only copy" : "shadowed";
      if (std::find(item.reasons.begin(), item.reasons.end(), reason) == item.reasons.end()) {
        item.reasons.push_back(reason);
      }
      item.copies.push_back(Copy{l.index, f.bytes,
                                 (meta ? "shadowed by a metadata-only copy in " : "shadowed by ") +
                                     layer_word(f.by_layer)});
    }
  }
  for (auto& [path, item] : items) {
    if (item.directory) continue;
    auto shown = view.find(path.substr(1));
    if (shown != view.end()) {
      item.copies.push_back(Copy{shown->second.layer, shown->second.entry->size, "live"});
    }
  }
  std::vector<TopItem> top;
  for (auto& [path, item] : items) top.push_back(std::move(item));
  for (size_t from = 0; from < live_files.size();) {
    size_t to = from + 1;
    auto same = [&](const Copy1& a, const Copy1& b) {
      return a.size == b.size && a.high == b.high && a.low == b.low;
    };
    while (to < live_files.size() && same(live_files[from], live_files[to])) ++to;
    if (to - from >= 2) {
      const uint64_t size = live_files[from].size;
      const uint64_t extra = size * (to - from - 1);
      u.duplicate_bytes += extra;
      TopItem item;
      item.path = "/" + *live_files[from].path;
      item.reclaimable_bytes = extra;
      item.reasons.emplace_back("duplicate");
      for (size_t k = from; k < to; ++k) {
        item.copies.push_back(
            Copy{live_files[k].layer, size, "same content at /" + *live_files[k].path});
      }
      top.push_back(std::move(item));
    }
    from = to;
  }
  std::stable_sort(top.begin(), top.end(), [](const TopItem& a, const TopItem& b) {
    return a.reclaimable_bytes > b.reclaimable_bytes;
  });
  if (top.size() > top_n) top.resize(top_n);
  u.top = std::move(top);

  // dive's score over the same layers: every leaf path of every layer (a non-directory, a
  // whiteout, a directory with nothing below it in that layer), sized as dive sizes it.
  std::vector<std::pair<std::string_view, uint64_t>> leaves;  // (path, size) for every copy
  uint64_t user_bytes = 0;
  for (uint32_t i = 0; i < layers.size(); ++i) {
    const LayerUsage& l = u.layers[i];
    if (i != 0) user_bytes += l.bytes;
    for (const EntryFate& f : l.files) {
      if (f.entry->is_dir()) {
        // ("a-b" and "a.txt" sort between "a" and "a/x": look for the children themselves.)
        const std::string below = f.entry->path + "/";
        auto child = layers[i]->entries().lower_bound(below);
        if (child != layers[i]->entries().end() && child->first.starts_with(below)) continue;
      }
      uint64_t size = f.bytes;
      if (f.entry->kind == Entry::Kind::kWhiteout) {
        auto w = dive_whiteout.find(f.entry);
        size = w == dive_whiteout.end() ? 0 : w->second;
      }
      leaves.emplace_back(f.entry->path, size);
    }
  }
  std::stable_sort(leaves.begin(), leaves.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  uint64_t smallest = 0, discovered = 0;
  for (size_t from = 0; from < leaves.size();) {
    size_t to = from;
    uint64_t cumulative = 0, least = leaves[from].second;
    for (; to < leaves.size() && leaves[to].first == leaves[from].first; ++to) {
      cumulative += leaves[to].second;
      least = std::min(least, leaves[to].second);
    }
    smallest += least;
    discovered += cumulative;
    if (to - from >= 2) u.dive_wasted_bytes += cumulative;
    from = to;
  }
  u.dive_efficiency =
      discovered == 0 ? 1.0 : static_cast<double>(smallest) / static_cast<double>(discovered);
  u.dive_user_wasted_percent =
      user_bytes == 0 ? 0.0
                      : static_cast<double>(u.dive_wasted_bytes) / static_cast<double>(user_bytes);
  u.view = std::move(view);
  return u;
}

}  // namespace layerfs
