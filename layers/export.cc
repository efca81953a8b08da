#include "layers/export.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "layers/digest.h"
#include "layers/sys/fs.h"

namespace layerfs {
namespace {

constexpr size_t kChunk = 1 << 20;

// The compressed side: a "raw" libarchive writer with the compression filter, whose output is
// hashed and written to the file.
struct Sink {
  UniqueFd fd;
  Sha256 digest;
  uint64_t size = 0;
  Errno failed;
};

la_ssize_t write_file(archive*, void* client, const void* buf, size_t n) {
  auto* s = static_cast<Sink*>(client);
  auto done = sys::pwrite_fd(s->fd.get(), buf, n, static_cast<off_t>(s->size));
  if (!done.ok()) {
    s->failed = done.err();
    return -1;
  }
  s->digest.update(buf, n);
  s->size += n;
  return static_cast<la_ssize_t>(n);
}

// The tar side: its bytes are the DiffID's, then go to the compressor (or straight to the file).
struct TarSide {
  Sha256 diff_id;
  archive* compressor = nullptr;  // null: no compression
  Sink* sink = nullptr;
};

la_ssize_t write_tar(archive*, void* client, const void* buf, size_t n) {
  auto* t = static_cast<TarSide*>(client);
  t->diff_id.update(buf, n);
  if (t->compressor == nullptr) return write_file(nullptr, t->sink, buf, n);
  const la_ssize_t w = archive_write_data(t->compressor, buf, n);
  return w < 0 ? -1 : static_cast<la_ssize_t>(n);
}

struct Order {
  // Children of each directory: whiteouts first, then objects, each by name.
  std::map<std::string, std::vector<const Entry*>> children;
};

void order_children(Order& o) {
  for (auto& [dir, list] : o.children) {
    std::stable_sort(list.begin(), list.end(), [](const Entry* a, const Entry* b) {
      const bool wa = a->kind == Entry::Kind::kWhiteout, wb = b->kind == Entry::Kind::kWhiteout;
      if (wa != wb) return wa;
      return a->name() < b->name();
    });
  }
}

}  // namespace

Compression compression_for(const std::string& path) {
  if (path.ends_with(".gz") || path.ends_with(".tgz")) return Compression::kGzip;
  if (path.ends_with(".zst") || path.ends_with(".tzst")) return Compression::kZstd;
  return Compression::kNone;
}

const char* layer_media_type(Compression c) {
  switch (c) {
    case Compression::kGzip:
      return "application/vnd.oci.image.layer.v1.tar+gzip";
    case Compression::kZstd:
      return "application/vnd.oci.image.layer.v1.tar+zstd";
    case Compression::kNone:
      break;
  }
  return "application/vnd.oci.image.layer.v1.tar";
}

Result<Exported> export_layer(const LayerTree& tree, const std::string& root,
                              const std::string& out, const ExportOptions& opts) {
  auto root_fd = sys::open_at(kCwd, root.c_str(), O_PATH | O_DIRECTORY);
  if (!root_fd.ok()) return root_fd.err().context("layer", root);
  const std::string temp = out + ".partial";
  Sink sink;
  {
    auto fd = sys::open_at(kCwd, temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (!fd.ok()) return fd.err().context("output", temp);
    sink.fd = std::move(*fd);
  }
  auto fail = [&](Errno e) -> Result<Exported> {
    (void)sys::unlink_at(kCwd, temp.c_str());
    return e;
  };
  std::unique_ptr<archive, int (*)(archive*)> comp(nullptr, archive_write_free);
  TarSide tar_side;
  tar_side.sink = &sink;
  if (opts.compression != Compression::kNone) {
    comp.reset(archive_write_new());
    archive_write_set_format_raw(comp.get());
    if (opts.compression == Compression::kGzip) {
      archive_write_add_filter_gzip(comp.get());
      archive_write_set_filter_option(comp.get(), "gzip", "timestamp", nullptr);
      archive_write_set_filter_option(comp.get(), "gzip", "compression-level", "6");
    } else {
      archive_write_add_filter_zstd(comp.get());
      archive_write_set_filter_option(comp.get(), "zstd", "compression-level", "3");
    }
    archive_write_set_bytes_in_last_block(comp.get(), 1);
    if (archive_write_open(comp.get(), &sink, nullptr, write_file, nullptr) != ARCHIVE_OK) {
      return fail(failure(EIO, "output '" + out + "': " + archive_error_string(comp.get())));
    }
    archive_entry* raw = archive_entry_new();
    archive_entry_set_filetype(raw, AE_IFREG);
    archive_entry_set_pathname(raw, "layer.tar");
    const int h = archive_write_header(comp.get(), raw);
    archive_entry_free(raw);
    if (h != ARCHIVE_OK) {
      return fail(failure(EIO, "output '" + out + "': " + archive_error_string(comp.get())));
    }
    tar_side.compressor = comp.get();
  }
  std::unique_ptr<archive, int (*)(archive*)> tar(archive_write_new(), archive_write_free);
  archive_write_set_format_pax(tar.get());
  archive_write_set_format_option(tar.get(), "pax", "xattrheader", "SCHILY");
  archive_write_set_bytes_in_last_block(tar.get(), 1);
  if (archive_write_open(tar.get(), &tar_side, nullptr, write_tar, nullptr) != ARCHIVE_OK) {
    return fail(failure(EIO, "output '" + out + "': " + archive_error_string(tar.get())));
  }
  auto tar_error = [&](const std::string& path) {
    if (sink.failed.code != 0) return sink.failed.context("output", out);
    const char* why = archive_error_string(tar.get());
    return failure(EIO, "output '" + out + "', entry '" + path + "': " + (why ? why : "failed"));
  };

  Order order;
  for (const auto& [path, e] : tree.entries()) {
    if (path.empty()) continue;
    order.children[std::string(e.parent())].push_back(&e);
  }
  order_children(order);
  auto mtime_of = [&](const struct timespec& t) {
    struct timespec m = t;
    if (opts.source_date_epoch && m.tv_sec >= *opts.source_date_epoch) {
      m.tv_sec = *opts.source_date_epoch;
      m.tv_nsec = 0;
    }
    return m;
  };
  std::map<uint64_t, std::string> first_of_group;
  Exported result;
  std::vector<char> buf(kChunk);
  archive_entry* ae = archive_entry_new();
  auto write_marker = [&](const std::string& path, const Entry* dir) -> Result<void> {
    archive_entry_clear(ae);
    archive_entry_set_pathname(ae, path.c_str());
    archive_entry_set_filetype(ae, AE_IFREG);
    archive_entry_set_perm(ae, 0644);
    archive_entry_set_size(ae, 0);
    if (dir != nullptr) {
      const struct timespec m = mtime_of(dir->mtime);
      archive_entry_set_mtime(ae, m.tv_sec, m.tv_nsec);
    }
    if (archive_write_header(tar.get(), ae) != ARCHIVE_OK) return tar_error(path);
    ++result.entries;
    return {};
  };
  std::function<Result<void>(const std::string&)> walk =
      [&](const std::string& dir) -> Result<void> {
    auto it = order.children.find(dir);
    if (it == order.children.end()) return {};
    const Entry* parent = tree.find(dir);
    for (const Entry* e : it->second) {
      const std::string prefix = dir.empty() ? "" : dir + "/";
      if (e->kind == Entry::Kind::kWhiteout) {
        LAYERFS_TRY(write_marker(prefix + ".wh." + std::string(e->name()), parent));
        continue;
      }
      if (S_ISSOCK(e->mode)) {
        if (opts.warn) opts.warn("/" + e->path + ": a socket, left out (a tar cannot hold one)");
        continue;
      }
      archive_entry_clear(ae);
      archive_entry_set_pathname(ae, (e->path + (e->is_dir() ? "/" : "")).c_str());
      archive_entry_set_filetype(ae, e->type());
      archive_entry_set_perm(ae, e->mode & 07777);
      archive_entry_set_uid(ae, e->uid);
      archive_entry_set_gid(ae, e->gid);
      const struct timespec m = mtime_of(e->mtime);
      archive_entry_set_mtime(ae, m.tv_sec, m.tv_nsec);
      for (const auto& [name, value] : e->xattrs) {
        if (Whiteout::is_private_xattr(name)) continue;
        archive_entry_xattr_add_entry(ae, name.c_str(), value.data(), value.size());
      }
      bool data = false;
      if (S_ISLNK(e->mode)) archive_entry_set_symlink(ae, e->link.c_str());
      if (S_ISCHR(e->mode) || S_ISBLK(e->mode)) archive_entry_set_rdev(ae, e->rdev);
      if (S_ISREG(e->mode)) {
        auto first = e->link_group != 0 ? first_of_group.find(e->link_group) : first_of_group.end();
        if (first != first_of_group.end()) {
          archive_entry_set_hardlink(ae, first->second.c_str());
          archive_entry_set_size(ae, 0);
        } else {
          if (e->link_group != 0) first_of_group[e->link_group] = e->path;
          archive_entry_set_size(ae, static_cast<la_int64_t>(e->size));
          data = true;
        }
      }
      if (archive_write_header(tar.get(), ae) != ARCHIVE_OK) return tar_error(e->path);
      ++result.entries;
      if (data) {
        auto fd = sys::open_beneath(root_fd->get(), e->path.c_str(), O_RDONLY | O_NOFOLLOW);
        if (!fd.ok()) return fd.err().context("layer", root + "/" + e->path);
        uint64_t left = e->size;
        for (off_t off = 0; left > 0;) {
          auto n = sys::pread_fd(fd->get(), buf.data(), std::min<uint64_t>(buf.size(), left), off);
          if (!n.ok()) return n.err().context("layer", root + "/" + e->path);
          if (*n == 0) {
            return failure(EIO, "layer '" + root + "/" + e->path + "': shrank while read");
          }
          if (archive_write_data(tar.get(), buf.data(), *n) < 0) return tar_error(e->path);
          off += static_cast<off_t>(*n);
          left -= *n;
        }
      }
      if (e->is_dir()) {
        if (e->opaque)
          LAYERFS_TRY(write_marker(e->path + "/" + std::string(Whiteout::kOpaqueFile), e));
        LAYERFS_TRY(walk(e->path));
      }
    }
    return {};
  };
  auto walked = walk("");
  archive_entry_free(ae);
  if (!walked.ok()) return fail(walked.err());
  if (archive_write_close(tar.get()) != ARCHIVE_OK) return fail(tar_error("(end)"));
  if (comp && archive_write_close(comp.get()) != ARCHIVE_OK) {
    return fail(failure(EIO, "output '" + out + "': " + archive_error_string(comp.get())));
  }
  if (sink.failed.code != 0) return fail(sink.failed.context("output", out));
  LAYERFS_TRY(sys::sync_fd(sink.fd.get()));
  result.diff_id = tar_side.diff_id.digest();
  result.digest = opts.compression == Compression::kNone ? result.diff_id : sink.digest.digest();
  result.size = sink.size;
  auto moved = sys::rename_at(kCwd, temp.c_str(), kCwd, out.c_str());
  if (!moved.ok()) return fail(moved.err().context("output", out));
  return result;
}

}  // namespace layerfs
