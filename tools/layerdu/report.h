// layerdu's outputs: the terminal table, the JSON document (schema in the README) and the
// self-contained HTML page.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "layers/base/result.h"
#include "layers/source.h"
#include "layers/usage.h"

namespace layerfs::du {

struct Analysed {
  std::string spec;
  std::string kind;
  std::vector<LayerInfo> infos;  // base first
  std::vector<LayerTree> trees;
  Usage usage;  // its view is the merged view of the whole stack
};

// "12.3 MB" (SI, as podman and dive print sizes), or the exact count with `exact`.
std::string human_bytes(uint64_t n, bool exact);

// The whole analysis; `files` adds every layer's file list.
nlohmann::json to_json(const Analysed& a, bool files);

// The table, totals and top list for a terminal `columns` wide.
std::string terminal_report(const Analysed& a, unsigned columns, bool exact);

// The page: the chart, the treemap of the merged view and the top table; no external file or
// network access.
std::string html_report(const Analysed& a);

}  // namespace layerfs::du
