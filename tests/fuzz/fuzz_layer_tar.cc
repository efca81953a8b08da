// libFuzzer: a layer tar (any compression libarchive detects) read into a layer tree and merged.
#include <cstddef>
#include <cstdint>

#include "layers/archive.h"
#include "layers/tree.h"

namespace {

class Bytes : public layerfs::ArchiveInput {
 public:
  Bytes(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  layerfs::Result<std::span<const char>> next() override {
    const size_t n = std::min<size_t>(size_ - pos_, 4096);
    std::span<const char> out(reinterpret_cast<const char*>(data_) + pos_, n);
    pos_ += n;
    return out;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes input(data, size);
  auto tar = layerfs::ArchiveReader::open_stream(input, "fuzz");
  if (!tar.ok()) return 0;
  layerfs::LayerTree tree;
  auto r = layerfs::read_layer_tar(**tar,
                                   [&](layerfs::Entry&& e) -> layerfs::Result<void> {
                                     tree.add(std::move(e));
                                     return {};
                                   },
                                   {});
  (void)r;
  const layerfs::LayerTree* layers[] = {&tree, &tree};
  auto view = layerfs::merge(layers);
  (void)view;
  return 0;
}
