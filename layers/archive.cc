#include "layers/archive.h"

#include <archive.h>
#include <archive_entry.h>

#include <cstring>

namespace layerfs {
namespace {

constexpr size_t kBlock = 1 << 17;

struct StreamState {
  ArchiveInput* input;
  Errno failed;
};

la_ssize_t read_stream(archive* a, void* client, const void** buf) {
  auto* s = static_cast<StreamState*>(client);
  auto block = s->input->next();
  if (!block.ok()) {
    s->failed = block.err();
    archive_set_error(a, block.error(), "%s", block.err().message().c_str());
    return -1;
  }
  *buf = block->data();
  return static_cast<la_ssize_t>(block->size());
}

int close_stream(archive*, void* client) {
  delete static_cast<StreamState*>(client);
  return ARCHIVE_OK;
}

archive* new_reader() {
  archive* a = archive_read_new();
  archive_read_support_filter_gzip(a);
  archive_read_support_filter_zstd(a);
  archive_read_support_filter_none(a);
  archive_read_support_format_tar(a);
  archive_read_support_format_gnutar(a);
  return a;
}

// A member of an outer archive as a stream.
class MemberInput : public ArchiveInput {
 public:
  explicit MemberInput(ArchiveReader& outer) : outer_(outer) {}
  Result<std::span<const char>> next() override { return outer_.read_block(); }

 private:
  ArchiveReader& outer_;
};

}  // namespace

Errno ArchiveReader::error(const char* what) const {
  const char* why = archive_error_string(a_);
  const int code = archive_errno(a_) > 0 ? archive_errno(a_) : EINVAL;
  return failure(code, std::string(what) + " '" + source_ + "': " + (why ? why : "unreadable"));
}

Result<std::unique_ptr<ArchiveReader>> ArchiveReader::open_file(const std::string& path) {
  std::unique_ptr<ArchiveReader> r(new ArchiveReader());
  r->source_ = path;
  r->a_ = new_reader();
  if (archive_read_open_filename(r->a_, path.c_str(), kBlock) != ARCHIVE_OK) {
    return r->error("archive");
  }
  return r;
}

Result<std::unique_ptr<ArchiveReader>> ArchiveReader::open_stream(ArchiveInput& input,
                                                                  const std::string& name) {
  std::unique_ptr<ArchiveReader> r(new ArchiveReader());
  r->source_ = name;
  r->a_ = new_reader();
  auto* state = new StreamState{&input, {}};
  if (archive_read_open(r->a_, state, nullptr, read_stream, close_stream) != ARCHIVE_OK) {
    return r->error("archive");
  }
  return r;
}

ArchiveReader::~ArchiveReader() {
  if (a_ != nullptr) archive_read_free(a_);
}

Result<bool> ArchiveReader::next() {
  const int r = archive_read_next_header(a_, &entry_);
  if (r == ARCHIVE_EOF) return false;
  if (r == ARCHIVE_WARN) return true;  // (an unknown header keyword, say)
  if (r != ARCHIVE_OK) return error("archive");
  return true;
}

std::string ArchiveReader::name() const {
  const char* n = archive_entry_pathname(entry_);
  return n ? n : "";
}

int64_t ArchiveReader::size() const { return archive_entry_size(entry_); }

Result<std::span<const char>> ArchiveReader::read_block() {
  const void* buf = nullptr;
  size_t size = 0;
  la_int64_t offset = 0;
  const int r = archive_read_data_block(a_, &buf, &size, &offset);
  if (r == ARCHIVE_EOF) return std::span<const char>();
  if (r != ARCHIVE_OK && r != ARCHIVE_WARN) return error(("member '" + name() + "' of").c_str());
  return std::span<const char>(static_cast<const char*>(buf), size);
}

Result<std::string> ArchiveReader::read_all(size_t max) {
  std::string out;
  for (;;) {
    auto block = read_block();
    if (!block.ok()) return block.err();
    if (block->empty()) return out;
    if (out.size() + block->size() > max) {
      return failure(EFBIG, "member '" + name() + "' of '" + source_ + "': larger than " +
                                std::to_string(max) + " bytes");
    }
    out.append(block->data(), block->size());
  }
}

std::unique_ptr<ArchiveInput> ArchiveReader::member_input() {
  return std::make_unique<MemberInput>(*this);
}

Result<std::string> normalize_member_path(std::string_view name) {
  std::string out;
  size_t pos = 0;
  while (pos <= name.size()) {
    size_t slash = name.find('/', pos);
    if (slash == std::string_view::npos) slash = name.size();
    const std::string_view part = name.substr(pos, slash - pos);
    pos = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") return failure(EINVAL, "'" + std::string(name) + "': leaves the layer (..)");
    if (!out.empty()) out += '/';
    out += part;
  }
  return out;
}

Xattrs member_xattrs(archive_entry* ae) {
  Xattrs out;
  archive_entry_xattr_reset(ae);
  const char* name = nullptr;
  const void* value = nullptr;
  size_t size = 0;
  while (archive_entry_xattr_next(ae, &name, &value, &size) == ARCHIVE_OK) {
    out[name] = std::string(static_cast<const char*>(value), size);
  }
  return out;
}

Result<void> read_layer_tar(ArchiveReader& tar, const EntrySink& sink, const ReadOptions& opts) {
  for (;;) {
    auto more = tar.next();
    if (!more.ok()) return more.err();
    if (!*more) return {};
    archive_entry* ae = tar.entry();
    Entry e;
    auto path = normalize_member_path(tar.name());
    if (!path.ok()) return path.err().context("layer", tar.source());
    e.path = std::move(*path);
    e.mode = archive_entry_filetype(ae) | (archive_entry_perm(ae) & 07777);
    e.uid = static_cast<uint32_t>(archive_entry_uid(ae));
    e.gid = static_cast<uint32_t>(archive_entry_gid(ae));
    e.mtime.tv_sec = archive_entry_mtime(ae);
    e.mtime.tv_nsec = archive_entry_mtime_nsec(ae);
    e.mtime_ns = false;  // whole seconds unless PAX says more: compared as tar does
    e.rdev = archive_entry_rdev(ae);
    if (const char* hl = archive_entry_hardlink(ae)) {
      auto target = normalize_member_path(hl);
      if (!target.ok()) return target.err().context("layer", tar.source());
      e.hardlink = std::move(*target);
      e.mode = 0;  // LayerTree takes the target's
    }
    if (S_ISLNK(e.mode)) {
      const char* target = archive_entry_symlink(ae);
      e.link = target ? target : "";
    }
    e.xattrs = member_xattrs(ae);
    if (S_ISREG(e.mode)) {
      e.size = static_cast<uint64_t>(archive_entry_size(ae));
      std::optional<ContentHash> hash;
      if (opts.hash) hash.emplace();
      for (;;) {
        auto block = tar.read_block();
        if (!block.ok()) return block.err();
        if (block->empty()) break;
        if (hash) hash->update(block->data(), block->size());
        if (opts.progress) opts.progress(block->size());
      }
      if (hash) e.hash = hash->done();
    }
    LAYERFS_TRY(sink(std::move(e)));
  }
}

}  // namespace layerfs
