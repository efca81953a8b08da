#include "layers/image.h"

#include <nlohmann/json.hpp>

namespace layerfs {
namespace {

using json = nlohmann::json;

constexpr const char* kRefName = "org.opencontainers.image.ref.name";
constexpr const char* kIndexTypes[] = {"application/vnd.oci.image.index.v1+json",
                                       "application/vnd.docker.distribution.manifest.list.v2+json"};

Result<json> parse(const ReadMember& read, const std::string& path, const std::string& what) {
  auto text = read(path);
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

bool is_index(const json& d) {
  const std::string mt = d.value("mediaType", "");
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
      if (!h.is_object() || h.value("empty_layer", false)) continue;
      created.push_back(str(h, "created_by"));
    }
  }
  for (size_t i = 0; i < image.layers.size(); ++i) {
    if (i < diff_ids.size()) image.layers[i].diff_id = diff_ids[i];
    if (i < created.size()) image.layers[i].created_by = created[i];
  }
}

Result<Image> from_manifest(const ReadMember& read, const std::string& digest,
                            const std::string& ref, const std::string& what) {
  auto manifest = parse(read, blob_path(digest), what);
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
    layer.size = l.value("size", uint64_t{0});
    layer.member = blob_path(layer.digest);
    image.layers.push_back(std::move(layer));
  }
  if (auto config = manifest->find("config"); config != manifest->end() && config->is_object()) {
    image.config_digest = str(*config, "digest");
    auto cfg = parse(read, blob_path(image.config_digest), what);
    if (!cfg.ok()) return cfg.err();
    read_config(*cfg, image);
  }
  return image;
}

// Every image manifest an index leads to, with the ref name it is known by (nested indexes
// lend theirs to what they hold).
Result<void> collect(const ReadMember& read, const json& index, const std::string& inherited,
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
      auto nested = parse(read, blob_path(digest), what);
      if (!nested.ok()) return nested.err();
      LAYERFS_TRY(collect(read, *nested, name, what, depth + 1, out));
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

Result<Image> resolve_oci(const ReadMember& read, const std::string& ref, const std::string& what) {
  auto index = parse(read, "index.json", what);
  if (!index.ok()) return index.err();
  std::vector<std::pair<std::string, std::string>> images;
  LAYERFS_TRY(collect(read, *index, "", what, 0, images));
  if (images.empty()) return failure(ENOENT, what + ": the index holds no image");
  if (ref.empty()) {
    if (images.size() > 1) {
      std::string names;
      for (const auto& [n, d] : images) names += (names.empty() ? "" : ", ") + (n.empty() ? d : n);
      return failure(EINVAL, what + ": holds " + std::to_string(images.size()) +
                                 " images; name one (" + names + ")");
    }
    return from_manifest(read, images[0].second, images[0].first, what);
  }
  for (const auto& [name, digest] : images) {
    if (name == ref) return from_manifest(read, digest, name, what);
  }
  return failure(ENOENT, what + ": no image named '" + ref + "'");
}

Result<Image> resolve_docker(const ReadMember& read, const std::string& ref,
                             const std::string& what) {
  auto manifest = parse(read, "manifest.json", what);
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
    auto cfg = parse(read, config_path, what);
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
        layer.size = s->value("size", uint64_t{0});
      }
    }
  }
  return image;
}

}  // namespace layerfs
