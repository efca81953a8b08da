#include "fuse/requests.h"

#include <string_view>

namespace layerfs {
namespace {

// The kernel's names (include/uapi/linux/fuse.h, enum fuse_opcode), without FUSE_.
constexpr std::string_view kNames[] = {
    "OTHER",        "LOOKUP",        "FORGET",       "GETATTR",
    "SETATTR",      "READLINK",      "SYMLINK",      "",
    "MKNOD",        "MKDIR",         "UNLINK",       "RMDIR",
    "RENAME",       "LINK",          "OPEN",         "READ",
    "WRITE",        "STATFS",        "RELEASE",      "",
    "FSYNC",        "SETXATTR",      "GETXATTR",     "LISTXATTR",
    "REMOVEXATTR",  "FLUSH",         "INIT",         "OPENDIR",
    "READDIR",      "RELEASEDIR",    "FSYNCDIR",     "GETLK",
    "SETLK",        "SETLKW",        "ACCESS",       "CREATE",
    "INTERRUPT",    "BMAP",          "DESTROY",      "IOCTL",
    "POLL",         "NOTIFY_REPLY",  "BATCH_FORGET", "FALLOCATE",
    "READDIRPLUS",  "RENAME2",       "LSEEK",        "COPY_FILE_RANGE",
    "SETUPMAPPING", "REMOVEMAPPING", "SYNCFS",       "TMPFILE",
    "STATX"};

}  // namespace

thread_local bool Requests::kill_suidgid_ = false;

std::string Requests::report(uint64_t passthrough_opens) const {
  std::string out;
  for (uint32_t op = 0; op < kOpcodes; ++op) {
    const uint64_t n = counts_[op].load(std::memory_order_relaxed);
    if (n == 0) continue;
    std::string name = op < std::size(kNames) && !kNames[op].empty()
                           ? std::string(kNames[op])
                           : "OPCODE_" + std::to_string(op);
    out += name + " " + std::to_string(n) + "\n";
  }
  return out + "passthrough-opens " + std::to_string(passthrough_opens) + "\n";
}

}  // namespace layerfs
