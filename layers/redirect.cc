#include "layers/redirect.h"

#include <climits>

#include "layers/whiteout.h"

namespace layerfs::redirect {

bool valid(std::string_view r) {
  auto element_ok = [](std::string_view e) {
    return !e.empty() && e != "." && e != ".." && e.size() <= NAME_MAX &&
           Whiteout::classify_name(e) == Whiteout::Name::kPlain;
  };
  if (r.empty()) return false;
  if (r[0] != '/') return r.find('/') == std::string_view::npos && element_ok(r);
  r.remove_prefix(1);
  for (;;) {
    const size_t slash = r.find('/');
    if (!element_ok(r.substr(0, slash))) return false;
    if (slash == std::string_view::npos) return true;
    r.remove_prefix(slash + 1);
  }
}

Result<std::optional<std::string>> for_move(std::string_view existing, bool same_parent,
                                            std::string_view name,
                                            const std::vector<Ancestor>& ancestors) {
  if (!existing.empty() && (same_parent || existing[0] == '/')) {
    return std::optional<std::string>();
  }
  if (same_parent) {
    if (name.size() > kMax) return Errno{EXDEV};
    return std::optional<std::string>(std::string(name));
  }
  std::string element(existing.empty() ? name : existing);
  std::string value;
  for (size_t up = 0;; ++up) {
    value = (element[0] == '/' ? element : "/" + element) + value;
    if (value.size() > kMax) return Errno{EXDEV};
    if (element[0] == '/' || up == ancestors.size()) break;
    const Ancestor& a = ancestors[up];
    element = a.redirect.empty() ? a.name : a.redirect;
  }
  return std::optional<std::string>(std::move(value));
}

}  // namespace layerfs::redirect
