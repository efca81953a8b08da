// layerdu --ci: rules over an analysis, from flags or a YAML file (dive's .dive-ci keys
// accepted: lowest-efficiency, highest-wasted-bytes, highest-user-wasted-percent), plus
// max-layer-size, max-duplicate-bytes and the forbid-* rules over the merged view.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "layers/base/result.h"
#include "tools/layerdu/report.h"

namespace layerfs::du {

struct Rules {
  std::optional<double> lowest_efficiency;            // live / total below this fails
  std::optional<uint64_t> highest_wasted_bytes;       // reclaimable bytes above this fail
  std::optional<double> highest_user_wasted_percent;  // reclaimable / bytes above the base
  std::optional<uint64_t> max_layer_size;
  std::optional<uint64_t> max_duplicate_bytes;
  bool forbid_setuid = false;             // setuid or setgid files
  bool forbid_world_writable = false;     // world-writable, but directories with the sticky bit
  bool forbid_devices = false;            // character and block devices
  bool forbid_capabilities = false;       // files with security.capability
  bool forbid_escaping_symlinks = false;  // relative targets that climb above the root
};

// dive's defaults where no file and no flag says anything.
Rules default_rules();

// Sets one rule by its key, from a value as a file or flag gives it.
Result<void> set_rule(Rules& r, const std::string& key, const std::string& value);

// Reads rules from a YAML file (`rules:` mapping, or the keys at the top). Values as dive
// takes them: a number, a size ("20MB", "1.5GiB", bytes), "disabled"/"off"/"false", and
// true/false for the forbid-* rules. Unknown keys are an error naming the key.
Result<Rules> load_rules(const std::string& path, Rules into);

// "20MB" (SI), "20MiB" (binary), "123" (bytes).
Result<uint64_t> parse_size(const std::string& text);

struct Verdict {
  std::string rule;
  bool passed = true;
  std::string detail;                  // the figure and the threshold
  std::vector<std::string> offenders;  // the worst ones, for people
};

std::vector<Verdict> evaluate(const Rules& rules, const Analysed& a);

}  // namespace layerfs::du
