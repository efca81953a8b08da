// layerdiff: compare layers and images, export an upper as an OCI layer, apply a layer.
//   layerdiff diff OLD NEW          what changed between two merged views
//   layerdiff diff MOUNT            what a live mount's upper changed over its lowers
//   layerdiff diff --layer N SRC    what layer N (0 = base) changes over the layers below it
// Exit status as diff(1): 0 no differences, 1 differences, 2 trouble.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "layers/diff.h"
#include "layers/source.h"

namespace layerfs {
namespace {

constexpr int kTrouble = 2;

struct DiffArgs {
  std::vector<std::string> sources;
  int layer = -1;
  bool long_form = false;
  bool json = false;
  bool semantic = false;
  bool recursive = false;
  bool podman = false;
};

int trouble(const Errno& e) {
  std::fprintf(stderr, "layerdiff: %s\n", e.message().c_str());
  return kTrouble;
}

struct Opened {
  Stack stack;
  std::vector<LayerTree> trees;
};

Result<Opened> open_and_read(const std::string& spec, const ReadOptions& opts) {
  auto stack = open_stack(spec);
  if (!stack.ok()) return stack.err();
  auto trees = read_trees(*stack, opts);
  if (!trees.ok()) return trees.err();
  return Opened{std::move(*stack), std::move(*trees)};
}

MergedView view_of(const std::vector<LayerTree>& trees, size_t count) {
  std::vector<const LayerTree*> ptrs;
  for (size_t i = 0; i < count; ++i) ptrs.push_back(&trees[i]);
  return merge(ptrs);
}

void print(std::vector<Change>& changes, const DiffArgs& a, const std::string& old_name,
           const std::string& new_name) {
  if (a.podman) std::erase_if(changes, [](const Change& c) { return podman_hides(c.path); });
  if (a.json) {
    nlohmann::json doc;
    doc["schemaVersion"] = 1;
    doc["old"] = old_name;
    doc["new"] = new_name;
    doc["changes"] = nlohmann::json::array();
    for (const Change& c : changes) {
      nlohmann::json j;
      j["kind"] = std::string(1, c.kind);
      j["path"] = c.path;
      if (c.kind == 'C') j["what"] = c.what;
      doc["changes"].push_back(std::move(j));
    }
    std::cout << doc.dump(2) << "\n";
    return;
  }
  for (const Change& c : changes) {
    std::cout << c.kind << ' ' << c.path;
    if (a.long_form && c.kind == 'C') {
      std::cout << (c.what.empty() ? "  (something inside changed)" : "  (");
      for (size_t i = 0; i < c.what.size(); ++i) {
        std::cout << (i ? ", " : "") << c.what[i];
      }
      if (!c.what.empty()) std::cout << ")";
    }
    std::cout << "\n";
  }
}

int run_diff(const DiffArgs& a) {
  const DiffOptions opts{.recursive = a.recursive, .semantic = a.semantic};
  if (a.sources.size() == 2) {
    if (a.layer >= 0) return trouble(failure(EINVAL, "--layer takes one source"));
    // Content is compared by hash: a change that keeps size and mtime still shows.
    const ReadOptions read{.hash = true};
    auto old_side = open_and_read(a.sources[0], read);
    if (!old_side.ok()) return trouble(old_side.err());
    auto new_side = open_and_read(a.sources[1], read);
    if (!new_side.ok()) return trouble(new_side.err());
    const MergedView old_view = view_of(old_side->trees, old_side->trees.size());
    const MergedView new_view = view_of(new_side->trees, new_side->trees.size());
    auto changes = diff_views(old_view, new_view, opts);
    print(changes, a, a.sources[0], a.sources[1]);
    return changes.empty() ? 0 : 1;
  }
  // One source: what one of its layers changes over the ones below.
  auto side = open_and_read(a.sources[0], ReadOptions{.hash = true});
  if (!side.ok()) return trouble(side.err());
  const size_t n = side->trees.size();
  size_t layer = n - 1;
  if (a.layer >= 0) {
    if (static_cast<size_t>(a.layer) >= n) {
      return trouble(failure(EINVAL, "--layer " + std::to_string(a.layer) + ": '" + a.sources[0] +
                                         "' has " + std::to_string(n) + " layers (0 to " +
                                         std::to_string(n - 1) + ")"));
    }
    layer = static_cast<size_t>(a.layer);
  } else if (!side->stack.top_is_upper) {
    return trouble(failure(EINVAL, "'" + a.sources[0] + "' (" + side->stack.kind +
                                       ") is not a live mount: give two sources, or --layer N"));
  }
  // podman lists a container's changes by walking its upper where kernel overlayfs mounts it
  // (containers/storage's native diff), and by comparing the merged trees with and without the
  // upper where a mount program does (its naive diff): the two differ on an opaque directory
  // (D, and its new children A; or C, and its old children D). Each mount is shown the way
  // podman shows a container on it; a layer of any other source as the trees compare.
  std::vector<Change> changes;
  if (side->stack.kind == "overlay mount" && layer + 1 == n && a.layer < 0) {
    std::vector<const LayerTree*> below;
    for (size_t i = 0; i < layer; ++i) below.push_back(&side->trees[i]);
    changes = diff_layer(below, side->trees[layer], opts);
  } else {
    changes = diff_views(view_of(side->trees, layer), view_of(side->trees, layer + 1), opts);
  }
  print(changes, a, a.sources[0] + " below layer " + std::to_string(layer),
        a.sources[0] + " layer " + std::to_string(layer));
  return changes.empty() ? 0 : 1;
}

int main_impl(int argc, char** argv) {
  CLI::App app{"layerdiff: compare layers and images, export and apply layers"};
  app.require_subcommand(1);
  DiffArgs d;
  CLI::App* diff = app.add_subcommand("diff", "what changed: OLD NEW, a live MOUNT, or --layer N");
  diff->add_option("SOURCE", d.sources,
                   "a directory, layer tar, oci:, oci-archive:, "
                   "docker-archive:, layers: or a live mount")
      ->required()
      ->expected(1, 2);
  diff->add_option("--layer", d.layer, "what layer N (0 = base) changes over those below it");
  diff->add_flag("--long", d.long_form, "say what changed on each C line");
  diff->add_flag("--json", d.json, "one JSON document (schema in the README)");
  diff->add_flag("--semantic", d.semantic, "ignore mtimes");
  diff->add_flag("--recursive", d.recursive, "list every deleted descendant");
  diff->add_flag("--podman", d.podman,
                 "leave out what podman writes into every container (/etc/hosts, /run, ...), "
                 "as podman diff does");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kTrouble;
  }
  if (*diff) return run_diff(d);
  return kTrouble;
}

}  // namespace
}  // namespace layerfs

int main(int argc, char** argv) { return layerfs::main_impl(argc, argv); }
