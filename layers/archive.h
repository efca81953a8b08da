// Tar archives through libarchive: reading a layer tar (plain, gzip or zstd, told apart by
// their magic bytes) into entries with their content hashed as it streams past, reading an
// archive's members one by one (an image archive holds layer tars), and writing a layer tar.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "layers/base/result.h"
#include "layers/entry.h"

struct archive;
struct archive_entry;

namespace layerfs {

// Where an archive's bytes come from when it is not a file of its own: a member of another
// archive, read in order. next() returns the next block (empty at the end).
class ArchiveInput {
 public:
  virtual ~ArchiveInput() = default;
  virtual Result<std::span<const char>> next() = 0;
};

// An archive opened for reading, one member at a time.
class ArchiveReader {
 public:
  // A file; the format and compression are detected from its first bytes.
  static Result<std::unique_ptr<ArchiveReader>> open_file(const std::string& path);
  // A stream (which must outlive the reader); `name` names it in errors.
  static Result<std::unique_ptr<ArchiveReader>> open_stream(ArchiveInput& input,
                                                            const std::string& name);
  ~ArchiveReader();
  ArchiveReader(const ArchiveReader&) = delete;
  ArchiveReader& operator=(const ArchiveReader&) = delete;

  // The next member's header; false at the end.
  Result<bool> next();
  // The current member's name as stored, and its size.
  std::string name() const;
  int64_t size() const;
  archive_entry* entry() const { return entry_; }
  // The current member's content, block by block (empty at its end).
  Result<std::span<const char>> read_block();
  // The whole content of the current member, up to `max` bytes (for small JSON documents).
  Result<std::string> read_all(size_t max);
  // This member as an input for a nested archive (valid until next()).
  std::unique_ptr<ArchiveInput> member_input();
  // "what 'name': reason" for a libarchive failure.
  Errno error(const char* what) const;
  const std::string& source() const { return source_; }

 private:
  ArchiveReader() = default;
  archive* a_ = nullptr;
  archive_entry* entry_ = nullptr;
  std::string source_;
};

// Normalizes a member name of a layer tar to a path from the layer root ("./a/b/" -> "a/b",
// "." and "/" -> ""). EINVAL where a ".." component would leave the layer.
Result<std::string> normalize_member_path(std::string_view name);

// The xattrs a member's header carries (PAX SCHILY.xattr and LIBARCHIVE.xattr records).
Xattrs member_xattrs(archive_entry* entry);

// Reads a layer tar member by member into `sink` (markers as the tar holds them: LayerTree
// reads them), hashing regular files' content with opts.hash. Errors name the archive and
// the member.
Result<void> read_layer_tar(ArchiveReader& tar, const EntrySink& sink, const ReadOptions& opts);

}  // namespace layerfs
