// Micro benchmarks for the hot paths of layers/: merged lookup across many layers, merged
// listing, and marker classification. The side-by-side mount comparison lives beside this file.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "layers/merge.h"
#include "layers/sys/fs.h"
#include "layers/whiteout.h"

namespace {

namespace fs = std::filesystem;
using layerfs::LayerDir;

// N layers; the looked-up file sits in the bottom one, so every layer is consulted.
struct Stack {
  fs::path root;
  std::vector<LayerDir> dirs;

  Stack(int layers, int files_per_layer) {
    char tmpl[] = "/tmp/layerfs-bench-XXXXXX";
    root = mkdtemp(tmpl);
    for (int i = 0; i < layers; ++i) {
      fs::path dir = root / std::to_string(i);
      fs::create_directories(dir);
      for (int f = 0; f < files_per_layer; ++f) {
        std::ofstream(dir / ("f" + std::to_string(i) + "_" + std::to_string(f))) << "x";
      }
      auto fd = layerfs::sys::open_at(AT_FDCWD, dir.c_str(), O_PATH | O_DIRECTORY);
      dirs.push_back(std::move(*layerfs::open_layer_dir(fd->get(), static_cast<uint32_t>(i))));
    }
    std::ofstream(root / std::to_string(layers - 1) / "bottom") << "x";
  }
  ~Stack() { fs::remove_all(root); }
};

void BM_LookupBottom(benchmark::State& state) {
  Stack s(static_cast<int>(state.range(0)), 1);
  for (auto _ : state) {
    auto r = layerfs::lookup(s.dirs, "bottom");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_LookupBottom)->Arg(1)->Arg(10)->Arg(100)->Arg(1000);

void BM_ListMerged(benchmark::State& state) {
  Stack s(10, static_cast<int>(state.range(0)) / 10);
  for (auto _ : state) {
    auto r = layerfs::list(s.dirs);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_ListMerged)->Arg(1000)->Arg(100000)->Unit(benchmark::kMillisecond);

void BM_ClassifyName(benchmark::State& state) {
  const std::vector<std::string> names = {"usr", ".wh.usr", ".wh..wh..opq", "libc.so.6", ".wh."};
  for (auto _ : state) {
    for (const auto& n : names) benchmark::DoNotOptimize(layerfs::Whiteout::classify_name(n));
  }
}
BENCHMARK(BM_ClassifyName);

}  // namespace

BENCHMARK_MAIN();
