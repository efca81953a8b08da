// Kernel overlayfs's directory redirects (redirect_dir): the overlay.redirect xattr on an upper
// directory names where its copies in the layers below are, "/a/b" from the layer roots or a
// name in the same parent. layers/merge follows them; these are the rules for their values.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "layers/base/result.h"

namespace layerfs::redirect {

// The kernel's redirect_max: longer redirects are not written (the tree is copied instead).
inline constexpr size_t kMax = 256;

// A redirect as kernel overlayfs accepts one (ovl_get_redirect_xattr): "/a/b" without empty
// elements, or one name. Neither "." nor "..", nor a marker name, is an element: a redirect
// never leaves the layer.
bool valid(std::string_view value);

// One directory on the way from a moving directory's parent up to the root (the root itself
// not included): its name and its own redirect ("" where it has none).
struct Ancestor {
  std::string name;
  std::string redirect;
};

// The redirect a directory with lower copies gets when it moves (ovl_set_redirect and
// ovl_get_redirect): nothing (keep `existing`) when it has one that still holds (it stays in its
// parent, or the redirect is absolute); else, within one parent, the name it has now; across
// parents, its path from the root, each directory on the way standing for its own redirect
// where it has one, up to the first absolute one. EXDEV past kMax bytes.
Result<std::optional<std::string>> for_move(std::string_view existing, bool same_parent,
                                            std::string_view name,
                                            const std::vector<Ancestor>& ancestors);

}  // namespace layerfs::redirect
