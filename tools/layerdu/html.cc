// The HTML report: one page, its data in a JSON script element, drawn by the script in it
// (SVG, no library, no network). What it drew is written back into the DOM (data-bars,
// data-treemap-rects, data-top-rows on <body>; data-value on each number) for the tests.
#include <algorithm>
#include <map>
#include <set>

#include "tools/layerdu/report.h"

namespace layerfs::du {
namespace {

// The merged view as a tree of sizes, each node coloured by the layer most of its bytes come
// from; small children of a directory are folded into one "(N more)" node, so the page stays
// small for any stack.
struct Node {
  std::string name;
  uint64_t size = 0;
  std::map<uint32_t, uint64_t> by_layer;
  std::map<std::string, Node> kids;
};

uint32_t main_layer(const Node& n) {
  uint32_t best = 0;
  uint64_t most = 0;
  for (const auto& [layer, bytes] : n.by_layer) {
    if (bytes >= most) {
      most = bytes;
      best = layer;
    }
  }
  return best;
}

nlohmann::json tree_json(const Node& n, uint64_t smallest, size_t& budget) {
  nlohmann::json j = {{"n", n.name}, {"s", n.size}, {"l", main_layer(n)}};
  if (n.kids.empty()) return j;
  std::vector<const Node*> kids;
  for (const auto& [name, k] : n.kids) kids.push_back(&k);
  std::sort(kids.begin(), kids.end(),
            [](const Node* a, const Node* b) { return a->size > b->size; });
  nlohmann::json c = nlohmann::json::array();
  uint64_t rest = 0;
  size_t folded = 0;
  std::map<uint32_t, uint64_t> rest_layers;
  for (const Node* k : kids) {
    if (k->size >= smallest && budget > 0 && c.size() < 80) {
      --budget;
      c.push_back(tree_json(*k, smallest, budget));
    } else {
      rest += k->size;
      ++folded;
      for (const auto& [l, b] : k->by_layer) rest_layers[l] += b;
    }
  }
  if (folded > 0 && rest > 0) {
    Node more;
    more.name = "(" + std::to_string(folded) + " more)";
    more.by_layer = rest_layers;
    c.push_back({{"n", more.name}, {"s", rest}, {"l", main_layer(more)}});
  }
  j["c"] = std::move(c);
  return j;
}

nlohmann::json treemap_data(const Analysed& a) {
  Node root;
  root.name = "/";
  std::set<std::pair<uint32_t, uint64_t>> groups;
  for (const auto& [path, shown] : a.usage.view) {
    const Entry& e = *shown.entry;
    if (!e.is_reg() || e.size == 0) continue;
    if (e.link_group != 0 && !groups.emplace(shown.layer, e.link_group).second) continue;
    Node* n = &root;
    n->size += e.size;
    n->by_layer[shown.layer] += e.size;
    size_t start = 0;
    while (start <= path.size()) {
      const size_t slash = path.find('/', start);
      const std::string part =
          path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      Node& k = n->kids[part];
      k.name = part;
      k.size += e.size;
      k.by_layer[shown.layer] += e.size;
      n = &k;
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
  }
  size_t budget = 4000;
  return tree_json(root, root.size / 2000, budget);
}

// The page's script and style; the data goes in the element with id "data".
constexpr const char* kHead = R"html(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>layerdu</title>
<style>
body{font:14px system-ui,sans-serif;margin:20px;color:#222;background:#fff}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
.totals span{display:inline-block;margin-right:18px}
.totals b{font-size:18px}
#bars text,#treemap text{font-size:11px;pointer-events:none}
table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left}
th{cursor:pointer;background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
#crumbs a{cursor:pointer;color:#06c;margin-right:4px}
.legend i{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
</style></head><body>
<h1>layerdu: <span id="source"></span></h1>
<div class="totals">
<span>total <b id="total-bytes"></b></span><span>live <b id="live-bytes"></b></span>
<span>reclaimable <b id="reclaimable-bytes"></b></span><span>duplicates <b id="duplicate-bytes"></b></span>
<span>efficiency <b id="efficiency"></b></span><span>dive's score <b id="dive-efficiency"></b></span>
</div>
<h2>Layers</h2>
<div class="legend"><i style="background:#3a7"></i>live<i style="background:#e93"></i>shadowed<i style="background:#c44"></i>removed</div>
<svg id="bars" width="1000"></svg>
<h2>Merged view by layer (click a directory to zoom in)</h2>
<div id="crumbs"></div>
<svg id="treemap" width="1000" height="520"></svg>
<div class="legend" id="layer-legend"></div>
<h2>Top by reclaimable bytes</h2>
<table id="top"><thead><tr><th data-k="path">path</th><th data-k="reclaimable_bytes">reclaimable</th><th data-k="reasons">why</th><th data-k="copies">copies</th></tr></thead><tbody></tbody></table>
<script type="application/json" id="data">)html";

constexpr const char* kTail = R"html(</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const NS = "http://www.w3.org/2000/svg";
function human(n) {
  const u = ["B","kB","MB","GB","TB","PB"]; let v = n, i = 0;
  while (v >= 1000 && i < u.length - 1) { v /= 1000; i++; }
  return i == 0 ? n + " B" : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0) + " " + u[i];
}
function color(layer) { return "hsl(" + (layer * 137.5 % 360) + ",55%,60%)"; }
function el(tag, attrs, parent) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
function number(id, value, text) {
  const e = document.getElementById(id); e.textContent = text; e.dataset.value = value;
}
document.getElementById("source").textContent = D.source;
const T = D.totals;
number("total-bytes", T.total_bytes, human(T.total_bytes));
number("live-bytes", T.live_bytes, human(T.live_bytes));
number("reclaimable-bytes", T.reclaimable_bytes, human(T.reclaimable_bytes));
number("duplicate-bytes", T.duplicate_bytes, human(T.duplicate_bytes));
number("efficiency", T.efficiency, (T.efficiency * 100).toFixed(1) + "%");
number("dive-efficiency", T.dive_efficiency, (T.dive_efficiency * 100).toFixed(1) + "%");

// The per-layer stacked bars: live, shadowed, removed.
let bars = 0;
(function () {
  const svg = document.getElementById("bars"), row = 26, left = 70, width = 780;
  svg.setAttribute("height", D.layers.length * row + 10);
  const most = Math.max(1, ...D.layers.map(l => l.bytes));
  D.layers.forEach((l, i) => {
    const y = i * row + 4;
    const t = el("text", {x: 0, y: y + 15}, svg); t.textContent = "layer " + l.index;
    let x = left;
    [["live_bytes", "#3a7"], ["shadowed_bytes", "#e93"], ["removed_bytes", "#c44"]].forEach(([k, c]) => {
      const w = l[k] / most * width;
      if (w <= 0) return;
      const r = el("rect", {x: x, y: y, width: Math.max(w, 1), height: row - 6, fill: c,
                            "data-layer": l.index, "data-kind": k, "data-value": l[k]}, svg);
      el("title", {}, r).textContent = "layer " + l.index + " " + k.replace("_bytes", "") + ": " + human(l[k]);
      x += w; bars++;
    });
    const s = el("text", {x: x + 6, y: y + 15, "data-layer": l.index, "data-bytes": l.bytes}, svg);
    s.textContent = human(l.bytes);
  });
  document.body.dataset.bars = bars;
})();

// The treemap (squarified), zoomable by clicking a directory.
function squarify(items, x, y, w, h, out) {
  items = items.filter(c => c.s > 0);
  if (!items.length) return;
  const total = items.reduce((a, c) => a + c.s, 0);
  const scale = w * h / total;
  let row = [], rest = items.slice();
  function worst(r, side) {
    const s = r.reduce((a, c) => a + c.s * scale, 0);
    let m = 0;
    for (const c of r) { const a = c.s * scale; m = Math.max(m, side * side * a / (s * s), s * s / (side * side * a)); }
    return m;
  }
  while (rest.length) {
    const side = Math.min(w, h);
    const next = row.concat([rest[0]]);
    if (!row.length || worst(next, side) <= worst(row, side)) { row = next; rest.shift(); continue; }
    const s = row.reduce((a, c) => a + c.s * scale, 0), t = s / side;
    let o = 0;
    for (const c of row) {
      const l = c.s * scale / t;
      if (w >= h) out.push([c, x, y + o, t, l]); else out.push([c, x + o, y, l, t]);
      o += l;
    }
    if (w >= h) { x += t; w -= t; } else { y += t; h -= t; }
    row = [];
  }
  const s = row.reduce((a, c) => a + c.s * scale, 0), side = Math.min(w, h), t = s / side;
  let o = 0;
  for (const c of row) {
    const l = c.s * scale / t;
    if (w >= h) out.push([c, x, y + o, t, l]); else out.push([c, x + o, y, l, t]);
    o += l;
  }
}
let trail = [D.tree];
function drawTreemap() {
  const svg = document.getElementById("treemap");
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const node = trail[trail.length - 1];
  const out = [];
  squarify(node.c || [node], 0, 0, 1000, 520, out);
  let drawn = 0;
  for (const [c, x, y, w, h] of out) {
    const r = el("rect", {x: x, y: y, width: Math.max(w - 1, 0.5), height: Math.max(h - 1, 0.5),
                          fill: color(c.l), "data-layer": c.l, "data-bytes": c.s}, svg);
    el("title", {}, r).textContent = c.n + ": " + human(c.s) + " (mostly layer " + c.l + ")";
    if (c.c) { r.style.cursor = "pointer"; r.addEventListener("click", () => { trail.push(c); drawTreemap(); }); }
    if (w > 60 && h > 14) { const t = el("text", {x: x + 3, y: y + 12}, svg); t.textContent = c.n + " " + human(c.s); }
    drawn++;
  }
  document.body.dataset.treemapRects = drawn;
  const crumbs = document.getElementById("crumbs");
  crumbs.textContent = "";
  trail.forEach((n, i) => {
    const a = document.createElement("a");
    a.textContent = (i ? n.n : "/") + " (" + human(n.s) + ")";
    a.addEventListener("click", () => { trail = trail.slice(0, i + 1); drawTreemap(); });
    crumbs.appendChild(a);
  });
}
drawTreemap();
(function () {
  const legend = document.getElementById("layer-legend");
  D.layers.forEach(l => {
    const i = document.createElement("i"); i.style.background = color(l.index); legend.appendChild(i);
    legend.appendChild(document.createTextNode("layer " + l.index));
  });
})();

// The top list, sortable by any column.
let sortKey = "reclaimable_bytes", sortDown = true;
function drawTop() {
  const body = document.querySelector("#top tbody");
  body.textContent = "";
  const rows = D.top.slice().sort((a, b) => {
    let x = a[sortKey], y = b[sortKey];
    if (Array.isArray(x)) { x = JSON.stringify(x); y = JSON.stringify(y); }
    return (x < y ? -1 : x > y ? 1 : 0) * (sortDown ? -1 : 1);
  });
  for (const t of rows) {
    const tr = document.createElement("tr");
    const cells = [t.path + (t.directory ? "/" : ""), human(t.reclaimable_bytes), t.reasons.join(", "),
                   t.copies.map(c => "layer " + c.layer + ": " + human(c.bytes) + ", " + c.why).join("; ")];
    cells.forEach((v, i) => {
      const td = document.createElement("td"); td.textContent = v;
      if (i == 1) { td.className = "n"; td.dataset.value = t.reclaimable_bytes; }
      tr.appendChild(td);
    });
    tr.dataset.path = t.path;
    body.appendChild(tr);
  }
  document.body.dataset.topRows = rows.length;
  document.body.dataset.topSort = sortKey + (sortDown ? " down" : " up");
}
document.querySelectorAll("#top th").forEach(th => th.addEventListener("click", () => {
  const k = th.dataset.k;
  sortDown = k == sortKey ? !sortDown : true; sortKey = k; drawTop();
}));
drawTop();
document.body.dataset.drawn = "yes";
</script></body></html>
)html";

}  // namespace

std::string html_report(const Analysed& a) {
  nlohmann::json doc = to_json(a, false);
  doc["tree"] = treemap_data(a);
  // Inside a script element "</" must not appear: nlohmann writes '/' as is, so escape it.
  std::string data = doc.dump();
  std::string safe;
  safe.reserve(data.size());
  for (size_t i = 0; i < data.size(); ++i) {
    if (data[i] == '<') {
      safe += "\\u003c";
    } else {
      safe += data[i];
    }
  }
  return std::string(kHead) + safe + kTail;
}

}  // namespace layerfs::du
