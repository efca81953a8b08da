#include "layers/image.h"

#include <nlohmann/json.hpp>

namespace layerfs {
namespace {

using json = nlohmann::json;

constexpr const char* kRefName = "org.opencontainers.image.ref.name";
constexpr const char* kIndexTypes[] = {"application/vnd.oci.image.index.v1+json",
                                       "application/vnd.docker.distribution.manifest.list.v2+json"};

Result<json> parse(const ReadMember& fetch, const std::string& path, const std::string& what) {
  auto text = fetch(path);
  if (!text.ok()) return text.err().context(what + ": " + path);
  json doc = json::parse(*text, nullptr, false);
  if (doc.is_discarded() || (!doc.is_object() && !doc.is_array())) {
    return failure(EINVAL, what + ": " + path + ": not a JSON document");
  }
  return doc;
}

std::string blob_path(const std::string& digest) {
  const size_t colon = digest.find(':');
  if (colon == std::string::npos) return "blobs/" + digest;
  return "blobs/" + digest.substr(0, colon) + "/" + digest.substr(colon + 1);
}

std::string str(const json& obj, const char* key);

// A field of the type asked for, or the fallback: documents from outside may hold anything
// (nlohmann's value() would throw on a field of another type).
uint64_t num(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}
bool flag(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_boolean() && it->get<bool>();
}

bool is_index(const json& d) {
  const std::string mt = str(d, "mediaType");
  for (const char* t : kIndexTypes) {
    if (mt == t) return true;
  }
  return false;
}

std::string str(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Layers and history of an image config, matched up: history entries with empty_layer make
// no layer.
void read_config(const json& config, Image& image) {
  std::vector<std::string> diff_ids;
  if (auto rootfs = config.find("rootfs"); rootfs != config.end() && rootfs->is_object()) {
    if (auto ids = rootfs->find("diff_ids"); ids != rootfs->end() && ids->is_array()) {
      for (const auto& id : *ids) diff_ids.push_back(id.is_string() ? id.get<std::string>() : "");
    }
  }
  std::vector<std::string> created;
  if (auto history = config.find("history"); history != config.end() && history->is_array()) {
    for (const auto& h : *history) {
      if (!h.is_object() || flag(h, "empty_layer")) continue;
      created.push_back(str(h, "created_by"));
    }
  }
  for (size_t i = 0; i < image.layers.size(); ++i) {
    if (i < diff_ids.size()) image.layers[i].diff_id = diff_ids[i];
    if (i < created.size()) image.layers[i].created_by = created[i];
  }
}

Result<Image> from_manifest(const ReadMember& fetch, const std::string& digest,
                            const std::string& ref, const std::string& what) {
  auto manifest = parse(fetch, blob_path(digest), what);
  if (!manifest.ok()) return manifest.err();
  Image image;
  image.ref = ref;
  auto layers = manifest->find("layers");
  if (layers == manifest->end() || !layers->is_array()) {
    return failure(EINVAL, what + ": manifest " + digest + " has no layers");
  }
  for (const auto& l : *layers) {
    if (!l.is_object()) return failure(EINVAL, what + ": manifest " + digest + ": bad layer");
    ImageLayer layer;
    layer.digest = str(l, "digest");
    layer.media_type = str(l, "mediaType");
    layer.size = num(l, "size");
    layer.member = blob_path(layer.digest);
    image.layers.push_back(std::move(layer));
  }
  if (auto config = manifest->find("config"); config != manifest->end() && config->is_object()) {
    image.config_digest = str(*config, "digest");
    auto cfg = parse(fetch, blob_path(image.config_digest), what);
    if (!cfg.ok()) return cfg.err();
    read_config(*cfg, image);
  }
  return image;
}

// Every image manifest an index leads to, with the ref name it is known by (nested indexes
// lend theirs to what they hold).
Result<void> collect(const ReadMember& fetch, const json& index, const std::string& inherited,
                     const std::string& what, int depth,
                     std::vector<std::pair<std::string, std::string>>& out) {
  if (depth > 8) return failure(ELOOP, what + ": indexes nested too deeply");
  auto manifests = index.find("manifests");
  if (manifests == index.end() || !manifests->is_array()) return {};
  for (const auto& m : *manifests) {
    if (!m.is_object()) continue;
    std::string name = inherited;
    if (auto ann = m.find("annotations"); ann != m.end() && ann->is_object()) {
      if (std::string n = str(*ann, kRefName); !n.empty()) name = n;
    }
    const std::string digest = str(m, "digest");
    if (is_index(m)) {
      auto nested = parse(fetch, blob_path(digest), what);
      if (!nested.ok()) return nested.err();
      LAYERFS_TRY(collect(fetch, *nested, name, what, depth + 1, out));
    } else {
      out.emplace_back(name, digest);
    }
  }
  return {};
}

std::string without_registry(std::string_view tag) {
  for (std::string_view p : {"localhost/", "docker.io/library/", "docker.io/"}) {
    if (tag.starts_with(p)) return std::string(tag.substr(p.size()));
  }
  return std::string(tag);
}

}  // namespace

bool is_metadata_member(const std::string& path) {
  return path == "index.json" || path == "manifest.json" || path == "oci-layout" ||
         path == "repositories" || path.ends_with(".json") || path.starts_with("blobs/");
}

Result<Image> resolve_oci(const ReadMember& fetch, const std::string& ref,
                          const std::string& what) {
  auto index = parse(fetch, "index.json", what);
  if (!index.ok()) return index.err();
  std::vector<std::pair<std::string, std::string>> images;
  LAYERFS_TRY(collect(fetch, *index, "", what, 0, images));
  if (images.empty()) return failure(ENOENT, what + ": the index holds no image");
  if (ref.empty()) {
    if (images.size() > 1) {
      std::string names;
      for (const auto& [n, d] : images) names += (names.empty() ? "" : ", ") + (n.empty() ? d : n);
      return failure(EINVAL, what + ": holds " + std::to_string(images.size()) +
                                 " images; name one (" + names + ")");
    }
    return from_manifest(fetch, images[0].second, images[0].first, what);
  }
  for (const auto& [name, digest] : images) {
    if (name == ref) return from_manifest(fetch, digest, name, what);
  }
  return failure(ENOENT, what + ": no image named '" + ref + "'");
}

Result<Image> resolve_docker(const ReadMember& fetch, const std::string& ref,
                             const std::string& what) {
  auto manifest = parse(fetch, "manifest.json", what);
  if (!manifest.ok()) return manifest.err();
  if (!manifest->is_array() || manifest->empty()) {
    return failure(EINVAL, what + ": manifest.json lists no image");
  }
  const json* chosen = nullptr;
  std::string chosen_name;
  for (const auto& m : *manifest) {
    if (!m.is_object()) continue;
    std::vector<std::string> tags;
    if (auto t = m.find("RepoTags"); t != m.end() && t->is_array()) {
      for (const auto& tag : *t) {
        if (tag.is_string()) tags.push_back(tag.get<std::string>());
      }
    }
    if (ref.empty()) {
      if (chosen != nullptr) {
        return failure(EINVAL,
                       what + ": holds " + std::to_string(manifest->size()) + " images; name one");
      }
      chosen = &m;
      chosen_name = tags.empty() ? "" : tags[0];
      continue;
    }
    for (const std::string& tag : tags) {
      if (tag == ref || without_registry(tag) == without_registry(ref)) {
        chosen = &m;
        chosen_name = tag;
      }
    }
  }
  if (chosen == nullptr) return failure(ENOENT, what + ": no image tagged '" + ref + "'");
  Image image;
  image.ref = chosen_name;
  auto layers = chosen->find("Layers");
  if (layers == chosen->end() || !layers->is_array()) {
    return failure(EINVAL, what + ": manifest.json: image without Layers");
  }
  for (const auto& l : *layers) {
    ImageLayer layer;
    layer.member = l.is_string() ? l.get<std::string>() : "";
    if (layer.member.starts_with("blobs/sha256/")) {
      layer.digest = "sha256:" + layer.member.substr(13);
    }
    image.layers.push_back(std::move(layer));
  }
  const std::string config_path = str(*chosen, "Config");
  if (!config_path.empty()) {
    auto cfg = parse(fetch, config_path, what);
    if (!cfg.ok()) return cfg.err();
    read_config(*cfg, image);
    image.config_digest = config_path.starts_with("blobs/sha256/")
                              ? "sha256:" + config_path.substr(13)
                              : "sha256:" + config_path.substr(0, config_path.find('.'));
  }
  // LayerSources (Docker 25+) gives sizes and media types.
  if (auto sources = chosen->find("LayerSources");
      sources != chosen->end() && sources->is_object()) {
    for (ImageLayer& layer : image.layers) {
      if (auto s = sources->find(layer.diff_id); s != sources->end() && s->is_object()) {
        layer.media_type = str(*s, "mediaType");
        layer.size = num(*s, "size");
      }
    }
  }
  return image;
}

}  // namespace layerfs

#include <sys/stat.h>
#include <time.h>

#include <filesystem>
#include <fstream>

#include "layers/digest.h"

namespace layerfs {
namespace {

Result<void> write_atomically(const std::string& path, const std::string& text) {
  const std::string temp = path + ".partial";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) return failure(EIO, "'" + temp + "': cannot be written");
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec) return failure(ec.value(), "'" + path + "': " + ec.message());
  return {};
}

// Stores `text` as a blob of the layout; its descriptor's digest.
Result<std::string> put_blob(const std::string& dir, const std::string& text) {
  const std::string digest = Sha256::of(text);
  LAYERFS_TRY(write_atomically(dir + "/" + blob_path(digest), text));
  return digest;
}

std::string rfc3339(int64_t t) {
  const time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

Result<std::string> append_layer(const std::string& dir, const std::string& ref,
                                 const NewLayer& layer) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir + "/blobs/sha256", ec);
  if (ec) return failure(ec.value(), "oci '" + dir + "': " + ec.message());
  if (!fs::exists(dir + "/oci-layout")) {
    LAYERFS_TRY(write_atomically(dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  }
  ReadMember fetch = [&](const std::string& path) -> Result<std::string> {
    std::ifstream in(dir + "/" + path, std::ios::binary);
    if (!in) return failure(ENOENT, "no such file");
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  const std::string what = "oci '" + dir + "'";
  json index = {{"schemaVersion", 2}, {"manifests", json::array()}};
  if (fs::exists(dir + "/index.json")) {
    auto parsed = parse(fetch, "index.json", what);
    if (!parsed.ok()) return parsed.err();
    index = std::move(*parsed);
    if (!index.is_object()) return failure(EINVAL, what + ": index.json is not an object");
    if (!index.contains("manifests") || !index["manifests"].is_array()) {
      index["manifests"] = json::array();
    }
  }
  json config = {{"architecture", "amd64"},
                 {"os", "linux"},
                 {"config", json::object()},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", json::array()}}},
                 {"history", json::array()}};
  json layers = json::array();
  for (auto& m : index["manifests"]) {
    if (!m.is_object() || !m.contains("annotations") || !m["annotations"].is_object()) continue;
    if (str(m["annotations"], kRefName) != ref) continue;
    auto manifest = parse(fetch, blob_path(str(m, "digest")), what);
    if (!manifest.ok()) return manifest.err();
    if (!manifest->is_object()) return failure(EINVAL, what + ": a manifest is not an object");
    if (manifest->contains("layers") && (*manifest)["layers"].is_array()) {
      layers = (*manifest)["layers"];
    }
    if (manifest->contains("config") && (*manifest)["config"].is_object()) {
      auto cfg = parse(fetch, blob_path(str((*manifest)["config"], "digest")), what);
      if (!cfg.ok()) return cfg.err();
      if (cfg->is_object()) config = std::move(*cfg);
    }
    // The old image stays in the layout, untagged.
    m["annotations"].erase(kRefName);
    if (m["annotations"].empty()) m.erase("annotations");
  }
  fs::copy_file(layer.blob_file, dir + "/" + blob_path(layer.digest),
                fs::copy_options::overwrite_existing, ec);
  if (ec) return failure(ec.value(), what + ": " + ec.message());
  if (!config["rootfs"].is_object()) config["rootfs"] = {{"type", "layers"}};
  if (!config["rootfs"]["diff_ids"].is_array()) config["rootfs"]["diff_ids"] = json::array();
  config["rootfs"]["diff_ids"].push_back(layer.diff_id);
  if (!config.contains("history") || !config["history"].is_array()) {
    config["history"] = json::array();
  }
  config["history"].push_back({{"created", rfc3339(layer.created)},
                               {"created_by", layer.created_by},
                               {"comment", "layerdiff export"}});
  config["created"] = rfc3339(layer.created);
  const std::string config_text = config.dump();
  auto config_digest = put_blob(dir, config_text);
  if (!config_digest.ok()) return config_digest.err();
  layers.push_back(
      {{"mediaType", layer.media_type}, {"digest", layer.digest}, {"size", layer.size}});
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                   {"config",
                    {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                     {"digest", *config_digest},
                     {"size", config_text.size()}}},
                   {"layers", layers}};
  const std::string manifest_text = manifest.dump();
  auto manifest_digest = put_blob(dir, manifest_text);
  if (!manifest_digest.ok()) return manifest_digest.err();
  index["manifests"].push_back({{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                                {"digest", *manifest_digest},
                                {"size", manifest_text.size()},
                                {"annotations", {{kRefName, ref}}}});
  LAYERFS_TRY(write_atomically(dir + "/index.json", index.dump()));
  return *manifest_digest;
}

}  // namespace layerfs
