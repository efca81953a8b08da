// Extended attributes of the object behind an fd of any kind (O_PATH included, symlinks too),
// or of a directory entry named from its directory's fd (never following a symlink there).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "layers/base/result.h"
#include "layers/base/unique_fd.h"

namespace layerfs::sys {

// get_xattr returns the value size; with size 0 only the size is asked.
Result<size_t> get_xattr(BorrowedFd fd, const char* name, void* value, size_t size);
Result<std::string> get_xattr(BorrowedFd fd, const char* name);
Result<size_t> list_xattr(BorrowedFd fd, char* list, size_t size);
Result<std::string> list_xattr(BorrowedFd fd);
Result<void> set_xattr(BorrowedFd fd, const char* name, std::string_view value, int flags = 0);
Result<void> remove_xattr(BorrowedFd fd, const char* name);

// The same through an fd opened for reading or writing (not O_PATH), without a path walk.
Result<size_t> list_xattr_open(BorrowedFd fd, char* list, size_t size);
Result<std::string> get_xattr_open(BorrowedFd fd, const char* name);
// The same for the entry `entry` of the directory behind dir_fd, without opening it.
Result<size_t> get_xattr_at(BorrowedFd dir_fd, const char* entry, const char* name, void* value,
                            size_t size);
Result<size_t> list_xattr_at(BorrowedFd dir_fd, const char* entry, char* list, size_t size);

}  // namespace layerfs::sys
