// The inodes of the merged tree the kernel holds, kept in step with the layers: names resolved,
// objects copied up, directories listed. Every overlay rule comes from layers/ (merge, upper,
// copy_up, attributes, redirect); what is here is the bookkeeping around them: which Inode
// stands for which object, which layer copies it has, and when the kernel's caches are told.
#pragma once

#include <fuse_lowlevel.h>

#include <memory>

#include "fuse/daemon.h"

namespace layerfs::tree {

// Directories merged from at least this many layer copies index their listing by name.
inline constexpr size_t kIndexedCopies = 8;

// Resolves `name` in `parent` and publishes the inode; fills `e` for the reply.
Result<void> lookup(Daemon& d, Inode& parent, const char* name, fuse_entry_param* e,
                    const LookupHint& hint = {});
// Resolves without publishing: the inode the kernel holds for the name, or a fresh one.
// `st`, if given, receives the lstat the merge already made of the object.
Result<std::shared_ptr<Inode>> resolve(Daemon& d, Inode& parent, const char* name,
                                       struct stat* st = nullptr, const LookupHint& hint = {});

// Makes sure `inode` lives in the upper, copying it (and its parents first) if not.
// With `truncate` (an O_TRUNC open), the data is not copied: it is about to go.
Result<void> copy_up(Daemon& d, Inode& inode, bool truncate = false);
// Copies a directory and everything it shows into the upper and makes the copy opaque, so
// the directory no longer depends on its lower copies (before it is renamed). Each directory
// copied then shows its upper inode number, as kernel overlayfs shows an opaque directory.
Result<void> copy_up_tree(Daemon& d, Inode& dir);
// Before `dir`, which has lower copies, is renamed from `from` to `to`: copies the directory
// alone up and records in its upper copy where its lower copies are (kernel overlayfs's
// ovl_set_redirect), and has the inode keep their fds. EXDEV where the redirect would be
// too long: the caller copies the tree instead.
Result<void> redirect_before_rename(Daemon& d, Inode& dir, const Inode& from, const Inode& to);
// Whether a lower copy of `dir` still shows `name`: removing it then needs a whiteout.
bool lower_has(Daemon& d, Inode& dir, const char* name);
// The merged listing of a directory, built once and shared.
Result<std::shared_ptr<const Listing>> listing(Daemon& d, Inode& dir);

}  // namespace layerfs::tree
