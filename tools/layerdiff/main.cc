// layerdiff: compare layers and images, export an upper as an OCI layer, apply a layer.
//   layerdiff diff OLD NEW          what changed between two merged views
//   layerdiff diff MOUNT            what a live mount's upper changed over its lowers
//   layerdiff diff --layer N SRC    what layer N (0 = base) changes over the layers below it
// Exit status as diff(1): 0 no differences, 1 differences, 2 trouble.
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "layers/apply.h"
#include "layers/diff.h"
#include "layers/export.h"
#include "layers/image.h"
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

// Progress on stderr while sources are read, when it is a terminal: bytes hashed, the rate.
class Progress {
 public:
  explicit Progress(std::string what) : what_(std::move(what)), tty_(isatty(2) == 1) {}
  ~Progress() {
    if (shown_) std::fprintf(stderr, "\r\033[K");
  }
  std::function<void(uint64_t)> callback() {
    if (!tty_) return {};
    return [this](uint64_t n) {
      bytes_ += n;
      timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      const double t = static_cast<double>(now.tv_sec) + now.tv_nsec / 1e9;
      if (start_ == 0) start_ = t;
      if (t - last_ < 0.2) return;
      last_ = t;
      shown_ = true;
      const double mb = static_cast<double>(bytes_) / 1e6;
      std::fprintf(stderr, "\r\033[Kreading %s: %.0f MB, %.0f MB/s", what_.c_str(), mb,
                   t > start_ ? mb / (t - start_) : 0.0);
    };
  }

 private:
  std::string what_;
  bool tty_;
  bool shown_ = false;
  uint64_t bytes_ = 0;
  double start_ = 0, last_ = 0;
};

struct Opened {
  Stack stack;
  std::vector<LayerTree> trees;
};

Result<Opened> open_and_read(const std::string& spec, ReadOptions opts) {
  auto stack = open_stack(spec);
  if (!stack.ok()) return stack.err();
  Progress progress(spec);
  opts.progress = progress.callback();
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
    // The two sides are read at once, one on each core.
    std::optional<Result<Opened>> old_read;
    std::thread old_reader([&] { old_read.emplace(open_and_read(a.sources[0], read)); });
    auto new_side = open_and_read(a.sources[1], read);
    old_reader.join();
    auto& old_side = *old_read;
    if (!old_side.ok()) return trouble(old_side.err());
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

struct ExportArgs {
  std::string source;
  std::string out;
  std::string into;
  int64_t source_date_epoch = -1;
  bool json = false;
};

int run_export(ExportArgs& a) {
  if (a.source_date_epoch < 0) {
    if (const char* env = getenv("SOURCE_DATE_EPOCH"); env != nullptr && *env != '\0') {
      char* end = nullptr;
      const long long v = strtoll(env, &end, 10);
      if (*end != '\0' || v < 0) {
        return trouble(failure(
            EINVAL, std::string("SOURCE_DATE_EPOCH '") + env + "': not a number of seconds"));
      }
      a.source_date_epoch = v;
    }
  }
  // The layer to write: a live mount's upper, or one upper or layer directory.
  auto stack = open_stack(a.source);
  if (!stack.ok()) return trouble(stack.err());
  if (stack->layers.size() != 1 && !stack->top_is_upper) {
    return trouble(failure(EINVAL, "'" + a.source + "' (" + stack->kind + ") has " +
                                       std::to_string(stack->layers.size()) +
                                       " layers: export takes a live mount, or one upper or "
                                       "layer directory"));
  }
  LayerSource& top = *stack->layers.back();
  const std::string root = top.info().directory;
  if (root.empty()) {
    return trouble(failure(EINVAL, "'" + a.source + "': a " + stack->kind +
                                       " is a layer already; export writes a directory layer"));
  }
  auto read = read_tree(top, ReadOptions{.hash = false});
  if (!read.ok()) return trouble(read.err());
  LayerTree tree = std::move(*read);
  // Redirects and metacopy files say "look below", which a layer tar cannot: such an upper is
  // exported as the difference between its mount's merged view and the lowers' view.
  std::string content_root = root;
  if (!tree.metacopies().empty() || !tree.redirects().empty()) {
    const std::string why = !tree.redirects().empty()
                                ? "directory /" + tree.redirects()[0] + " has a redirect"
                                : "/" + tree.metacopies()[0] + " is a metacopy";
    if (stack->mountpoint.empty()) {
      return trouble(failure(ENOTSUP, "'" + root + "': " + why +
                                          " (kernel overlayfs), which a layer tar cannot say; "
                                          "mount it and export the mount"));
    }
    std::fprintf(stderr,
                 "layerdiff: %s: %s: exported as its merged view compared with its lowers\n",
                 a.source.c_str(), why.c_str());
    Progress progress(a.source);
    const ReadOptions hashed{.hash = true, .progress = progress.callback()};
    std::vector<LayerTree> lowers;
    for (size_t i = 0; i + 1 < stack->layers.size(); ++i) {
      auto l = read_tree(*stack->layers[i], hashed);
      if (!l.ok()) return trouble(l.err());
      lowers.push_back(std::move(*l));
    }
    // The mount point read as a plain directory: the merged view, redirects followed.
    auto mounted = open_layer(stack->mountpoint);
    if (!mounted.ok()) return trouble(mounted.err());
    auto shown = read_tree(**mounted, hashed);
    if (!shown.ok()) return trouble(shown.err());
    const MergedView below = view_of(lowers, lowers.size());
    const LayerTree* one[] = {&*shown};
    tree = layer_between(below, merge(one));
    content_root = stack->mountpoint;
  }
  ExportOptions opts;
  opts.compression = compression_for(a.out);
  if (a.source_date_epoch >= 0) opts.source_date_epoch = a.source_date_epoch;
  opts.warn = [](const std::string& w) {
    std::fprintf(stderr, "layerdiff: warning: %s\n", w.c_str());
  };
  auto done = export_layer(tree, content_root, a.out, opts);
  if (!done.ok()) return trouble(done.err());
  std::string manifest;
  if (!a.into.empty()) {
    if (!a.into.starts_with("oci:")) {
      return trouble(failure(EINVAL, "--into '" + a.into + "': must be oci:DIR:REF"));
    }
    const std::string rest = a.into.substr(4);
    const size_t colon = rest.rfind(':');
    if (colon == std::string::npos || colon + 1 == rest.size()) {
      return trouble(failure(EINVAL, "--into '" + a.into + "': must be oci:DIR:REF"));
    }
    NewLayer layer{.blob_file = a.out,
                   .digest = done->digest,
                   .diff_id = done->diff_id,
                   .size = done->size,
                   .media_type = layer_media_type(opts.compression),
                   .created_by = "layerdiff export " + a.source,
                   .created = a.source_date_epoch >= 0 ? a.source_date_epoch : time(nullptr)};
    auto appended = append_layer(rest.substr(0, colon), rest.substr(colon + 1), layer);
    if (!appended.ok()) return trouble(appended.err());
    manifest = *appended;
  }
  if (a.json) {
    nlohmann::json doc = {{"schemaVersion", 1},
                          {"output", a.out},
                          {"diffID", done->diff_id},
                          {"digest", done->digest},
                          {"size", done->size},
                          {"entries", done->entries},
                          {"mediaType", layer_media_type(opts.compression)}};
    if (!manifest.empty()) doc["manifest"] = manifest;
    std::cout << doc.dump(2) << "\n";
  } else {
    std::cout << "diffID " << done->diff_id << "\n"
              << "digest " << done->digest << "\n"
              << "size   " << done->size << " bytes, " << done->entries << " entries\n";
    if (!manifest.empty()) std::cout << "manifest " << manifest << " (" << a.into << ")\n";
  }
  return 0;
}

struct ApplyArgs {
  std::string layer;
  std::string target;
  std::string format = "overlay";
  bool strict = false;
  std::string max_size = "64G";
};

Result<uint64_t> parse_size(const std::string& s) {
  char* end = nullptr;
  const unsigned long long v = strtoull(s.c_str(), &end, 10);
  uint64_t unit = 1;
  const std::string suffix = end ? end : "";
  if (suffix == "K" || suffix == "k")
    unit = 1ull << 10;
  else if (suffix == "M")
    unit = 1ull << 20;
  else if (suffix == "G")
    unit = 1ull << 30;
  else if (suffix == "T")
    unit = 1ull << 40;
  else if (!suffix.empty() || end == s.c_str()) {
    return failure(EINVAL, "--max-size '" + s + "': not a size (bytes, or with K, M, G, T)");
  }
  return static_cast<uint64_t>(v) * unit;
}

int run_apply(const ApplyArgs& a) {
  ApplyOptions opts;
  if (a.format == "overlay") {
    opts.format = ApplyFormat::kOverlay;
  } else if (a.format == "oci") {
    opts.format = ApplyFormat::kOci;
  } else if (a.format == "flat") {
    opts.format = ApplyFormat::kFlat;
  } else {
    return trouble(failure(EINVAL, "--format '" + a.format + "': overlay, oci or flat"));
  }
  auto max = parse_size(a.max_size);
  if (!max.ok()) return trouble(max.err());
  opts.max_bytes = *max;
  opts.strict = a.strict;
  opts.report = [](const std::string& line) {
    std::fprintf(stderr, "layerdiff: %s\n", line.c_str());
  };
  auto done = apply_layer(a.layer, a.target, opts);
  if (!done.ok()) return trouble(done.err());
  std::fprintf(stderr, "layerdiff: applied %llu entries (%llu bytes) onto %s%s\n",
               static_cast<unsigned long long>(done->entries),
               static_cast<unsigned long long>(done->bytes), a.target.c_str(),
               done->refused ? (", refused " + std::to_string(done->refused)).c_str() : "");
  return done->refused ? 1 : 0;
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
  ExportArgs x;
  CLI::App* exp = app.add_subcommand("export", "write a layer as an OCI layer tar");
  exp->add_option("SOURCE", x.source, "a live mount, or an upper or layer directory")->required();
  exp->add_option("-o,--output", x.out, "FILE.tar, FILE.tar.gz or FILE.tar.zst")->required();
  exp->add_option("--into", x.into, "also append the layer to the image oci:DIR:REF");
  exp->add_option("--source-date-epoch", x.source_date_epoch,
                  "clamp mtimes to this (default: $SOURCE_DATE_EPOCH)");
  exp->add_flag("--json", x.json, "the digests as JSON");
  ApplyArgs p;
  CLI::App* ap = app.add_subcommand("apply", "apply a layer tar onto a directory, safely");
  ap->add_option("LAYER", p.layer, "a layer tar (plain, gzip or zstd)")->required();
  ap->add_option("DIR", p.target, "the directory to write")->required();
  ap->add_option("--format", p.format, "overlay (default), oci or flat");
  ap->add_flag("--strict", p.strict, "stop at the first refused entry");
  ap->add_option("--max-size", p.max_size, "the most the layer may write (default 64G)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kTrouble;
  }
  if (*diff) return run_diff(d);
  if (*exp) return run_export(x);
  if (*ap) return run_apply(p);
  return kTrouble;
}

}  // namespace
}  // namespace layerfs

int main(int argc, char** argv) { return layerfs::main_impl(argc, argv); }
