// layerdu on a stack with known answers, checked to the byte, from every source form the tests
// can make without podman (directories, layer tars, an oci: layout); its CI rules and their
// exit statuses. tests/e2e/layerdu.sh adds podman save, podman history and the HTML page in
// Chromium.
#include <gtest/gtest.h>
#include <png.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "tests/support/mounts.h"
#include "tests/support/tree.h"

namespace layerfs::test {
namespace {

constexpr uint64_t kBig = 10 << 20;

std::string random_bytes(size_t n, unsigned seed) {
  std::string s(n, '\0');
  uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1);
  for (char& c : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return s;
}

// L0: big (10 MiB), d/ with 1,000 files of 100 bytes, o/a (1000) and o/b (2000), dup1 (5000),
//     r (1000), h1 = h2 (3000, hard links);
// L1: big again with the same content, chmod 600 (a metadata-only copy); a whiteout of d
//     (rm -rf: all 1,000 removed); o opaque with o/c (500); dup2 = dup1's content; r (1000);
// L2: r (1000): r is replaced three times, two copies reclaimable.
class Du : public ::testing::Test {
 protected:
  void SetUp() override {
    // CI=true means --ci to layerdu (as to dive); the tests say when they want it.
    unsetenv("CI");
    const fs::path l0 = t_ / "L0", l1 = t_ / "L1", l2 = t_ / "L2";
    const std::string big = random_bytes(kBig, 1);
    write_file(l0 / "big", big);
    for (int i = 0; i < 1000; ++i)
      write_file(l0 / "d" / ("f" + std::to_string(i)), std::string(100, 'd'));
    write_file(l0 / "o/a", random_bytes(1000, 2));
    write_file(l0 / "o/b", random_bytes(2000, 3));
    write_file(l0 / "dup1", random_bytes(5000, 4));
    write_file(l0 / "r", random_bytes(1000, 5));
    write_file(l0 / "h1", random_bytes(3000, 6));
    make_hardlink(l0 / "h1", l0 / "h2");
    write_file(l1 / "big", big, 0600);
    write_file(l1 / ".wh.d", "");
    write_file(l1 / "o/.wh..wh..opq", "");
    write_file(l1 / "o/c", random_bytes(500, 7));
    write_file(l1 / "dup2", random_bytes(5000, 4));
    write_file(l1 / "r", random_bytes(1000, 8));
    write_file(l2 / "r", random_bytes(1000, 9));
  }
  nlohmann::json du(const std::string& source, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {LAYERDU_BIN, "--json", source};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto r = run(argv);
    EXPECT_EQ(r.status, 0) << r.err;
    return r.status == 0 ? nlohmann::json::parse(r.out) : nlohmann::json();
  }
  std::string dirs() const {
    return "layers:" + (t_ / "L0").string() + "," + (t_ / "L1").string() + "," +
           (t_ / "L2").string();
  }
  TempDir t_{"du"};
};

// The numbers every source form must give.
void expect_known_answers(const nlohmann::json& j) {
  ASSERT_TRUE(j.contains("totals")) << j.dump();
  const auto& t = j["totals"];
  const uint64_t l0 = kBig + 1000 * 100 + 1000 + 2000 + 5000 + 1000 + 3000;
  const uint64_t l1 = kBig + 500 + 5000 + 1000;
  const uint64_t l2 = 1000;
  const uint64_t live = kBig + 500 + 5000 + 5000 + 1000 + 3000;
  EXPECT_EQ(t["total_bytes"], l0 + l1 + l2);
  EXPECT_EQ(t["live_bytes"], live);
  EXPECT_EQ(t["reclaimable_bytes"], l0 + l1 + l2 - live);
  EXPECT_EQ(t["duplicate_bytes"], 5000u);
  EXPECT_EQ(t["metadata_copy_bytes"], kBig);
  ASSERT_EQ(j["layers"].size(), 3u);
  const auto& L = j["layers"];
  EXPECT_EQ(L[0]["bytes"], l0);  // h1 and h2 counted once
  EXPECT_EQ(L[0]["shadowed_bytes"], kBig + 1000);
  EXPECT_EQ(L[0]["removed_bytes"], 1000u * 100 + 1000 + 2000);
  EXPECT_EQ(L[0]["live_bytes"], 5000u + 3000);
  EXPECT_EQ(L[1]["bytes"], l1);
  EXPECT_EQ(L[1]["shadowed_bytes"], 1000u);
  EXPECT_EQ(L[1]["removed"], 1000u + 1 + 2);  // d, its 1,000 files, o/a and o/b
  EXPECT_EQ(L[2]["live_bytes"], 1000u);
  for (const auto& l : L) {
    EXPECT_EQ(l["live_bytes"].get<uint64_t>() + l["shadowed_bytes"].get<uint64_t>() +
                  l["removed_bytes"].get<uint64_t>(),
              l["bytes"].get<uint64_t>());
  }
  // The top list: the chmod copy first, then the removed directory, then the duplicate.
  const auto& top = j["top"];
  ASSERT_GE(top.size(), 5u);
  EXPECT_EQ(top[0]["path"], "/big");
  EXPECT_EQ(top[0]["reclaimable_bytes"], kBig);
  EXPECT_EQ(top[0]["reasons"][0], "metadata-only copy");
  EXPECT_EQ(top[1]["path"], "/d");
  EXPECT_EQ(top[1]["directory"], true);
  EXPECT_EQ(top[1]["reclaimable_bytes"], 100000u);
  EXPECT_EQ(top[2]["path"], "/dup1");
  EXPECT_EQ(top[2]["reasons"][0], "duplicate");
  bool r_listed = false;
  for (const auto& item : top) {
    if (item["path"] == "/r") {
      r_listed = true;
      EXPECT_EQ(item["reclaimable_bytes"], 2000u);
    }
  }
  EXPECT_TRUE(r_listed);
}

TEST_F(Du, DirectoriesGiveTheKnownAnswers) { expect_known_answers(du(dirs())); }

TEST_F(Du, LayerTarsAndAnOciLayoutGiveTheSameNumbers) {
  std::string tars = "layers:";
  for (const char* l : {"L0", "L1", "L2"}) {
    const fs::path out = t_ / (std::string(l) + ".tar.gz");
    auto r = run({LAYERDIFF_BIN, "export", (t_ / l).string(), "-o", out.string(), "--into",
                  "oci:" + (t_ / "image").string() + ":du"});
    ASSERT_EQ(r.status, 0) << r.err;
    tars += (tars.size() > 7 ? "," : "") + out.string();
  }
  nlohmann::json from_dirs = du(dirs());
  // Bytes on disk are a directory's alone.
  EXPECT_GT(from_dirs["totals"]["allocated_bytes"].get<uint64_t>(), kBig);
  from_dirs["totals"].erase("allocated_bytes");
  for (const std::string& source : {tars, "oci:" + (t_ / "image").string() + ":du"}) {
    SCOPED_TRACE(source);
    const nlohmann::json j = du(source);
    expect_known_answers(j);
    EXPECT_EQ(j["totals"], from_dirs["totals"]);
    EXPECT_EQ(j["top"], from_dirs["top"]);
  }
  // The image's layers say what made them and how big their blobs are.
  const nlohmann::json img = du("oci:" + (t_ / "image").string() + ":du");
  EXPECT_NE(img["layers"][1]["created_by"].get<std::string>().find("layerdiff export"),
            std::string::npos);
  EXPECT_EQ(img["layers"][1]["compressed_bytes"], fs::file_size(t_ / "L1.tar.gz"));
}

TEST_F(Du, EveryEntryHasItsChangeAndFate) {
  const nlohmann::json j = du(dirs());
  std::map<std::string, nlohmann::json> l0, l1;
  for (const auto& f : j["layers"][0]["files"]) l0[f["path"]] = f;
  for (const auto& f : j["layers"][1]["files"]) l1[f["path"]] = f;
  EXPECT_EQ(l0["/big"]["fate"], "shadowed");
  EXPECT_EQ(l0["/big"]["by_layer"], 1);
  EXPECT_EQ(l1["/big"]["change"], "M");
  EXPECT_EQ(l1["/big"]["metadata_copy"], true);
  EXPECT_EQ(l0["/d/f7"]["fate"], "removed");
  EXPECT_EQ(l1["/d"]["change"], "D");
  EXPECT_EQ(l0["/o/a"]["fate"], "removed");
  EXPECT_EQ(l1["/o/c"]["change"], "A");
  EXPECT_EQ(l0["/h1"]["bytes"].get<uint64_t>() + l0["/h2"]["bytes"].get<uint64_t>(), 3000u);
  EXPECT_EQ(l0["/dup1"]["fate"], "live");
}

TEST_F(Du, CiRulesPassAndFailWithTheirExitStatus) {
  // Efficiency is about a half: 0.4 passes, 0.9 (dive's default) fails.
  auto pass = run({LAYERDU_BIN, "--ci", "--lowest-efficiency", "0.4",
                   "--highest-user-wasted-percent", "disabled", dirs()});
  EXPECT_EQ(pass.status, 0) << pass.out << pass.err;
  auto nan = run({LAYERDU_BIN, "--ci", "--lowest-efficiency", "half", dirs()});
  EXPECT_EQ(nan.status, 2) << nan.out;
  EXPECT_NE(nan.err.find("--lowest-efficiency 'half'"), std::string::npos) << nan.err;
  write_file(t_ / "ok.yaml",
             "rules:\n  lowest-efficiency: 0.4\n  highest-user-wasted-percent: disabled\n");
  auto ok = run({LAYERDU_BIN, "--ci", "--ci-config", (t_ / "ok.yaml").string(), dirs()});
  EXPECT_EQ(ok.status, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("PASS lowest-efficiency"), std::string::npos) << ok.out;
  auto dflt = run({LAYERDU_BIN, dirs()}, {"CI=true"});
  EXPECT_EQ(dflt.status, 1) << dflt.out << dflt.err;
  EXPECT_NE(dflt.out.find("FAIL lowest-efficiency"), std::string::npos) << dflt.out;
  EXPECT_NE(dflt.out.find("/big"), std::string::npos) << "the worst offender is named";
  write_file(t_ / "dive.yaml",
             "rules:\n  lowest-efficiency: disabled\n  highest-wasted-bytes: 20MB\n"
             "  highest-user-wasted-percent: disabled\n  max-duplicate-bytes: 4kB\n");
  auto dup = run({LAYERDU_BIN, "--ci", "--ci-config", (t_ / "dive.yaml").string(), dirs()});
  EXPECT_EQ(dup.status, 1) << dup.out;
  EXPECT_NE(dup.out.find("PASS highest-wasted-bytes"), std::string::npos) << dup.out;
  EXPECT_NE(dup.out.find("FAIL max-duplicate-bytes"), std::string::npos) << dup.out;
  write_file(t_ / "bad.yaml", "rules:\n  lowest-efficency: 0.5\n");
  auto bad = run({LAYERDU_BIN, "--ci", "--ci-config", (t_ / "bad.yaml").string(), dirs()});
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("unknown rule 'lowest-efficency'"), std::string::npos) << bad.err;
}

TEST_F(Du, ForbidRulesNameTheOffenders) {
  const fs::path l3 = t_ / "L3";
  write_file(l3 / "bin/su", "x", 04755);
  ASSERT_EQ(chmod((l3 / "bin/su").c_str(), 04755), 0);
  write_file(l3 / "tmpfile", "x");
  ASSERT_EQ(chmod((l3 / "tmpfile").c_str(), 0666), 0);
  make_dir(l3 / "tmp");
  ASSERT_EQ(chmod((l3 / "tmp").c_str(), 01777), 0);
  make_symlink("../../../etc/shadow", l3 / "bin/escape");
  make_symlink("/etc/passwd", l3 / "bin/inside");
  const std::string stack = dirs() + "," + l3.string();
  auto r = run({LAYERDU_BIN, "--ci", "--lowest-efficiency", "0", "--forbid-setuid",
                "--forbid-world-writable", "--forbid-escaping-symlinks", "--forbid-devices", stack},
               {"CI="});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("FAIL forbid-setuid"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("/bin/su"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("FAIL forbid-world-writable: 1 found"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("/bin/escape -> ../../../etc/shadow"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("/bin/inside"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("PASS forbid-devices"), std::string::npos) << r.out;
}

// A hard link whose other name survives loses no bytes, whichever name carries them; a
// directory replaced by a file is one path to dive, whatever sorts between it and its children.
TEST_F(Du, HardLinksAndDirectoriesReplacedByFiles) {
  const fs::path a = t_ / "A", b = t_ / "B";
  write_file(a / "h1", std::string(4000, 'h'));
  make_hardlink(a / "h1", a / "h2");
  write_file(a / "x/in", std::string(300, 'i'));
  write_file(a / "x.txt", std::string(200, 't'));
  write_file(b / ".wh.h1", "");
  write_file(b / "x", std::string(100, 'x'));
  const nlohmann::json j = du("layers:" + a.string() + "," + b.string());
  ASSERT_TRUE(j.contains("totals")) << j.dump();
  EXPECT_EQ(j["totals"]["total_bytes"], 4000u + 300 + 200 + 100);
  EXPECT_EQ(j["totals"]["live_bytes"], 4000u + 200 + 100);
  EXPECT_EQ(j["layers"][0]["live_bytes"], 4200u);
  EXPECT_EQ(j["layers"][0]["removed_bytes"], 300u);
  for (const auto& item : j["top"]) EXPECT_NE(item["path"], "/h1") << item.dump();
  // dive: leaves h1 (4000, the name carrying the group), h2 (0), x/in, x.txt; then the whiteout
  // of h1 (0: it deleted a file) and the file x. Only h1 is in two layers; x is one path to
  // dive (the directory x has children), though x.txt sorts between x and x/in.
  EXPECT_EQ(j["totals"]["dive_wasted_bytes"], 4000u) << j["totals"].dump();
}

TEST_F(Du, BadSourceIsOneLineAndStatusTwo) {
  auto r = run({LAYERDU_BIN, (t_ / "missing").string()});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("missing"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

}  // namespace
}  // namespace layerfs::test

namespace layerfs::test {
namespace {

// Distinct colours and the share of pixels that are not the page's white, in a PNG.
struct Picture {
  size_t colours = 0;
  double inked = 0;
};
Picture look_at(const fs::path& png) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (png_image_begin_read_from_file(&image, png.c_str()) == 0) return {};
  image.format = PNG_FORMAT_RGB;
  std::vector<unsigned char> px(PNG_IMAGE_SIZE(image));
  if (png_image_finish_read(&image, nullptr, px.data(), 0, nullptr) == 0) return {};
  std::set<uint32_t> colours;
  size_t inked = 0;
  for (size_t i = 0; i + 2 < px.size(); i += 3) {
    const uint32_t c = px[i] << 16 | px[i + 1] << 8 | px[i + 2];
    colours.insert(c);
    if (c != 0xffffff) ++inked;
  }
  return {colours.size(), static_cast<double>(inked) / static_cast<double>(px.size() / 3)};
}

std::string attribute(const std::string& dom, const std::string& name) {
  const size_t at = dom.find(name + "=\"");
  if (at == std::string::npos) return "";
  const size_t start = at + name.size() + 2;
  return dom.substr(start, dom.find('"', start) - start);
}

// The value a number on the page carries (data-value of the element with that id).
std::string number_on_page(const std::string& dom, const std::string& id) {
  const size_t at = dom.find("id=\"" + id + "\"");
  if (at == std::string::npos) return "";
  const size_t tag = dom.rfind('<', at);
  return attribute(dom.substr(tag, dom.find('>', at) - tag), "data-value");
}

TEST_F(Du, TheHtmlReportDrawsInChromiumWithTheJsonNumbers) {
  if (run({"sh", "-c", "command -v chromium"}).status != 0) {
    GTEST_SKIP() << "no chromium (./dev installs it)";
  }
  const fs::path page = t_ / "report.html", shot = t_ / "shot.png";
  auto r = run({LAYERDU_BIN, "--json", "--no-files", "--html", page.string(), dirs()});
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  std::ifstream in(page);
  const std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Self-contained: nothing fetched from anywhere (the SVG namespace is the one URL it names).
  std::string refs = html;
  for (size_t at; (at = refs.find("http://www.w3.org/2000/svg")) != std::string::npos;) {
    refs.erase(at, 26);
  }
  for (const char* ref : {"src=", "href=", "http://", "https://", "@import", "url("}) {
    EXPECT_EQ(refs.find(ref), std::string::npos) << ref;
  }
  const std::vector<std::string> chrome = {"chromium",
                                           "--headless",
                                           "--no-sandbox",
                                           "--disable-gpu",
                                           "--window-size=1100,1400",
                                           "--virtual-time-budget=5000"};
  auto args = chrome;
  args.push_back("--dump-dom");
  args.push_back("file://" + page.string());
  auto dom = run(args);
  ASSERT_EQ(dom.status, 0) << dom.err;
  const size_t body = dom.out.find("<body");
  ASSERT_NE(body, std::string::npos) << dom.out.substr(0, 400);
  const std::string body_tag = dom.out.substr(body, dom.out.find('>', body) - body);
  EXPECT_EQ(attribute(body_tag, "data-drawn"), "yes") << body_tag;
  // Three layers with live, shadowed and removed parts: six segments (layer 2 is all live).
  EXPECT_GE(std::stoi(attribute(body_tag, "data-bars")), 4) << body_tag;
  EXPECT_GE(std::stoi(attribute(body_tag, "data-treemap-rects")), 2) << body_tag;
  EXPECT_EQ(attribute(body_tag, "data-top-rows"), std::to_string(j["top"].size())) << body_tag;
  for (const char* k : {"total_bytes", "live_bytes", "reclaimable_bytes", "duplicate_bytes"}) {
    std::string id = k;
    std::replace(id.begin(), id.end(), '_', '-');
    EXPECT_EQ(number_on_page(dom.out, id), std::to_string(j["totals"][k].get<uint64_t>())) << k;
  }
  args = chrome;
  args.push_back("--screenshot=" + shot.string());
  args.push_back("file://" + page.string());
  auto taken = run(args);
  ASSERT_EQ(taken.status, 0) << taken.err;
  const Picture p = look_at(shot);
  EXPECT_GT(p.colours, 20u) << "the screenshot is blank or nearly";
  EXPECT_GT(p.inked, 0.15) << "the chart and treemap cover part of the page";
  if (const char* keep = getenv("LAYERDU_SCREENSHOT"); keep != nullptr && *keep != '\0') {
    fs::copy_file(shot, keep, fs::copy_options::overwrite_existing);
  }
}

}  // namespace
}  // namespace layerfs::test
