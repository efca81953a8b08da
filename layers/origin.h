// Kernel overlayfs's record of where a copied-up object came from: the overlay.origin xattr,
// holding the lower object's file handle and the uuid of its filesystem (struct ovl_fb in the
// kernel's fs/overlayfs/overlayfs.h). Kernel overlayfs reads it to report the lower st_ino for
// a copied-up object, so writing it makes an upper copied up by layerfs show the same inode
// numbers under kernel overlayfs; reading it does the same for uppers the kernel copied up.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "layers/base/result.h"
#include "layers/base/unique_fd.h"

namespace layerfs::origin {

using Uuid = std::array<uint8_t, 16>;

// The uuid of the filesystem holding fd's object as the kernel knows it (all zeros where the
// filesystem has none or the kernel cannot tell).
Uuid filesystem_uuid(BorrowedFd fd);

// The xattr value for the object behind path_fd (O_PATH is fine), on a filesystem with
// `uuid`. Nothing where the filesystem cannot encode file handles.
std::optional<std::string> encode(BorrowedFd path_fd, const Uuid& uuid);

// The object an origin value names, opened O_PATH through `mount_fd` (any fd on the layer's
// filesystem) if its uuid is `uuid`. Needs CAP_DAC_READ_SEARCH (EPERM without it). ESTALE: the
// object is gone; EXDEV: the value names another filesystem; EINVAL: it is not an origin.
Result<UniqueFd> decode(std::string_view value, BorrowedFd mount_fd, const Uuid& uuid);

}  // namespace layerfs::origin
