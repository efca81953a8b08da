// What the kernel asked of the daemon: one counter per FUSE opcode. The root answers
// getxattr(kRequestsXattr) with them, one "NAME COUNT" line each (the nonzero ones), and a last
// line "passthrough-opens N", so a benchmark or a person can see the request mix of a workload:
//   getfattr --only-values -n user.layerfs.requests /mnt
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace layerfs {

inline constexpr const char* kRequestsXattr = "user.layerfs.requests";

class Requests {
 public:
  void saw(uint32_t opcode) {
    counts_[opcode < kOpcodes ? opcode : 0].fetch_add(1, std::memory_order_relaxed);
  }
  // The answer: the counts, then "passthrough-opens N".
  std::string report(uint64_t passthrough_opens) const;

 private:
  static constexpr uint32_t kOpcodes = 64;  // FUSE's are below; 0 counts the others
  std::array<std::atomic<uint64_t>, kOpcodes> counts_{};
};

}  // namespace layerfs
