// Micro benchmarks for the hot paths of layers/ and fuse/: merged lookup across many layers,
// merged listing, marker classification, the inode table under contention, and the copy-up
// data ladder on sparse and dense files. The side-by-side mount comparison (compare) lives
// beside this file.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fuse/inode_table.h"
#include "layers/copy_up.h"
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
      auto fd = layerfs::sys::open_at(layerfs::kCwd, dir.c_str(), O_PATH | O_DIRECTORY);
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

// publish (insert or find) then forget, from several threads at once, over a shared key space:
// the table's one lock is what this measures.
void BM_InodeTableChurn(benchmark::State& state) {
  static layerfs::InodeTable* table = nullptr;
  if (state.thread_index() == 0) {
    auto root = std::make_shared<layerfs::Inode>(layerfs::InodeKey{1, 1}, S_IFDIR, 1);
    table = new layerfs::InodeTable(root);
  }
  uint64_t next = static_cast<uint64_t>(state.thread_index()) * 7919;
  for (auto _ : state) {
    const uint64_t ino = 2 + (next++ % 4096);
    auto fresh = std::make_shared<layerfs::Inode>(layerfs::InodeKey{1, ino}, S_IFREG, ino);
    auto live = table->publish(std::move(fresh));
    benchmark::DoNotOptimize(table->find(layerfs::InodeKey{1, ino}));
    table->forget(table->id_of(*live), 1);
  }
  if (state.thread_index() == 0) {
    delete table;
    table = nullptr;
  }
}
BENCHMARK(BM_InodeTableChurn)->Threads(1)->Threads(2)->Threads(4);

// The copy-up data ladder (FICLONE, copy_file_range per data segment, read/write) on a 64 MiB
// file: dense, or sparse with one 4 KiB extent per MiB.
void BM_CopyData(benchmark::State& state) {
  const bool sparse = state.range(0) != 0;
  const off_t size = off_t{64} << 20;
  char tmpl[] = "/var/tmp/layerfs-bench-copy-XXXXXX";
  fs::path dir = mkdtemp(tmpl);
  {
    int fd = open((dir / "src").c_str(), O_WRONLY | O_CREAT, 0644);
    std::string block(sparse ? 4096 : 1 << 20, 'x');
    for (off_t at = 0; at < size; at += off_t{1} << 20) {
      if (pwrite(fd, block.data(), block.size(), at) < 0) state.SkipWithError("write failed");
    }
    if (ftruncate(fd, size) != 0) state.SkipWithError("truncate failed");
    fsync(fd);
    close(fd);
  }
  int src = open((dir / "src").c_str(), O_RDONLY);
  for (auto _ : state) {
    int dst = open((dir / "dst").c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    auto r = layerfs::copy_data(layerfs::BorrowedFd(src), layerfs::BorrowedFd(dst), size);
    if (!r.ok()) state.SkipWithError("copy_data failed");
    close(dst);
  }
  close(src);
  fs::remove_all(dir);
  state.SetBytesProcessed(state.iterations() * size);
}
BENCHMARK(BM_CopyData)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
