#include "layers/source.h"

#include <archive_entry.h>
#include <fcntl.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "layers/archive.h"
#include "layers/image.h"
#include "layers/sys/fs.h"
#include "layers/sys/process.h"
#include "layers/sys/xattr.h"

namespace layerfs {
namespace {

constexpr size_t kChunk = 1 << 20;
constexpr size_t kMaxMetadata = 16 << 20;  // an image's JSON documents

Result<Xattrs> xattrs_of(BorrowedFd dir, const char* name) {
  Xattrs out;
  char names[4096];
  auto listed = sys::list_xattr_at(dir, name, names, sizeof names);
  if (!listed.ok() && listed.error() != ERANGE) {
    if (listed.error() == ENOTSUP || listed.error() == EOPNOTSUPP) return out;
    return listed.err();
  }
  if (listed.ok() && *listed == 0) return out;
  auto fd = sys::open_path(dir, name);
  if (!fd.ok()) return fd.err();
  auto all = sys::list_xattr(fd->get());
  if (!all.ok()) return all.err();
  for (size_t pos = 0; pos < all->size();) {
    const std::string x(all->c_str() + pos);
    pos += x.size() + 1;
    if (x.empty()) continue;
    auto v = sys::get_xattr(fd->get(), x.c_str());
    if (!v.ok()) {
      if (v.error() == ENODATA) continue;
      return v.err();
    }
    out[x] = std::move(*v);
  }
  return out;
}

// The xattrs of a file opened for reading.
Result<Xattrs> xattrs_of_open(BorrowedFd fd) {
  Xattrs out;
  char names[4096];
  auto listed = sys::list_xattr_open(fd, names, sizeof names);
  if (!listed.ok()) {
    if (listed.error() == ENOTSUP || listed.error() == EOPNOTSUPP) return out;
    if (listed.error() != ERANGE) return listed.err();
  }
  std::string all = listed.ok() ? std::string(names, *listed) : std::string();
  if (!listed.ok()) {
    auto big = sys::list_xattr(fd);
    if (!big.ok()) return big.err();
    all = std::move(*big);
  }
  for (size_t pos = 0; pos < all.size();) {
    const std::string x(all.c_str() + pos);
    pos += x.size() + 1;
    if (x.empty()) continue;
    auto v = sys::get_xattr_open(fd, x.c_str());
    if (!v.ok()) {
      if (v.error() == ENODATA) continue;
      return v.err();
    }
    out[x] = std::move(*v);
  }
  return out;
}

// The hash of the first `size` bytes (what stat said the file holds; no read for the end).
Result<Hash128> hash_open(BorrowedFd fd, uint64_t size, const ReadOptions& opts,
                          std::vector<char>& buf) {
  ContentHash h;
  for (off_t off = 0; static_cast<uint64_t>(off) < size;) {
    const size_t want = std::min<uint64_t>(buf.size(), size - static_cast<uint64_t>(off));
    auto n = sys::pread_fd(fd, buf.data(), want, off);
    if (!n.ok()) return n.err();
    if (*n == 0) break;
    h.update(buf.data(), *n);
    if (opts.progress) opts.progress(*n);
    off += static_cast<off_t>(*n);
  }
  return h.done();
}

struct DirWalk {
  const EntrySink& sink;
  const ReadOptions& opts;
  std::map<std::pair<dev_t, ino_t>, uint64_t> groups;
  std::string root;
  std::vector<char> buf = std::vector<char>(kChunk);  // one read buffer for every file

  Result<Entry> entry_of(BorrowedFd dir, const char* name, const std::string& path,
                         const struct stat& st) {
    Entry e;
    e.path = path;
    e.mode = st.st_mode & (S_IFMT | 07777);
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.mtime = st.st_mtim;
    e.rdev = S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? st.st_rdev : 0;
    e.allocated = static_cast<uint64_t>(st.st_blocks) * 512;
    bool have_xattrs = false;
    if (S_ISREG(st.st_mode)) {
      e.size = static_cast<uint64_t>(st.st_size);
      if (opts.hash) {
        // One open for the content and the xattrs (no path walk through /proc for them).
        auto fd = sys::open_at(dir, name, O_RDONLY | O_NOFOLLOW);
        if (!fd.ok()) return fd.err();
        auto h = hash_open(fd->get(), e.size, opts, buf);
        if (!h.ok()) return h.err();
        e.hash = *h;
        auto x = xattrs_of_open(fd->get());
        if (!x.ok()) return x.err();
        e.xattrs = std::move(*x);
        have_xattrs = true;
      }
    }
    if (S_ISLNK(st.st_mode)) {
      auto target = sys::read_link_at(dir, name);
      if (!target.ok()) return target.err();
      e.link = std::move(*target);
    }
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
      auto [it, fresh] = groups.try_emplace({st.st_dev, st.st_ino}, groups.size() + 1);
      e.link_group = it->second;
    }
    if (!have_xattrs) {
      auto x = xattrs_of(dir, name);
      if (!x.ok()) return x.err();
      e.xattrs = std::move(*x);
    }
    return e;
  }

  Result<void> walk(BorrowedFd dir, const std::string& rel) {
    std::vector<std::string> names;
    LAYERFS_TRY(sys::read_dir(dir, [&](const sys::DirEntry& d) {
      names.emplace_back(d.name);
      return true;
    }));
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      const std::string path = rel.empty() ? name : rel + "/" + name;
      auto st = sys::stat_at(dir, name.c_str());
      if (!st.ok()) return st.err().context("layer", root + "/" + path);
      auto e = entry_of(dir, name.c_str(), path, *st);
      if (!e.ok()) return e.err().context("layer", root + "/" + path);
      LAYERFS_TRY(sink(std::move(*e)));
      if (S_ISDIR(st->st_mode)) {
        auto sub = sys::open_at(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        if (!sub.ok()) return sub.err().context("layer", root + "/" + path);
        LAYERFS_TRY(walk(sub->get(), path));
      }
    }
    return {};
  }
};

class DirLayer : public LayerSource {
 public:
  explicit DirLayer(std::string path) {
    info_.name = path;
    info_.directory = std::move(path);
  }
  Result<void> read(const EntrySink& sink, const ReadOptions& opts) override {
    return read_dir_layer(info_.directory, sink, opts);
  }
};

class TarLayer : public LayerSource {
 public:
  TarLayer(std::string path, LayerInfo info) : path_(std::move(path)) {
    info_ = std::move(info);
    if (info_.name.empty()) info_.name = path_;
  }
  Result<void> read(const EntrySink& sink, const ReadOptions& opts) override {
    auto tar = ArchiveReader::open_file(path_);
    if (!tar.ok()) return tar.err();
    return read_layer_tar(**tar, sink, opts);
  }

 private:
  std::string path_;
};

// A layer tar stored as a member of an image archive, read in place.
class MemberLayer : public LayerSource {
 public:
  MemberLayer(std::string archive, std::string member, LayerInfo info)
      : archive_(std::move(archive)), member_(std::move(member)) {
    info_ = std::move(info);
    if (info_.name.empty()) info_.name = archive_ + ":" + member_;
  }
  Result<void> read(const EntrySink& sink, const ReadOptions& opts) override {
    auto outer = ArchiveReader::open_file(archive_);
    if (!outer.ok()) return outer.err();
    for (;;) {
      auto more = (*outer)->next();
      if (!more.ok()) return more.err();
      if (!*more) break;
      auto name = normalize_member_path((*outer)->name());
      if (!name.ok() || *name != member_) continue;
      auto input = (*outer)->member_input();
      auto inner = ArchiveReader::open_stream(*input, archive_ + ":" + member_);
      if (!inner.ok()) return inner.err();
      return read_layer_tar(**inner, sink, opts);
    }
    return failure(ENOENT, "'" + archive_ + "': no member " + member_);
  }

 private:
  std::string archive_;
  std::string member_;
};

LayerInfo info_of(const ImageLayer& l) {
  LayerInfo info;
  info.digest = l.digest;
  info.diff_id = l.diff_id;
  info.media_type = l.media_type;
  info.compressed_size = l.size;
  info.created_by = l.created_by;
  return info;
}

// "PATH[:REF]": PATH alone where it exists as it is, else split at the last colon.
std::pair<std::string, std::string> path_and_ref(const std::string& rest) {
  if (sys::path_exists(rest.c_str())) return {rest, ""};
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos) return {rest, ""};
  return {rest.substr(0, colon), rest.substr(colon + 1)};
}

std::string unescape_octal(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() + 1 && i + 3 <= s.size() &&
        std::all_of(s.begin() + static_cast<long>(i) + 1, s.begin() + static_cast<long>(i) + 4,
                    [](char c) { return c >= '0' && c <= '7'; })) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (;;) {
    const size_t next = s.find(sep, pos);
    out.emplace_back(s.substr(pos, next - pos));
    if (next == std::string_view::npos) return out;
    pos = next + 1;
  }
}

// The options of an overlay-style option list (lowerdir=, upperdir=, workdir=, lowerdir+=).
void read_overlay_options(const std::vector<std::string>& opts, MountLayers& out,
                          const std::string& base) {
  auto absolute = [&](std::string p) {
    return p.starts_with('/') || base.empty() ? p : base + "/" + p;
  };
  for (const std::string& o : opts) {
    if (o.starts_with("lowerdir=")) {
      for (const std::string& l : split(o.substr(9), ':')) {
        if (!l.empty()) out.lowers.push_back(absolute(unescape_octal(l)));
      }
    } else if (o.starts_with("lowerdir+=")) {
      out.lowers.push_back(absolute(unescape_octal(o.substr(10))));
    } else if (o.starts_with("upperdir=")) {
      out.upper = absolute(unescape_octal(o.substr(9)));
    } else if (o.starts_with("workdir=")) {
      out.work = absolute(unescape_octal(o.substr(8)));
    }
  }
}

Result<MountLayers> fuse_overlayfs_layers(const std::string& mountpoint) {
  std::vector<std::string> pids;
  auto proc = sys::open_at(kCwd, "/proc", O_RDONLY | O_DIRECTORY);
  if (!proc.ok()) return proc.err();
  LAYERFS_TRY(sys::read_dir(proc->get(), [&](const sys::DirEntry& d) {
    if (!d.name.empty() && std::all_of(d.name.begin(), d.name.end(), ::isdigit)) {
      pids.emplace_back(d.name);
    }
    return true;
  }));
  for (const std::string& pid : pids) {
    std::ifstream in("/proc/" + pid + "/cmdline", std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::string> argv = split(all, '\0');
    if (!argv.empty() && argv.back().empty()) argv.pop_back();
    if (argv.empty() || !argv[0].ends_with("fuse-overlayfs")) continue;
    auto cwd = sys::real_path(("/proc/" + pid + "/cwd").c_str());
    const std::string base = cwd.ok() ? *cwd : "";
    std::vector<std::string> opts;
    std::string last;
    for (size_t i = 1; i < argv.size(); ++i) {
      if (argv[i] == "-o" && i + 1 < argv.size()) {
        for (const std::string& o : split(argv[++i], ',')) opts.push_back(o);
      } else if (argv[i].starts_with("-o")) {
        for (const std::string& o : split(argv[i].substr(2), ',')) opts.push_back(o);
      } else if (!argv[i].starts_with("-")) {
        last = argv[i];
      }
    }
    if (last.empty()) continue;
    if (!last.starts_with('/') && !base.empty()) last = base + "/" + last;
    auto real = sys::real_path(last.c_str());
    if (!real.ok() || *real != mountpoint) continue;
    MountLayers out;
    out.type = "fuse-overlayfs";
    read_overlay_options(opts, out, base);
    if (out.lowers.empty()) continue;
    return out;
  }
  return failure(ENOENT, "'" + mountpoint + "': no fuse-overlayfs process serves it");
}

Result<MountLayers> layerfs_layers(const std::string& mountpoint) {
  auto fd = sys::open_at(kCwd, mountpoint.c_str(), O_PATH | O_DIRECTORY);
  if (!fd.ok()) return fd.err();
  auto v = sys::get_xattr(fd->get(), kLayersXattr);
  if (!v.ok()) return v.err();
  MountLayers out;
  out.type = "layerfs";
  std::vector<std::string> items = split(*v, '\0');
  for (const std::string& item : items) {
    if (item.starts_with("upperdir=")) out.upper = item.substr(9);
    if (item.starts_with("workdir=")) out.work = item.substr(8);
    if (item.starts_with("lowerdir=")) out.lowers.push_back(item.substr(9));
  }
  if (out.lowers.empty()) return failure(EINVAL, "'" + mountpoint + "': no lowerdir in its answer");
  return out;
}

}  // namespace

Result<void> read_dir_layer(const std::string& root, const EntrySink& sink,
                            const ReadOptions& opts) {
  auto fd = sys::open_at(kCwd, root.c_str(), O_RDONLY | O_DIRECTORY);
  if (!fd.ok()) return fd.err().context("layer", root);
  DirWalk w{sink, opts, {}, root};
  auto st = sys::stat_fd(fd->get());
  if (!st.ok()) return st.err().context("layer", root);
  Entry e;
  e.path = "";
  e.mode = st->st_mode & (S_IFMT | 07777);
  e.uid = st->st_uid;
  e.gid = st->st_gid;
  e.mtime = st->st_mtim;
  auto x = xattrs_of(fd->get(), "");
  if (x.ok()) e.xattrs = std::move(*x);
  LAYERFS_TRY(sink(std::move(e)));
  return w.walk(fd->get(), "");
}

Result<MountLayers> mount_layers(const std::string& mountpoint) {
  std::ifstream in("/proc/self/mountinfo");
  if (!in) return failure(ENOENT, "/proc/self/mountinfo: cannot be read");
  std::string line;
  std::string type, super;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::vector<std::string> f;
    for (std::string x; fields >> x;) f.push_back(x);
    auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() < 5 || dash == f.end() || dash + 3 >= f.end() + 1) continue;
    if (unescape_octal(f[4]) != mountpoint) continue;
    type = *(dash + 1);  // the last mount on the point wins
    super = dash + 3 < f.end() ? *(dash + 3) : "";
  }
  if (type.empty()) return failure(ENOENT, "'" + mountpoint + "': not a mount point");
  if (type == "overlay") {
    MountLayers out;
    out.type = "overlay";
    read_overlay_options(split(super, ','), out, "");
    return out;
  }
  if (type.starts_with("fuse")) {
    if (auto l = layerfs_layers(mountpoint); l.ok()) return l;
    if (type == "fuse.fuse-overlayfs") return fuse_overlayfs_layers(mountpoint);
  }
  return failure(ENOENT, "'" + mountpoint + "': a " + type + " mount, not an overlay");
}

Result<std::unique_ptr<LayerSource>> open_layer(const std::string& path) {
  auto st = sys::stat_at(kCwd, path.c_str());
  if (!st.ok()) return st.err().context("layer", path);
  // (stat_at does not follow a symlink; a layer named through one is followed here.)
  if (S_ISLNK(st->st_mode)) {
    auto real = sys::real_path(path.c_str());
    if (!real.ok()) return real.err().context("layer", path);
    return open_layer(*real);
  }
  if (S_ISDIR(st->st_mode)) return std::unique_ptr<LayerSource>(new DirLayer(path));
  if (S_ISREG(st->st_mode)) return std::unique_ptr<LayerSource>(new TarLayer(path, {}));
  return failure(EINVAL, "layer '" + path + "': neither a directory nor a layer tar");
}

Result<Stack> open_stack(const std::string& spec) {
  Stack stack;
  stack.spec = spec;
  auto image_from_archive = [&](const std::string& rest, bool oci) -> Result<Stack> {
    auto [file, ref] = path_and_ref(rest);
    const std::string what = (oci ? "oci-archive '" : "docker-archive '") + file + "'";
    std::map<std::string, std::string> members;
    std::map<std::string, uint64_t> sizes;     // every member's size
    std::map<std::string, std::string> links;  // symlinked members: what they name
    auto scan = ArchiveReader::open_file(file);
    if (!scan.ok()) return scan.err();
    for (;;) {
      auto more = (*scan)->next();
      if (!more.ok()) return more.err();
      if (!*more) break;
      auto name = normalize_member_path((*scan)->name());
      if (!name.ok()) continue;
      sizes[*name] = static_cast<uint64_t>(std::max<int64_t>((*scan)->size(), 0));
      if (const char* target = archive_entry_symlink((*scan)->entry()); target != nullptr) {
        // "<id>/layer.tar -> ../<diffid>.tar" (podman's docker-archive)
        const size_t slash = name->rfind('/');
        std::string joined =
            (slash == std::string::npos ? "" : name->substr(0, slash + 1)) + target;
        if (auto real = normalize_member_path(joined); real.ok()) links[*name] = *real;
      }
      if (!is_metadata_member(*name)) continue;
      auto first = (*scan)->read_block();
      if (!first.ok()) return first.err();
      if (first->empty() || ((*first)[0] != '{' && (*first)[0] != '[')) continue;
      std::string text(first->data(), first->size());
      auto rest_of = (*scan)->read_all(kMaxMetadata);
      if (!rest_of.ok()) continue;
      members[*name] = text + *rest_of;
    }
    ReadMember fetch = [&](const std::string& path) -> Result<std::string> {
      auto it = members.find(path);
      if (it == members.end()) return failure(ENOENT, "no such member");
      return it->second;
    };
    auto image = oci ? resolve_oci(fetch, ref, what) : resolve_docker(fetch, ref, what);
    if (!image.ok()) return image.err();
    stack.kind = oci ? "oci-archive" : "docker-archive";
    for (const ImageLayer& l : image->layers) {
      LayerInfo info = info_of(l);
      if (info.compressed_size == 0) {
        // A docker-archive's manifest gives no sizes: the member's own, as stored.
        auto link = links.find(l.member);
        auto size = sizes.find(link != links.end() ? link->second : l.member);
        if (size != sizes.end()) info.compressed_size = size->second;
      }
      if (!oci && info.media_type.empty()) {
        info.media_type = "application/vnd.docker.image.rootfs.diff.tar";
      }
      if (!oci && info.digest.empty()) info.digest = info.diff_id;  // an uncompressed tar
      stack.layers.push_back(std::make_unique<MemberLayer>(file, l.member, std::move(info)));
    }
    return std::move(stack);
  };
  if (spec.starts_with("oci:")) {
    auto [dir, ref] = path_and_ref(spec.substr(4));
    const std::string what = "oci '" + dir + "'";
    ReadMember fetch = [&](const std::string& path) -> Result<std::string> {
      std::ifstream in(dir + "/" + path, std::ios::binary);
      if (!in) return failure(ENOENT, "no such file");
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (text.size() > kMaxMetadata) return failure(EFBIG, "too large");
      return text;
    };
    auto image = resolve_oci(fetch, ref, what);
    if (!image.ok()) return image.err();
    stack.kind = "oci";
    for (const ImageLayer& l : image->layers) {
      stack.layers.push_back(std::make_unique<TarLayer>(dir + "/" + l.member, info_of(l)));
    }
    return stack;
  }
  if (spec.starts_with("oci-archive:")) return image_from_archive(spec.substr(12), true);
  if (spec.starts_with("docker-archive:")) return image_from_archive(spec.substr(15), false);
  if (spec.starts_with("layers:")) {
    stack.kind = "layers";
    for (const std::string& part : split(spec.substr(7), ',')) {
      if (part.empty()) return failure(EINVAL, "'" + spec + "': an empty layer in the list");
      auto layer = open_layer(part);
      if (!layer.ok()) return layer.err();
      stack.layers.push_back(std::move(*layer));
    }
    return stack;
  }
  auto st = sys::stat_at(kCwd, spec.c_str());
  if (!st.ok()) return st.err().context("source", spec);
  auto real = sys::real_path(spec.c_str());
  if (!real.ok()) return real.err().context("source", spec);
  if (S_ISDIR(st->st_mode) || S_ISLNK(st->st_mode)) {
    if (auto m = mount_layers(*real); m.ok()) {
      stack.kind = m->type + " mount";
      stack.mountpoint = *real;
      for (auto it = m->lowers.rbegin(); it != m->lowers.rend(); ++it) {
        stack.layers.push_back(std::make_unique<DirLayer>(*it));
      }
      if (!m->upper.empty()) {
        stack.layers.push_back(std::make_unique<DirLayer>(m->upper));
        stack.top_is_upper = true;
      }
      return stack;
    }
  }
  auto layer = open_layer(spec);
  if (!layer.ok()) return layer.err();
  stack.kind = S_ISDIR(st->st_mode) ? "directory" : "tar";
  stack.layers.push_back(std::move(*layer));
  return stack;
}

Result<LayerTree> read_tree(LayerSource& layer, const ReadOptions& opts) {
  LayerTree tree;
  LAYERFS_TRY(layer.read(
      [&](Entry&& e) -> Result<void> {
        tree.add(std::move(e));
        return {};
      },
      opts));
  return tree;
}

Result<std::vector<LayerTree>> read_trees(Stack& stack, const ReadOptions& opts) {
  std::vector<LayerTree> trees;
  trees.reserve(stack.layers.size());
  for (const auto& layer : stack.layers) {
    auto tree = read_tree(*layer, opts);
    if (!tree.ok()) return tree.err();
    trees.push_back(std::move(*tree));
  }
  return trees;
}

}  // namespace layerfs
