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
  // The kernel asked, with the request this thread serves, that the daemon clear the set-id bits
  // of the file it changes (sys::asks_kill_suidgid): set by the device io as it reads a request,
  // which the same thread then serves.
  static void set_kill_suidgid(bool asked) { kill_suidgid_ = asked; }
  static bool kill_suidgid() { return kill_suidgid_; }
  // The answer: the counts, then "passthrough-opens N".
  std::string report(uint64_t passthrough_opens) const;

 private:
  static constexpr uint32_t kOpcodes = 64;  // FUSE's are below; 0 counts the others
  std::array<std::atomic<uint64_t>, kOpcodes> counts_{};
  static thread_local bool kill_suidgid_;
};

}  // namespace layerfs
