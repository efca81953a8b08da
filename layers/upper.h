// The writable layer of a mount: the upper directory and the work directory beside it.
//
// Everything that appears in the upper appears atomically: it is built in workdir/work (the
// directory kernel overlayfs uses for the same purpose) and renamed into place only when
// complete, so a crash leaves either the old state or the new one. The work dir is emptied when
// the upper is opened. Two mounts may not share an upper or a work dir: both are locked (flock)
// for as long as the Upper lives.
//
// Markers are written in the format kernel overlayfs reads (DESIGN section 3): a whiteout is a
// char device 0/0 (or a ".wh.NAME" file where mknod is refused); opaque is overlay.opaque=y in
// the trusted namespace when the process may write it, else in the user namespace (what kernel
// overlayfs reads with -o userxattr).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <variant>

#include "layers/base/result.h"
#include "layers/base/unique_fd.h"

namespace layerfs {

// A new object to make in the upper, with everything it is made with (see Upper::create).
struct NewEntry {
  enum class Kind { kFile, kDir, kNode, kSymlink };
  Kind kind = Kind::kFile;
  mode_t type = 0;               // kNode: S_IFCHR, S_IFBLK, S_IFIFO or S_IFSOCK
  dev_t rdev = 0;                // kNode
  const char* target = nullptr;  // kSymlink
  int open_flags = 0;            // kFile: how to open the fd returned
  mode_t create_mode = 0;        // the permission bits it is created with
  mode_t mode = 0;               // what it has on disk in the end (set-id bits included)
  uid_t uid = 0;                 // its owner, unless `keep_owner`
  gid_t gid = 0;
  bool keep_owner = false;     // xattr_permissions: the writer's own owner stays on disk
  std::string override_xattr;  // with override_value: the owner and mode as shown
  std::string override_value;
  std::string access_acl;  // xattr values to set (empty: none)
  std::string default_acl;

  // What the kernel would give an object a caller makes (POSIX): the caller's owner, the
  // group of a setgid parent (whose set-group-id bit a new directory inherits), `perms` from
  // the parent's default ACL or the umask. With `override_xattr` (xattr_permissions), owner and
  // mode go there, and the object on disk keeps the writer as owner, with owner access.
  static NewEntry plan(Kind kind, const struct stat& shown_parent, uid_t uid, gid_t gid,
                       mode_t perms, std::string access_acl, std::string default_acl,
                       const std::string& override_xattr);
};

class Upper {
 public:
  // Opens and locks upper and work. The error is one line naming the directory and the reason.
  // Without `device_whiteouts` (or where mknod of 0/0 is refused) whiteouts are ".wh.NAME"
  // files.
  static Result<std::unique_ptr<Upper>> open(const std::string& upper_path,
                                             const std::string& work_path,
                                             bool device_whiteouts = true);

  // A plain directory that a layer is applied onto (what `layerdiff apply` does), not the upper
  // of a mount: the same rules write it, but nothing is locked (the caller owns the directory
  // for the while) and no work dir is given: entries are staged in a private directory made
  // inside it (".layerfs-apply-*", mode 0700, so on the same filesystem), removed again when
  // the Upper goes. A removal there deletes the entry, as a directory with no lower layers
  // needs no whiteout (remove with lower_shows false).
  // With `device_whiteouts`, whiteouts are 0/0 devices where mknod is allowed (an overlay
  // layer being written), else ".wh.NAME" files.
  static Result<std::unique_ptr<Upper>> open_target(const std::string& dir_path,
                                                    bool device_whiteouts = false);
  ~Upper();

  BorrowedFd upper_fd() const { return upper_.get(); }  // O_RDONLY | O_DIRECTORY; locked by open()
  BorrowedFd work_fd() const { return work_.get(); }    // O_PATH on workdir/work
  dev_t dev() const { return dev_; }
  // "trusted.overlay." or "user.overlay.": the namespace this upper's markers are written in.
  const std::string& xattr_prefix() const { return prefix_; }

  // A name in the work dir that no other operation of this process uses.
  std::string temp_name();

  bool device_whiteouts() const { return device_whiteouts_; }

  // Makes `name` in `dir_fd` (a directory of the upper) a whiteout, replacing whatever is there
  // (a directory with its contents): in one rename for a device whiteout; a ".wh." marker is
  // written first, then the name removed.
  Result<void> make_whiteout(BorrowedFd dir_fd, const char* name);
  // The whiteout the upper directory dir_fd holds for `name`: a device at the name (which a new
  // object replaces by rename), a ".wh.NAME" marker beside the absent name (removed once the
  // new object is in place), or none.
  enum class Marker { kNone, kDevice, kFile };
  static Marker whiteout_at(BorrowedFd dir_fd, const char* name);
  // Removes a ".wh.NAME" marker, once NAME itself has been put in place (the upper's own name
  // shows whether or not the marker is there, so the order is crash-safe).
  static Result<void> clear_whiteout_file(BorrowedFd dir_fd, const char* name);
  // Marks a directory of the upper opaque.
  Result<void> mark_opaque(BorrowedFd dir_fd);
  // The redirect a directory of the upper carries (empty: none), and setting one (see
  // layers/merge.h for what it means).
  Result<std::string> redirect(BorrowedFd dir_fd) const;
  Result<void> set_redirect(BorrowedFd dir_fd, const std::string& redirect);
  // The name `name` of the upper directory dir_fd, which the merge does not show (nothing is
  // there, or a whiteout), becomes `e`. Where nothing is there and the create alone gives `e`
  // (no chown, chmod or xattr to follow: see creates_under_zero_umask), it is made in place, as
  // kernel overlayfs does; otherwise built in the work dir, owned and moded, made opaque if it
  // is a directory replacing a whiteout (nothing of what was deleted may show through),
  // installed over the whiteout, and a ".wh.NAME" marker removed after. Its lstat, and for a
  // file the open fd.
  struct Made {
    struct stat st;
    UniqueFd fd;
  };
  Result<Made> create(BorrowedFd dir_fd, const char* name, const NewEntry& e);
  // The process's umask is 0 from now on (the daemon sets it so before mounting). Where the work
  // dir is neither set-group-id nor carries a default ACL, an entry made there then has exactly
  // the daemon's owner and its create mode, and create() skips the chown and the chmod that
  // would give it what it already has.
  void creates_under_zero_umask();
  // Removes `name` from the upper directory dir_fd: a whiteout where `lower_shows` (a lower
  // layer still has the name) or where the object is not in the upper at all (`in_upper`
  // false), else the entry itself. A directory is swapped with its whiteout and removed in the
  // work dir, so the name never shows the lower directory in between; one removed outright
  // that still has contents is moved into the work dir in one rename and emptied there.
  Result<void> remove(BorrowedFd dir_fd, const char* name, bool in_upper, bool is_dir,
                      bool lower_shows);
  // Moves `name` of the upper directory `from` to `new_name` of `to` (both upper copies),
  // replacing what the merge shows there, with a whiteout left at the old name where
  // `lower_shows_old`. A whiteout at the new name is replaced (a directory takes its place by
  // exchange), a ".wh." marker there removed after.
  Result<void> move(BorrowedFd from, const char* name, BorrowedFd to, const char* new_name,
                    bool is_dir, bool lower_shows_old);
  // Makes `new_name` in the upper directory `to` by `make_link(dir, name)`, over a whiteout
  // there if there is one.
  Result<void> link(BorrowedFd to, const char* new_name,
                    const std::function<Result<void>(BorrowedFd dir, const char* name)>& make_link);
  // After the upper directory dir_fd was moved (renamed) into a directory that merges lower
  // copies (`into_merged`): unless it merges copies of its own (`merges`, which its redirect
  // keeps apart), it is made opaque, so that nothing a lower layer has under its new name shows
  // through it, as kernel overlayfs does.
  Result<void> opaque_after_move(BorrowedFd dir_fd, bool merges, bool into_merged);
  // Whether a directory is opaque, by every marker form (Whiteout::dir_marks).
  static Result<bool> is_opaque(BorrowedFd dir_fd);

  // Renames the work-dir entry `temp` to `name` in dir_fd; with `replace` it may replace an
  // existing entry (a directory and a non-directory replace each other by exchange, and what
  // was replaced is removed), else it fails with EEXIST.
  Result<void> install(const std::string& temp, BorrowedFd dir_fd, const char* name, bool replace);
  // Removes a work-dir entry (a directory with everything in it).
  void discard(const std::string& temp);
  // The mount did not happen: removes workdir/work if open() made it, so a failed mount leaves
  // nothing behind.
  void abandon();

 private:
  UniqueFd upper_;
  UniqueFd work_;
  UniqueFd work_lock_;
  dev_t dev_ = 0;
  std::string prefix_;
  bool device_whiteouts_ = true;
  bool made_work_ = false;  // open() created workdir/work
  // creates_under_zero_umask(): new entries get the daemon's ids and their create mode.
  bool exact_creates_ = false;
  uid_t creator_uid_ = 0;
  gid_t creator_gid_ = 0;
  std::string staging_;  // open_target(): the staging directory's name in the target
  std::atomic<uint64_t> counter_{0};
};

// Removes everything below the directory dir_fd (not the directory itself), without following
// symlinks. Used to empty the work dir.
Result<void> remove_contents(BorrowedFd dir_fd);

}  // namespace layerfs
