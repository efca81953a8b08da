// Mounts the same layers with kernel overlayfs and with layerfs and compares what they show.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tests/support/mounts.h"
#include "tests/support/tree.h"

namespace layerfs::test {

#define SKIP_WITHOUT_FUSE()                                  \
  do {                                                       \
    if (auto why = fuse_unavailable()) GTEST_SKIP() << *why; \
  } while (0)

#define SKIP_WITHOUT_KERNEL_OVERLAY()                                  \
  do {                                                                 \
    SKIP_WITHOUT_FUSE();                                               \
    if (auto why = kernel_overlay_unavailable()) GTEST_SKIP() << *why; \
  } while (0)

// Every path's lstat (but st_dev), link target, xattrs and content must agree. Kernel overlayfs
// needs `kernel_opts` (e.g. userxattr) for some marker forms.
void expect_kernel_parity(const std::vector<fs::path>& lowers, const std::string& kernel_opts = "");

// The requests the layerfs daemon at `mnt` has served, by name ("READ", "passthrough-opens",
// ...), from its root's user.layerfs.requests.
std::map<std::string, uint64_t> requests_of(const fs::path& mnt);

}  // namespace layerfs::test
