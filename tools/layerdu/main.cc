// layerdu: where the bytes of a layer stack go.
//   layerdu [--json | --html FILE] [--bytes] [--top N] [--ci [RULES]] SOURCE
// SOURCE is any stack the layer model reads (layers/source.h). Exit status: 0, or with --ci
// 0 when every rule passes and 1 when one fails; 2 on trouble (one line naming the source and
// the reason).
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include "layers/sys/fs.h"
#include "layers/sys/process.h"
#include "tools/layerdu/report.h"
#include "tools/layerdu/rules.h"

namespace layerfs::du {
namespace {

constexpr int kTrouble = 2;

int trouble(const Errno& e) {
  std::fprintf(stderr, "layerdu: %s\n", e.message().c_str());
  return kTrouble;
}

double now_seconds() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

// What the readers have done so far, for the progress line.
struct Reading {
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> entries{0};
  std::atomic<uint32_t> layer{0};
  std::atomic<uint32_t> done{0};
};

// The progress line on stderr, redrawn five times a second while the stack is read: which
// layer, bytes and entries per second, and an ETA where the sizes are known.
class Progress {
 public:
  Progress(Reading& r, const Stack& stack, uint64_t known_size)
      : r_(r), stack_(stack), known_(known_size) {
    if (isatty(2) != 1) return;
    thread_ = std::thread([this] { loop(); });
  }
  ~Progress() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    std::fprintf(stderr, "\r\033[K");
  }

 private:
  void loop() {
    const double start = now_seconds();
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stop_; })) {
      const double t = std::max(now_seconds() - start, 1e-3);
      const uint64_t b = r_.bytes, e = r_.entries;
      const uint32_t layer = r_.layer;
      std::string line =
          "reading layer " + std::to_string(layer + 1) + "/" +
          std::to_string(stack_.layers.size()) + " (" + stack_.layers[layer]->info().name +
          "): " + human_bytes(b, false) + ", " + std::to_string(e) + " entries, " +
          human_bytes(static_cast<uint64_t>(static_cast<double>(b) / t), false) + "/s, " +
          std::to_string(static_cast<uint64_t>(static_cast<double>(e) / t)) + " entries/s";
      if (known_ > 0 && b > 0 && b < known_) {
        line += ", ETA " +
                std::to_string(static_cast<int>(static_cast<double>(known_ - b) / (b / t))) + " s";
      }
      const unsigned cols = sys::terminal_columns(2);
      if (cols > 4 && line.size() > cols - 1) line.resize(cols - 1);
      std::fprintf(stderr, "\r\033[K%s", line.c_str());
    }
  }

  Reading& r_;
  const Stack& stack_;
  uint64_t known_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

// Reads every layer, two at a time (one per core).
Result<std::vector<LayerTree>> read_all(Stack& stack, Reading& r) {
  const size_t n = stack.layers.size();
  std::vector<LayerTree> trees(n);
  std::vector<Result<void>> results(n);
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) {
      r.layer = static_cast<uint32_t>(i);
      LayerTree& tree = trees[i];
      ReadOptions opts{.hash = true, .progress = [&](uint64_t b) { r.bytes += b; }};
      results[i] = stack.layers[i]->read(
          [&](Entry&& e) -> Result<void> {
            ++r.entries;
            tree.add(std::move(e));
            return {};
          },
          opts);
      ++r.done;
    }
  };
  const unsigned cores = std::max(1u, std::min(2u, std::thread::hardware_concurrency()));
  std::vector<std::thread> threads;
  for (unsigned c = 1; c < cores && c < n; ++c) threads.emplace_back(worker);
  worker();
  for (std::thread& t : threads) t.join();
  for (auto& res : results) {
    if (!res.ok()) return res.err();
  }
  return trees;
}

// What the sources say their size is, for the ETA: directories 0 (unknown).
uint64_t known_size(const Stack& stack) {
  uint64_t total = 0;
  for (const auto& l : stack.layers) {
    const LayerInfo& i = l->info();
    if (!i.directory.empty()) return 0;
    if (i.compressed_size > 0 && i.media_type.find("gzip") == std::string::npos &&
        i.media_type.find("zstd") == std::string::npos) {
      total += i.compressed_size;
    } else if (i.compressed_size == 0) {
      auto st = sys::stat_at(kCwd, i.name.c_str());
      if (!st.ok()) return 0;
      total += static_cast<uint64_t>(st->st_size);
    } else {
      return 0;  // compressed: the content's size is not known before it is read
    }
  }
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"layerdu: where the bytes of a layer stack go"};
  std::string source, html, ci_config;
  bool json = false, exact = false, ci = false, files = true;
  size_t top = 20;
  Rules flags;
  std::string lowest_efficiency, highest_wasted_bytes, highest_user_wasted, max_layer_size,
      max_duplicate_bytes;
  app.add_option("SOURCE", source,
                 "a layer stack: DIR, layer tar, oci:, oci-archive:, "
                 "docker-archive:, a live mount, layers:L0,L1,...")
      ->required();
  app.add_flag("--json", json, "the whole analysis as JSON (schema in the README)");
  app.add_flag("!--no-files", files, "--json without every layer's file list");
  app.add_option("--html", html, "also write a self-contained HTML report to FILE");
  app.add_flag("--bytes", exact, "exact byte counts instead of human-readable sizes");
  app.add_option("--top", top, "how many paths in the top list (default 20)");
  app.add_flag("--ci", ci, "check the rules; exit 1 when one fails (CI=true means --ci)");
  app.add_option("--ci-config", ci_config, "rules file (default .layerdu-ci, else .dive-ci)");
  app.add_option("--lowest-efficiency", lowest_efficiency, "fail below this live/total (0-1)");
  app.add_option("--highest-wasted-bytes", highest_wasted_bytes, "fail above this reclaimable");
  app.add_option("--highest-user-wasted-percent", highest_user_wasted,
                 "fail above this reclaimable / bytes above the base (0-1)");
  app.add_option("--max-layer-size", max_layer_size, "fail when a layer holds more");
  app.add_option("--max-duplicate-bytes", max_duplicate_bytes, "fail above this duplicate");
  app.add_flag("--forbid-setuid", flags.forbid_setuid, "fail on setuid or setgid files");
  app.add_flag("--forbid-world-writable", flags.forbid_world_writable,
               "fail on world-writable files (sticky directories allowed)");
  app.add_flag("--forbid-devices", flags.forbid_devices, "fail on device files");
  app.add_flag("--forbid-capabilities", flags.forbid_capabilities,
               "fail on files with security.capability");
  app.add_flag("--forbid-escaping-symlinks", flags.forbid_escaping_symlinks,
               "fail on symlinks whose target leaves the root");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kTrouble;
  }
  if (const char* env = getenv("CI"); env != nullptr && std::string(env) == "true") ci = true;

  // The rules: dive's defaults, then the file, then the flags.
  Rules rules = default_rules();
  if (ci) {
    std::string file = ci_config;
    if (file.empty()) {
      for (const char* f : {".layerdu-ci", ".dive-ci"}) {
        if (sys::path_exists(f)) {
          file = f;
          break;
        }
      }
    } else if (!sys::path_exists(file.c_str())) {
      return trouble(failure(ENOENT, "CI config '" + file + "': no such file"));
    }
    if (!file.empty()) {
      auto loaded = load_rules(file, rules);
      if (!loaded.ok()) return trouble(loaded.err());
      rules = *loaded;
    }
    const std::pair<const char*, const std::string*> given[] = {
        {"lowest-efficiency", &lowest_efficiency},
        {"highest-user-wasted-percent", &highest_user_wasted},
        {"highest-wasted-bytes", &highest_wasted_bytes},
        {"max-layer-size", &max_layer_size},
        {"max-duplicate-bytes", &max_duplicate_bytes}};
    for (const auto& [key, value] : given) {
      if (value->empty()) continue;
      auto set = set_rule(rules, key, *value);
      if (!set.ok()) return trouble(failure(EINVAL, "--" + set.err().message()));
    }
    rules.forbid_setuid |= flags.forbid_setuid;
    rules.forbid_world_writable |= flags.forbid_world_writable;
    rules.forbid_devices |= flags.forbid_devices;
    rules.forbid_capabilities |= flags.forbid_capabilities;
    rules.forbid_escaping_symlinks |= flags.forbid_escaping_symlinks;
  }

  auto stack = open_stack(source);
  if (!stack.ok()) return trouble(stack.err());
  Analysed a;
  a.spec = source;
  a.kind = stack->kind;
  for (const auto& l : stack->layers) a.infos.push_back(l->info());
  {
    Reading reading;
    Progress progress(reading, *stack, known_size(*stack));
    auto trees = read_all(*stack, reading);
    if (!trees.ok()) return trouble(trees.err());
    a.trees = std::move(*trees);
  }
  std::vector<const LayerTree*> ptrs;
  for (const LayerTree& t : a.trees) ptrs.push_back(&t);
  a.usage = analyse(ptrs, top);

  if (!html.empty()) {
    const std::string page = html_report(a);
    const std::string temp = html + ".partial";
    {
      std::ofstream out(temp, std::ios::binary | std::ios::trunc);
      out << page;
      if (!out.good()) {
        (void)sys::unlink_at(kCwd, temp.c_str());
        return trouble(failure(EIO, "--html '" + html + "': cannot write it"));
      }
    }
    auto moved = sys::rename_at(kCwd, temp.c_str(), kCwd, html.c_str());
    if (!moved.ok()) return trouble(moved.err().context("--html", html));
  }
  if (json) {
    nlohmann::json doc = to_json(a, files);
    if (ci) {
      nlohmann::json verdicts = nlohmann::json::array();
      for (const Verdict& v : evaluate(rules, a)) {
        verdicts.push_back({{"rule", v.rule},
                            {"passed", v.passed},
                            {"detail", v.detail},
                            {"offenders", v.offenders}});
      }
      doc["ci"] = std::move(verdicts);
    }
    std::cout << doc.dump(2) << "\n";
  } else {
    unsigned cols = sys::terminal_columns(1);
    if (cols == 0) {
      const char* env = getenv("COLUMNS");
      cols = env != nullptr ? static_cast<unsigned>(std::atoi(env)) : 100;
    }
    std::cout << terminal_report(a, cols, exact);
  }
  if (!ci) return 0;
  bool failed = false;
  const std::vector<Verdict> verdicts = evaluate(rules, a);
  for (const Verdict& v : verdicts) {
    if (!json) {
      std::cout << (v.passed ? "PASS " : "FAIL ") << v.rule << ": " << v.detail << "\n";
      for (const std::string& o : v.offenders) std::cout << "       " << o << "\n";
    }
    failed = failed || !v.passed;
  }
  return failed ? 1 : 0;
}

}  // namespace layerfs::du

int main(int argc, char** argv) { return layerfs::du::main(argc, argv); }
