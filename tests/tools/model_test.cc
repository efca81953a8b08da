// The tools' layer model against the daemon and the kernel: random stacks of layers written as
// directories are merged three ways (layers/tree.h's merge of what the readers read, a layerfs
// mount, a kernel overlayfs mount of the same directories) and must agree entry by entry; the
// marker forms kernel overlayfs does not read are checked against layerfs alone; the same
// layers as tars (plain, gzip, zstd, named without extensions) read as the directories do.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <random>
#include <set>

#include "layers/source.h"
#include "layers/tree.h"
#include "tests/fuse/parity.h"
#include "tests/support/mounts.h"
#include "tests/support/tree.h"

namespace layerfs::test {
namespace {

// What a path shows, in the fields every view can say the same way.
struct Shown {
  mode_t mode = 0;
  uint32_t uid = 0, gid = 0;
  uint64_t size = 0;
  std::string content_hash;
  std::string link;
  std::map<std::string, std::string> xattrs;
  bool operator==(const Shown&) const = default;
};

std::string describe(const Shown& s) {
  char buf[128];
  snprintf(buf, sizeof buf, "mode %o owner %u:%u size %llu", s.mode, s.uid, s.gid,
           static_cast<unsigned long long>(s.size));
  std::string out = buf;
  if (!s.content_hash.empty()) out += " content " + s.content_hash.substr(0, 8);
  if (!s.link.empty()) out += " -> " + s.link;
  for (const auto& [k, v] : s.xattrs) out += " " + k + "=" + v;
  return out;
}

using View = std::map<std::string, Shown>;

std::string hash_of(const std::string& content) {
  ContentHash h;
  h.update(content.data(), content.size());
  return h.done().hex();
}

View from_mount(const fs::path& root) {
  View out;
  for (const auto& [path, n] : snapshot(root)) {
    Shown s;
    s.mode = n.st.st_mode;
    s.uid = n.st.st_uid;
    s.gid = n.st.st_gid;
    s.size = S_ISREG(n.st.st_mode) ? static_cast<uint64_t>(n.st.st_size) : 0;
    if (S_ISREG(n.st.st_mode)) s.content_hash = hash_of(n.content);
    s.link = n.link;
    for (const auto& [k, v] : n.xattrs) {
      if (!k.starts_with("system.")) s.xattrs[k] = v;
    }
    out[path] = s;
  }
  return out;
}

Result<View> from_model(const std::string& spec) {
  auto stack = open_stack(spec);
  if (!stack.ok()) return stack.err();
  auto trees = read_trees(*stack, {});
  if (!trees.ok()) return trees.err();
  std::vector<const LayerTree*> ptrs;
  for (const LayerTree& t : *trees) ptrs.push_back(&t);
  View out;
  for (const auto& [path, shown] : merge(ptrs)) {
    const Entry& e = *shown.entry;
    Shown s;
    s.mode = e.mode;
    s.uid = e.uid;
    s.gid = e.gid;
    s.size = e.is_reg() ? e.size : 0;
    if (e.is_reg() && e.hash) s.content_hash = e.hash->hex();
    s.link = e.link;
    for (const auto& [k, v] : e.xattrs) {
      if (!k.starts_with("system.")) s.xattrs[k] = v;
    }
    out[path] = s;
  }
  return out;
}

std::vector<std::string> differences(const View& a, const char* a_name, const View& b,
                                     const char* b_name) {
  std::vector<std::string> out;
  for (const auto& [path, s] : a) {
    auto it = b.find(path);
    if (it == b.end()) {
      out.push_back("/" + path + ": only in " + a_name + " (" + describe(s) + ")");
    } else if (!(it->second == s)) {
      out.push_back("/" + path + ": " + a_name + " " + describe(s) + "; " + b_name + " " +
                    describe(it->second));
    }
  }
  for (const auto& [path, s] : b) {
    if (!a.contains(path))
      out.push_back("/" + path + ": only in " + b_name + " (" + describe(s) + ")");
  }
  return out;
}

// A random layer over a small namespace, so that the layers collide: files, directories,
// symlinks, whiteouts and opaque directories over each other. `kernel_markers`: only the forms
// kernel overlayfs reads (0/0 devices, trusted.overlay.opaque); otherwise every form.
void random_layer(const fs::path& root, std::mt19937& gen, bool kernel_markers) {
  static const std::vector<std::string> kPaths = {"a",     "b",     "c",   "a/a",   "a/b",
                                                  "a/c",   "b/a",   "b/b", "a/a/a", "a/a/b",
                                                  "a/b/a", "b/a/a", "c/a", "c/b"};
  make_dir(root);
  for (const std::string& p : kPaths) {
    if (gen() % 3 == 0) continue;
    const fs::path full = root / p;
    // Only where every parent in this layer is (or can be) a directory.
    bool ok = true;
    for (fs::path parent = full.parent_path(); parent != root; parent = parent.parent_path()) {
      struct stat st {};
      if (lstat(parent.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) ok = false;
    }
    struct stat st {};
    if (!ok || lstat(full.c_str(), &st) == 0) continue;
    const unsigned kind = gen() % 8;
    switch (kind) {
      case 0:
      case 1:
        write_file(full, "content of " + p + " " + std::to_string(gen() % 4), 0600 + gen() % 0100);
        break;
      case 2:
      case 3:
        make_dir(full, gen() % 2 ? 0755 : 0700);
        break;
      case 4:
        make_symlink("target/" + std::to_string(gen() % 3), full);
        break;
      case 5:
        if (kernel_markers || gen() % 2) {
          make_whiteout(full);
        } else {
          write_file(full.parent_path() / (".wh." + full.filename().string()), "");
        }
        break;
      case 6: {
        make_dir(full);
        const unsigned form = kernel_markers ? 0 : gen() % 4;
        if (form == 0) set_xattr(full, "trusted.overlay.opaque", "y");
        if (form == 1) set_xattr(full, "user.overlay.opaque", "y");
        if (form == 2) set_xattr(full, "user.fuseoverlayfs.opaque", "y");
        if (form == 3) write_file(full / ".wh..wh..opq", "");
        break;
      }
      default:
        write_file(full, std::string(1000 + gen() % 3000, static_cast<char>('a' + gen() % 26)));
        set_xattr(full, "user.note", std::to_string(gen() % 2));
        break;
    }
  }
}

class Model : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "0/0 whiteouts and trusted.overlay.opaque need root here";
  }
};

TEST_F(Model, RandomStacksMergeAsLayerfsAndKernelOverlayfsShowThem) {
  SKIP_WITHOUT_KERNEL_OVERLAY();
  for (unsigned seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    TempDir t("model");
    std::mt19937 gen(seed);
    const std::vector<fs::path> base_first = {t / "l0", t / "l1", t / "l2"};
    for (const fs::path& l : base_first) random_layer(l, gen, true);
    pin_atimes(t.path());
    auto model = from_model("layers:" + base_first[0].string() + "," + base_first[1].string() +
                            "," + base_first[2].string());
    ASSERT_TRUE(model.ok()) << model.err().message();
    const std::vector<fs::path> top_first(base_first.rbegin(), base_first.rend());
    make_dir(t / "k");
    make_dir(t / "m");
    View kernel, ours;
    {
      KernelOverlay k(top_first, t / "k");
      ASSERT_TRUE(k.ok()) << k.error();
      kernel = from_mount(t / "k");
    }
    {
      LayerfsMount m(top_first, t / "m");
      ASSERT_TRUE(m.ok()) << m.error();
      ours = from_mount(t / "m");
    }
    auto d1 = differences(*model, "the model", kernel, "kernel overlayfs");
    EXPECT_TRUE(d1.empty()) << ::testing::PrintToString(d1);
    auto d2 = differences(*model, "the model", ours, "layerfs");
    EXPECT_TRUE(d2.empty()) << ::testing::PrintToString(d2);
    if (!d1.empty() || !d2.empty()) break;
  }
}

TEST_F(Model, EveryMarkerFormMergesAsLayerfsShowsIt) {
  SKIP_WITHOUT_FUSE();
  for (unsigned seed = 100; seed <= 130; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    TempDir t("model");
    std::mt19937 gen(seed);
    const std::vector<fs::path> base_first = {t / "l0", t / "l1", t / "l2"};
    for (const fs::path& l : base_first) random_layer(l, gen, false);
    pin_atimes(t.path());
    auto model = from_model("layers:" + base_first[0].string() + "," + base_first[1].string() +
                            "," + base_first[2].string());
    ASSERT_TRUE(model.ok()) << model.err().message();
    make_dir(t / "m");
    LayerfsMount m({base_first.rbegin(), base_first.rend()}, t / "m");
    ASSERT_TRUE(m.ok()) << m.error();
    auto d = differences(*model, "the model", from_mount(t / "m"), "layerfs");
    EXPECT_TRUE(d.empty()) << ::testing::PrintToString(d);
    if (!d.empty()) break;
  }
}

// The same layers as tars read as the directories do: whatever compression, told apart by the
// bytes (the files have no extension), with markers as tar entries (.wh. files and 0/0
// devices as GNU tar stores them, opaque xattrs as PAX records).
TEST_F(Model, LayerTarsReadAsTheirDirectories) {
  TempDir t("model");
  std::mt19937 gen(7);
  std::vector<std::string> dirs, tars;
  const char* compress[] = {"", "--gzip", "--zstd"};
  for (int i = 0; i < 3; ++i) {
    const fs::path l = t / ("l" + std::to_string(i));
    random_layer(l, gen, false);
    const std::string tar = (t / ("layer" + std::to_string(i))).string();
    std::string cmd = "tar --xattrs --xattrs-include='*' " + std::string(compress[i]) + " -C " +
                      l.string() + " -cf " + tar + " .";
    if (std::string(compress[i]) == "--zstd" && system("command -v zstd >/dev/null") != 0) {
      cmd = "tar --xattrs --xattrs-include='*' --gzip -C " + l.string() + " -cf " + tar + " .";
    }
    ASSERT_EQ(system(cmd.c_str()), 0) << cmd;
    dirs.push_back(l.string());
    tars.push_back(tar);
  }
  auto from_dirs = from_model("layers:" + dirs[0] + "," + dirs[1] + "," + dirs[2]);
  auto from_tars = from_model("layers:" + tars[0] + "," + tars[1] + "," + tars[2]);
  ASSERT_TRUE(from_dirs.ok()) << from_dirs.err().message();
  ASSERT_TRUE(from_tars.ok()) << from_tars.err().message();
  auto d = differences(*from_dirs, "the directories", *from_tars, "the tars");
  EXPECT_TRUE(d.empty()) << ::testing::PrintToString(d);
  EXPECT_GT(from_dirs->size(), 5u);
}

// A live mount is read as its layers: kernel overlayfs from mountinfo, layerfs from what its
// root answers, fuse-overlayfs from its daemon's command line (with absolute paths, as podman
// gives them: the daemon leaves its working directory, so relative ones cannot be resolved).
TEST_F(Model, LiveMountsAreReadAsTheirLayers) {
  SKIP_WITHOUT_KERNEL_OVERLAY();
  TempDir t("model");
  for (const char* d : {"l0", "l1", "up", "work", "k", "m", "fo", "fup", "fwork", "kup", "kwork"}) {
    make_dir(t / d);
  }
  write_file(t / "l0/f", "base");
  write_file(t / "l1/g", "mid");
  const std::string base = fs::canonical(t.path()).string();
  auto expect_layers = [&](const fs::path& mnt, const char* type, const std::string& upper) {
    auto m = mount_layers(fs::canonical(mnt).string());
    ASSERT_TRUE(m.ok()) << mnt << ": " << m.err().message();
    EXPECT_EQ(m->type, type);
    EXPECT_EQ(m->upper, upper);
    EXPECT_EQ(m->lowers, (std::vector<std::string>{base + "/l1", base + "/l0"}));
    auto stack = open_stack(mnt.string());
    ASSERT_TRUE(stack.ok());
    EXPECT_TRUE(stack->top_is_upper);
    EXPECT_EQ(stack->layers.size(), 3u);
  };
  {
    KernelOverlay k({t / "l1", t / "l0"}, t / "k",
                    "upperdir=" + (t / "kup").string() + ",workdir=" + (t / "kwork").string());
    ASSERT_TRUE(k.ok()) << k.error();
    expect_layers(t / "k", "overlay", base + "/kup");
  }
  {
    LayerfsMount m({t / "l1", t / "l0"}, t / "m",
                   {"-o", "upperdir=" + (t / "up").string() + ",workdir=" + (t / "work").string()});
    ASSERT_TRUE(m.ok()) << m.error();
    expect_layers(t / "m", "layerfs", base + "/up");
  }
  if (system("command -v fuse-overlayfs >/dev/null") != 0) GTEST_SKIP() << "no fuse-overlayfs";
  const std::string cmd = "fuse-overlayfs -o lowerdir=" + base + "/l1:" + base +
                          "/l0,upperdir=" + base + "/fup,workdir=" + base + "/fwork " + base +
                          "/fo 2>/dev/null";
  ASSERT_EQ(system(cmd.c_str()), 0);
  struct Unmount {
    fs::path p;
    ~Unmount() { unmount(p); }
  } guard{t / "fo"};
  expect_layers(t / "fo", "fuse-overlayfs", base + "/fup");
}

TEST_F(Model, BadSourcesAreNamed) {
  TempDir t("model");
  write_file(t / "notatar", "hello, not a tar");
  auto missing = open_stack((t / "missing").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.err().message().find((t / "missing").string()), std::string::npos);
  auto stack = open_stack((t / "notatar").string());
  ASSERT_TRUE(stack.ok());
  auto trees = read_trees(*stack, {});
  ASSERT_FALSE(trees.ok());
  EXPECT_NE(trees.err().message().find("notatar"), std::string::npos) << trees.err().message();
  auto oci = open_stack("oci:" + (t / "nolayout").string());
  ASSERT_FALSE(oci.ok());
  EXPECT_NE(oci.err().message().find("index.json"), std::string::npos) << oci.err().message();
}

}  // namespace
}  // namespace layerfs::test
