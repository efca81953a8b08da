#include "tools/layerdu/report.h"

#include <algorithm>
#include <cstdio>

namespace layerfs::du {
namespace {

std::string type_name(const Entry& e) {
  if (e.kind == Entry::Kind::kWhiteout) return "whiteout";
  switch (e.type()) {
    case S_IFREG:
      return "file";
    case S_IFDIR:
      return "dir";
    case S_IFLNK:
      return "symlink";
    case S_IFCHR:
      return "char";
    case S_IFBLK:
      return "block";
    case S_IFIFO:
      return "fifo";
    case S_IFSOCK:
      return "socket";
    default:
      break;
  }
  return "other";
}

std::string percent(double f) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", f * 100.0);
  return buf;
}

std::string pad(const std::string& s, size_t width, bool right) {
  if (s.size() >= width) return s;
  const std::string fill(width - s.size(), ' ');
  return right ? fill + s : s + fill;
}

}  // namespace

std::string human_bytes(uint64_t n, bool exact) {
  if (exact) return std::to_string(n);
  static const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  double v = static_cast<double>(n);
  size_t u = 0;
  while (v >= 1000.0 && u + 1 < std::size(kUnits)) {
    v /= 1000.0;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  } else {
    std::snprintf(buf, sizeof buf,
                  v < 10    ? "%.2f %s"
                  : v < 100 ? "%.1f %s"
                            : "%.0f %s",
                  v, kUnits[u]);
  }
  return buf;
}

nlohmann::json to_json(const Analysed& a, bool files) {
  const Usage& u = a.usage;
  nlohmann::json doc;
  doc["schemaVersion"] = 1;
  doc["source"] = a.spec;
  doc["kind"] = a.kind;
  doc["totals"] = {{"total_bytes", u.total_bytes},
                   {"live_bytes", u.live_bytes},
                   {"reclaimable_bytes", u.reclaimable_bytes},
                   {"duplicate_bytes", u.duplicate_bytes},
                   {"metadata_copy_bytes", u.metadata_copy_bytes},
                   {"efficiency", u.efficiency},
                   {"dive_efficiency", u.dive_efficiency},
                   {"dive_wasted_bytes", u.dive_wasted_bytes},
                   {"dive_user_wasted_percent", u.dive_user_wasted_percent}};
  // Bytes on disk only where every layer is a directory.
  const bool on_disk = std::all_of(a.infos.begin(), a.infos.end(),
                                   [](const LayerInfo& i) { return !i.directory.empty(); });
  if (on_disk) doc["totals"]["allocated_bytes"] = u.allocated_bytes;
  doc["layers"] = nlohmann::json::array();
  for (const LayerUsage& l : u.layers) {
    const LayerInfo& info = a.infos[l.index];
    nlohmann::json j = {{"index", l.index},
                        {"name", info.name},
                        {"bytes", l.bytes},
                        {"live_bytes", l.live_bytes},
                        {"shadowed_bytes", l.shadowed_bytes},
                        {"removed_bytes", l.removed_bytes},
                        {"metadata_copy_bytes", l.metadata_copy_bytes},
                        {"entries", l.entries},
                        {"added", l.added},
                        {"modified", l.modified},
                        {"removed", l.removed}};
    if (on_disk) j["allocated_bytes"] = l.allocated;
    // Image layers: what the image says of them.
    if (!info.digest.empty()) j["digest"] = info.digest;
    if (!info.diff_id.empty()) j["diff_id"] = info.diff_id;
    if (!info.media_type.empty()) j["media_type"] = info.media_type;
    if (info.compressed_size > 0) j["compressed_bytes"] = info.compressed_size;
    if (!info.created_by.empty()) j["created_by"] = info.created_by;
    if (files) {
      nlohmann::json list = nlohmann::json::array();
      for (const EntryFate& f : l.files) {
        nlohmann::json e = {{"path", "/" + f.entry->path},
                            {"type", type_name(*f.entry)},
                            {"change", std::string(1, f.change)},
                            {"bytes", f.bytes}};
        if (f.entry->kind == Entry::Kind::kObject) {
          e["fate"] = fate_name(f.fate);
          if (f.by_layer >= 0) e["by_layer"] = f.by_layer;
          if (f.metadata_copy) e["metadata_copy"] = true;
        }
        list.push_back(std::move(e));
      }
      j["files"] = std::move(list);
    }
    doc["layers"].push_back(std::move(j));
  }
  doc["top"] = nlohmann::json::array();
  for (const TopItem& t : u.top) {
    nlohmann::json copies = nlohmann::json::array();
    for (const Copy& c : t.copies) {
      copies.push_back({{"layer", c.layer}, {"bytes", c.bytes}, {"why", c.why}});
    }
    doc["top"].push_back({{"path", t.path},
                          {"directory", t.directory},
                          {"reclaimable_bytes", t.reclaimable_bytes},
                          {"reasons", t.reasons},
                          {"copies", std::move(copies)}});
  }
  return doc;
}

std::string terminal_report(const Analysed& a, unsigned columns, bool exact) {
  const Usage& u = a.usage;
  if (columns < 60) columns = 60;
  std::string out;
  uint64_t biggest = 1;
  for (const LayerUsage& l : u.layers) biggest = std::max(biggest, l.bytes);
  const std::vector<std::string> head = {"layer",   "bytes",   "live", "shadowed",
                                         "removed", "entries", "+/~/-"};
  const size_t w = exact ? 12 : 9;
  const size_t widths[] = {5, w, w, w, w, 8, 17};
  size_t used = 0;
  for (size_t i = 0; i < head.size(); ++i) {
    out += pad(head[i], widths[i], i != 0 && i != 6) + " ";
    used += widths[i] + 1;
  }
  const size_t bar = columns > used + 10 ? columns - used - 2 : 10;
  out += "live █ shadowed ▒ removed ░\n";
  for (const LayerUsage& l : u.layers) {
    const std::string counts = std::to_string(l.added) + "/" + std::to_string(l.modified) + "/" +
                               std::to_string(l.removed);
    out += pad(std::to_string(l.index), widths[0], false) + " ";
    out += pad(human_bytes(l.bytes, exact), widths[1], true) + " ";
    out += pad(human_bytes(l.live_bytes, exact), widths[2], true) + " ";
    out += pad(human_bytes(l.shadowed_bytes, exact), widths[3], true) + " ";
    out += pad(human_bytes(l.removed_bytes, exact), widths[4], true) + " ";
    out += pad(std::to_string(l.entries), widths[5], true) + " ";
    out += pad(counts, widths[6], false) + " ";
    auto cells = [&](uint64_t b) {
      return static_cast<size_t>(static_cast<double>(b) / static_cast<double>(biggest) *
                                 static_cast<double>(bar));
    };
    const size_t live = cells(l.live_bytes), shadowed = cells(l.shadowed_bytes),
                 removed = cells(l.removed_bytes);
    for (size_t i = 0; i < live; ++i) out += "█";
    for (size_t i = 0; i < shadowed; ++i) out += "▒";
    for (size_t i = 0; i < removed; ++i) out += "░";
    out += "\n";
    const LayerInfo& info = a.infos[l.index];
    std::string what = info.created_by.empty() ? info.name : info.created_by;
    if (l.metadata_copy_bytes > 0) {
      what += "  [" + human_bytes(l.metadata_copy_bytes, exact) + " metadata-only copies]";
    }
    if (what.size() + 8 > columns) what = what.substr(0, columns - 11) + "...";
    out += "      " + what + "\n";
  }
  out += "\ntotal " + human_bytes(u.total_bytes, exact) + ", live " +
         human_bytes(u.live_bytes, exact) + ", reclaimable " +
         human_bytes(u.reclaimable_bytes, exact) + ", duplicates " +
         human_bytes(u.duplicate_bytes, exact) + "\n";
  out += "efficiency " + percent(u.efficiency) + " (dive's score " + percent(u.dive_efficiency) +
         ", dive's wasted bytes " + human_bytes(u.dive_wasted_bytes, exact) + ")\n";
  if (!u.top.empty()) {
    out += "\ntop " + std::to_string(u.top.size()) + " by reclaimable bytes:\n";
    for (const TopItem& t : u.top) {
      std::string reasons;
      for (const std::string& r : t.reasons) reasons += (reasons.empty() ? "" : ", ") + r;
      out += pad(human_bytes(t.reclaimable_bytes, exact), w, true) + "  " + t.path +
             (t.directory ? "/" : "") + "  (" + reasons + ")\n";
      for (const Copy& c : t.copies) {
        out += std::string(w + 4, ' ') + "layer " + std::to_string(c.layer) + ": " +
               human_bytes(c.bytes, exact) + ", " + c.why + "\n";
      }
    }
  }
  return out;
}

}  // namespace layerfs::du
