// An OCI runtime-spec bundle: DIR/config.json read into a Spec. What the launcher does not
// implement is named in `ignored` (one warning line for the caller), never dropped silently.
#pragma once

#include <string>
#include <vector>

#include "layers/base/result.h"
#include "tools/layerrun/capabilities.h"
#include "tools/layerrun/spec.h"

namespace layerfs::run {

struct Bundle {
  Spec spec;
  CapabilitySets caps;
  std::vector<std::string> ignored;  // the fields not implemented, as JSON paths
};

Result<Bundle> load_bundle(const std::string& dir);

}  // namespace layerfs::run
