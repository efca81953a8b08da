// POSIX ACLs in their xattr form (system.posix_acl_access / system.posix_acl_default), and the
// inheritance a new object gets from its directory's default ACL.
//
// Objects are built in the work dir, which has no default ACL, so the inheritance the upper
// filesystem would apply to an object created in place is done here, the way the kernel does it
// (posix_acl_create): the default ACL becomes the new object's access ACL, masked by the mode
// asked for, and a directory inherits the default ACL itself. The umask applies only where the
// directory has no default ACL.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "layers/base/result.h"
#include "layers/base/unique_fd.h"

namespace layerfs::acl {

inline constexpr const char* kAccess = "system.posix_acl_access";
inline constexpr const char* kDefault = "system.posix_acl_default";

struct Inherited {
  mode_t mode = 0;          // the new object's permission bits (and the set-id bits asked for)
  std::string access;       // xattr value to set; empty when the mode says it all
  std::string default_acl;  // directories: xattr value to set; empty for others
};

// `parent_default` is the directory's default ACL in xattr form (non-empty); `mode` is what the
// caller asked for, without the umask. EINVAL for a malformed ACL.
Result<Inherited> inherit(std::string_view parent_default, mode_t mode, bool is_dir);

// The permission bits and ACLs an object made in the directory dir_fd gets, `mode` being what
// the caller asked for: with ACLs on (`acls`), the directory's default ACL or else the caller's
// `umask`; with them off, the mode as it is (the kernel applied the umask itself).
Result<Inherited> for_new_object(BorrowedFd dir_fd, mode_t mode, bool is_dir, mode_t umask,
                                 bool acls);

}  // namespace layerfs::acl
